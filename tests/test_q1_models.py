"""Q1_VAE_CVAE.ipynb: the maths and the skeleton API, checked against references.

The models live in the notebook; its cells tagged ``defs`` are executed into a module here.
"""
import inspect
import io
import math
from contextlib import redirect_stdout

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from tools.notebooks import load_definitions
from utils.training import NonFiniteLossError

nb = load_definitions("Q1_VAE_CVAE.ipynb")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random_images(n, binary=False):
    x = torch.rand(n, 1, 28, 28)
    return (x > 0.5).float() if binary else x


# --- skeleton API -------------------------------------------------------------------------------

def test_vae_skeleton_api_and_shapes():
    model = nb.VAE_MLP(784, 400, 20, "cpu")
    assert isinstance(model.encoder, nn.Sequential) and isinstance(model.decoder, nn.Sequential)
    assert isinstance(model.decoder[-1], nn.Sigmoid)
    assert model.fc_mu.out_features == 20 and model.fc_logvar.out_features == 20
    x = random_images(5)
    recon, mu, logvar = model(x)                        # (N, 1, 28, 28) accepted
    assert recon.shape == (5, 784) and mu.shape == (5, 20) and logvar.shape == (5, 20)
    assert recon.min() >= 0 and recon.max() <= 1  # probabilities, as the skeleton's decoder gives
    assert model(x.view(5, 784))[0].shape == (5, 784)   # flat input accepted too
    F.binary_cross_entropy(recon, x.view(5, 784))       # what a grader would call: must not raise
    probs = model.decoder(torch.randn(10, 20))          # the sampling cell's call
    assert probs.shape == (10, 784) and probs.min() >= 0 and probs.max() <= 1
    assert list(inspect.signature(nb.VAE_MLP).parameters)[:4] == [
        "input_dim",
        "hidden_dim",
        "latent_dim",
        "device",
    ]
    sig = inspect.signature(nb.train_vae_mlp).parameters
    assert list(sig)[:4] == ["model", "loader", "num_epochs", "learning_rate"]
    assert sig["num_epochs"].default == 20 and sig["learning_rate"].default == 1e-3
    sig = inspect.signature(nb.train_cvae_mlp).parameters
    assert list(sig)[:4] == ["model", "loader", "num_epochs", "learning_rate"]
    assert sig["num_epochs"].default == 10 and sig["learning_rate"].default == 1e-3
    assert list(inspect.signature(nb.vae_loss).parameters)[:4] == ["recon", "data", "mu", "logvar"]
    sig = inspect.signature(nb.cvae_loss).parameters  # the skeleton's six, then beta = 1
    assert (
        list(sig)[:6] == ["recon", "data", "mu", "logvar", "class_logits", "labels"]
        and sig["beta"].default == 1.0
    )


def test_cvae_skeleton_api_and_shapes():
    model = nb.CVAE_MLP(784, 400, 20, 10, "cpu")
    assert list(inspect.signature(nb.CVAE_MLP).parameters)[:5] == [
        "input_dim",
        "hidden_dim",
        "latent_dim",
        "num_classes",
        "device",
    ]
    assert isinstance(model.fc_class, nn.Linear) and model.fc_class.out_features == 10
    x, y = random_images(6), torch.arange(6)
    recon, mu, logvar, logits = model(x, F.one_hot(y, 10).float())
    assert (
        recon.shape == (6, 784)
        and mu.shape == (6, 20)
        and logvar.shape == (6, 20)
        and logits.shape == (6, 10)
    )
    assert recon.min() >= 0 and recon.max() <= 1
    out = model.decoder(
        torch.cat([torch.randn(10, 20), torch.eye(10)], dim=1)
    )  # the skeleton's sampling cell
    assert out.shape == (10, 784)
    assert nb.cvae_loss(recon, x, mu, logvar, logits, y).dim() == 0


# --- the loss is the skeleton's -----------------------------------------------------------------

def test_analytic_kl_matches_torch_distributions():
    mu, logvar = torch.randn(64, 20) * 2, torch.randn(64, 20)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(20), torch.ones(20)), 1)
    torch.testing.assert_close(
        nb.kl_standard_normal(mu, logvar), kl_divergence(q, p), rtol=1e-5, atol=1e-5
    )


