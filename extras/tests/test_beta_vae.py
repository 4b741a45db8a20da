"""The β-VAE of extras/beta_vae_disentanglement.ipynb (its `defs` cells, its settings table): the
task's factors and grid, shapes, the loss terms, the training loop's shape and history, the grid
evaluation against a direct computation, the traversal, and a clear error for every bad input a user
can hand it."""
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from extras.dsprites import render, render_coverage
from tools.notebooks import load_definitions, load_settings
from utils.runtime import MODES
from utils.training import NonFiniteLossError

NOTEBOOK = "extras/beta_vae_disentanglement.ipynb"
nb = load_definitions(NOTEBOOK)
S = load_settings(NOTEBOOK, "fast")
CPU = torch.device("cpu")
SMALL = dict(metric_train=200, metric_test=200, metric_L=16, active_var=0.01, grid_chunk=2048)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nb.BetaVAE(S.latent_dim).eval()


@pytest.fixture(scope="module")
def grid():
    g = nb.task_grid()
    return g, nb.draw(g, S.supersample)


def test_the_settings_table_evaluates_at_whole_steps_in_every_mode():
    """The metrics run every steps / evaluations updates: a whole number in every mode."""
    for mode in MODES:
        t = load_settings(NOTEBOOK, mode)
        assert t.steps % t.evaluations == 0 and t.seeds >= 2 and t.metric_seeds >= 2, mode
    dry = load_settings(NOTEBOOK, "full", 0.001)
    assert dry.steps % dry.evaluations == 0


def test_task_grid_covers_every_combination_once_and_grid_index_inverts_it(grid):
    g, x = grid
    assert g.shape == (6 * 32 * 32, 3) and x.shape == (6144, 1, 32, 32)
    assert torch.equal(nb.grid_index(g), torch.arange(6144))
    full = nb.to_dsprites(g)
    assert (full[:, 0] == nb.FIXED["shape"]).all() and (full[:, 2] == nb.FIXED["orientation"]).all()
    assert torch.equal(full[:, [1, 3, 4]], g)
    assert (x.flatten(1).sum(1) > 0).all()  # every image of the task shows its sprite


@pytest.mark.parametrize("bad", [torch.tensor([[0, 0, 32]]), torch.tensor([[6, 0, 0]]),
                                 torch.tensor([[0, -1, 0]]), torch.tensor([[0.0, 1.0, 2.0]])])
def test_grid_index_refuses_factors_outside_the_grid(bad):
    """An index past a factor's size would silently name another row of the grid (or none): a clear
    error instead."""
    with pytest.raises(ValueError, match="task factors must be integer indices below"):
        nb.grid_index(bad)


def test_sample_batch_is_seeded_and_renders_its_factors():
    x, f = nb.sample_batch(16, torch.Generator().manual_seed(0), CPU, S.supersample)
    x2, f2 = nb.sample_batch(16, torch.Generator().manual_seed(0), CPU, S.supersample)
    assert torch.equal(f, f2) and torch.equal(x, x2) and x.dtype == torch.float32
    assert torch.equal(x, render_coverage(nb.to_dsprites(f), size=32, supersample=S.supersample))
    assert x.min() >= 0 and x.max() <= 1
    for k, size in enumerate(nb.TASK_SIZES):
        assert f[:, k].min() >= 0 and f[:, k].max() < size


def test_fresh_batches_are_the_seeded_sample_batch_draws():
    batches = nb.fresh_batches(8, 3, CPU, S.supersample)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        (x, f), (x2, f2) = next(batches), nb.sample_batch(8, generator, CPU, S.supersample)
        assert torch.equal(x, x2) and torch.equal(f, f2)


def test_shapes(model):
    x, _ = nb.sample_batch(5, torch.Generator().manual_seed(0), CPU, S.supersample)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, S.latent_dim)
    x_logits, mu2, _ = model(x)
    assert x_logits.shape == (5, 1, 32, 32) and torch.equal(mu, mu2)


