"""Replay a whole training update as one captured CUDA graph (bench/ only, until a GPU has verified
it).

Small models (the VQ-VAE of Q2, a PixelCNN over an 8x8 grid) are bound by kernel launches, not by
arithmetic: one update is a few hundred tiny kernels, each launched from Python. Capturing forward,
backward and optimizer step once and replaying them turns those launches into one. The notebooks
train eagerly; ``bench/bench_q2.py`` wraps the notebook's update in this class, and
``tests/test_cuda_graph.py`` checks on a GPU that captured updates compute what eager ones do.

    opt = graph_adam(model.parameters(), lr=1e-3, device=device)

    def update(x):                       # zero_grad(set_to_none=True), forward, backward, step
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, x)
        loss.backward()
        opt.step()
        return loss.detach()             # tensors only; no .item() (a host sync cannot be captured)

    step = CUDAGraphStep(update)
    for x in batches:
        loss = step(x)                   # a static buffer, overwritten by the next call: copy it

Rules for ``fn`` (the usual CUDA-graph rules): fixed input shapes; no host syncs (``.item()``,
data-dependent Python ``if``); no Python-side state that changes from step to step (keep counters
in device tensors); randomness only from torch's CUDA generator.

Every stage falls back to plain eager calls when it fails -- warm-up, capture (the stream context is
restored even when ``capture_end`` itself raises) and replay -- and ``mode`` says what ran. A batch
of another shape (a short last batch) runs eagerly without leaving graph mode. What no wrapper can
undo: a device fault (an illegal memory access) is sticky in CUDA and fails every later call in the
process.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch


class CUDAGraphStep:
    """Call ``fn(*inputs)``; on CUDA, after ``warmup`` eager calls, replay a captured graph of it.

    The warm-up calls run on a side stream (real updates: cuDNN picks its algorithms, the optimizer
    creates its state); the next call captures ``fn`` and replays it once, and every later call
    copies its inputs into the captured static buffers and replays. So ``n`` calls are ``n`` updates
    in every mode. ``mode`` is "eager", "cuda-graph (warming up)", "cuda-graph" or "eager (CUDA
    graph <stage> failed: ...)".
    """

    def __init__(self, fn: Callable[..., object], warmup: int = 3):
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be a whole number >= 1, not {warmup!r}: the optimizer "
                             "state must exist before the capture")
        if not callable(fn):
            raise TypeError(f"CUDAGraphStep takes the update function, got {type(fn).__name__}")
        self.fn, self.warmup, self.calls = fn, int(warmup), 0
        self.enabled = torch.cuda.is_available()
        self.graph = None
        self.static_inputs: tuple[torch.Tensor, ...] = ()
        self.static_out = None
        self.mode = "cuda-graph (warming up)" if self.enabled else "eager (no CUDA device)"

    def _fall_back(self, stage: str, err: BaseException) -> None:
        self.enabled, self.graph = False, None
        self.mode = f"eager (CUDA graph {stage} failed: {type(err).__name__}: {str(err)[:160]})"
        warnings.warn(f"CUDA-graph {stage} failed, training continues eagerly: {err}")
        try:
            torch.cuda.synchronize()
        except Exception:  # a sticky device fault: nothing here can repair it; the next op says so
            pass

    def __call__(self, *inputs: torch.Tensor):
        self.calls += 1
        if self.enabled and any(not isinstance(t, torch.Tensor) or t.device.type != "cuda"
                                for t in inputs):
            error = TypeError("inputs must be CUDA tensors; move the batch to the GPU")
            self._fall_back("input check", error)
        if not self.enabled:
            return self.fn(*inputs)
        if self.calls <= self.warmup:
            return self._warm_up(inputs)
        if self.graph is None:
            return self._capture_and_replay(inputs)
        if any(s.shape != t.shape or s.dtype != t.dtype
               for s, t in zip(self.static_inputs, inputs)):
            return self.fn(*inputs)      # e.g. a DataLoader's short last batch: this update eagerly
        for static, new in zip(self.static_inputs, inputs):
            static.copy_(new, non_blocking=True)
        try:
            self.graph.replay()
        except Exception as err:
            self._fall_back("replay", err)
            return self.fn(*inputs)
        return self.static_out

    def _warm_up(self, inputs):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):    # the context restores the current stream on error too
                out = self.fn(*inputs)
        except Exception as err:
            self._fall_back("warm-up", err)
            return self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture_and_replay(self, inputs):
        try:
            torch.cuda.synchronize()
            self.static_inputs = tuple(t.detach().clone() for t in inputs)
            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # restored even if capture_end raises below
                graph.capture_begin()
                try:
                    self.static_out = self.fn(*self.static_inputs)   # recorded, not run
                finally:
                    graph.capture_end()
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = graph
            self.graph.replay()              # this call's update
        except Exception as err:
            self._fall_back("capture", err)
            return self.fn(*inputs)
        self.mode = "cuda-graph"
        return self.static_out


def graph_adam(params, lr: float, device) -> torch.optim.Adam:
    """Adam that a CUDA graph can capture: ``capturable=True`` and a 0-d device tensor as learning
    rate (a Python float would be baked into the captured kernel); fused where this torch accepts
    it. On a CPU (where no graph is captured) it is plain Adam."""
    params, device = list(params), torch.device(device)
    if device.type != "cuda":
        return torch.optim.Adam(params, lr=float(lr))
    for options in (dict(fused=True), dict(foreach=True)):
        try:
            return torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device),
                                    capturable=True, **options)
        except (RuntimeError, ValueError, TypeError) as err:   # older torch: no fused / tensor lr
            warnings.warn(f"Adam with {options} unavailable for CUDA graphs ({err})")
    return torch.optim.Adam(params, lr=float(lr), capturable=True)