def test_vae_loss_is_the_skeletons_bce_plus_kl_per_image():
    x = random_images(8)
    recon = torch.sigmoid(torch.randn(8, 784) * 3)
    mu, logvar = torch.randn(8, 20), torch.randn(8, 20)
    skeleton_bce = F.binary_cross_entropy(recon, x.view(8, 784), reduction="sum")
    skeleton_kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    torch.testing.assert_close(nb.vae_loss(recon, x, mu, logvar), (skeleton_bce + skeleton_kld) / 8)
    xf = x.view(8, 784)                                                      # the explicit formula
    bce = -(xf * recon.log() + (1 - xf) * (1 - recon).log()).sum(1)
    torch.testing.assert_close(nb.vae_loss(recon, x, mu, logvar, beta=4.0),
                               (bce + 4 * nb.kl_standard_normal(mu, logvar)).mean())
    xb = random_images(8, binary=True).view(8, 784)  # binary pixels: exactly -log Bernoulli
    torch.testing.assert_close(
        nb.bernoulli_nll(recon, xb),
        -Independent(Bernoulli(probs=recon), 1).log_prob(xb),
        rtol=1e-4,
        atol=1e-3,
    )


def test_a_fresh_vae_costs_784_ln2_nats():
    """The notebook's sanity check: an untrained decoder gives p = 0.5 per pixel."""
    model = nb.VAE_MLP(784, 400, 20, "cpu")
    x = random_images(256)
    with torch.no_grad():
        recon, mu, logvar = model(x)
        loss = nb.vae_loss(recon, x, mu, logvar)
    assert abs(loss.item() - 784 * math.log(2)) < 0.05 * 784 * math.log(2)


def test_cvae_loss_adds_class_cross_entropy():
    x, y = random_images(8), torch.randint(0, 10, (8,))
    recon = torch.sigmoid(torch.randn(8, 784))
    mu, logvar, logits = torch.randn(8, 20), torch.randn(8, 20), torch.randn(8, 10)
    expected = nb.vae_loss(recon, x, mu, logvar) + F.cross_entropy(logits, y)
    torch.testing.assert_close(nb.cvae_loss(recon, x, mu, logvar, logits, y), expected)
    torch.testing.assert_close(
        nb.cvae_loss(recon, x, mu, logvar, logits, F.one_hot(y, 10).float()), expected
    )
    expected = nb.vae_loss(recon, x, mu, logvar, beta=2.0) + F.cross_entropy(logits, y)
    torch.testing.assert_close(nb.cvae_loss(recon, x, mu, logvar, logits, y, beta=2.0), expected)


def test_reparameterised_sample_moments_and_gradients():
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]], requires_grad=True)
    n = 200_000
    z = nb.VAE_MLP(784, 32, 3, "cpu").reparameterize(mu.expand(n, 3), logvar.expand(n, 3))
    torch.testing.assert_close(z.mean(0), mu[0].detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([1.0, 4.0, 0.25]), atol=0.03, rtol=0.02)
    z.sum().backward()                     # dz/dmu = 1, dz/dlogvar = 0.5 * (z - mu)
    torch.testing.assert_close(mu.grad, torch.full((1, 3), float(n)))
    torch.testing.assert_close(
        logvar.grad, 0.5 * (z.detach() - mu.detach()).sum(0, keepdim=True), rtol=1e-3, atol=1e-2
    )


# --- one likelihood: training loss, test ELBO, IWAE -----------------------------------------------

def test_training_loss_test_elbo_and_iwae_share_one_likelihood():
    model = nb.VAE_MLP(784, 64, 5, "cpu")
    x = random_images(6).view(6, 784)                           # grey levels, as in training
    mu, logvar = model.encode(x)
    eps = torch.randn(1, 6, 5)
    z = mu + torch.exp(0.5 * logvar) * eps[0]
    log_w = nb.log_importance_weights(model, x, mu, logvar, eps)[0]
    log_pz = Independent(Normal(torch.zeros(5), torch.ones(5)), 1).log_prob(z)
    log_qz = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    recon_nll, kl = nb.vae_loss_terms(model.decoder(z), x, mu, logvar)  # the loss's terms at that z
    torch.testing.assert_close(log_w, -recon_nll + log_pz - log_qz, rtol=1e-5, atol=1e-3)
    # the test ELBO of evaluate_vae is the loss (beta = 1) averaged over images, with the same noise
    with nb.own_noise(7, "cpu"):
        recon, mu2, logvar2 = model(x)
        expected = nb.vae_loss(recon, x, mu2, logvar2).item()
    assert nb.evaluate_vae(model, x, seed=7)["neg_elbo"] == pytest.approx(expected, rel=1e-5)


