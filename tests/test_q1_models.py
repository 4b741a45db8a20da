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
from tools.notebooks import load_definitions

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
    x_logits, mu, logvar = model(x)                     # (N, 1, 28, 28) accepted
    assert x_logits.shape == (5, 784) and mu.shape == (5, 20) and logvar.shape == (5, 20)
    assert model(x.view(5, 784))[0].shape == (5, 784)   # flat input accepted too
    z = torch.randn(10, 20)
    probs = model.decoder(z)                            # the sampling cell's call: pixel probabilities
    assert probs.shape == (10, 784) and probs.min() >= 0 and probs.max() <= 1
    torch.testing.assert_close(probs, torch.sigmoid(model.decode_logits(z)))
    loss = nb.vae_loss(x_logits, x, mu, logvar)
    assert loss.dim() == 0 and loss.item() > 0
    sig = inspect.signature(nb.train_vae_mlp).parameters
    assert list(sig)[:4] == ["model", "loader", "num_epochs", "learning_rate"]
    assert sig["num_epochs"].default == 20 and sig["learning_rate"].default == 1e-3
    sig = inspect.signature(nb.train_cvae_mlp).parameters
    assert sig["num_epochs"].default == 10 and sig["learning_rate"].default == 1e-3
    assert list(inspect.signature(nb.vae_loss).parameters)[:4] == ["recon", "data", "mu", "logvar"]
    sig = inspect.signature(nb.cvae_loss).parameters                  # the skeleton's six, then beta (default: its loss)
    assert list(sig)[:6] == ["recon", "data", "mu", "logvar", "class_logits", "labels"] and sig["beta"].default == 1.0


def test_cvae_skeleton_api_and_shapes():
    model = nb.CVAE_MLP(784, 400, 20, 10, "cpu")
    assert isinstance(model.fc_class, nn.Linear) and model.fc_class.out_features == 10
    x, y = random_images(6), torch.arange(6)
    x_logits, mu, logvar, logits = model(x, F.one_hot(y, 10).float())
    assert x_logits.shape == (6, 784) and mu.shape == (6, 20) and logvar.shape == (6, 20) and logits.shape == (6, 10)
    # the skeleton's sampling cell: torch.eye(10) concatenated with z through decoder
    out = model.decoder(torch.cat([torch.randn(10, 20), torch.eye(10)], dim=1))
    assert out.shape == (10, 784)
    loss = nb.cvae_loss(x_logits, x, mu, logvar, logits, y)
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
    x_logits = torch.randn(8, 784) * 3
    x_hat = torch.sigmoid(x_logits)
    mu, logvar = torch.randn(8, 20), torch.randn(8, 20)
    xf = x.view(8, 784)
    bce = -(xf * x_hat.log() + (1 - xf) * (1 - x_hat).log()).sum(1)           # explicit formula, grey levels
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(nb.vae_loss(x_logits, x, mu, logvar), (bce + kl).mean())
    torch.testing.assert_close(nb.vae_loss(x_logits, x, mu, logvar, beta=4.0), (bce + 4 * kl).mean())
    # for binary pixels the BCE is exactly -log Bernoulli(x; sigmoid(logits))
    xb = random_images(8, binary=True).view(8, 784)
    r, _ = nb.vae_loss_terms(x_logits, xb, mu, logvar)
    torch.testing.assert_close(r, -Independent(Bernoulli(logits=x_logits), 1).log_prob(xb))
    # and stays finite where a sigmoid saturates (logits of +-100: probabilities of exactly 0 or 1 in fp32)
    r, _ = nb.vae_loss_terms(torch.full((1, 784), 100.0), torch.zeros(1, 784), mu[:1], logvar[:1])
    torch.testing.assert_close(r, torch.tensor([784 * 100.0]))


def test_a_fresh_vae_costs_784_ln2_nats():
    """The notebook's sanity check: an untrained decoder gives logits near 0, i.e. p = 0.5 per pixel."""
    model = nb.VAE_MLP(784, 512, 20, "cpu")
    x = random_images(256)
    with torch.no_grad():
        loss = nb.vae_loss(*model(x)[:1], x, *model(x)[1:])
    assert abs(loss.item() - 784 * math.log(2)) < 0.05 * 784 * math.log(2)


