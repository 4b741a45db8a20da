"""bench/cuda_graph.py (the CUDA-graph update the bench wraps). On the CPU: the wrapper is a plain
call. Where CUDA exists: 100 captured updates of the real VQ-VAE (EMA quantiser, restart on) and the
real VAE equal 100 eager updates from the same state -- parameters, EMA buffers and losses -- to
fp32 tolerance."""
import copy

import pytest
import torch
import torch.nn.functional as F

from bench.cuda_graph import CUDAGraphStep, graph_adam
from tools.notebooks import load_definitions

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def linear_update(model, opt):
    def update(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return update


def test_without_cuda_the_wrapper_is_a_plain_call():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU path")
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 1)
    b = copy.deepcopy(a)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    step = CUDAGraphStep(linear_update(a, graph_adam(a.parameters(), 0.1, "cpu")))
    plain = linear_update(b, torch.optim.Adam(b.parameters(), lr=0.1))
    for _ in range(5):
        assert torch.equal(step(x, y), plain(x, y))
    assert step.mode.startswith("eager") and step.calls == 5
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="warmup"):
        CUDAGraphStep(lambda: None, warmup=0)


def test_graph_adam_on_cpu_is_plain_adam_with_a_float_lr():
    opt = graph_adam([torch.nn.Parameter(torch.zeros(1))], 3e-4, "cpu")
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 3e-4


def run_updates(make, update_of, batches, graph):
    """A fresh (model, optimizer) from ``make``, one update per batch (captured or eager)."""
    model, opt = make()
    fn = update_of(model, opt)
    step = CUDAGraphStep(fn, warmup=3) if graph else fn
    losses = torch.stack([step(*b).clone() for b in batches])
    return model, losses, (step.mode if graph else "eager")


def assert_same_training(make, update_of, batches):
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    results = []
    for graph in (False, True):
        torch.manual_seed(0)    # same initial state and the same CUDA random stream for both
        results.append(run_updates(make, update_of, batches, graph))
    (m0, l0, _), (m1, l1, mode) = results
    assert mode == "cuda-graph", mode
    torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-5)
    s0, s1 = m0.state_dict(), m1.state_dict()     # parameters and buffers (EMA sums, counts, ...)
    for k in s0:
        torch.testing.assert_close(s1[k].float(), s0[k].float(), rtol=1e-4, atol=1e-5,
                                   msg=f"{k} differs")


@cuda
def test_captured_vqvae_updates_equal_eager_updates():
    nb = load_definitions("Q2_VQVAE.ipynb")
    hp = dict(num_hiddens=64, num_residual_layers=2, num_residual_hiddens=32, num_embeddings=128,
              embedding_dim=32, commitment_cost=0.25, decay=0.99)
    ours = next(settings for name, settings, _ in nb.ablation_plan(100, 64)
                if name.endswith("= ours"))
    torch.manual_seed(1)
    batches = [(torch.rand(64, 3, 32, 32, device="cuda") - 0.5,) for _ in range(100)]

    def make():
        model = nb.build_model(ours, hp, restart_every=10).cuda()  # EMA quantiser, restarts
        return model, graph_adam([p for p in model.parameters() if p.requires_grad], 1e-3, "cuda")

    def update_of(model, opt):
        def update(x):    # train_vqvae's update
            opt.zero_grad(set_to_none=True)
            vq_loss, x_recon, perplexity = model(x)
            recon_error = F.mse_loss(x_recon, x) / 0.06
            (recon_error + vq_loss).backward()
            opt.step()
            return torch.stack([recon_error.detach(), perplexity.detach()])
        return update

    assert_same_training(make, update_of, batches)


@cuda
def test_captured_vae_updates_equal_eager_updates():
    nb = load_definitions("Q1_VAE_CVAE.ipynb")
    torch.manual_seed(1)
    batches = [((torch.rand(128, 1, 28, 28, device="cuda") > 0.5).float(),) for _ in range(100)]

    def make():
        model = nb.VAE_MLP(784, 400, 20, "cuda")
        return model, graph_adam(model.parameters(), 1e-3, "cuda")

    def update_of(model, opt):
        # train_vae_mlp's update (the reparameterisation draws from the CUDA generator)
        def update(x):
            opt.zero_grad(set_to_none=True)
            recon, mu, logvar = model(x)
            loss = nb.vae_loss(recon, x, mu, logvar)
            loss.backward()
            opt.step()
            return loss.detach()
        return update

    assert_same_training(make, update_of, batches)