def test_iwae_is_at_least_the_elbo_and_equal_at_k1():
    model = nb.VAE_MLP(784, 64, 5, "cpu")
    with torch.no_grad():
        model.decoder[0].weight.mul_(4)                # make p(x|z) depend on z: a visible gap
    x = random_images(16, binary=True)
    log_w = nb.iwae_log_weights(model, x, k=200, rows_per_chunk=512)
    assert log_w.shape == (200, 16) and torch.isfinite(log_w).all()
    iwae = nb.iwae_bound(log_w)
    assert (iwae >= log_w.mean(0) - 1e-4).all()                               # Jensen, same samples
    with torch.no_grad():
        mu, logvar = model.encode(x)
        elbo = -(
            torch.stack(
                [
                    nb.vae_loss_terms(model.decoder(nb.reparameterize(mu, logvar)), x, mu, logvar)[
                        0
                    ]
                    for _ in range(200)
                ]
            ).mean(0)
            + nb.kl_standard_normal(mu, logvar)
        )
    assert iwae.mean() > elbo.mean() + 2.0
    torch.testing.assert_close(
        log_w.mean(0).mean(), elbo.mean(), rtol=0, atol=2.0
    )  # Monte Carlo error ~0.5
    log_w1 = nb.iwae_log_weights(model, x, k=1)
    torch.testing.assert_close(nb.iwae_bound(log_w1), log_w1[0])


def test_iwae_bound_is_numerically_stable():
    log_w = torch.tensor([[-1000.0, -2000.0], [-1001.0, -2003.0], [-1002.0, -2001.0]])
    expected = torch.tensor([-1000 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3),
                             -2000 + math.log((1 + math.exp(-3) + math.exp(-1)) / 3)])
    torch.testing.assert_close(nb.iwae_bound(log_w), expected)
    curve = nb.iwae_curve(torch.randn(100, 50) * 5, [1, 10, 100])
    assert curve[0] < curve[1] < curve[2]


def test_evaluation_leaves_the_training_stream_alone():
    model = nb.VAE_MLP(784, 16, 2, "cpu")
    torch.manual_seed(3)
    nb.evaluate_vae(model, random_images(10), seed=5)
    nb.iwae_log_weights(model, random_images(4), k=3, seed=5)
    after = torch.rand(3)
    torch.manual_seed(3)
    random_images(10), random_images(4)
    assert torch.equal(after, torch.rand(3))


# --- CVAE conditioning --------------------------------------------------------------------------

def test_cvae_decoder_uses_the_given_label():
    model = nb.CVAE_MLP(784, 64, 4, 10, "cpu")
    z = torch.randn(5, 4)
    assert (
        model.decode(z, torch.full((5,), 3)) - model.decode(z, torch.full((5,), 5))
    ).abs().max() > 1e-4
    x = random_images(5)
    with torch.no_grad():
        model.fc_class.weight.zero_()
        model.fc_class.bias.copy_(torch.arange(10.0))  # the head always predicts 9
        torch.manual_seed(1)
        recon, mu, logvar, logits = model(x, torch.full((5,), 2))
        assert (logits.argmax(1) == 9).all()
        torch.manual_seed(1)
        z = model.reparameterize(*model.encode(x, torch.full((5,), 2))[:2])
        torch.testing.assert_close(recon, model.decode(z, torch.full((5,), 2)))
        assert not torch.allclose(recon, model.decode(z, torch.full((5,), 9)))


def test_detached_class_head_sends_no_gradient_to_the_encoder():
    x, y = random_images(4), torch.arange(4)
    for detach, expect_grad in ((False, True), (True, False)):
        model = nb.CVAE_MLP(784, 16, 2, 10, "cpu", detach_class_head=detach)
        F.cross_entropy(model.encode(x, y)[2], y).backward()
        assert (
            model.encoder[0].weight.grad is not None
            and model.encoder[0].weight.grad.abs().sum() > 0
        ) == expect_grad


# --- loaders and training -----------------------------------------------------------------------

