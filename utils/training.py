"""The one training loop of the repository, and the optimizer it steps.

    optimizer = make_adam(model.parameters(), learning_rate, device)
    history = fit(model, optimizer, stream(loader, device), step_loss, steps, desc="VAE")
    history["loss"]          # one value per update (a plain list); named extra series beside it

Every training in the notebooks and in ``utils.classifier`` is ``fit`` plus its loss; the course's
``train_vae_mlp``, ``train_cvae_mlp`` and ``train_vqvae`` are thin wrappers that keep the skeleton's
names, signatures and print line. Per update: ``zero_grad``, ``step_loss(model, batch)``,
``backward``, ``step`` (the skeleton's order). The losses stay on the device; the host reads them
once per ``check_every`` updates (one sync), where a NaN or infinite loss stops the run.

History (a dict of plain lists and numbers, JSON-ready):

* ``loss``: the loss of every update; every extra series ``step_loss`` returns, by its name;
* ``epoch_loss``, ``epoch_results``: with ``epoch_steps``, the mean loss of each epoch and what
  ``on_epoch(epoch, epoch_loss)`` returned (the skeleton's per-epoch print and test loss);
* ``seconds``: wall-clock seconds of the loop.
"""
from __future__ import annotations

import numbers
import time
import warnings
from typing import Callable, Iterable, Iterator

import torch

from .runtime import progress

CHECK_EVERY = 200          # updates between the host's reads of the losses (the non-finite check)


def make_adam(params: Iterable, lr: float = 1e-3, device: torch.device | str = "cpu",
              fused: bool = True, **kw) -> torch.optim.Adam:
    """Adam with learning rate ``lr``: the fused kernel where this torch has it for the device
    (CUDA; the CPU from torch 2.4: the same update in one pass, Q1's step 2.6 -> 1.1 ms on 2 cores),
    else plain Adam (MPS, older torch: silently on the CPU, with a warning on CUDA).
    ``fused=False``: plain Adam."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not float(lr) > 0:   # NaN fails
        raise ValueError(f"make_adam: lr={lr!r} is not a learning rate: pass a positive number, "
                         "e.g. lr=1e-3")
    params, kind = list(params), torch.device(device).type
    if not params:
        raise ValueError("make_adam: no parameters to optimise (an empty model, or all frozen): "
                         "check model.parameters() / the requires_grad filter")
    if fused and kind in ("cuda", "cpu"):
        try:
            return torch.optim.Adam(params, lr=float(lr), fused=True, **kw)
        except (RuntimeError, ValueError, TypeError) as err:   # older torch: no fused kernel here
            if kind == "cuda":
                warnings.warn(f"fused Adam unavailable ({err}); using plain Adam")
    return torch.optim.Adam(params, lr=float(lr), **kw)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the run, the step and the usual
    causes."""


def stop_if_nonfinite(losses: torch.Tensor, where: str, first_step: int = 0) -> None:
    """Raise ``NonFiniteLossError`` if any of ``losses`` (a device tensor of recorded losses) is NaN
    or inf. One host sync for the whole tensor: call it once per window of updates, never per
    update."""
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"{where}: stop_if_nonfinite takes a tensor of recorded losses, got "
                        f"{type(losses).__name__}: collect them with torch.stack(list) or a "
                        "preallocated torch.zeros(n_steps)")
    bad = ~torch.isfinite(losses.detach().reshape(-1))
    if bool(bad.any()):
        step = first_step + int(bad.nonzero()[0])
        value = float(losses.reshape(-1)[step - first_step])
        raise NonFiniteLossError(
            f"{where}: the loss became {value} at step {step}. Check the inputs (a NaN pixel? "
            "pixels in 0-255 instead of [0, 1]?) and the learning rate; the weights after this "
            "step are not usable.")


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator,
        step_loss: Callable, steps: int, *, desc: str = "training", epoch_steps: int | None = None,
        on_epoch: Callable | None = None, check_every: int | None = None) -> dict:
    """``steps`` updates of ``model``: each takes ``batch = next(batches)`` and minimises
    ``step_loss(model, batch)``, a scalar loss or ``(loss, {name: scalar tensor})`` for extra
    series.

    ``epoch_steps``: updates per epoch; after each epoch ``on_epoch(epoch, epoch_loss)`` runs
    (1-based epoch, the epoch's mean loss as a float). ``check_every``: updates between the losses'
    reads (default: one epoch, or ``CHECK_EVERY``). The model is left in eval mode. Returns the
    history (module docstring)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"{desc}: steps={steps!r} is not a number of updates: pass an int >= 1")
    check_every = int(check_every or epoch_steps or CHECK_EVERY)
    device = next(model.parameters()).device
    names, series = None, None                    # extra series' names; (steps, 1 + extras) losses
    epoch_loss, epoch_results = [], []
    model.train()
    t0 = time.perf_counter()
    for step in progress(range(steps), desc=desc):
        batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        out = step_loss(model, batch)
        loss, extra = out if isinstance(out, tuple) else (out, {})
        loss.backward()
        optimizer.step()
        if series is None:
            names = list(extra)
            series = torch.zeros(steps, 1 + len(names), device=device)
        series[step] = torch.stack([loss.detach(), *(extra[n].detach() for n in names)]).float()
        if (step + 1) % check_every == 0 or step + 1 == steps:   # the window's one host read
            start = step - step % check_every
            stop_if_nonfinite(series[start:step + 1, 0], f"{desc} (updates {start + 1}-{step + 1})",
                              first_step=start)
        if epoch_steps and (step + 1) % epoch_steps == 0:
            epoch_loss.append(float(series[step + 1 - epoch_steps:step + 1, 0].mean()))
            if on_epoch is not None:
                epoch_results.append(on_epoch((step + 1) // epoch_steps, epoch_loss[-1]))
                model.train()                             # an evaluation in on_epoch may switch it
    model.eval()
    series = series.cpu()
    history = {"loss": series[:, 0].tolist()}
    history.update({n: series[:, i + 1].tolist() for i, n in enumerate(names)})
    if epoch_steps:
        history.update(epoch_loss=epoch_loss, epoch_results=epoch_results)
    history["seconds"] = time.perf_counter() - t0
    return history
