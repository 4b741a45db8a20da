"""Q2 VQ-VAE maths, checked against references: nearest code, straight-through gradient, which loss
moves what, the EMA update, perplexity, the skeleton's shape test, the dead-code restart."""
import math

import pytest
import torch
import torch.nn.functional as F

from utils.notebooks import load_definitions

nb = load_definitions("Q2_VQVAE.ipynb")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("cls", ["VectorQuantizer", "VectorQuantizerEMA"])
def test_nearest_code_matches_cdist_brute_force(cls):
    vq = getattr(nb, cls)(*((64, 8, 0.25) if cls == "VectorQuantizer" else (64, 8, 0.25, 0.99)))
    vq.eval()
    with torch.no_grad():
        vq._embedding.weight.copy_(torch.randn(64, 8))
    z_e = torch.randn(3, 8, 5, 6)
    _, z_q, _, encodings = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    brute = torch.cdist(flat.double(), vq._embedding.weight.double()).argmin(1)
    assert torch.equal(encodings.argmax(1), brute)
    assert torch.equal(vq.nearest(flat), brute)
    # forward value of z_q is exactly the selected code vector
    assert torch.allclose(z_q.permute(0, 2, 3, 1).reshape(-1, 8), vq._embedding.weight[brute], atol=1e-6)


def test_nearest_code_in_fp32_under_autocast():
    vq = nb.VectorQuantizer(512, 64, 0.25)
    with torch.no_grad():
        vq._embedding.weight.copy_(torch.randn(512, 64) * 3 + 10)  # large norms: bf16 would lose the argmin
    flat = torch.randn(256, 64) * 3 + 10
    with torch.autocast("cpu", dtype=torch.bfloat16):
        idx = vq.nearest(flat.bfloat16())
    ref = torch.cdist(flat.bfloat16().double(), vq._embedding.weight.double()).argmin(1)
    assert torch.equal(idx, ref)


@pytest.mark.parametrize("cls", ["VectorQuantizer", "VectorQuantizerEMA"])
def test_straight_through_gradient_is_identity(cls):
    vq = getattr(nb, cls)(*((16, 4, 0.25) if cls == "VectorQuantizer" else (16, 4, 0.25, 0.99)))
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    _, z_q, _, _ = vq(z_e)
    upstream = torch.randn_like(z_q)
    (g,) = torch.autograd.grad((z_q * upstream).sum(), z_e)
    assert torch.equal(g, upstream)


def test_codebook_loss_moves_only_codebook_and_commitment_only_encoder():
    vq = nb.VectorQuantizer(16, 4, 0.25)
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    w = vq._embedding.weight
    # recompute the two terms exactly as the layer does, from its own outputs
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    loss, _, _, encodings = vq(z_e)
    quantized = encodings @ w
    q_latent = F.mse_loss(quantized, flat.detach())
    e_latent = F.mse_loss(quantized.detach(), flat)
    assert torch.allclose(loss, q_latent + 0.25 * e_latent)
    gz, gw = torch.autograd.grad(q_latent, (z_e, w), allow_unused=True)
    assert gz is None or torch.count_nonzero(gz) == 0
    assert torch.count_nonzero(gw) > 0
    gz, gw = torch.autograd.grad(e_latent, (z_e, w), allow_unused=True)
    assert torch.count_nonzero(gz) > 0
    assert gw is None or torch.count_nonzero(gw) == 0
    # and the layer's own loss: codebook gradient = d q_latent / dw, encoder gradient = beta * d e_latent / dz
    gz_loss, gw_loss = torch.autograd.grad(loss, (z_e, w))
    gz_ref = torch.autograd.grad(0.25 * F.mse_loss(quantized.detach(), flat), z_e)[0]
    gw_ref = torch.autograd.grad(F.mse_loss(encodings @ w, flat.detach()), w)[0]
    assert torch.allclose(gz_loss, gz_ref, atol=1e-7) and torch.allclose(gw_loss, gw_ref, atol=1e-7)
    # analytic: d/de_k of mean |e_k - z|^2 = 2 (n_k e_k - sum z) / (N D)
    n_k = encodings.sum(0)
    sums = encodings.t() @ flat.detach()
    ana = 2 * (n_k[:, None] * w.detach() - sums) / flat.numel()
    assert torch.allclose(gw_loss, ana, atol=1e-6)


def test_ema_loss_is_commitment_only_and_codebook_gets_no_gradient():
    vq = nb.VectorQuantizerEMA(16, 4, 0.25, 0.99)
    assert not vq._embedding.weight.requires_grad
    assert "_ema_w" in dict(vq.named_buffers()) and not any(n.endswith("_ema_w") for n, _ in vq.named_parameters())
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    before = vq._embedding.weight.clone()
    loss, _, _, _ = vq(z_e)
    after = vq._embedding.weight.detach()
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    # the assignment and z_q used the codebook as it was before this step's EMA update
    enc = torch.zeros(len(flat), 16).scatter_(1, torch.cdist(flat.detach(), before).argmin(1, keepdim=True), 1)
    assert torch.allclose(loss, 0.25 * F.mse_loss(flat, enc @ before))
    assert not torch.equal(before, after)  # training mode updated the codebook