def test_resident_batches_follow_the_skeletons_dataloader_order():
    """LoaderOrderBatches(seed) yields the batches of DataLoader(shuffle=True, drop_last=True,
    seeded), epoch after epoch (if a torch release changes how a DataLoader draws its order, this
    test says so)."""
    x, y = torch.arange(1000).float().view(-1, 1), torch.arange(1000)
    loader, resident = (
        nb.skeleton_loader(x, y, 128, seed=3),
        nb.LoaderOrderBatches(x, y, batch_size=128, seed=3),
    )
    a = [b[1] for _ in range(3) for b in loader]
    b = [b[1] for _ in range(3) for b in resident]
    assert len(a) == len(b) == 3 * (1000 // 128) and all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("which", ["vae", "cvae"])
def test_dataloader_and_resident_batches_train_identically(which):
    """The course models train on the skeleton's DataLoader, the seeded study on LoaderOrderBatches:
    same weights."""
    x, y = random_images(300, binary=True), torch.randint(0, 10, (300,))
    states = []
    loaders = (nb.skeleton_loader(x, y, 64, seed=1),
               nb.LoaderOrderBatches(x, y, batch_size=64, seed=1))
    for loader in loaders:
        torch.manual_seed(0)
        if which == "vae":
            model = nb.VAE_MLP(784, 32, 4, "cpu")
            hist = nb.train_vae_mlp(model, loader, num_epochs=2, verbose=False, test_x=x[:50])
        else:
            model = nb.CVAE_MLP(784, 32, 4, 10, "cpu")
            hist = nb.train_cvae_mlp(
                model, loader, num_epochs=2, verbose=False, test_data=(x[:50], y[:50])
            )
        assert len(hist["train_loss"]) == 2 and all(
            math.isfinite(v) for v in hist["train_loss"] + hist["test"]
        )
        states.append(model.state_dict())
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], msg=k)


def test_training_lowers_the_loss_and_prints_the_skeleton_line():
    x = random_images(512, binary=True)
    x[:, :, :14] = 0  # some structure to learn
    loader = nb.skeleton_loader(x, torch.zeros(512, dtype=torch.long), 128, seed=0)
    buf = io.StringIO()
    with redirect_stdout(buf):
        hist = nb.train_vae_mlp(
            nb.VAE_MLP(784, 64, 4, "cpu"), loader, num_epochs=3, learning_rate=1e-3
        )
    assert (
        "VAE- Epoch [1/3], Loss: " in buf.getvalue()
        and "VAE- Epoch [3/3], Loss: " in buf.getvalue()
    )
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert all(isinstance(v, float) for v in hist["train_loss"])  # a history of plain lists
    buf = io.StringIO()
    with redirect_stdout(buf):
        nb.train_cvae_mlp(nb.CVAE_MLP(784, 32, 4, 10, "cpu"), loader, num_epochs=1)
    assert "CVAE- Epoch [1/1], Loss: " in buf.getvalue()


def rows_of(epochs=1, latent_dim=4):
    return nb.ablation_rows(epochs, latent_dim, 1.0, (2.0, 4.0), 2, latent_dim // 2)


def test_continuing_a_run_equals_training_it_longer():
    """study_task's longer run (copy_run: a copy with the Adam state; the same loader) gives the
    weights of one longer run with the same noise; the run it goes on from is kept as it was."""
    x, y = random_images(256, binary=True), torch.randint(0, 10, (256,))
    rows = rows_of()
    (_, _, model, _), (_, _, longer, _) = nb.study_task(
        x, y, 16, 1e-3, 64, "skeleton", rows["skeleton"], 0, ("epochs_x2", rows["epochs_x2"])
    )
    torch.manual_seed(0)
    alone = nb.CVAE_MLP(784, 16, 4, 10, "cpu")
    nb.train_cvae_mlp(alone, nb.LoaderOrderBatches(x, y, batch_size=64, seed=0), 1, verbose=False)
    for k, v in model.state_dict().items():  # the original is kept
        torch.testing.assert_close(v, alone.state_dict()[k], msg=k)
    torch.manual_seed(0)
    ref = nb.CVAE_MLP(784, 16, 4, 10, "cpu")
    ref_opt = nb.make_adam(ref.parameters(), 1e-3, "cpu")
    ref_loader = nb.LoaderOrderBatches(x, y, batch_size=64, seed=0)
    nb.train_cvae_mlp(ref, ref_loader, 1, optimizer=ref_opt, verbose=False)
    torch.manual_seed(10_000)
    nb.train_cvae_mlp(ref, ref_loader, 1, optimizer=ref_opt, verbose=False)
    for k, v in longer.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k], msg=k)


