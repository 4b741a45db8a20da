"""utils.training: the one loop (fit), the optimizer it steps, the check that stops a bad loss."""
import math

import pytest
import torch

from utils.batches import ResidentBatches, stream
from utils.training import CHECK_EVERY, NonFiniteLossError, fit, make_adam, stop_if_nonfinite


def test_make_adam_is_fused_where_torch_has_it_with_a_float_lr():
    opt = make_adam([torch.nn.Parameter(torch.zeros(1))], 3e-4, "cpu")
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 3e-4
    has_cpu_kernel = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
    assert bool(opt.defaults.get("fused")) == has_cpu_kernel
    plain = make_adam([torch.nn.Parameter(torch.zeros(1))], 1e-3, "cpu", fused=False)
    assert not plain.defaults["fused"]


def test_finite_losses_pass():
    stop_if_nonfinite(torch.tensor([0.5, 0.25, 1e30]), "demo")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_bad_loss_names_the_run_the_step_and_the_usual_causes(bad):
    losses = torch.tensor([0.5, 0.4, bad, 0.3])
    with pytest.raises(NonFiniteLossError) as info:
        stop_if_nonfinite(losses, "VAE", first_step=100)
    message = str(info.value)
    assert message.startswith("VAE: the loss became") and "at step 102" in message
    assert "NaN pixel" in message and "0-255" in message and "learning rate" in message


def test_fused_adam_on_cpu_takes_the_plain_update():
    """fused on the CPU: the fused kernel where torch has it; plain Adam's steps up to rounding."""
    torch.manual_seed(0)
    w0, x = torch.randn(20, 5), torch.randn(64, 20)
    runs = []
    for fused in (False, True):
        w = torch.nn.Parameter(w0.clone())
        opt = make_adam([w], 1e-2, "cpu", fused=fused)
        for _ in range(50):
            opt.zero_grad()
            (x @ w).tanh().pow(2).mean().backward()
            opt.step()
        runs.append(w.detach())
    assert torch.allclose(runs[0], runs[1], atol=1e-5, rtol=1e-5) and not torch.equal(runs[0], w0)


def _tiny_problem(seed=0):
    torch.manual_seed(seed)
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    return torch.nn.Linear(5, 1), ResidentBatches(x, y, batch_size=16, seed=seed)


def _mse(model, batch):
    xb, yb = batch
    return torch.nn.functional.mse_loss(model(xb), yb)


def test_fit_is_the_skeletons_loop_written_out():
    """fit = for each update: next batch, zero_grad, loss, backward, step -- the same weights and
    losses, bit for bit, as that loop by hand."""
    model, batches = _tiny_problem()
    opt = make_adam(model.parameters(), 1e-2, "cpu")
    hist = fit(model, opt, stream(batches, "cpu"), _mse, 10, desc="demo")

    ref, ref_batches = _tiny_problem()
    ref_opt, feed, losses = make_adam(ref.parameters(), 1e-2, "cpu"), stream(ref_batches, "cpu"), []
    for _ in range(10):
        batch = next(feed)
        ref_opt.zero_grad(set_to_none=True)
        loss = _mse(ref, batch)
        loss.backward()
        ref_opt.step()
        losses.append(loss.item())
    assert hist["loss"] == losses and set(hist) == {"loss", "seconds"}
    assert torch.equal(model.weight, ref.weight) and not model.training


def test_fit_keeps_named_series_and_runs_the_epoch_hook_in_train_mode():
    model, batches = _tiny_problem()
    seen = []

    def step_loss(model, batch):
        loss = _mse(model, batch)
        return loss, {"double": 2 * loss}

    def on_epoch(epoch, epoch_loss):
        seen.append(model.training)
        model.eval()                                   # an evaluation may switch the mode
        return epoch * 10

    hist = fit(model, make_adam(model.parameters(), 1e-2), stream(batches, "cpu"), step_loss, 12,
               epoch_steps=len(batches), on_epoch=on_epoch)
    assert len(hist["loss"]) == len(hist["double"]) == 12
    assert hist["double"] == [2 * v for v in hist["loss"]]
    assert hist["epoch_results"] == [10, 20, 30] and seen == [True, True, True]
    assert hist["epoch_loss"][0] == pytest.approx(sum(hist["loss"][:4]) / 4)


def test_fit_stops_a_bad_loss_at_its_window_with_the_update_named():
    model, batches = _tiny_problem()
    calls = []

    def step_loss(model, batch):
        calls.append(1)
        loss = _mse(model, batch)
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(NonFiniteLossError, match="at step 2"):
        fit(model, make_adam(model.parameters(), 1e-2), stream(batches, "cpu"), step_loss,
            2 * CHECK_EVERY, desc="demo")
    assert len(calls) == CHECK_EVERY                  # read once per window, not per update


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_fit_refuses_a_step_count_that_is_not_one(steps):
    model, batches = _tiny_problem()
    with pytest.raises(ValueError, match="steps="):
        fit(model, make_adam(model.parameters(), 1e-2), stream(batches, "cpu"), _mse, steps)
