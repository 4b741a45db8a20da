"""One setup for every notebook: device, run mode, seed, CPU threads, the settings table, outputs,
one banner.

    TABLE = dict(batch_size=modes(256, 32, 16),            # one row per setting: (full, cpu, fast)
                 num_training_updates=count(15_000, 1_000, 8),   # a count: scaled by BUDGET_SCALE
                 learning_rate=1e-3)                      # the same in every mode
    RUN = setup("Q2_VQVAE")                               # device, mode, seed, threads, output
    folders S = RUN.settings(TABLE)                               # this mode's column:
    S.batch_size, S["seeds"] RUN.banner(S)                                         # hardware / mode
    / seed / outputs / the whole table

Run modes (environment variables ``FAST`` / ``MODE``):

* ``full``  -- the course's workload; the default when a GPU is present (``MODE=full`` forces it).
* ``cpu``   -- no GPU and no ``FAST``: the budget each notebook states for a 2-core CPU.
* ``fast``  -- ``FAST=1``: tiny data, a few steps; a smoke run (CI), written under ``runs/fast/``.

Where a run writes: ``runs/<mode>/results`` and ``runs/<mode>/figures`` (git-ignored), so
re-executing a notebook never changes the committed record. ``RECORD=1`` (``python -m
tools.notebooks --record``) makes a cpu or full run write ``results/``, the committed record that
README and theory/ quote.

Budgets: every setting of a notebook is one row of its table, read once by ``RUN.settings``; a
``count`` row (epochs, updates, samples) is multiplied by ``BUDGET_SCALE`` (default 1, rounded up,
at least its floor): ``MODE=full BUDGET_SCALE=0.001`` runs every full-mode branch at a tiny budget
(the tests' dry run).

CPU threads: torch's default (one per core) unless ``CPU_THREADS`` sets a number. Independent
trainings side by side on a CPU (one worker process per core): ``utils.parallel``, ``CPU_WORKERS``.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import platform
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checks import check_writable

MODES = ("fast", "full", "cpu")
REPO_ROOT = Path(__file__).resolve().parent.parent
MODE_TEXT = {
    "full": "full: the course workload (a GPU was found, or MODE=full)",
    "cpu": "cpu: no GPU found, so the budget stated below for 2 CPU cores "
           "(MODE=full forces the course workload)",
    "fast": "fast: FAST=1 smoke run on tiny subsets; its numbers mean nothing and it writes "
            "under runs/fast/",
}


class SettingError(ValueError):
    """An environment switch or run setting with a value the code does not know; the message says
    the fix."""


def _flag(name: str) -> bool:
    """A documented on/off switch: unset, 0/1, true/false, yes/no; anything else is an error, not a
    silent off."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise SettingError(f"{name}={os.environ[name]!r} is not understood: "
                       f"set {name}=1 to turn it on, "
                       f"or {name}=0 (or unset it) to leave it off")


