"""The batch feeder of every training loop: ``stream``; ``ResidentBatches`` for data on the device.

    batches = stream(DataLoader(...), device)        # the skeleton's loader, epoch after epoch
    batches = stream(ResidentBatches(x, y, batch_size=128, seed=0), device)
    xb, yb = next(batches)                           # what ``utils.training.fit`` calls per update

The course skeleton calls ``next(iter(DataLoader))`` every step: each call builds worker state,
collates 128-256 Python objects and copies them to the GPU. For MNIST or CIFAR-10 the whole split
fits in GPU memory, so one permutation per epoch and tensor indexing replace all of that.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

from .checks import check_count


class ResidentBatches:
    """Mini-batches of ``tensors`` (same first dimension, any device), reshuffled every epoch.

    >>> batches = ResidentBatches(x, y, batch_size=128, seed=0)
    >>> for xb, yb in batches: ...      # one epoch; stream(batches, device): epoch after epoch

    The permutation is drawn from a CPU generator (same order on every device and rerun) and moved
    to the data's device once per epoch: no per-sample Python work, no host-device copy per step.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
                 drop_last: bool = True, seed: int = 0):
        if not tensors:
            raise ValueError("ResidentBatches needs at least one tensor")
        n = len(tensors[0])
        for t in tensors:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"ResidentBatches takes tensors, got {type(t).__name__}")
            if len(t) != n or t.device != tensors[0].device:
                raise ValueError("all tensors must share their first dimension and device; got "
                                 f"shapes {[tuple(x.shape) for x in tensors]} on "
                                 f"{[str(x.device) for x in tensors]}")
        batch_size = check_count(batch_size, "batch_size")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size {batch_size} > {n} examples with drop_last=True gives no "
                             "batch; lower batch_size or pass drop_last=False")
        self.tensors, self.n, self.batch_size = tensors, n, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        device = self.tensors[0].device
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator).to(device)
        else:
            order = torch.arange(self.n, device=device)
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            batch = tuple(t[idx] for t in self.tensors)
            yield batch if len(batch) > 1 else batch[0]


def stream(loader: Iterable, device: torch.device | str) -> Iterator[tuple]:
    """The batches of ``loader`` (a DataLoader, ResidentBatches, any re-iterable of tensors or
    tuples of tensors) as tuples on ``device``, epoch after epoch. An empty loader: an error."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            batch = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
            yield tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t
                        for t in batch)
        if empty:
            raise ValueError("the training loader yielded no batch: its data set is empty, or "
                             "smaller than one batch with drop_last=True; give it data, or use a "
                             "smaller batch_size")
