"""What the notebooks' training loops share: the optimizer and the batches on the model's device.

The loops themselves live in the notebooks and keep the skeleton's shape (``zero_grad``, forward,
``backward``, ``step``). They take either ``utils.batches.ResidentBatches`` (the data already on the
device: no per-step host work) or the skeleton's own ``DataLoader``; ``batches_on`` moves each batch
to the model's device, and a short last batch is just a smaller batch.
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