def test_beta_vae_loss_is_recon_plus_beta_kl_and_beta1_is_the_negative_elbo():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 1, 32, 32, generator=g)
    x = (torch.rand(6, 1, 32, 32, generator=g) > 0.8).float()
    mu, logvar = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    recon = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1).mean()
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    for beta in (1.0, 4.0):
        out = nb.beta_vae_loss(logits, x, mu, logvar, beta)
        assert out["recon"] == pytest.approx(float(recon), rel=1e-5)
        assert out["kl"] == pytest.approx(float(kl), rel=1e-5)
        assert out["loss"] == pytest.approx(float(recon + beta * kl), rel=1e-5)


def test_training_learns_evaluates_at_the_asked_steps_and_returns_lists(grid, one_thread):
    torch.manual_seed(0)
    m = nb.BetaVAE(S.latent_dim)
    calls = []

    def evaluate(model):
        calls.append(model.training)
        return {"score": float(len(calls))}

    batches = nb.fresh_batches(8, 0, CPU, S.supersample)
    hist = nb.train_beta_vae(m, 4.0, batches, 20, 1e-3, evaluate=evaluate, eval_every=10)
    assert hist["eval_step"] == [0, 10, 20] and hist["score"] == [1.0, 2.0, 3.0]
    assert calls == [False, False, False]  # evaluated in eval mode
    assert isinstance(hist.pop("seconds"), float) and len(hist["loss"]) == 20
    assert all(isinstance(v, list) for v in hist.values())
    terms = [r + 4.0 * k for r, k in zip(hist["recon"], hist["kl"])]
    assert hist["loss"] == pytest.approx(terms, rel=1e-4)
    # ~700 nats at first: it learns the black background
    assert sum(hist["loss"][-5:]) < 0.5 * sum(hist["loss"][:5])
    assert not m.training


def test_training_refuses_steps_that_miss_the_last_evaluation():
    m = nb.BetaVAE(S.latent_dim)
    with pytest.raises(ValueError, match="steps=10 is not a multiple of eval_every=4"):
        nb.train_beta_vae(m, 4.0, nb.fresh_batches(2, 0, CPU, S.supersample), 10, 1e-3,
                          evaluate=lambda _: {}, eval_every=4)


def test_grid_evaluation_matches_a_direct_computation(model, grid):
    g, x = grid
    enc = nb.encode_grid(model, x[:300], 128)
    with torch.no_grad():
        mu, logvar = model.encode(x[:300])
        recon = float(nb.bernoulli_nll(model.decoder(mu), x[:300]).mean())
    assert torch.allclose(enc["mu"], mu.double(), atol=1e-5)
    kl = nb.gaussian_kl(mu, logvar).double().mean(0)
    assert torch.allclose(enc["kl_per_unit"], kl, rtol=1e-4)
    assert enc["recon"] == pytest.approx(recon, rel=1e-5)


def test_active_units_one_definition_and_scores_of_known_codes(grid):
    g, _ = grid
    truth = g.double() / (torch.tensor(nb.TASK_SIZES) - 1)
    dead = torch.full((len(g), 2), 0.5, dtype=torch.float64)                 # 2 dead units
    code = torch.cat([truth, dead], dim=1)
    assert nb.active_mask(code, 0.01).tolist() == [True, True, True, False, False]
    s = nb.score_code(code, 500, 500, 16, nb.active_mask(code, 0.01))
    assert s["higgins"] >= 0.99 and s["factorvae"] == 1.0
    rot = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    rot45 = nb.score_code(torch.cat([truth[:, :1], truth[:, 1:] @ rot], 1), 1000, 1000, 16)
    assert 0.55 < rot45["factorvae"] < 0.8  # posX and posY confused: about 2/3


def test_evaluate_model_returns_the_tracked_numbers(model, grid):
    _, x = grid
    r = nb.evaluate_model(model, x, SMALL, seed=0)
    assert set(r) == {"higgins", "factorvae", "active_units", "grid_recon", "grid_kl"}
    assert 0 <= r["higgins"] <= 1 and 0 <= r["active_units"] <= S.latent_dim
    assert (r["factorvae"] is None) == (r["active_units"] == 0)   # undefined without an active unit
    if r["factorvae"] is not None:
        assert 0 <= r["factorvae"] <= 1


