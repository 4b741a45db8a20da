"""Issue #32: bad input into the models and loops defined in the notebooks gets one clear error,
raised before any work (a training update, a write), naming the value, what was expected and the
fix.

The definitions come from the notebooks in the repository; ``INPUT_CHECKS_NOTEBOOKS=DIR`` loads them
from the notebooks in DIR instead (a patched copy, before it replaces the committed ones)."""
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tools.notebooks import load_definitions
from utils.batches import ResidentBatches
from utils.runtime import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

FOLDER = Path(os.environ.get("INPUT_CHECKS_NOTEBOOKS") or REPO_ROOT)


def _load(name):
    """The notebook's definitions, leaving sys.modules[stem] as it was: other test modules (and the
    worker processes of utils.parallel, which pickle their classes by that name) keep the module
    they loaded."""
    stem, missing = Path(name).stem, object()
    before = sys.modules.get(stem, missing)
    try:
        return load_definitions(FOLDER / name)
    finally:
        if before is missing:
            sys.modules.pop(stem, None)
        else:
            sys.modules[stem] = before


@pytest.fixture(scope="module")
def q1():
    return _load("Q1_VAE_CVAE.ipynb")


@pytest.fixture(scope="module")
def q2():
    return _load("Q2_VQVAE.ipynb")


def tiny_hp(**kw):
    return dict(dict(num_hiddens=16, num_residual_layers=1, num_residual_hiddens=8,
                     num_embeddings=32, embedding_dim=8, commitment_cost=0.25, decay=0.99,
                     learning_rate=3e-3), **kw)


class Batches:
    """An iterable of given batches that exposes no data set (the generic loader), counting what was
    drawn."""

    def __init__(self, *batches):
        self.batches, self.drawn = list(batches), 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for b in self.batches:
            self.drawn += 1
            yield b


class CountingAdam(torch.optim.Adam):
    steps = 0

    def step(self, *a, **kw):
        CountingAdam.steps += 1
        return super().step(*a, **kw)


# ------------------------------------------------------------------ Q2: the VQ-VAE
def test_model_refuses_30x30_images_naming_the_size_and_the_fix(q2):
    model = q2.Model(16, 1, 8, 32, 8, 0.25, 0.99)
    with pytest.raises(ValueError) as info:
        model(torch.rand(2, 3, 30, 30) - 0.5)
    msg = str(info.value)
    assert ("30x30" in msg and "multiples of 4" in msg and "28x28" in msg and "32x32" in msg
            and "pad" in msg)


def test_encoder_alone_refuses_30x30_images(q2):
    with pytest.raises(ValueError, match="30x31 pixels.*multiples of 4"):
        q2.Encoder(3, 16, 1, 8)(torch.rand(2, 3, 30, 31))


@pytest.mark.parametrize("size", [28, 32, 16])
def test_sizes_that_are_multiples_of_4_come_back_whole(q2, size):
    model = q2.Model(16, 1, 8, 32, 8, 0.25, 0.99, in_channels=1)
    assert model(torch.rand(2, 1, size, size) - 0.5)[1].shape == (2, 1, size, size)


@pytest.mark.parametrize("cls", [
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "TracedVectorQuantizerEMA"])
def test_quantiser_refuses_inputs_whose_channels_are_not_embedding_dim(q2, cls):
    vq = getattr(q2, cls)(*((8, 4, 0.25) if cls == "VectorQuantizer" else (8, 4, 0.25, 0.99)))
    with pytest.raises(ValueError) as info:
        vq(torch.randn(2, 5, 3, 3))
    msg = str(info.value)
    assert cls in msg and "5 channels" in msg and "(B, 4, H, W)" in msg and "embedding_dim" in msg
    assert vq(torch.randn(2, 4, 3, 3))[1].shape == (2, 4, 3, 3)          # right input still works


def test_ema_quantiser_state_untouched_by_a_refused_input(q2):
    vq = q2.VectorQuantizerEMA(8, 4, 0.25, 0.99).train()
    before = vq._ema_w.clone()
    with pytest.raises(ValueError):
        vq(torch.randn(2, 5, 4, 4))
    assert torch.equal(vq._ema_w, before)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_vqvae_training_refuses_a_nan_batch_before_any_update(q2, bad):
    model = q2.build_model(q2.SKELETON_EMA, tiny_hp())
    x = torch.rand(8, 3, 16, 16) - 0.5
    x[5, 0, 3, 3] = bad
    CountingAdam.steps = 0
    with pytest.raises(ValueError, match="NaN" if bad != bad else "infinite"):
        q2.train_vqvae(model, ResidentBatches(x, batch_size=4, shuffle=False), 3, 0.05)


