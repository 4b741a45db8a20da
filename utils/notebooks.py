"""Run the notebooks headless, and import a notebook's definitions for unit tests.

    python -m utils.notebooks                      # execute both notebooks in place (full/cpu mode)
    FAST=1 python -m utils.notebooks               # smoke run: executed copies go to runs/fast/
    python -m utils.notebooks Q2_VQVAE.ipynb       # one notebook

A fast run never overwrites the committed notebooks: it writes executed copies elsewhere.

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

from .runtime import REPO_ROOT

NOTEBOOKS = ("Q1_VAE_CVAE.ipynb", "Q2_VQVAE.ipynb")
DEFS_TAG = "defs"


def load_definitions(path: str | Path, tag: str = DEFS_TAG) -> types.ModuleType:
    """Execute the code cells tagged ``tag`` of notebook ``path`` into a new module and return it."""
    import nbformat

    path = Path(path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and tag in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name} has no code cell tagged {tag!r}")
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    sys.modules[path.stem] = module  # lets dataclasses/pickle find the module
    for cell in cells:
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        exec(compile(source, f"{path.name}[defs]", "exec"), module.__dict__)
    return module


def execute(path: str | Path, out: str | Path | None = None, timeout: int | None = None) -> Path:
    """Execute notebook ``path`` top to bottom in the repository root; write it to ``out`` (default: in place)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    out = Path(out) if out is not None else path
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--out-dir", help="write executed copies here instead of in place "
                                          "(default with FAST=1: runs/fast)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    args = parser.parse_args(argv)
    fast = os.environ.get("FAST", "0").lower() in ("1", "true", "yes")
    out_dir = Path(args.out_dir) if args.out_dir else (REPO_ROOT / "runs" / "fast" if fast else None)
    for name in args.notebooks:
        src = Path(name) if Path(name).is_absolute() else REPO_ROOT / name
        t0 = time.perf_counter()
        dst = execute(src, out_dir / src.name if out_dir else None, args.timeout)
        print(f"executed {src.name} in {time.perf_counter() - t0:.1f} s -> {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