def test_cvae_loss_adds_class_cross_entropy():
    x, y = random_images(8), torch.randint(0, 10, (8,))
    x_logits = torch.randn(8, 784)
    mu, logvar, logits = torch.randn(8, 20), torch.randn(8, 20), torch.randn(8, 10)
    expected = nb.vae_loss(x_logits, x, mu, logvar) + F.cross_entropy(logits, y)
    torch.testing.assert_close(nb.cvae_loss(x_logits, x, mu, logvar, logits, y), expected)
    torch.testing.assert_close(nb.cvae_loss(x_logits, x, mu, logvar, logits, F.one_hot(y, 10).float()), expected)
    # beta weighs the KL only
    expected = nb.vae_loss(x_logits, x, mu, logvar, beta=2.0) + F.cross_entropy(logits, y)
    torch.testing.assert_close(nb.cvae_loss(x_logits, x, mu, logvar, logits, y, beta=2.0), expected)


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
        elbo = -(torch.stack([nb.vae_loss_terms(model.decode_logits(model.reparameterize(mu, logvar)), x, mu, logvar)[0]
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
        x_logits, mu, logvar, logits = model(x, torch.full((5,), 2))
        assert (logits.argmax(1) == 9).all()
        torch.manual_seed(1)
        eps_mu, eps_logvar, _ = model.encode(x, torch.full((5,), 2))
        z = model.reparameterize(eps_mu, eps_logvar)
        torch.testing.assert_close(x_logits, model.decode_logits(z, torch.full((5,), 2)))
        torch.testing.assert_close(torch.sigmoid(x_logits), model.decode(z, torch.full((5,), 2)))
        assert not torch.allclose(x_logits, model.decode_logits(z, torch.full((5,), 9)))


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
    for slow in ("load_dataset(", "train_vae_mlp(vae", "train_cvae_mlp(cvae", "load_judge(", "plt.show"):
        assert slow not in defs, f"defs cells must hold definitions only, found {slow!r}"


# --- one likelihood, the skeleton's DataLoader -----------------------------------------------------

def test_training_loss_test_elbo_and_iwae_share_one_likelihood():
    """-log p(x|z) of the loss (vae_loss_terms on the logits) is the log p(x|z) inside the IWAE weights."""
    model = nb.VAE_MLP(784, 64, 5, "cpu")
    x = random_images(6).view(6, 784)                           # grey levels, as in training
    mu, logvar = model.encode(x)
    eps = torch.randn(1, 6, 5)
    z = mu + torch.exp(0.5 * logvar) * eps[0]
    log_w = nb.log_importance_weights(model, x, mu, logvar, eps)[0]
    log_pz = Independent(Normal(torch.zeros(5), torch.ones(5)), 1).log_prob(z)
    log_qz = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    recon_nll, kl = nb.vae_loss_terms(model.decode_logits(z), x, mu, logvar)
    torch.testing.assert_close(log_w, -recon_nll + log_pz - log_qz, rtol=1e-5, atol=1e-3)


def loaders(n=250, batch=100):
    x = random_images(n, binary=True)
    y = torch.randint(0, 10, (n,))
    # its own generator: a DataLoader draws a base seed from it for every epoch's iterator, which would
    # otherwise shift the global RNG and with it the reparameterisation noise
    dataloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=False,
                                             generator=torch.Generator().manual_seed(0))
    return dataloader, ResidentBatches(x, y, batch_size=batch, shuffle=False, drop_last=False)


@pytest.mark.parametrize("which", ["vae", "cvae"])
def test_training_takes_the_skeletons_dataloader(which):
    """A DataLoader (with a short last batch: 250 = 100 + 100 + 50) trains exactly like ResidentBatches over
    the same images in the same order."""
    states = []
    for loader in loaders():
        torch.manual_seed(0)
        if which == "vae":
            model = nb.VAE_MLP(784, 32, 4, "cpu")
            hist = nb.train_vae_mlp(model, loader, num_epochs=2, verbose=False)
        else:
            model = nb.CVAE_MLP(784, 32, 4, 10, "cpu")
            hist = nb.train_cvae_mlp(model, loader, num_epochs=2, verbose=False)
        assert len(hist["step_loss"]) == 2 * 3 and all(math.isfinite(v) for v in hist["train"])
        states.append(model.state_dict())
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], msg=k)


