"""What the notebooks' training loops share: the optimizer and the check for a loss gone bad.

Every training loop in the repository has one shape (the skeleton's, written out)::

    def train_x(model, loader, num_..., learning_rate, ...):
        optimizer = make_adam(model.parameters(), learning_rate, device)   # 1. the one optimizer constructor
        losses = torch.zeros(n_steps, device=device)                       # 2. per-step losses stay on the device
        for step ... in progress(...) / for epoch ...:                     # 3. a tqdm bar, or one line per epoch
            optimizer.zero_grad(set_to_none=True)
            loss = ...; loss.backward(); optimizer.step()
            losses[step] = loss.detach()                                   #    no host sync per step
        stop_if_nonfinite(losses, "name")                                  # 4. once per epoch or run, not per step
        return {"loss": losses.tolist(), ...}                              # 5. a dict of plain lists: the history

The learning rate is set once, at construction (the judge's last epoch at a tenth of it, by a torch scheduler).
"""
from __future__ import annotations

import numbers
import warnings
from typing import Iterable

import torch


def make_adam(params: Iterable, lr: float = 1e-3, device: torch.device | str = "cpu", fused: bool | None = None,
              **kw) -> torch.optim.Adam:
    """Adam. fused=None: the fused kernel on CUDA only; fused=True: also on the CPU (the same update in one pass:
    Q1's optimizer step 2.6 -> 1.1 ms, its whole training step about 15 % shorter on 2 cores); fused=False: plain
    Adam. Where this torch build has no fused kernel for the device (CPU before torch 2.4, MPS), plain Adam:
    silently on the CPU, with a warning on CUDA."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not float(lr) > 0:   # NaN fails
        raise ValueError(f"make_adam: lr={lr!r} is not a learning rate: pass a positive number, e.g. lr=1e-3")
    params, kind = list(params), torch.device(device).type
    if not params:
        raise ValueError("make_adam: no parameters to optimise (an empty model, or all frozen): check "
                         "model.parameters() / the requires_grad filter")
    if (kind == "cuda" and fused is not False) or (kind == "cpu" and fused):
        try:
            return torch.optim.Adam(params, lr=float(lr), fused=True, **kw)
        except (RuntimeError, ValueError, TypeError) as err:   # older torch: no fused Adam for this device
            if kind == "cuda":
                warnings.warn(f"fused Adam unavailable ({err}); using plain Adam")
    return torch.optim.Adam(params, lr=float(lr), **kw)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the run, the step and the usual causes."""


def stop_if_nonfinite(losses: torch.Tensor, where: str, first_step: int = 0) -> None:
    """Raise ``NonFiniteLossError`` if any of ``losses`` (a device tensor of recorded losses) is NaN or inf.

    One host sync for the whole tensor: call it once per epoch or once per run, never per step."""
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"{where}: stop_if_nonfinite takes a tensor of recorded losses, got {type(losses).__name__}"
                        ": collect them with torch.stack(list) or a preallocated torch.zeros(n_steps)")
    bad = ~torch.isfinite(losses.detach().reshape(-1))
    if bool(bad.any()):
        step = first_step + int(bad.nonzero()[0])
        value = float(losses.reshape(-1)[step - first_step])
        raise NonFiniteLossError(
            f"{where}: the loss became {value} at step {step}. Check the inputs (a NaN pixel? pixels in 0-255 "
            "instead of [0, 1]?) and the learning rate; the weights after this step are not usable.")
