"""Device, seeds, mixed precision, run mode and output folders: decided once, printed at the top.

Run modes (environment variable ``FAST`` / ``MODE``):

* ``fast``  -- ``FAST=1``: tiny data, a few steps; a smoke run (CI) that writes under ``runs/fast/``.
* ``full``  -- the course's workload; the default when a GPU is present.
* ``cpu``   -- no GPU and no ``FAST``: a reduced budget that finishes in minutes on a laptop CPU.

``MODE=full`` forces the full workload even without a GPU.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

MODES = ("fast", "full", "cpu")
REPO_ROOT = Path(__file__).resolve().parent.parent


def get_device(prefer: str | None = None) -> torch.device:
    """cuda if available, else Apple mps, else cpu (``prefer`` or ``DEVICE`` env overrides)."""
    name = prefer or os.environ.get("DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_mode(device: torch.device | None = None) -> str:
    """The run mode: ``fast`` if FAST=1, else MODE if set, else ``full`` on a GPU, ``cpu`` without."""
    if os.environ.get("FAST", "0").strip().lower() in ("1", "true", "yes"):
        return "fast"
    mode = os.environ.get("MODE", "").strip().lower()
    if mode:
        if mode not in MODES:
            raise ValueError(f"MODE={mode!r} is not a run mode; use one of {MODES} (or FAST=1).")
        return mode
    device = device or get_device()
    return "full" if device.type in ("cuda", "mps") else "cpu"


def pick(mode: str, *, full, cpu, fast):
    """Choose a setting by run mode: ``epochs = pick(MODE, full=20, cpu=5, fast=1)``."""
    if mode not in MODES:
        raise ValueError(f"unknown run mode {mode!r}; expected one of {MODES}")
    return {"full": full, "cpu": cpu, "fast": fast}[mode]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype = torch.bfloat16):
    """bf16 autocast on CUDA; a no-op context on CPU/MPS or when disabled."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def hardware() -> str:
    """One line naming the accelerator (or CPU) and the library versions."""
    if torch.cuda.is_available():
        what = torch.cuda.get_device_name(0)
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{what}; torch {torch.__version__}; python {platform.python_version()}"


def output_dir(kind: str, mode: str) -> Path:
    """Where a run writes ``results`` or ``figures``.

    Full and CPU runs write the committed ``results/`` (figures go to the git-ignored ``figures/``);
    fast runs and tests write under ``runs/fast/`` so they never overwrite a real run.
    ``OUTPUT_ROOT`` overrides the root (the tests point it at a temporary folder).
    """
    if kind not in ("results", "figures"):
        raise ValueError(f"output kind must be 'results' or 'figures', not {kind!r}")
    root = Path(os.environ.get("OUTPUT_ROOT") or (REPO_ROOT / "runs" / "fast" if mode == "fast" else REPO_ROOT))
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_json(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON (floats rounded to 6 significant digits) and return the path."""

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, torch.Tensor):
            return clean(v.tolist())
        if isinstance(v, (np.floating, float)):
            return float(f"{float(v):.6g}")
        if isinstance(v, np.integer):
            return int(v)
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(obj), indent=2) + "\n")
    return path
