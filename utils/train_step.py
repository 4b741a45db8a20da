"""One training update as a single CUDA-graph replay, with a plain eager fallback everywhere else.

Small models (the VQ-VAE of Q2, a PixelCNN over an 8x8 grid) are bound by kernel launches, not by
arithmetic: a step is a few hundred tiny kernels, each launched from Python. Capturing the whole
update -- forward, backward and optimizer step -- in a CUDA graph once and replaying it turns those
launches into one. Everything here is guarded: on CPU/MPS, or when ``cuda_graph=False``, or when the
capture fails, ``TrainStep`` simply calls the function (and says so in ``.mode``).

    opt = make_adam(model.parameters(), lr=1e-3, device=device)   # fused + capturable on CUDA

    def update(x):                       # must: zero_grad(set_to_none=True), forward, backward, step
        opt.zero_grad(set_to_none=True)
        loss = model(x)
        loss.backward()
        opt.step()
        return loss.detach()             # tensors only; no .item() (a host sync cannot be captured)

    step = TrainStep(update, cuda_graph=device.type == "cuda")
    for i in range(n):
        loss = step(next_batch())        # in graph mode: a static buffer, overwritten by the next call

Rules for ``fn`` in graph mode (the usual CUDA-graph rules): same input shapes every call; no host
syncs (``.item()``, ``print(tensor)``, data-dependent Python ``if``); no Python-side state that
changes from step to step (keep counters in device tensors); randomness only from torch's CUDA RNG.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch


def make_adam(params: Iterable, lr: float = 1e-3, device: torch.device | str = "cpu", **kw) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel with a tensor learning rate, safe to capture in a CUDA graph.

    The learning rate is a 0-d device tensor on CUDA so that ``set_lr`` can change it between graph
    replays (a Python float would be baked into the captured kernel). Falls back to plain Adam if this
    torch build refuses the fused/capturable options.
    """
    params = list(params)
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device), fused=True,
                                    capturable=True, **kw)
        except (RuntimeError, ValueError, TypeError) as err:  # older torch: no tensor lr / fused
            warnings.warn(f"fused capturable Adam unavailable ({err}); using plain Adam")
    return torch.optim.Adam(params, lr=float(lr), **kw)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; in place (no host sync, graph-safe) when it is a tensor."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(float(lr))
        else:
            group["lr"] = float(lr)


class TrainStep:
    """Call ``fn(*inputs)``; on CUDA with ``cuda_graph=True``, replay a captured graph of it instead.

    The first ``warmup`` calls run eagerly on a side stream (real updates: cuDNN picks its algorithms,
    the optimizer creates its state), the next call captures ``fn`` and replays it, and every later call
    copies its inputs into the captured static buffers and replays. So ``n`` calls are exactly ``n``
    updates in either mode. ``mode`` says what actually ran: "eager", "cuda-graph", or
    "eager (cuda graph failed: ...)".
    """

    def __init__(self, fn: Callable[..., object], *, cuda_graph: bool = False, warmup: int = 3):
        if warmup < 1 and cuda_graph:
            raise ValueError("warmup must be >= 1 before a CUDA-graph capture (optimizer state must exist)")
        self.fn = fn
        self.use_graph = bool(cuda_graph) and torch.cuda.is_available()
        self.warmup = int(warmup)
        self.calls = 0
        self.graph = None
        self.static_inputs: tuple[torch.Tensor, ...] = ()
        self.static_out = None
        self.mode = "cuda-graph (warming up)" if self.use_graph else "eager"

    def __call__(self, *inputs: torch.Tensor):
        self.calls += 1
        if not self.use_graph:
            return self.fn(*inputs)
        if any(not isinstance(t, torch.Tensor) or t.device.type != "cuda" for t in inputs):
            raise TypeError("TrainStep in CUDA-graph mode takes CUDA tensors only; move the batch to the GPU "
                            "or build the step with cuda_graph=False")
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            try:
                self._capture(inputs)
            except Exception as err:  # anything un-capturable: keep training, eagerly
                self.graph, self.use_graph = None, False
                self.mode = f"eager (cuda graph failed: {type(err).__name__}: {str(err)[:160]})"
                warnings.warn(f"CUDA-graph capture failed, running eagerly: {err}")
                torch.cuda.synchronize()
                return self.fn(*inputs)
            self.mode = "cuda-graph"
        else:
            for static, new in zip(self.static_inputs, inputs):
                if static.shape != new.shape or static.dtype != new.dtype:
                    raise ValueError(f"CUDA-graph step captured inputs of shape {tuple(static.shape)}, got "
                                     f"{tuple(new.shape)}; keep the batch shape fixed (drop_last=True)")
                static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.static_out

    def _capture(self, inputs):
        torch.cuda.synchronize()
        self.static_inputs = tuple(t.detach().clone() for t in inputs)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_out = self.fn(*self.static_inputs)
        self.graph = graph  # capture records but does not run: the caller replays once for this update