def test_vqvae_training_checks_every_host_batch_not_only_the_first(q2, monkeypatch):
    model = q2.build_model(q2.SKELETON_EMA, tiny_hp())
    good, bad = torch.rand(4, 3, 16, 16) - 0.5, torch.rand(4, 3, 16, 16) - 0.5
    bad[1, 1, 2, 2] = float("nan")
    loader = Batches((good,), (bad,))
    updates = []
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: updates.append(1) or real_forward(x))
    with pytest.raises(ValueError, match="batch 2 of the loader: the training images hold NaN"):
        q2.train_vqvae(model, loader, 4, 0.05)
    # the bad batch never reached the model
    assert len(updates) == 1


def test_vqvae_training_still_stops_on_a_nan_loss_from_the_weights(q2):
    model = q2.build_model(q2.SKELETON_EMA, tiny_hp())
    with torch.no_grad():
        model._decoder._conv_trans_2.bias.fill_(float("nan"))
    x = torch.rand(8, 3, 16, 16) - 0.5
    with pytest.raises(Exception, match="the loss became nan") as info:
        q2.train_vqvae(model, ResidentBatches(x, batch_size=4), 4, 0.05, check_every=2)
    assert type(info.value).__name__ == "NonFiniteLossError"


@pytest.mark.parametrize("pixels, hint", [(255.0, "0-255"), (3.0, "rescale")])
def test_vqvae_training_refuses_pixels_out_of_range(q2, pixels, hint):
    model = q2.build_model(q2.SKELETON_EMA, tiny_hp())
    x = torch.rand(8, 3, 16, 16) * pixels
    with pytest.raises(ValueError, match=hint):
        q2.train_vqvae(model, ResidentBatches(x, batch_size=4), 2, 0.05)


@pytest.mark.parametrize("settings", ["SKELETON_EMA", "SKELETON_PLAIN"])
def test_build_model_without_decay_names_the_key(q2, settings):
    hp = tiny_hp()
    del hp["decay"]
    # the plain quantiser needs no decay
    if settings == "SKELETON_PLAIN":
        assert q2.build_model(q2.SKELETON_PLAIN, hp) is not None
        return
    with pytest.raises(KeyError) as info:
        q2.build_model(q2.SKELETON_EMA, hp)
    assert ("'decay'" in str(info.value) and "0.99" in str(info.value)
            and "dict(hp" in str(info.value))
    # printed as a sentence, not a repr
    assert not str(info.value).startswith("\"")


def test_run_vqvae_checks_hp_before_any_work(q2):
    hp = tiny_hp()
    del hp["learning_rate"]
    x = torch.rand(8, 3, 16, 16) - 0.5
    state = torch.random.get_rng_state()
    with pytest.raises(KeyError, match="'learning_rate'"):
        q2.run_vqvae(q2.SKELETON_PLAIN, hp, x, x, 0.05, updates=1, batch_size=4, seed=0)
    # not even seeded: nothing ran
    assert torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------------------------------ Q2: the PixelCNN prior
@pytest.mark.parametrize("value", [16, -1])
def test_prior_forward_refuses_codes_outside_its_codebook(q2, value):
    prior = q2.GatedPixelCNN(16, 10, channels=8, num_layers=2)
    codes = torch.randint(0, 16, (2, 3, 3))
    codes[1, 2, 0] = value
    with pytest.raises(ValueError) as info:
        prior(codes, torch.tensor([0, 1]))
    msg = str(info.value)
    assert ("GatedPixelCNN" in msg and "[0, 15]" in msg and str(value) in msg
            and "num_embeddings" in msg)


def test_prior_forward_refuses_labels_outside_its_classes(q2):
    prior = q2.GatedPixelCNN(16, 10, channels=8, num_layers=2)
    with pytest.raises(ValueError, match=r"labels: ids must lie in \[0, 9\].*10"):
        prior(torch.zeros(2, 3, 3, dtype=torch.long), torch.tensor([0, 10]))


def test_prior_forward_refuses_float_codes(q2):
    prior = q2.GatedPixelCNN(16, 10, channels=8, num_layers=2)
    with pytest.raises(TypeError, match=r"\.long\(\)"):
        prior(torch.zeros(2, 3, 3), torch.tensor([0, 1]))


def test_train_prior_refuses_bad_codes_before_the_first_update(q2):
    prior = q2.GatedPixelCNN(8, 10, channels=8, num_layers=2)
    codes, y = torch.randint(0, 8, (16, 4, 4)), torch.zeros(16, dtype=torch.long)
    codes[11, 0, 0] = 8
    before = [p.clone() for p in prior.parameters()]
    with pytest.raises(ValueError,
                       match="train_prior: code grids.*the first 8 at flat position 176"):
        q2.train_prior(prior, codes, y, 3, 8, desc="test")
    assert all(torch.equal(a, b) for a, b in zip(before, prior.parameters()))


