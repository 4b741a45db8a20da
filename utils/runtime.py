"""One setup for every notebook: device, run mode, seed, CPU threads, opt-ins, output folders, one banner.

    RUN = setup("Q1_VAE_CVAE")                       # decides and remembers everything below
    CONFIG = dict(epochs=RUN.pick(full=20, cpu=20, fast=1), ...)
    RUN.banner(CONFIG)                               # hardware / mode / options / outputs / config

Run modes (environment variables ``FAST`` / ``MODE``):

* ``full``  -- the course's workload; the default when a GPU is present (``MODE=full`` forces it).
* ``cpu``   -- no GPU and no ``FAST``: the budget each notebook states for a 2-core CPU.
* ``fast``  -- ``FAST=1``: tiny data, a few steps; a smoke run (CI) that writes under ``runs/fast/``.

CPU threads: torch's default (one per core) unless ``CPU_THREADS`` sets a number.
Opt-ins, off by default because they have not been verified on every device they could run on:
``CUDA_GRAPHS=1`` (replay each VQ-VAE / PixelCNN update as one CUDA graph, see ``utils.cuda_graph``)
and ``AMP=1`` (bf16 autocast, used only where the GPU has native bf16, compute capability >= 8.0).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

MODES = ("fast", "full", "cpu")
REPO_ROOT = Path(__file__).resolve().parent.parent
MODE_TEXT = {
    "full": "full: the course workload (a GPU was found, or MODE=full)",
    "cpu": "cpu: no GPU found, so the budget stated below for 2 CPU cores (MODE=full forces the course workload)",
    "fast": "fast: FAST=1 smoke run on tiny subsets; its numbers mean nothing and it writes under runs/fast/",
}


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes")


def get_device(prefer: str | None = None) -> torch.device:
    """cuda if available, else Apple mps, else cpu (``prefer`` or the ``DEVICE`` variable overrides)."""
    name = prefer or os.environ.get("DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_mode(device: torch.device | None = None) -> str:
    """``fast`` if FAST=1, else MODE if set, else ``full`` on a GPU and ``cpu`` without one."""
    if _flag("FAST"):
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


def bf16_native(device: torch.device | str) -> bool:
    """True only on a CUDA GPU with native bf16 (compute capability >= 8.0: A100, H100, RTX 30xx ...).

    ``torch.cuda.is_bf16_supported()`` alone also says yes where bf16 is only emulated (a T4)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 0) and torch.cuda.is_bf16_supported()


def autocast(device: torch.device | str, enabled: bool = True):
    """bf16 autocast where the GPU has native bf16 and ``enabled``; a no-op context everywhere else."""
    if enabled and bf16_native(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def hardware() -> str:
    """One line naming the accelerator (or CPU) and the library versions."""
    if torch.cuda.is_available():
        what = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        what = f"Apple MPS ({platform.machine()})"
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{what}; torch {torch.__version__}; python {platform.python_version()}"


def output_dir(kind: str, mode: str) -> Path:
    """Where a run writes ``results`` or ``figures``.

    Full and cpu runs write the committed ``results/`` (figures go to the git-ignored ``figures/``);
    fast runs and tests write under ``runs/fast/`` so they never overwrite a real run.
    ``OUTPUT_ROOT`` overrides the root (the tests point it at a temporary folder).
    """
    if kind not in ("results", "figures"):
        raise ValueError(f"output kind must be 'results' or 'figures', not {kind!r}")
    root = Path(os.environ.get("OUTPUT_ROOT") or (REPO_ROOT / "runs" / "fast" if mode == "fast" else REPO_ROOT))
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def rel(path: str | Path) -> str:
    """A path as the reader should see it: relative to the repository when it lies inside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.name if path.is_absolute() else path.as_posix()


def progress(iterable=None, total: int | None = None, desc: str | None = None):
    """A tqdm bar that refreshes at most every 10 s, so that an executed notebook keeps one line per loop."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, mininterval=10, leave=True)


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
        if isinstance(v, Path):
            return rel(v)
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(obj), indent=2) + "\n")
    return path


@dataclass
class Run:
    """What ``setup`` decided: device, mode, seed, opt-ins, output folders and the seconds per phase."""

    name: str
    device: torch.device
    mode: str
    seed: int
    cuda_graphs: bool
    amp: bool
    results_dir: Path
    fig_dir: Path
    seconds: dict = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)

    def pick(self, *, full, cpu, fast):
        return pick(self.mode, full=full, cpu=cpu, fast=fast)

    @contextlib.contextmanager
    def timer(self, phase: str):
        """``with RUN.timer("train"): ...`` adds the wall-clock seconds of the block to ``seconds[phase]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def seconds_total(self) -> float:
        return time.perf_counter() - self.t_start

    def banner(self, config: dict, budget: str = "") -> None:
        """Print hardware, mode (and this notebook's budget), opt-ins, output folders and the whole config."""
        threads = f", {torch.get_num_threads()} torch CPU threads" if self.device.type == "cpu" else ""
        print(f"{self.name} | {hardware()}")
        print(f"device   {self.device}{threads}")
        print(f"mode     {MODE_TEXT[self.mode]}")
        if budget:
            print(f"budget   {budget}")
        print(f"options  CUDA graphs {'on' if self.cuda_graphs else 'off'} (CUDA_GRAPHS=1 opts in), bf16 autocast "
              f"{'on' if self.amp else 'off'} (AMP=1 opts in where the GPU has native bf16), seed {self.seed}")
        print(f"outputs  metrics -> {rel(self.results_dir)}/, figures -> {rel(self.fig_dir)}/")
        print("config   " + json.dumps(config, default=str))


def setup(name: str, seed: int = 0) -> Run:
    """Decide the device, run mode, seed, CPU threads, opt-ins and output folders, once per notebook."""
    # tqdm.auto without ipywidgets falls back to text bars; say nothing about it.
    warnings.filterwarnings("ignore", message="IProgress not found")
    device = get_device()
    mode = get_mode(device)
    seed_everything(seed)
    if os.environ.get("CPU_THREADS"):
        torch.set_num_threads(int(os.environ["CPU_THREADS"]))
    cuda_graphs = _flag("CUDA_GRAPHS") and device.type == "cuda"
    amp = _flag("AMP") and bf16_native(device)
    return Run(name, device, mode, seed, cuda_graphs, amp, output_dir("results", mode), output_dir("figures", mode))