def test_a_study_task_gives_the_same_runs_in_a_worker_and_from_a_handed_over_start():
    """study_task: the skeleton's task trains and continues its run; handed that run as start, it
    continues it to the same weights; run by map_runs in worker processes, the tasks give the
    models of running them in turn."""
    x, y = random_images(256, binary=True), torch.randint(0, 10, (256,))
    rows = rows_of()
    shared = (x, y, 16, 1e-3, 64)
    longer = ("epochs_x2", rows["epochs_x2"])
    (_, _, model, _), (_, _, longer_model, _) = nb.study_task(
        *shared, "skeleton", rows["skeleton"], 0, longer
    )
    torch.manual_seed(0)  # a finished run on the skeleton's DataLoader, seed 0
    start_model = nb.CVAE_MLP(784, 16, 4, 10, "cpu")
    start_optimizer = nb.make_adam(start_model.parameters(), 1e-3, "cpu")
    nb.train_cvae_mlp(
        start_model,
        nb.skeleton_loader(x, y, 64, seed=0),
        1,
        optimizer=start_optimizer,
        verbose=False,
    )
    handed = nb.study_task(
        *shared, "skeleton", rows["skeleton"], 0, longer, (start_model, start_optimizer, 1.0)
    )
    assert [(row, seed) for row, seed, _, _ in handed] == [("skeleton", 0), ("epochs_x2", 0)]
    for ours, theirs in ((model, handed[0][2]), (longer_model, handed[1][2])):
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(v, theirs.state_dict()[k], msg=k)
    tasks = [("beta_2", rows["beta_2"], seed) for seed in (0, 1)]
    with torch.random.fork_rng():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the workers' thread count: the same sums, the same bits
        try:
            in_turn = nb.map_runs(nb.study_task, tasks, "cpu", shared, workers=1)
        finally:
            torch.set_num_threads(threads)
    side_by_side = nb.map_runs(nb.study_task, tasks, "cpu", shared, workers=2)
    for [(row, seed, a, _)], [(row_b, seed_b, b, _)] in zip(in_turn, side_by_side):
        assert (row, seed) == (row_b, seed_b)
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


# --- bad input: one clear error at the boundary ---------------------------------------------------

def _nan_images():
    x = random_images(8)
    x[3, 0, 5, 5] = float("nan")
    return x


def _loader_of(x, y=None, batch_size=4):
    y = torch.zeros(len(x), dtype=torch.long) if y is None else y
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, drop_last=True
    )


