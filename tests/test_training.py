"""utils.training: the one optimizer constructor and the check that stops a run whose loss went bad."""
import math

import pytest
import torch

from utils.training import NonFiniteLossError, make_adam, stop_if_nonfinite


def test_make_adam_on_cpu_is_plain_adam_with_a_float_lr():
    opt = make_adam([torch.nn.Parameter(torch.zeros(1))], 3e-4, "cpu")
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 3e-4


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
    """fused=True on the CPU: the fused kernel where this torch has it, the same steps as plain Adam up to rounding."""
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
