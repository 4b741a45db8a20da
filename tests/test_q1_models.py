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

from utils.batches import ResidentBatches
from utils.notebooks import load_definitions

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
    assert recon.min() >= 0 and recon.max() <= 1
    assert model(x.view(5, 784))[0].shape == (5, 784)   # flat input accepted too
    assert model.decoder(torch.randn(10, 20)).shape == (10, 784)   # the sampling cell's call
    loss = nb.vae_loss(recon, x, mu, logvar)
    assert loss.dim() == 0 and loss.item() > 0
    sig = inspect.signature(nb.train_vae_mlp).parameters
    assert list(sig)[:4] == ["model", "loader", "num_epochs", "learning_rate"]
    assert sig["num_epochs"].default == 20 and sig["learning_rate"].default == 1e-3
    sig = inspect.signature(nb.train_cvae_mlp).parameters
    assert sig["num_epochs"].default == 10 and sig["learning_rate"].default == 1e-3
    assert list(inspect.signature(nb.vae_loss).parameters)[:4] == ["recon", "data", "mu", "logvar"]
    assert list(inspect.signature(nb.cvae_loss).parameters) == ["recon", "data", "mu", "logvar", "class_logits", "labels"]


def test_cvae_skeleton_api_and_shapes():
    model = nb.CVAE_MLP(784, 400, 20, 10, "cpu")
    assert isinstance(model.fc_class, nn.Linear) and model.fc_class.out_features == 10
    x, y = random_images(6), torch.arange(6)
    recon, mu, logvar, logits = model(x, F.one_hot(y, 10).float())
    assert recon.shape == (6, 784) and mu.shape == (6, 20) and logvar.shape == (6, 20) and logits.shape == (6, 10)
    # the skeleton's sampling cell: torch.eye(10) concatenated with z through decoder
    out = model.decoder(torch.cat([torch.randn(10, 20), torch.eye(10)], dim=1))
    assert out.shape == (10, 784)
    loss = nb.cvae_loss(recon, x, mu, logvar, logits, y)
    assert loss.dim() == 0


def test_bad_input_gives_clear_errors():
    model = nb.VAE_MLP(784, 64, 4, "cpu")
    with pytest.raises(ValueError, match="784 pixels"):
        model(torch.rand(3, 1, 32, 32))
    cvae = nb.CVAE_MLP(784, 64, 4, 10, "cpu")
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        cvae(random_images(2), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="10 columns"):
        cvae(random_images(2), torch.zeros(2, 9))
    with pytest.raises(ValueError, match="one label per latent"):
        cvae.decode(torch.randn(3, 4), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="sampling scheme"):
        nb.sample_latents("uniform", 5, torch.randn(10, 4))


# --- the loss -----------------------------------------------------------------------------------

def test_analytic_kl_matches_torch_distributions():
    mu, logvar = torch.randn(64, 20) * 2, torch.randn(64, 20)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(20), torch.ones(20)), 1)
    torch.testing.assert_close(nb.kl_standard_normal(mu, logvar), kl_divergence(q, p), rtol=1e-5, atol=1e-5)


def test_vae_loss_is_the_negative_elbo_per_image():
    x = random_images(8)
    recon = torch.rand(8, 784).clamp(0.01, 0.99)
    mu, logvar = torch.randn(8, 20), torch.randn(8, 20)
    xf = x.view(8, 784)
    bce = -(xf * recon.log() + (1 - xf) * (1 - recon).log()).sum(1)           # explicit formula, grey levels
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(nb.vae_loss(recon, x, mu, logvar), (bce + kl).mean())
    torch.testing.assert_close(nb.vae_loss(recon, x, mu, logvar, beta=4.0), (bce + 4 * kl).mean())
    # for binary pixels the BCE is exactly -log Bernoulli(x; x_hat)
    xb = random_images(8, binary=True).view(8, 784)
    r, _ = nb.vae_loss_terms(recon, xb, mu, logvar)
    torch.testing.assert_close(r, -Independent(Bernoulli(probs=recon), 1).log_prob(xb))