def env_number(name: str, kind=int, default=None, low=None):
    """The number in environment variable ``name`` (``default`` when unset), checked, or a
    SettingError."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a{'n integer' if kind is int else ' number'}: "
                           f"set it like {name}={2 if kind is int else 0.01}, or unset it"
                           ) from None
    if low is not None and not value >= low:
        raise SettingError(f"{name}={text} must be at least {low}")
    return value


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def get_device(prefer: str | None = None) -> torch.device:
    """cuda if available, else Apple mps, else cpu (``prefer`` or the ``DEVICE`` variable
    overrides)."""
    name = (prefer or os.environ.get("DEVICE", "")).strip()
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise SettingError(f"DEVICE={name!r} is not a device: use cpu, cuda, cuda:0 or mps, "
                               "or unset DEVICE to pick the best one found") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SettingError(f"DEVICE={name} but this machine has no CUDA GPU that torch "
                               "can use: "
                               "unset DEVICE (or set DEVICE=cpu), or install a CUDA build of torch")
        if (device.type == "cuda" and device.index is not None
                and device.index >= torch.cuda.device_count()):
            raise SettingError(f"DEVICE={name} but only {torch.cuda.device_count()} CUDA "
                               "device(s) exist")
        if device.type == "mps" and not _mps_available():
            raise SettingError(f"DEVICE={name} but Apple MPS is not available here: unset DEVICE "
                               "or set DEVICE=cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_mode(device: torch.device | None = None) -> str:
    """``fast`` if FAST=1, else MODE if set, else ``full`` on a GPU and ``cpu`` without one."""
    if _flag("FAST"):
        return "fast"
    mode = os.environ.get("MODE", "").strip().lower()
    if mode:
        if mode not in MODES:
            raise SettingError(f"MODE={mode!r} is not a run mode; use one of {MODES} "
                               "(or FAST=1), or unset MODE")
        return mode
    device = device or get_device()
    return "full" if device.type in ("cuda", "mps") else "cpu"


def pick(mode: str, *, full, cpu, fast):
    """Choose a value by run mode: ``pick(MODE, full=20, cpu=5, fast=1)``."""
    if mode not in MODES:
        raise ValueError(f"unknown run mode {mode!r}; expected one of {MODES}")
    return {"full": full, "cpu": cpu, "fast": fast}[mode]


@dataclass(frozen=True)
class PerMode:
    """A row of a settings table whose value depends on the mode; ``scaled``: a count
    (BUDGET_SCALE)."""

    full: object
    cpu: object
    fast: object
    scaled: bool = False
    floor: int = 1

    def value(self, mode: str, scale: float = 1.0):
        v = pick(mode, full=self.full, cpu=self.cpu, fast=self.fast)
        return max(self.floor, math.ceil(v * scale)) if self.scaled and scale != 1.0 else v


def modes(full, cpu, fast) -> PerMode:
    """A setting with one value per mode (a size, a rate, a list of seeds): not scaled."""
    return PerMode(full, cpu, fast)


def count(full: int, cpu: int, fast: int, floor: int = 1) -> PerMode:
    """A count per mode (epochs, updates, samples): scaled by BUDGET_SCALE, never below ``floor``.
    """
    for v in (full, cpu, fast):
        if isinstance(v, bool) or not isinstance(v, int) or v < floor:
            raise ValueError(f"count({full}, {cpu}, {fast}): every value must be an int >= {floor}")
    return PerMode(full, cpu, fast, scaled=True, floor=floor)


class Settings(dict):
    """One mode's column of a settings table: ``S.batch_size`` or ``S["batch_size"]``; read-only.
    ``S.table`` keeps the whole table (every mode), which the banner prints."""

    def __init__(self, values: dict, table: dict, mode: str, scale: float):
        super().__init__(values)
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "scale", scale)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AttributeError(f"the settings table has no row {name!r}{hint} "
                                 "(add it to the notebook's TABLE)") from None

    def __setattr__(self, name, value):
        raise AttributeError(f"settings are read-only: change the row {name!r} in the "
                             "notebook's TABLE")

    def __reduce__(self):                        # pickled into utils.parallel's workers
        return Settings, (dict(self), self.table, self.mode, self.scale)

    def _read_only(self, *args, **kwargs):
        raise TypeError("settings are read-only: change the row in the notebook's TABLE")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = setdefault = clear = _read_only

    def text(self) -> str:
        """The whole table: one line per row, a column per mode (this run's marked *), then this
        run's value where BUDGET_SCALE changed it."""
        heads = [m + ("*" if m == self.mode else "") for m in ("full", "cpu", "fast")]
        rows = []
        for name, row in self.table.items():
            per_mode = isinstance(row, PerMode)
            cells = ([_short(row.full), _short(row.cpu), _short(row.fast)] if per_mode
                     else [_short(row), "same", "same"])
            used = _short(self[name])
            mine = _short(row.value(self.mode) if per_mode else row)
            rows.append([name, *cells, used if used != mine else ""])
        head = ["setting", *heads, "this run" if self.scale != 1.0 else ""]
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def _short(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def settings_for(table: dict, mode: str, scale: float = 1.0) -> Settings:
    """The column of ``table`` for ``mode`` (rows: ``modes``/``count`` or one value for every mode).
    """
    if mode not in MODES:
        raise ValueError(f"unknown run mode {mode!r}; expected one of {MODES}")
    values = {name: row.value(mode, scale) if isinstance(row, PerMode) else row
              for name, row in table.items()}
    return Settings(values, dict(table), mode, scale)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def hardware() -> str:
    """One line naming the accelerator (or CPU) and the library versions."""
    if torch.cuda.is_available():
        what = torch.cuda.get_device_name(0)
    elif _mps_available():
        what = f"Apple MPS ({platform.machine()})"
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{what}; torch {torch.__version__}; python {platform.python_version()}"


def recording(mode: str) -> bool:
    """True when this run refreshes the committed record (``RECORD=1``, cpu or full mode only)."""
    record = _flag("RECORD")
    if record and mode == "fast":
        raise SettingError("RECORD=1 with FAST=1: a smoke run never replaces the committed "
                           "record; unset one of them")
    return record


def output_dir(kind: str, mode: str) -> Path:
    """Where a run writes ``results`` or ``figures``: ``runs/<mode>/<kind>`` (git-ignored), so that
    re-executing a notebook leaves the committed record alone; with ``RECORD=1`` a cpu or full run
    writes the committed ``results/`` (figures always go under ``runs/``).
    ``OUTPUT_ROOT`` overrides the root (the tests point it at a temporary folder).
    """
    if kind not in ("results", "figures"):
        raise ValueError(f"output kind must be 'results' or 'figures', not {kind!r}")
    if mode not in MODES:
        raise ValueError(f"unknown run mode {mode!r}; expected one of {MODES}")
    if os.environ.get("OUTPUT_ROOT"):
        root = Path(os.environ["OUTPUT_ROOT"])
    elif kind == "results" and recording(mode):
        root = REPO_ROOT
    else:
        root = REPO_ROOT / "runs" / mode
    # checked at setup, not when the run saves at its end
    return check_writable(root / kind, f"the {kind} folder")


def rel(path: str | Path) -> str:
    """A path as the reader should see it: relative to the repository when it lies inside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.name if path.is_absolute() else path.as_posix()


BARS_ON = True                    # utils.parallel turns the bars off inside its runs


def progress(iterable=None, total: int | None = None, desc: str | None = None):
    """A tqdm bar that refreshes at most every 10 s, so that an executed notebook keeps one line per
    loop (a silent one while ``BARS_ON`` is False: inside ``utils.parallel.map_runs``, whose own bar
    counts the runs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, mininterval=10, leave=True, disable=not BARS_ON)


def save_json(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON (floats rounded to 6 significant digits) and return the path.
    """

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
    """What ``setup`` decided: device, mode, seed, budget scale, output folders and the seconds per
    phase."""

    name: str
    device: torch.device
    mode: str
    seed: int
    results_dir: Path
    fig_dir: Path
    seconds: dict = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)

    budget_scale: float = 1.0

    def settings(self, table: dict) -> Settings:
        """This mode's column of the notebook's settings table, counts scaled by BUDGET_SCALE."""
        return settings_for(table, self.mode, self.budget_scale)

    @contextlib.contextmanager
    def timer(self, phase: str):
        """``with RUN.timer("train"): ...`` adds the wall-clock seconds of the block to
        ``seconds[phase]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def seconds_total(self) -> float:
        return time.perf_counter() - self.t_start

    def banner(self, settings: Settings, budget: str = "") -> None:
        """Print hardware, mode (and this notebook's budget), seed, output folders and the whole
        table."""
        threads = (f", {torch.get_num_threads()} torch CPU threads"
                   if self.device.type == "cpu" else "")
        print(f"{self.name} | {hardware()}")
        print(f"device   {self.device}{threads}")
        print(f"mode     {MODE_TEXT[self.mode]}")
        if budget:
            print(f"budget   {budget}")
        if self.budget_scale != 1.0:
            print(f"scale    BUDGET_SCALE={self.budget_scale:g}: every count is scaled (a dry run; "
                  "its numbers mean nothing)")
        print(f"seed     {self.seed}")
        print(f"outputs  metrics -> {rel(self.results_dir)}/, figures -> {rel(self.fig_dir)}/")
        print("settings (one row each; the column marked * is this run's)")
        print(settings.text())


def read_settings() -> tuple[torch.device, str, int | None, float]:
    """Every switch of the table in the README, read and checked at once (``setup`` and ``python -m
    utils.runtime --check``): (device, mode, CPU threads or None, budget scale). A bad value is a
    SettingError now, at the start of a run, not when the code that uses it runs (CPU_WORKERS: in
    utils.parallel, minutes later)."""
    device = get_device()
    mode = get_mode(device)
    threads = env_number("CPU_THREADS", int, low=1)
    scale = env_number("BUDGET_SCALE", float, default=1.0)
    if not 0 < scale <= 1:
        raise SettingError(f"BUDGET_SCALE={scale:g} must lie in (0, 1]: it shrinks every count "
                           "for a dry run")
    recording(mode)                          # RECORD: checked here, whatever OUTPUT_ROOT says
    env_number("CPU_WORKERS", int, low=1)              # read by utils.parallel.cpu_workers
    return device, mode, threads, scale


def setup(name: str, seed: int = 0) -> Run:
    """Decide the device, run mode, seed, CPU threads and output folders, once per notebook."""
    # tqdm.auto without ipywidgets falls back to text bars; say nothing about it.
    warnings.filterwarnings("ignore", message="IProgress not found")
    device, mode, threads, scale = read_settings()
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
    return Run(name, device, mode, seed, output_dir("results", mode), output_dir("figures", mode),
               budget_scale=scale)


def main(argv=None) -> int:
    """The switches for shell scripts, read by the same code as the notebooks (bench/gpu_run.sh uses
    it):

        python -m utils.runtime --flag FAST   # prints 1 or 0 (FAST=1/true/yes, or 0/false/no/unset)
        python -m utils.runtime --check       # every switch as setup() reads it; device and mode

    A value the code does not know: its SettingError message on stderr, exit status 2."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--flag", metavar="NAME",
                      help="print 1 or 0 for the on/off switch NAME (FAST, RECORD)")
    what.add_argument("--check", action="store_true",
                      help="check every switch; print the device and the mode")
    args = parser.parse_args(argv)
    try:
        if args.flag:
            print(int(_flag(args.flag)))
        else:
            device, mode, threads, scale = read_settings()
            print(f"device {device}, mode {mode}, CPU threads {threads or 'default'}, "
                  f"budget scale {scale:g}")
    except SettingError as err:
        print(f"SettingError: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