class Batches:
    """An iterable of batches that exposes no data set (the generic case)."""

    def __init__(self, *batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


BAD_INPUTS = {
    "nan pixel into training": (
        lambda: nb.train_vae_mlp(
            nb.VAE_MLP(784, 16, 2, "cpu"), _loader_of(_nan_images()), 1, verbose=False
        ),
        ValueError,
        "NaN",
    ),
    "0-255 pixels into training": (
        lambda: nb.train_vae_mlp(
            nb.VAE_MLP(784, 16, 2, "cpu"), _loader_of(random_images(8) * 255), 1, verbose=False
        ),
        ValueError,
        "divide by 255",
    ),
    "0-255 pixels into the loss": (
        lambda: nb.vae_loss(
            torch.full((2, 784), 0.5), random_images(2) * 255, torch.zeros(2, 4), torch.zeros(2, 4)
        ),
        ValueError,
        "divide by 255",
    ),
    "0-255 pixels into the CVAE loss": (
        lambda: nb.cvae_loss(
            torch.full((2, 784), 0.5),
            random_images(2) * 255,
            torch.zeros(2, 4),
            torch.zeros(2, 4),
            torch.zeros(2, 10),
            torch.tensor([1, 2]),
        ),
        ValueError,
        "divide by 255",
    ),
    "uint8 images into the VAE": (
        lambda: nb.VAE_MLP(784, 16, 2, "cpu")((random_images(2) * 255).to(torch.uint8)),
        TypeError,
        "x.float() / 255",
    ),
    "uint8 images into the CVAE": (
        lambda: nb.CVAE_MLP(784, 16, 2, 10, "cpu")(
            (random_images(2) * 255).to(torch.uint8), torch.tensor([1, 2])
        ),
        TypeError,
        "x.float() / 255",
    ),
    "wrong image size": (
        lambda: nb.VAE_MLP(784, 16, 2, "cpu")(torch.rand(3, 1, 32, 32)),
        ValueError,
        "784 pixels",
    ),
    "CVAE forward, fewer labels": (
        lambda: nb.CVAE_MLP(784, 16, 2, 10, "cpu")(random_images(3), torch.tensor([1, 2])),
        ValueError,
        "one label per image",
    ),
    "CVAE decode, more labels": (
        lambda: nb.CVAE_MLP(784, 16, 2, 10, "cpu").decode(torch.randn(3, 2), torch.arange(4)),
        ValueError,
        "one label per image",
    ),
    "label out of range": (
        lambda: nb.CVAE_MLP(784, 16, 2, 10, "cpu")(random_images(2), torch.tensor([3, 10])),
        ValueError,
        r"[0, 9]",
    ),
    "one-hot with 9 columns": (
        lambda: nb.CVAE_MLP(784, 16, 2, 10, "cpu")(random_images(2), torch.zeros(2, 9)),
        ValueError,
        "10 columns",
    ),
    "bad labels into CVAE training": (
        lambda: nb.train_cvae_mlp(
            nb.CVAE_MLP(784, 16, 2, 10, "cpu"),
            _loader_of(random_images(8), torch.full((8,), 12)),
            1,
            verbose=False,
        ),
        ValueError,
        r"[0, 9]",
    ),
    "empty DataLoader": (
        lambda: nb.train_vae_mlp(
            nb.VAE_MLP(784, 16, 2, "cpu"),
            _loader_of(random_images(3), batch_size=8),
            1,
            verbose=False,
        ),
        ValueError,
        "yields no batch",
    ),
    "empty iterable": (
        lambda: nb.train_cvae_mlp(nb.CVAE_MLP(784, 16, 2, 10, "cpu"), Batches(), 1, verbose=False),
        ValueError,
        "yields no batch",
    ),
    "iterable without len()": (
        lambda: nb.train_vae_mlp(nb.VAE_MLP(784, 16, 2, "cpu"), iter([]), 1, verbose=False),
        TypeError,
        "has no len()",
    ),
    "unknown sampling scheme": (
        lambda: nb.sample_latents("uniform", 5, torch.randn(10, 4)),
        ValueError,
        "sampling scheme",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_clear_error(case):
    call, error, fragment = BAD_INPUTS[case]
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_a_nan_that_the_upfront_check_cannot_see_gives_a_clear_error():
    """A loader that exposes no data set: its first batch is checked before the first step; a NaN
    pixel in a later batch is named by the loss's own check (on the CPU), and a loss that goes
    NaN for any other reason stops the run at the end of the epoch with a message that names the
    run and the updates."""
    good, bad = random_images(4), _nan_images()[:4]
    for batches in (Batches((bad,), (good,)), Batches((good,), (bad,))):
        with pytest.raises(ValueError, match="NaN"):
            nb.train_vae_mlp(nb.VAE_MLP(784, 16, 2, "cpu"), batches, 1, verbose=False)
    model = nb.VAE_MLP(784, 16, 2, "cpu")
    with torch.no_grad():
        model.fc_mu.weight[0, 0] = float("nan")  # broken weights: the decoder outputs NaN
    with pytest.raises(ValueError, match="weights went NaN"):
        nb.train_vae_mlp(model, Batches((good,), (good,)), 1, verbose=False)
    with pytest.raises(ValueError, match="logits"):  # logits where probabilities are expected
        nb.vae_loss(torch.randn(2, 784) * 5, random_images(2), torch.zeros(2, 4), torch.zeros(2, 4))
    model = nb.VAE_MLP(784, 16, 2, "cpu")
    with torch.no_grad():
        model.fc_mu.bias.fill_(1e20)  # mu^2 overflows: the KL is infinite
        model.decoder[0].weight.zero_()  # (the decoder ignores z, so x_hat stays finite)
    with pytest.raises(NonFiniteLossError, match=r"VAE \(updates 1-1\)"):
        nb.train_vae_mlp(model, Batches((good,)), 1, verbose=False)


# --- section D: rows, density, probe -------------------------------------------------------------

def test_every_row_differs_from_the_skeleton_in_exactly_one_setting():
    rows = rows_of(10, 20)
    skeleton = rows["skeleton"]
    assert skeleton == dict(beta=1.0, epochs=10, latent_dim=20, detach_class_head=False)
    assert {"beta_2", "beta_4", "epochs_x2", "latent_10", "head_detached"} <= set(rows)
    for name, settings in rows.items():
        if name != "skeleton":
            assert set(settings) == set(skeleton)
            assert sum(settings[k] != skeleton[k] for k in skeleton) == 1, name
    assert (
        rows["beta_2"]["beta"] == 2.0
        and rows["epochs_x2"]["epochs"] == 20
        and rows["latent_10"]["latent_dim"] == 10
    )


def test_aggregate_log_density_matches_a_torch_mixture_and_leaves_one_out():
    from torch.distributions import Categorical, MixtureSameFamily

    mu, logvar = torch.randn(7, 3), torch.randn(7, 3) * 0.3
    z = torch.randn(50, 3) * 2
    mix = MixtureSameFamily(
        Categorical(torch.ones(7)), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    )
    torch.testing.assert_close(
        nb.aggregate_log_density(z, mu, logvar), mix.log_prob(z), rtol=1e-5, atol=1e-5
    )
    leave = torch.tensor([2, 5])  # rows scored on the mixture without component 2, resp. 5
    for row, left in zip(range(2), leave.tolist()):
        keep = [i for i in range(7) if i != left]
        ref = MixtureSameFamily(
            Categorical(torch.ones(6)),
            Independent(Normal(mu[keep], torch.exp(0.5 * logvar[keep])), 1),
        ).log_prob(z[row])
        torch.testing.assert_close(
            nb.aggregate_log_density(z[:2], mu, logvar, leave_out=leave)[row],
            ref,
            rtol=1e-5,
            atol=1e-5,
        )


def test_linear_probe_reads_separable_codes_and_not_noise():
    y = torch.arange(400) % 4
    codes = F.one_hot(y, 4).float() * 5 + 0.1 * torch.randn(400, 4)
    assert (
        nb.linear_probe_accuracy(codes[:300], y[:300], codes[300:], y[300:], num_classes=4) == 1.0
    )
    noise = torch.randn(400, 4)
    assert nb.linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:], num_classes=4) < 0.5


def test_cvae_diagnostics_and_summary_are_well_formed():
    from utils.classifier import MnistClassifier

    x, y = random_images(200), torch.arange(200) % 10
    out, (images, labels) = nb.diagnose_cvae(
        nb.CVAE_MLP(784, 32, 4, 10, "cpu"),
        MnistClassifier().eval(),
        (x, y),
        (x[:50], y[:50]),
        (20, 15, 100),
        seed=0,
    )
    assert (
        images.shape == (200, 1, 28, 28)
        and 0 <= images.min()
        and images.max() <= 1
        and len(labels) == 200
    )
    assert (
        0 <= out["accuracy"] <= 1
        and len(out["per_class"]) == 10
        and len(out["accuracy_by_density_quartile"]) == 4
    )
    assert out["worst_class_accuracy"] == min(out["per_class"]) and math.isfinite(out["neg_elbo"])
    runs = [
        {**out, "train_seconds": 1.0},
        {**out, "accuracy": 0.99, "worst_class_accuracy": 0.95, "train_seconds": 2.0},
    ]
    bar = (0.97, 0.93)
    s = nb.summarise_row(runs, bar)
    assert s["train_seconds"]["mean"] == 1.5 and s["train_seconds"]["sd"] == pytest.approx(
        math.sqrt(0.5)
    )
    assert not s["passes_bar"]
    good = nb.summarise_row([{**runs[1], "neg_elbo": 90.0}] * 3, bar)
    assert (
        good["passes_bar"]
        and nb.recommend({"a": s, "b": good}) == "b"
        and nb.recommend({"a": s}) is None
    )
    better = nb.summarise_row([{**runs[1], "neg_elbo": 80.0}] * 3, bar)
    assert nb.recommend({"b": good, "c": better}) == "c"  # best -ELBO among the passing


# --- the noisy AE of T1(c) ----------------------------------------------------------------------

def test_noisy_ae_running_R_and_noise_scale():
    d = 8
    model = nb.NoisyAE_MLP(784, 32, d, "cpu", momentum=0.1)
    z1 = torch.randn(4096, d) * 3 + 5
    r1 = (z1 - z1.mean(0)).pow(2).sum(1).mean()
    model.update_running_R(z1)
    torch.testing.assert_close(model.R, r1)  # the first batch sets R
    z2 = torch.randn(4096, d)
    model.update_running_R(z2)
    torch.testing.assert_close(model.R, 0.9 * r1 + 0.1 * (z2 - z2.mean(0)).pow(2).sum(1).mean())
    noise = model.add_code_noise(torch.zeros(200_000, d))
    torch.testing.assert_close(
        noise.pow(2).sum(1).mean(), 0.5 * model.R, rtol=0.02, atol=0
    )  # E||eps||^2 = 0.5 R
    x = random_images(64)
    before = model.R.clone()
    model.train()
    model(x)
    assert not torch.equal(model.R, before) and len(model.r_trace) == 3
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])  # no noise in evaluation
    coord = nb.NoisyAE_MLP(784, 16, d, "cpu", reading="per_coordinate")
    coord.update_running_R(z1)
    total = nb.NoisyAE_MLP(784, 16, d, "cpu")
    total.update_running_R(z1)
    torch.testing.assert_close(coord.noise_std() ** 2, d * total.noise_std() ** 2)
    with pytest.raises(ValueError, match="reading"):
        nb.NoisyAE_MLP(784, 16, d, "cpu", reading="half")