def test_cvae_loss_adds_class_cross_entropy():
    x, y = random_images(8), torch.randint(0, 10, (8,))
    recon = torch.rand(8, 784).clamp(0.01, 0.99)
    mu, logvar, logits = torch.randn(8, 20), torch.randn(8, 20), torch.randn(8, 10)
    expected = nb.vae_loss(recon, x, mu, logvar) + F.cross_entropy(logits, y)
    torch.testing.assert_close(nb.cvae_loss(recon, x, mu, logvar, logits, y), expected)
    torch.testing.assert_close(nb.cvae_loss(recon, x, mu, logvar, logits, F.one_hot(y, 10).float()), expected)


def test_reparameterised_sample_moments_and_gradients():
    model = nb.VAE_MLP(784, 32, 3, "cpu")
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]], requires_grad=True)
    n = 200_000
    z = model.reparameterize(mu.expand(n, 3), logvar.expand(n, 3))
    torch.testing.assert_close(z.mean(0), mu[0].detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([1.0, 4.0, 0.25]), atol=0.03, rtol=0.02)
    # gradients reach mu and logvar: dz/dmu = 1, d z/d logvar = 0.5 * sigma * eps = 0.5 * (z - mu)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((1, 3), float(n)))
    expected = 0.5 * (z.detach() - mu.detach()).sum(0, keepdim=True)
    torch.testing.assert_close(logvar.grad, expected, rtol=1e-3, atol=1e-2)


# --- IWAE ---------------------------------------------------------------------------------------

def test_log_importance_weights_match_torch_distributions():
    model = nb.VAE_MLP(784, 64, 5, "cpu")
    x = random_images(4, binary=True).view(4, 784)
    mu, logvar = model.encode(x)
    eps = torch.randn(7, 4, 5)
    log_w = nb.log_importance_weights(model, x, mu, logvar, eps)
    z = mu + torch.exp(0.5 * logvar) * eps
    ref = (Independent(Bernoulli(logits=model.decode_logits(z)), 1).log_prob(x)
           + Independent(Normal(torch.zeros(5), torch.ones(5)), 1).log_prob(z)
           - Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z))
    assert log_w.shape == (7, 4)
    torch.testing.assert_close(log_w, ref, rtol=1e-5, atol=1e-3)


def test_iwae_is_at_least_the_elbo_and_equal_at_k1():
    model = nb.VAE_MLP(784, 64, 5, "cpu")
    with torch.no_grad():
        model.decoder[0].weight.mul_(4)                # make p(x|z) depend on z: a visible ELBO-IWAE gap
    x = random_images(16, binary=True)
    log_w = nb.iwae_log_weights(model, x, k=200, rows_per_chunk=512)         # chunked: 2 images per chunk
    assert log_w.shape == (200, 16) and torch.isfinite(log_w).all()
    iwae = nb.iwae_bound(log_w)
    assert (iwae >= log_w.mean(0) - 1e-4).all()                               # Jensen, for the same samples
    # ... and above the analytic-KL ELBO on average (gap ~12 nats here; Monte Carlo error ~0.3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        elbo = -(torch.stack([nb.vae_loss_terms(model.decoder(model.reparameterize(mu, logvar)), x, mu, logvar)[0]
                              for _ in range(200)]).mean(0) + nb.kl_standard_normal(mu, logvar))
    assert iwae.mean() > elbo.mean() + 2.0
    # the mean log-weight is an unbiased ELBO estimate: it agrees with the analytic-KL form
    torch.testing.assert_close(log_w.mean(0).mean(), elbo.mean(), rtol=0, atol=1.0)
    # k = 1: the IWAE bound is the single-sample ELBO estimate of that same sample
    torch.manual_seed(3)
    log_w1 = nb.iwae_log_weights(model, x, k=1)
    torch.manual_seed(3)
    eps = torch.randn(1, 16, 5)
    mu, logvar = model.encode(x)
    with torch.no_grad():
        same = nb.log_importance_weights(model, x.view(16, 784), mu, logvar, eps)
    torch.testing.assert_close(nb.iwae_bound(log_w1), log_w1[0])
    torch.testing.assert_close(nb.iwae_bound(log_w1), same[0])


