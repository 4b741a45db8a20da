"""The β-VAE of extras/beta_vae_disentanglement.ipynb (its `defs` cells): shapes, the loss terms against
torch.distributions, the capacity objective and schedule, and that a few training steps learn."""
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.batches import ResidentBatches
from extras.dsprites import make_dataset, render, sample_factors
from tools.notebooks import load_definitions

nb = load_definitions("extras/beta_vae_disentanglement.ipynb")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nb.BetaVAE().eval()


def test_shapes_and_input_checks(model):
    x = nb.as_input(render(sample_factors(5, torch.Generator().manual_seed(0))))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, nb.LATENT_DIM)
    x_logits, mu2, _ = model(x)
    assert x_logits.shape == (5, 1, 64, 64) and torch.equal(mu, mu2)
    with pytest.raises(ValueError, match=r"\(N, 1, 64, 64\)"):
        model.encode(torch.zeros(2, 1, 28, 28))
    with pytest.raises(TypeError, match="as_input"):
        model.encode(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))


def test_kl_per_unit_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(7, 10, generator=g), torch.randn(7, 10, generator=g)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    assert torch.allclose(nb.kl_per_unit(mu, logvar), ref, atol=1e-6)


def test_bernoulli_nll_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    logits = 3 * torch.randn(4, 1, 64, 64, generator=g)
    x = (torch.rand(4, 1, 64, 64, generator=g) > 0.9).float()
    ref = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(nb.bernoulli_nll(logits, x), ref, rtol=1e-5)


def test_beta_vae_loss_is_recon_plus_beta_kl_and_beta1_is_the_negative_elbo():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 1, 64, 64, generator=g)
    x = (torch.rand(6, 1, 64, 64, generator=g) > 0.8).float()
    mu, logvar = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    recon = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1).mean()
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    for beta in (1.0, 4.0):
        out = nb.beta_vae_loss(logits, x, mu, logvar, beta)
        assert out["recon"] == pytest.approx(float(recon), rel=1e-5)
        assert out["kl"] == pytest.approx(float(kl), rel=1e-5)
        assert out["loss"] == pytest.approx(float(recon + beta * kl), rel=1e-5)


def test_capacity_objective_and_schedule():
    assert nb.capacity_at(0, 25.0, 100) == 0.0
    assert nb.capacity_at(50, 25.0, 100) == pytest.approx(12.5)
    assert nb.capacity_at(500, 25.0, 100) == 25.0
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 1, 64, 64, generator=g)
    x = (torch.rand(3, 1, 64, 64, generator=g) > 0.8).float()
    mu = torch.randn(3, 10, generator=g).requires_grad_()
    logvar = torch.zeros(3, 10)
    with torch.no_grad():
        base = nb.beta_vae_loss(logits, x, mu, logvar, 1.0)
    for c, sign in ((0.0, 1.0), (1e3, -1.0)):
        out = nb.capacity_loss(logits, x, mu, logvar, gamma=10.0, capacity=c)
        assert float(out["loss"].detach()) == pytest.approx(float(base["recon"] + 10.0 * abs(base["kl"] - c)), rel=1e-5)
        (grad,) = torch.autograd.grad(out["loss"], mu)
        # below the target capacity the objective pushes the KL up (|mu| grows), above it down
        assert float((grad * mu.detach()).sum()) * sign > 0


def test_a_few_training_steps_lower_the_loss_and_the_time_guard_stops():
    x, f = make_dataset(64, seed=0)
    torch.manual_seed(0)
    m = nb.BetaVAE()
    batches = ResidentBatches(x, f, batch_size=4, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread avoids oversubscription on a busy CI machine
    try:
        hist = nb.train_vae(m, batches, 20, {"beta": 4.0}, 1e-3, torch.device("cpu"), amp=False)
        stopped = nb.train_vae(m, batches, 10_000, {"gamma": 100.0, "c_max": 5.0}, 1e-3, torch.device("cpu"),
                               amp=False, max_seconds=0.0)
    finally:
        torch.set_num_threads(threads)
    assert hist["steps_done"] == 20
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]  # 2,800 nats at the start: it learns the black background
    assert stopped["steps_done"] == 1


def test_evaluation_representation_and_traversal(model):
    x, f = make_dataset(40, seed=1)
    ev = nb.evaluate_vae(model, x, batch_size=16)
    assert ev["mu"].shape == (40, nb.LATENT_DIM)
    assert ev["kl"] == pytest.approx(float(ev["kl_per_unit"].sum()), rel=1e-6)
    assert torch.allclose(ev["mu"], model.encode(nb.as_input(x))[0], atol=1e-5)
    represent = nb.encoder_representation(model, chunk=16)
    assert torch.allclose(represent(f), ev["mu"], atol=1e-5)
    imgs = nb.traverse(model, x[0], [2, 5], torch.linspace(-2, 2, 4))
    assert imgs.shape == (8, 1, 64, 64) and imgs.min() >= 0 and imgs.max() <= 1