def test_train_prior_refuses_bad_labels(q2):
    prior = q2.GatedPixelCNN(8, 10, channels=8, num_layers=2)
    with pytest.raises(ValueError, match=r"train_prior: labels.*\[0, 9\]"):
        q2.train_prior(prior, torch.zeros(16, 4, 4, dtype=torch.long), torch.full((16,), 10), 3, 8,
                       desc="test")


def test_bits_per_code_refuses_bad_codes(q2):
    prior = q2.GatedPixelCNN(8, 10, channels=8, num_layers=2)
    codes = torch.randint(0, 8, (4, 4, 4))
    codes[0, 0, 0] = -3
    with pytest.raises(ValueError, match="prior_bits_per_code: code grids.*-3"):
        q2.prior_bits_per_code(prior, codes, torch.zeros(4, dtype=torch.long))


def test_prior_sampling_still_works_with_the_forward_check(q2):
    torch.manual_seed(0)
    prior = q2.GatedPixelCNN(16, 10, channels=8, num_layers=2)
    s = prior.sample(torch.arange(3), (2, 3))
    assert s.shape == (3, 2, 3) and 0 <= int(s.min()) and int(s.max()) < 16


# ------------------------------------------------------------------ Q1: the CVAE
def _images(n):
    return torch.rand(n, 1, 28, 28)


def test_cvae_label_10_in_a_later_batch_stops_before_that_update(q1, monkeypatch):
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    loader = Batches((_images(4), torch.tensor([1, 2, 3, 4])),
                     (_images(4), torch.tensor([5, 6, 10, 7])),
                     (_images(4), torch.tensor([1, 1, 1, 1])))
    CountingAdam.steps = 0
    opt = CountingAdam(model.parameters(), 1e-3)
    with pytest.raises(ValueError) as info:
        q1.train_cvae_mlp(model, loader, 1, verbose=False, optimizer=opt)
    msg = str(info.value)
    assert "batch 2" in msg and "[0, 9]" in msg and "10" in msg and "y - 1" in msg
    assert CountingAdam.steps == 1 and loader.drawn == 2                # bad batch never trained


def test_cvae_labels_of_a_resident_loader_are_checked_before_any_update(q1):
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    y = torch.randint(0, 10, (16,))
    y[13] = 10                                                          # in the last batch
    CountingAdam.steps = 0
    opt = CountingAdam(model.parameters(), 1e-3)
    for loader in (ResidentBatches(_images(16), y, batch_size=4),
                   q1.skeleton_loader(_images(16), y, 4)):
        with pytest.raises(ValueError, match=r"\[0, 9\]"):
            q1.train_cvae_mlp(model, loader, 1, verbose=False, optimizer=opt)
    assert CountingAdam.steps == 0


def test_vae_nan_in_a_later_batch_stops_before_that_update(q1):
    model = q1.VAE_MLP(784, 16, 2, "cpu")
    bad = _images(4)
    bad[2, 0, 5, 5] = float("nan")
    loader = Batches((_images(4),), (bad,))
    CountingAdam.steps = 0
    with pytest.raises(ValueError, match="batch 2.*NaN"):
        q1.train_vae_mlp(model, loader, 1, verbose=False,
                         optimizer=CountingAdam(model.parameters(), 1e-3))
    assert CountingAdam.steps == 1


def test_training_still_runs_on_good_batches(q1):
    torch.manual_seed(0)
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    loader = Batches(*[(_images(4), torch.randint(0, 10, (4,))) for _ in range(3)])
    hist = q1.train_cvae_mlp(model, loader, 2, verbose=False)
    assert len(hist["train_loss"]) == 2 and loader.drawn == 6


def test_decode_with_one_number_for_a_batch_says_how_to_repeat_it(q1):
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    with pytest.raises(ValueError) as info:
        model.decode(torch.randn(5, 2), 7)
    msg = str(info.value)
    assert "labels=7 is one number" in msg and "torch.full((5,), 7)" in msg
    with pytest.raises(ValueError, match="labels=7 is one number"):
        model.decode(torch.randn(5, 2), torch.tensor(7))
    assert model.decode(torch.randn(5, 2), torch.full((5,), 7)).shape == (5, 784)


def test_decode_with_the_wrong_number_of_labels_keeps_its_message(q1):
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    with pytest.raises(ValueError, match="got 4 labels for a batch of 3: pass one label per image"):
        model.decode(torch.randn(3, 2), torch.arange(4))


def test_step_loss_one_hot_never_sees_a_bad_label(q1):
    """The skeleton's F.one_hot in the CVAE's step: torch's message would name no input; ours comes
    first."""
    model = q1.CVAE_MLP(784, 16, 2, 10, "cpu")
    with pytest.raises(ValueError, match=r"labels: ids must lie in \[0, 9\]"):
        q1.train_cvae_mlp(model, Batches((_images(4), torch.tensor([0, 1, 2, -1]))), 1,
                          verbose=False)


def test_f_one_hot_is_what_would_fail_without_the_check():
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes"):
        F.one_hot(torch.tensor([10]), 10)