def test_ema_update_matches_formulas_on_hand_made_batch():
    K, D, decay, eps = 3, 2, 0.9, 1e-5
    vq = nb.VectorQuantizerEMA(K, D, 0.25, decay, epsilon=eps)
    codes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    with torch.no_grad():
        vq._embedding.weight.copy_(codes)
        vq._ema_w.copy_(codes * 2.0)
        vq._ema_cluster_size.copy_(torch.tensor([2.0, 1.0, 0.5]))
    # 4 vectors: three near code 0, one near code 1, none near code 2; laid out as (1, D, 2, 2)
    z = torch.tensor([[0.1, 0.2], [-0.3, 0.1], [0.2, -0.1], [9.0, 1.0]])
    z_e = z.view(2, 2, D).permute(2, 0, 1).unsqueeze(0)
    vq.train()
    vq(z_e)
    n = torch.tensor([3.0, 1.0, 0.0])
    N = decay * torch.tensor([2.0, 1.0, 0.5]) + (1 - decay) * n
    sums = torch.stack([z[:3].sum(0), z[3], torch.zeros(2)])
    m = decay * codes * 2.0 + (1 - decay) * sums
    total = N.sum()
    N_smooth = (N + eps) / (total + K * eps) * total
    assert torch.allclose(vq._ema_cluster_size, N, atol=1e-6)
    assert torch.allclose(vq._ema_w, m, atol=1e-6)
    assert torch.allclose(vq._embedding.weight, m / N_smooth[:, None], atol=1e-5)
    # eval mode: no update
    before = vq._embedding.weight.clone()
    vq.eval()
    vq(z_e)
    assert torch.equal(before, vq._embedding.weight)


@pytest.mark.parametrize("cls", ["VectorQuantizer", "VectorQuantizerEMA"])
def test_perplexity_uniform_is_K_and_single_code_is_1(cls):
    K = 8
    vq = getattr(nb, cls)(*((K, 2, 0.25) if cls == "VectorQuantizer" else (K, 2, 0.25, 0.99))).eval()
    codes = torch.randn(K, 2) * 10
    with torch.no_grad():
        vq._embedding.weight.copy_(codes)
    uniform = codes.repeat(5, 1)                       # every code 5 times
    _, _, p_uniform, _ = vq(uniform.t().reshape(1, 2, 5 * K, 1))
    assert math.isclose(p_uniform.item(), K, rel_tol=1e-5)
    single = codes[3:4].repeat(40, 1)
    _, _, p_single, _ = vq(single.t().reshape(1, 2, 40, 1))
    assert math.isclose(p_single.item(), 1.0, rel_tol=1e-5)


def test_skeleton_shape_test():
    for vq in (nb.VectorQuantizer(512, 3, 0.25), nb.VectorQuantizerEMA(512, 3, 0.25, 0.99)):
        x = torch.randn(4, 3, 16, 16)
        loss, q, p, enc = vq(x)
        assert q.shape == (4, 3, 16, 16) and enc.shape == (4 * 16 * 16, 512) and loss.dim() == 0 and p.dim() == 0
    vq = nb.VectorQuantizer(512, 3, 0.25)
    assert vq._embedding.weight.abs().max() <= 1 / 512  # uniform(-1/K, 1/K) init


def test_model_shapes_and_bad_input():
    m = nb.Model(32, 2, 8, 64, 16, 0.25, decay=0.99)
    loss, x_hat, p = m(torch.rand(2, 3, 32, 32) - 0.5)
    assert x_hat.shape == (2, 3, 32, 32) and m.encode(torch.zeros(2, 3, 32, 32)).shape == (2, 8, 8)
    assert isinstance(m._vq_vae, nb.VectorQuantizerEMA)
    assert isinstance(nb.Model(32, 2, 8, 64, 16, 0.25, decay=0.0)._vq_vae, nb.VectorQuantizer)
    mn = nb.Model(32, 2, 8, 16, 8, 0.25, decay=0.99, in_channels=1)
    assert mn(torch.zeros(2, 1, 28, 28))[1].shape == (2, 1, 28, 28) and mn.encode(torch.zeros(1, 1, 28, 28)).shape == (1, 7, 7)
    with pytest.raises(ValueError, match="subtract 0.5"):
        m(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="embedding_dim"):
        nb.VectorQuantizer(8, 4, 0.25)(torch.zeros(1, 3, 2, 2))


def test_residual_is_x_plus_block_and_input_untouched():
    r = nb.Residual(4, 4, 2)
    x = torch.randn(1, 4, 3, 3)
    x0 = x.clone()
    out = r(x)
    assert torch.equal(x, x0) and torch.allclose(out, x0 + r._block(x0))


