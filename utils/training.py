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

The learning rate is set once, at construction (Q2's schedules set it with its own ``set_lr``).
"""
from __future__ import annotations

import warnings
from typing import Iterable, Iterator

import torch


def make_adam(params: Iterable, lr: float = 1e-3, device: torch.device | str = "cpu", *,
              for_cuda_graph: bool = False, **kw) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel where this torch build accepts it.

    ``for_cuda_graph=True`` (CUDA only) also asks for ``capturable=True`` and a 0-d device tensor as
    learning rate, so that ``set_lr`` can change it between graph replays (a Python float would be
    baked into the captured kernel). Falls back to plain Adam, with a warning, where refused.
    """
    params = list(params)
    device = torch.device(device)
    if device.type == "cuda":
        options = dict(fused=True)
        if for_cuda_graph:
            options.update(capturable=True, lr=torch.tensor(float(lr), device=device))
        try:
            return torch.optim.Adam(params, **{"lr": float(lr), **options, **kw})
        except (RuntimeError, ValueError, TypeError) as err:   # older torch: no fused / tensor lr
            warnings.warn(f"fused Adam unavailable ({err}); using plain Adam")
    return torch.optim.Adam(params, lr=float(lr), **kw)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; in place (no host sync, graph-safe) when it is a tensor."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(float(lr))
        else:
            group["lr"] = float(lr)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def batches_on(loader: Iterable, device: torch.device | str) -> Iterator[tuple]:
    """One epoch of ``loader`` -- ResidentBatches, a DataLoader, any iterable of tensors or of tuples
    of tensors -- as tuples on ``device`` (a no-op for data that is there already)."""
    for batch in loader:
        batch = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        yield tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)


def endless(loader: Iterable, device: torch.device | str) -> Iterator[tuple]:
    """Epoch after epoch of ``batches_on(loader, device)``, for loops counted in updates."""
    while True:
        empty = True
        for batch in batches_on(loader, device):
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yielded no batch: use fewer examples per batch or drop_last=False")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the run, the step and the usual causes."""


def stop_if_nonfinite(losses: torch.Tensor, where: str, first_step: int = 0) -> None:
    """Raise ``NonFiniteLossError`` if any of ``losses`` (a device tensor of recorded losses) is NaN or inf.

    One host sync for the whole tensor: call it once per epoch or once per run, never per step."""
    bad = ~torch.isfinite(losses.detach().reshape(-1))
    if bool(bad.any()):
        step = first_step + int(bad.nonzero()[0])
        value = float(losses.reshape(-1)[step - first_step])
        raise NonFiniteLossError(
            f"{where}: the loss became {value} at step {step}. Check the inputs (a NaN pixel? pixels in 0-255 "
            "instead of [0, 1]?) and the learning rate; the weights after this step are not usable.")
