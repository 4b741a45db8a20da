"""utils.train_step: the eager path equals calling the function; Adam/lr helpers; the graph path's
guards (the CUDA-graph replay itself needs a GPU and is skipped without one)."""
import pytest
import torch

from utils.train_step import TrainStep, make_adam, set_lr


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    return model, x, y


def mse_update(model, opt):
    """One graph-safe training update of ``model`` on an MSE loss (tensors only, no host sync)."""

    def update(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.detach()

    return update


def test_eager_step_is_plain_training():
    model_a, x, y = _problem()
    model_b, _, _ = _problem()
    opt_a = make_adam(model_a.parameters(), 0.1, "cpu")
    opt_b = torch.optim.Adam(model_b.parameters(), lr=0.1)

    step = TrainStep(mse_update(model_a, opt_a), cuda_graph=True)   # no GPU here: must silently stay eager
    for _ in range(5):
        step(x, y)
        opt_b.zero_grad()
        torch.nn.functional.mse_loss(model_b(x), y).backward()
        opt_b.step()
    if not torch.cuda.is_available():
        assert step.mode == "eager" and step.calls == 5
    assert torch.allclose(model_a.weight, model_b.weight)


def test_set_lr_handles_float_and_tensor_lr():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=1e-3)
    set_lr(opt, 5e-4)
    assert opt.param_groups[0]["lr"] == 5e-4
    opt_t = torch.optim.Adam([p], lr=torch.tensor(1e-3))
    lr_tensor = opt_t.param_groups[0]["lr"]
    set_lr(opt_t, 2e-4)
    assert opt_t.param_groups[0]["lr"] is lr_tensor and abs(lr_tensor.item() - 2e-4) < 1e-9


def test_make_adam_on_cpu_uses_float_lr():
    opt = make_adam([torch.nn.Parameter(torch.zeros(1))], 3e-4, "cpu")
    assert isinstance(opt.param_groups[0]["lr"], float) and opt.param_groups[0]["lr"] == 3e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_step_matches_eager():
    dev = "cuda"
    results = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to(dev)
        opt = make_adam(model.parameters(), 0.01, dev)
        data = torch.randn(10, 32, 4, device=dev), torch.randn(10, 32, 1, device=dev)

        step = TrainStep(mse_update(model, opt), cuda_graph=graph, warmup=2)
        losses = []
        for i in range(10):
            set_lr(opt, 0.01 * (1 - i / 10))
            losses.append(step(data[0][i], data[1][i]).clone())
        results.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()], step.mode))
    (l0, p0, m0), (l1, p1, m1) = results
    assert m0 == "eager" and m1 == "cuda-graph"
    assert torch.allclose(l0, l1, atol=1e-5) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(p0, p1))