def test_iwae_bound_is_numerically_stable():
    log_w = torch.tensor([[-1000.0, -2000.0], [-1001.0, -2003.0], [-1002.0, -2001.0]])   # exp() underflows
    expected = torch.tensor([
        -1000 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3),
        -2000 + math.log((1 + math.exp(-3) + math.exp(-1)) / 3),
    ])
    torch.testing.assert_close(nb.iwae_bound(log_w), expected)
    curve = nb.iwae_curve(torch.randn(100, 50) * 5, [1, 10, 100])
    assert curve[0] < curve[1] < curve[2]                                     # L_1 <= L_10 <= L_100


# --- CVAE conditioning --------------------------------------------------------------------------

def test_cvae_decoder_uses_the_given_label():
    model = nb.CVAE_MLP(784, 64, 4, 10, "cpu")
    z = torch.randn(5, 4)
    out3 = model.decode(z, torch.full((5,), 3))
    out5 = model.decode(z, torch.full((5,), 5))
    assert (out3 - out5).abs().max() > 1e-4                                   # the label changes the output
    # forward decodes with the label it is given, whatever the class head predicts
    x = random_images(5)
    with torch.no_grad():
        model.fc_class.weight.zero_()
        model.fc_class.bias.copy_(torch.arange(10.0))                          # head always predicts class 9
        torch.manual_seed(1)
        recon, mu, logvar, logits = model(x, torch.full((5,), 2))
        assert (logits.argmax(1) == 9).all()
        torch.manual_seed(1)
        eps_mu, eps_logvar, _ = model.encode(x, torch.full((5,), 2))
        z = model.reparameterize(eps_mu, eps_logvar)
    torch.testing.assert_close(recon, model.decode(z, torch.full((5,), 2)).detach())
    assert not torch.allclose(recon, model.decode(z, torch.full((5,), 9)).detach())


# --- the noisy AE of T1(c) ----------------------------------------------------------------------

def test_noisy_ae_running_R_and_noise_scale():
    d = 8
    model = nb.AE_MLP(784, 32, d, "cpu", noisy=True, momentum=0.1)
    z1 = torch.randn(4096, d) * 3 + 5
    r1 = (z1 - z1.mean(0)).pow(2).sum(1).mean()
    model.update_running_R(z1)
    torch.testing.assert_close(model.R, r1)                                   # the first batch sets R
    z2 = torch.randn(4096, d)
    r2 = (z2 - z2.mean(0)).pow(2).sum(1).mean()
    model.update_running_R(z2)
    torch.testing.assert_close(model.R, 0.9 * r1 + 0.1 * r2)                  # then a running mean
    noise = model.add_code_noise(torch.zeros(200_000, d))
    total_var = noise.pow(2).sum(1).mean()
    torch.testing.assert_close(total_var, 0.5 * model.R, rtol=0.02, atol=0)   # E||eps||^2 = 0.5 R
    torch.testing.assert_close(noise.var(0), torch.full((d,), float(0.5 * model.R / d)), rtol=0.05, atol=0)
    # training forward updates R every step; eval forward is deterministic (no noise)
    x = random_images(64)
    before = model.R.clone()
    model.train()
    model(x)
    assert not torch.equal(model.R, before)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])
    plain = nb.AE_MLP(784, 32, d, "cpu", noisy=False)
    torch.testing.assert_close(plain(x)[0], plain(x)[0])


def test_noisy_ae_noise_scales_with_the_codes_in_the_backward_pass():
    d = 6
    model = nb.AE_MLP(784, 32, d, "cpu", noisy=True)
    z0 = torch.randn(512, d)
    model.update_running_R(z0)
    a = torch.tensor(1.0, requires_grad=True)                  # scale the codes by a, at a = 1
    z = a * z0
    torch.manual_seed(5)
    noise = model.add_code_noise(z, model.code_spread(z)) - z
    torch.manual_seed(5)
    const = model.add_code_noise(z0) - z0                       # R as a constant: same value ...
    torch.testing.assert_close(noise.detach(), const)
    w = torch.randn_like(z0)
    (noise * w).sum().backward()
    # ... but d(noise)/da = noise / a: the noise grows with the codes, so inflating them buys nothing
    torch.testing.assert_close(a.grad, (const * w).sum(), rtol=1e-4, atol=1e-4)
    a.grad = None
    z = a * z0
    (model.add_code_noise(z) - z).mul(w).sum().backward()      # detached R: the noise does not move with a
    assert a.grad is None or abs(float(a.grad)) < 1e-6


