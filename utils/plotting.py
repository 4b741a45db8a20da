"""Figures the notebooks share. Every helper returns the matplotlib figure and can save it.

``save`` is a path (the notebooks pass ``FIG_DIR / "name.png"``; ``FIG_DIR`` is git-ignored).
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid


def _finish(fig, save: str | Path | None, dpi: int = 120):
    fig.tight_layout()
    if save is not None:
        save = Path(save)
        save.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, dpi=dpi, bbox_inches="tight")
    return fig


def save_figure(fig, save: str | Path, dpi: int = 120) -> None:
    """The end of every figure cell: tight layout, the PNG at ``save``, the figure shown."""
    _finish(fig, save, dpi)
    plt.show()


def image_grid(images: torch.Tensor, nrow: int = 10, value_range: tuple[float, float] = (0.0, 1.0),
               padding: int = 2) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) images -> an (H', W', 3) array in [0, 1], ``nrow`` per row."""
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError("images must be (N, C, H, W) with C in (1, 3) or (N, H, W); got "
                         f"{tuple(images.shape)} (reshape flat MNIST vectors with x.view(-1, 1, "
                         "28, 28))")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}: "
                         "(0, 1) for [0, 1] pixels, (-0.5, 0.5) for the VQ-VAE's")
    if isinstance(nrow, bool) or not isinstance(nrow, numbers.Integral) or nrow < 1:
        raise ValueError(f"nrow must be a whole number of images per row >= 1, not {nrow!r}")
    images = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(images, nrow: int = 10, title: str | None = None, value_range=(0.0, 1.0),
                save: str | Path | None = None, scale: float = 1.0,
                row_labels: Sequence[str] | None = None):
    """Show a grid of images (optionally with a label in front of every row); returns the figure."""
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    h, w = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(scale * max(2.0, w / 40), scale * max(1.0, h / 40)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    if row_labels is not None:
        rows = len(row_labels)
        ax.set_yticks([(i + 0.5) * h / rows for i in range(rows)], list(row_labels))
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return _finish(fig, save)


def moving_average(values: Sequence[float], window: int = 201) -> np.ndarray:
    """Centred moving average over ``window`` points; the window shrinks at the ends, so the output
    has the input's length and stays within the values' range."""
    y = np.asarray(values, dtype=float)
    if window <= 1 or len(y) < 2:
        return y.copy()
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.maximum(np.arange(len(y)) - half, 0)
    hi = np.minimum(np.arange(len(y)) + half + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def savgol_smooth(values: Sequence[float], window: int = 201, polyorder: int = 7) -> np.ndarray:
    """The skeleton's ``savgol_filter(values, 201, 7)`` (mode "interp"), fitted on positions scaled
    to [-1, 1]. SciPy fits on raw positions (-100 ... 100, so powers up to 1e14): for this window
    and order its least squares is ill-conditioned and returns about 0 inside the series (scipy
    1.17; the test shows it). The window shrinks to fit a short series."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    window = min(window, n if n % 2 else n - 1)
    if window <= polyorder:
        return y.copy()
    half = window // 2
    t = np.arange(-half, half + 1) / half
    design = np.vander(t, polyorder + 1, increasing=True)    # (window, polyorder + 1)
    fit = np.linalg.pinv(design)                             # coefficients from a window of values
    out = np.empty(n)
    out[half:n - half] = np.convolve(y, fit[0][::-1], mode="valid")
    out[:half] = design[:half] @ (fit @ y[:window])          # edges: the end windows' polynomials
    out[n - half:] = design[half + 1:] @ (fit @ y[-window:])
    return out


def plot_curves(curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
                xlabel: str = "step", ylabel: str = "", title: str | None = None,
                logy: bool = False, window: int = 1, ax=None, save: str | Path | None = None):
    """One line per entry, ``y`` or ``(x, y)``. ``window`` > 1 draws a centred moving average."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.6))
    for name, series in curves.items():
        if isinstance(series, tuple) and len(series) == 2:
            x, y = np.asarray(series[0], dtype=float), np.asarray(series[1], dtype=float)
        else:
            y = np.asarray(series, dtype=float)
            x = np.arange(1, len(y) + 1, dtype=float)
        ax.plot(x, moving_average(y, window), label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig, save)