def test_noisy_ae_noise_scales_with_the_codes_in_the_backward_pass():
    d = 6
    model = nb.NoisyAE_MLP(784, 32, d, "cpu")
    z0 = torch.randn(512, d)
    model.update_running_R(z0)
    a = torch.tensor(1.0, requires_grad=True)
    z = a * z0
    torch.manual_seed(5)
    noise = model.add_code_noise(z, nb.code_spread(z)) - z
    torch.manual_seed(5)
    const = model.add_code_noise(z0) - z0
    torch.testing.assert_close(noise.detach(), const)                        # same value ...
    w = torch.randn_like(z0)
    (noise * w).sum().backward()
    torch.testing.assert_close(
        a.grad, (const * w).sum(), rtol=1e-4, atol=1e-4
    )  # ... d(noise)/da = noise / a


def test_ae_training_records_R_and_sample_latents():
    x = random_images(256, binary=True)
    hist = nb.train_ae(
        nb.NoisyAE_MLP(784, 32, 4, "cpu"),
        nb.LoaderOrderBatches(x, torch.zeros(256, dtype=torch.long), batch_size=64, seed=0),
        num_epochs=2,
    )
    assert len(hist["R"]) == 2 * 4 and min(hist["R"]) > 0
    codes = torch.randn(5000, 3) @ torch.tensor([[2.0, 0, 0], [0.5, 1, 0], [0, 0, 0.1]]) + 4
    box = nb.sample_latents("box", 1000, codes)
    assert (box >= codes.min(0).values).all() and (box <= codes.max(0).values).all()
    fitted = nb.sample_latents("fitted", 50_000, codes)
    torch.testing.assert_close(torch.cov(fitted.T), torch.cov(codes.T), atol=0.1, rtol=0.05)
    dead = torch.cat([codes, torch.full((5000, 1), 0.3)], 1)  # an unused unit: singular covariance
    assert torch.isfinite(nb.sample_latents("fitted", 1000, dead)).all()