# --- training and helpers -----------------------------------------------------------------------

def test_training_lowers_the_loss_and_prints_the_skeleton_line():
    torch.manual_seed(0)
    x = random_images(512, binary=True)
    x[:, :, :14] = 0                                                           # some structure to learn
    loader = ResidentBatches(x, torch.zeros(512, dtype=torch.long), batch_size=128, seed=0)
    model = nb.VAE_MLP(784, 64, 4, "cpu")
    buf = io.StringIO()
    with redirect_stdout(buf):
        hist = nb.train_vae_mlp(model, loader, num_epochs=3, learning_rate=1e-3)
    assert "VAE- Epoch [1/3], Loss: " in buf.getvalue() and "VAE- Epoch [3/3], Loss: " in buf.getvalue()
    assert hist["train"][-1] < hist["train"][0]
    assert len(hist["step_loss"]) == 3 * len(loader)


def test_sample_latents_and_knn():
    codes = torch.randn(5000, 3) @ torch.tensor([[2.0, 0, 0], [0.5, 1, 0], [0, 0, 0.1]]) + 4
    box = nb.sample_latents("box", 1000, codes)
    assert (box >= codes.min(0).values).all() and (box <= codes.max(0).values).all()
    fitted = nb.sample_latents("fitted", 50_000, codes)
    torch.testing.assert_close(fitted.mean(0), codes.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(fitted.T), torch.cov(codes.T), atol=0.1, rtol=0.05)
    dead = torch.cat([codes, torch.full((5000, 1), 0.3)], 1)                  # an unused unit: singular cov
    fitted = nb.sample_latents("fitted", 1000, dead)
    assert torch.isfinite(fitted).all() and torch.allclose(fitted[:, 3], torch.full((1000,), 0.3))
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    labels = torch.arange(2).repeat_interleave(50)
    pts = centres[labels] + 0.1 * torch.randn(100, 2)
    assert nb.knn_accuracy(pts, labels, pts + 0.01, labels, k=5) == 1.0
    assert nb.knn_accuracy(pts, labels, pts, 1 - labels, k=5) == 0.0


def test_ae_and_cvae_training_loops():
    x = random_images(256, binary=True)
    y = torch.randint(0, 10, (256,))
    loader = ResidentBatches(x, y, batch_size=64, seed=0)
    noisy = nb.AE_MLP(784, 32, 4, "cpu", noisy=True)
    hist = nb.train_ae(noisy, loader, num_epochs=2, verbose=False)
    assert hist["R"].shape == (2 * len(loader),) and (hist["R"] > 0).all()   # R recorded after every step
    assert hist["step_mode"] == "eager"
    cvae = nb.CVAE_MLP(784, 32, 4, 10, "cpu")
    buf = io.StringIO()
    with redirect_stdout(buf):
        hist = nb.train_cvae_mlp(cvae, loader, num_epochs=1, test_data=(x[:64], y[:64]))
    assert "CVAE- Epoch [1/1], Loss: " in buf.getvalue()
    bad = ResidentBatches(x, torch.full((256,), 12), batch_size=64, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        nb.train_cvae_mlp(cvae, bad, num_epochs=1)


def test_notebook_keeps_the_skeleton_outputs_and_defs_cells_stay_light():
    import nbformat

    from utils.runtime import REPO_ROOT

    book = nbformat.read(REPO_ROOT / "Q1_VAE_CVAE.ipynb", as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    source = "\n".join(c.source for c in code)
    assert 'title="Generated Samples of VAE"' in source and "torch.eye(10" in source
    assert "vae.decoder(z)" in source and "cvae.decoder(torch.cat([z, c], dim=1))" in source
    assert '"cuda"' not in source.replace('== "cuda"', "")                      # no hard-coded CUDA device
    defs = "\n".join(c.source for c in code if "defs" in c.metadata.get("tags", []))
    for slow in ("load_dataset(", "train_vae_mlp(vae", "train_cvae_mlp(cvae", "load_or_train_classifier(", "plt.show"):
        assert slow not in defs, f"defs cells must hold definitions only, found {slow!r}"
