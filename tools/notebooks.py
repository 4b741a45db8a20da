"""Run the notebooks headless, and import a notebook's definitions for unit tests.

    python -m tools.notebooks                  # execute Q1, Q2 and the extra; copies: runs/<mode>/
    python -m tools.notebooks --record         # refresh the committed record in place, results/ too
    FAST=1 python -m tools.notebooks           # smoke run: tiny data, few steps; copies: runs/fast/
    python -m tools.notebooks Q2_VQVAE.ipynb   # one notebook

A notebook runs in its own folder, as Jupyter runs it. A fast run never overwrites the committed
notebooks: it writes executed copies elsewhere. Stream outputs are stored the way Jupyter shows them
(consecutive pieces merged, a progress bar's carriage returns resolved), so an executed notebook
keeps one line per progress bar instead of one output per refresh.

The models live in the notebooks (one place of definition). Cells tagged ``defs`` hold imports,
classes and functions only, so tests can load them without training anything::

    nb = load_definitions("Q1_VAE_CVAE.ipynb")
    model = nb.VAE_MLP(784, 400, 20, "cpu")
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

from utils.runtime import REPO_ROOT, get_mode, recording, rel

NOTEBOOKS = ("Q1_VAE_CVAE.ipynb", "Q2_VQVAE.ipynb", "extras/beta_vae_disentanglement.ipynb")
DEFS_TAG = "defs"
SETTINGS_TAG = "settings"          # the cell that defines the notebook's settings table, TABLE


def load_definitions(path: str | Path, tag: str = DEFS_TAG) -> types.ModuleType:
    """A new module holding what the code cells tagged ``tag`` of notebook ``path`` define."""
    import nbformat

    path = Path(path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells
             if c.cell_type == "code" and tag in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name} has no code cell tagged {tag!r}")
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    sys.modules[path.stem] = module  # lets dataclasses/pickle find the module
    for cell in cells:
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))      # no magics
        exec(compile(source, f"{path.name}[defs]", "exec"), module.__dict__)
    return module


def load_settings(path: str | Path, mode: str, scale: float = 1.0):
    """The settings of notebook ``path`` for ``mode``: its TABLE (the cell tagged ``settings``)
    read as ``RUN.settings`` reads it; bench/ takes the skeleton's numbers from here."""
    from utils.runtime import settings_for

    return settings_for(load_definitions(path, SETTINGS_TAG).TABLE, mode, scale)


def coalesce_streams(nb) -> None:
    """Store streams as Jupyter shows them, in place: nbconvert's CoalesceStreamsPreprocessor
    merges consecutive stdout/stderr pieces of a cell and keeps, on each line, the text after
    its last ``\\r``."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    CoalesceStreamsPreprocessor().preprocess(nb, {})


def execute(path: str | Path, out: str | Path | None = None, timeout: int | None = None) -> Path:
    """Execute notebook ``path`` top to bottom in its own folder; write it to ``out`` (default: in
    place). Raises nbclient's CellExecutionError at the first failing cell."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    try:
        client.execute()
    finally:
        coalesce_streams(nb)
    out = Path(out) if out is not None else path
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--record", action="store_true",
                        help="refresh the committed record: execute in place and write results/ "
                             "(RECORD=1)")
    parser.add_argument("--out-dir",
                        help="write executed copies here (default: runs/<mode>/, or in place "
                             "with --record)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds per cell (default: none)")
    args = parser.parse_args(argv)
    mode = get_mode()
    if args.record:
        os.environ["RECORD"] = "1"          # the kernels inherit it: utils.runtime writes results/
        recording(mode)                     # refuses FAST=1 --record
    if args.out_dir:
        out_dir = Path(args.out_dir)
    else:
        out_dir = None if args.record else REPO_ROOT / "runs" / mode
    for name in args.notebooks:
        src = Path(name) if Path(name).is_absolute() else REPO_ROOT / name
        if not src.is_file():
            parser.error(f"{name}: no such notebook (the notebooks are {', '.join(NOTEBOOKS)})")
        t0 = time.perf_counter()
        dst = execute(src, out_dir / src.name if out_dir else None, args.timeout)
        print(f"executed {rel(src)} ({mode} mode) in {time.perf_counter() - t0:.1f} s -> "
              f"{rel(dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