def test_cvae_training_checks_a_dataloaders_labels_once():
    x = random_images(20)
    bad = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.full((20,), 11)), batch_size=10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        nb.train_cvae_mlp(nb.CVAE_MLP(784, 16, 2, 10, "cpu"), bad, num_epochs=1, verbose=False)


def test_continuing_a_run_keeps_its_optimizer():
    x = random_images(64, binary=True)
    loader = ResidentBatches(x, torch.zeros(64, dtype=torch.long), batch_size=32, seed=0)
    model = nb.VAE_MLP(784, 16, 2, "cpu")
    first = nb.train_vae_mlp(model, loader, num_epochs=1, verbose=False)
    steps = float(first["optimizer"].state[next(model.parameters())]["step"])   # (a tensor Adam updates in place)
    nb.train_epochs(model, loader, 1, 1e-3, lambda m, d, *_: nb.vae_loss(*m(d)[:1], d, *m(d)[1:]), "more",
                    verbose=False, optimizer=first["optimizer"])
    assert first["optimizer"].state[next(model.parameters())]["step"] == steps + 2


# --- section D: why CVAE samples miss ---------------------------------------------------------------

def test_aggregate_log_density_matches_a_torch_mixture():
    from torch.distributions import Categorical, MixtureSameFamily

    mu, logvar = torch.randn(7, 3), torch.randn(7, 3) * 0.3
    z = torch.randn(50, 3) * 2
    mix = MixtureSameFamily(Categorical(torch.ones(7)), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    torch.testing.assert_close(nb.aggregate_log_density(z, mu, logvar, chunk=16), mix.log_prob(z), rtol=1e-5, atol=1e-5)


def test_linear_probe_reads_separable_codes_and_not_noise():
    y = torch.arange(400) % 4
    codes = F.one_hot(y, 4).float() * 5 + 0.1 * torch.randn(400, 4)
    assert nb.linear_probe_accuracy(codes[:300], y[:300], codes[300:], y[300:], num_classes=4) == 1.0
    noise = torch.randn(400, 4)
    assert nb.linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:], num_classes=4) < 0.5


def test_cvae_diagnostics_are_well_formed():
    from utils.classifier import MnistClassifier

    x, y = random_images(200), torch.arange(200) % 10
    out = nb.cvae_diagnostics(nb.CVAE_MLP(784, 32, 4, 10, "cpu"), MnistClassifier().eval(), x, y, x[:50], y[:50],
                              n_per_class=20, n_density=15)
    assert 0 <= out["conditional_accuracy"] <= 1 and len(out["per_class"]) == 10
    assert out["standard_error"] == pytest.approx(math.sqrt(out["conditional_accuracy"] * (1 - out["conditional_accuracy"]) / 200))
    assert len(out["accuracy_by_log_density_quartile"]) == 4 and len(out["kl_per_unit"]) == 4
    assert out["kl_per_unit"] == sorted(out["kl_per_unit"], reverse=True) and math.isfinite(out["test_neg_elbo"])


def test_noisy_ae_per_coordinate_reading_has_d_times_the_noise():
    d = 10
    total = nb.AE_MLP(784, 16, d, "cpu", noisy=True, reading="total")
    coord = nb.AE_MLP(784, 16, d, "cpu", noisy=True, reading="per_coordinate")
    z = torch.randn(1000, d)
    for m in (total, coord):
        m.update_running_R(z)
    torch.testing.assert_close(coord.noise_std() ** 2, d * total.noise_std() ** 2)
    with pytest.raises(ValueError, match="reading"):
        nb.AE_MLP(784, 16, d, "cpu", noisy=True, reading="half")