@pytest.mark.parametrize("ema", [True, False])
def test_kmeans_init_spreads_codes_and_keeps_ema_consistent(ema):
    vq = nb.VectorQuantizerEMA(16, 2, 0.25, 0.99) if ema else nb.VectorQuantizer(16, 2, 0.25)
    centres = torch.randn(16, 2) * 20
    z = (centres[:, None, :] + 0.1 * torch.randn(16, 50, 2)).reshape(-1, 2)
    counts = vq.init_from_data(z, batch_vectors=80, generator=torch.Generator().manual_seed(0))
    assert counts.sum() == len(z) and (counts > 0).all()
    # every true cluster got a code near it
    d = torch.cdist(centres, vq._embedding.weight.detach()).min(1).values
    assert (d < 1.0).all()
    if ema:  # e_i = m_i / N_i holds right after the init, with N_i scaled to a batch of 80 vectors
        assert torch.allclose(vq._ema_w / vq._ema_cluster_size[:, None], vq._embedding.weight, atol=1e-5)
        assert math.isclose(vq._ema_cluster_size.sum().item(), 80, rel_tol=1e-4)


def test_dead_code_restart_moves_only_dead_codes_onto_encoder_outputs():
    vq = nb.VectorQuantizerEMA(4, 2, 0.25, 0.99, restart_every=1, restart_threshold=0.5)
    with torch.no_grad():
        vq._embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [100.0, 100.0], [-100.0, 50.0]]))
        vq._ema_w.copy_(vq._embedding.weight)
        vq._ema_cluster_size.fill_(1.0)
        vq._usage.copy_(torch.tensor([5.0, 5.0, 0.0, 0.0]))     # codes 2, 3 dead
    z = torch.tensor([[0.1, 0.0], [0.9, 1.1], [0.0, 0.2], [1.2, 0.8]])
    vq(z.t().reshape(1, 2, 4, 1))
    w = vq._embedding.weight
    for k in (2, 3):  # re-seeded on one of the batch's vectors
        assert torch.cdist(w[k:k + 1], z).min() < 1e-6
    assert torch.allclose(vq._ema_w[2:], w[2:]) and torch.equal(vq._ema_cluster_size[2:], torch.ones(2))
    # live codes keep their EMA update (not restarted); the counting window starts afresh
    assert torch.cdist(w[:2], z).min(1).values.min() > 1e-4
    assert int(vq._restarted) == 2 and vq._usage.sum() == 0
    # off by default
    assert nb.VectorQuantizerEMA(4, 2, 0.25, 0.99).restart_every == 0


def test_restart_waits_for_its_period_and_spares_used_codes():
    vq = nb.VectorQuantizer(4, 2, 0.25, restart_every=3)
    with torch.no_grad():
        vq._embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [100.0, 100.0], [-100.0, 50.0]]))
    z = torch.tensor([[0.1, 0.0], [0.9, 1.1], [0.0, 0.2], [99.0, 101.0]]).t().reshape(1, 2, 4, 1)
    for step in range(1, 4):
        vq(z)
        w = vq._embedding.weight.detach()
        if step < 3:   # not due yet: nothing moved (plain codebook: only gradients move codes)
            assert w[3, 0] == -100.0
    assert int(vq._restarted) == 1 and torch.cdist(w[3:4], z.reshape(2, 4).t()).min() < 1e-6   # code 3 re-seeded
    assert torch.equal(w[2], torch.tensor([100.0, 100.0]))   # code 2 was used: kept


def test_train_vqvae_learns_and_keeps_history_on_device():
    torch.manual_seed(0)
    x = F.interpolate(torch.rand(32, 3, 4, 4), size=16, mode="bilinear") - 0.5   # smooth: learnable images
    model = nb.Model(16, 1, 8, 32, 8, 0.25, decay=0.99, restart_every=5)
    nb.seed_codebook(model, x, images=16, batch_size=16, kmeans_iters=2)
    batches = nb.ResidentBatches(x, batch_size=16, seed=0)
    hist = nb.train_vqvae(model, batches, 30, x.var().item() + 1e-9, lr=3e-3, schedule="cosine", desc="test")
    assert hist["recon_error"].shape == (30,) and hist["step_mode"] == "eager"
    assert hist["recon_error"][-5:].mean() < hist["recon_error"][:5].mean()
    ev = nb.evaluate_vqvae(model, x, x.var().item())
    assert 0 < ev["code_usage"] <= 1 and 1 - 1e-6 <= ev["test_perplexity"] <= 32 and ev["indices"].shape == (32, 4, 4)
    assert ev["test_nmse"] < 1.0 and math.isclose(ev["test_psnr"], ev["test_psnr"])   # beats the mean image
    assert nb.lr_at(0, 10, 1e-3, "cosine") == 1e-3 and abs(nb.lr_at(10, 10, 1e-3, "cosine")) < 1e-12
    with pytest.raises(ValueError, match="schedule"):
        nb.lr_at(0, 10, 1e-3, "linear")