def test_traversal_shows_original_reconstruction_and_sweep(model, grid):
    _, x = grid
    imgs = nb.traverse(model, x[:1], [2, 5], torch.linspace(-2, 2, 4))
    assert imgs.shape == (2, 6, 1, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1
    assert torch.equal(imgs[0, 0], x[0]) and torch.equal(imgs[1, 0], x[0])
    assert torch.allclose(imgs[0, 1], torch.sigmoid(model.decoder(model.encode(x[:1])[0]))[0])
    top = nb.top_factors(torch.tensor([0.05, 0.6, 0.3]), nb.TASK_FACTORS)
    assert top == "posX 0.60 + posY 0.30"


# ---- bad input: a clear error that names the input and the fix ---------------------------------

def _images(kind):
    x = (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    column_3 = torch.zeros_like(x, dtype=torch.bool).index_fill_(3, torch.tensor([3]), True)
    return {
        "uint8": x.to(torch.uint8),
        "0-255": x * 255,
        "nan": x.masked_fill(column_3, float("nan")),
        "64 px": torch.zeros(2, 1, 64, 64),
        "flat": torch.zeros(2, 1024),
    }[kind]


@pytest.mark.parametrize("kind, error, fragment", [
    ("uint8", TypeError, "BetaVAE are torch.uint8, expected float values"),
    ("0-255", ValueError, "divide by 255"),
    ("nan", ValueError, "NaN values"),
    ("64 px", ValueError, r"expected \(N, 1, 32, 32\); got shape \(2, 1, 64, 64\)"),
    ("flat", ValueError, r"expected \(N, 1, 32, 32\); got shape \(2, 1024\)"),
])
def test_bad_images_into_the_model_get_a_clear_error(model, kind, error, fragment):
    with pytest.raises(error, match=fragment):
        model(_images(kind))


@pytest.mark.parametrize("kind, error, fragment", [
    ("uint8", TypeError, r"beta_vae_loss \(the target x\) are torch.uint8, expected float"),
    ("0-255", ValueError, r"beta_vae_loss \(the target x\) .*divide by 255"),
    ("nan", ValueError, "NaN values"),
])
def test_bad_targets_into_the_loss_get_a_clear_error(kind, error, fragment):
    x = _images(kind)
    with pytest.raises(error, match=fragment):
        nb.beta_vae_loss(torch.zeros(2, 1, 32, 32), x, torch.zeros(2, 10), torch.zeros(2, 10), 4.0)


@pytest.mark.parametrize("f, error, fragment", [
    (torch.zeros(3, 5, dtype=torch.long), ValueError, r"\(N, 3\)"),
    ([[0, 1, 2]], ValueError, r"\(N, 3\)"),
    (torch.tensor([[6, 0, 0]]), ValueError, "scale.*out of range"),
    (torch.tensor([[0, 0, 32]]), ValueError, "posY.*out of range"),
    (torch.tensor([[0.0, 0.5, 0.5]]), TypeError, "indices"),
])
def test_bad_task_factors_get_a_clear_error(f, error, fragment):
    with pytest.raises(error, match=fragment):
        render(nb.to_dsprites(f), size=nb.IMAGE_SIZE)


@pytest.mark.parametrize("poison", ["nan weight", "inf lr"])
def test_a_loss_gone_nonfinite_stops_training_with_a_clear_message(poison):
    torch.manual_seed(0)
    m = nb.BetaVAE(S.latent_dim)
    lr = 1e-3
    if poison == "nan weight":
        with torch.no_grad():
            m.decoder[-1].bias.fill_(float("nan"))
    else:
        lr = float("inf")
    with pytest.raises(NonFiniteLossError,
                       match=r"beta 4 seed 0 \(updates \d+-\d+\): the loss became .* at step \d+"):
        nb.train_beta_vae(m, 4.0, nb.fresh_batches(4, 0, CPU, S.supersample), 6, lr,
                          evaluate=lambda _: {}, eval_every=3, desc="beta 4 seed 0")