def test_knn_psnr_and_precision_recall():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    labels = torch.arange(2).repeat_interleave(50)
    pts = centres[labels] + 0.1 * torch.randn(100, 2)
    assert nb.knn_accuracy(pts, labels, pts + 0.01, labels, k=5) == 1.0
    assert nb.knn_accuracy(pts, labels, pts, 1 - labels, k=5) == 0.0
    x = torch.rand(4, 1, 28, 28)
    assert nb.psnr(x + 0.1, x) == pytest.approx(20.0, abs=1e-3)
    real = torch.randn(300, 8)
    assert nb.precision_recall(real, real + 1e-4) == (1.0, 1.0)
    precision, _ = nb.precision_recall(real, real + 100.0)
    assert precision == 0.0


# --- the notebook as a document ------------------------------------------------------------------

def test_notebook_keeps_the_skeleton_outputs_and_reads_like_a_paper():
    import nbformat

    from utils.runtime import REPO_ROOT

    book = nbformat.read(REPO_ROOT / "Q1_VAE_CVAE.ipynb", as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    source = "\n".join(c.source for c in code)
    assert 'title="Generated Samples of VAE"' in source and "torch.eye(10" in source
    assert (
        "vae.decoder(z_prior)" in source and "cvae.decoder(torch.cat([z_grid, c], dim=1))" in source
    )
    assert "skeleton_loader(" in source and "train_vae_mlp(vae, train_loader" in source
    assert '"cuda"' not in source.replace('== "cuda"', "")  # no hard-coded CUDA device
    setup = {"bootstrap", "bootstrap-copy"}  # the generated cells (tools/bootstrap.py)
    body = [c for c in code if not setup & set(c.metadata.get("tags", []))]
    assert max(len(c.source.splitlines()) for c in body) <= 40
    kinds = [c.cell_type for c in book.cells if not setup & set(c.metadata.get("tags", []))]
    assert not any(a == b == "code" for a, b in zip(kinds, kinds[1:])), (
        "two code cells without prose between them"
    )
    defs = "\n".join(c.source for c in code if "defs" in c.metadata.get("tags", []))
    slow_calls = ("load_dataset(", "train_vae_mlp(vae", "train_cvae_mlp(cvae", "load_judge(",
                  "plt.show")
    for slow in slow_calls:
        assert slow not in defs, f"defs cells must hold definitions only, found {slow!r}"
    for own in ("def batches_per_epoch", "def scatter_2d", "def psnr", "def precision_recall"):
        assert own in defs
    assert (
        "def batches_on" not in source
        and "def train_epochs" not in source
        and "def mean_sd" not in source
    )
    assert "def check_images" not in source and "import perplexity" not in source
    assert (
        source.count("def reparameterize(mu, logvar)") == 1
        and source.count("def kl_standard_normal") == 1
    )
