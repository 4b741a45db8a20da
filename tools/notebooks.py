"""Run the notebooks headless, and import a notebook's definitions for unit tests.

    python -m tools.notebooks                      # execute Q1, Q2 and the extra; copies go to runs/<mode>/
    python -m tools.notebooks --record             # refresh the committed record: in place, writes results/
    FAST=1 python -m tools.notebooks               # smoke run: tiny data, few steps; copies go to runs/fast/
    python -m tools.notebooks Q2_VQVAE.ipynb       # one notebook

A notebook runs in its own folder, as Jupyter runs it. A fast run never overwrites the committed
notebooks: it writes executed copies elsewhere. Stream outputs are stored the way Jupyter shows them
(consecutive pieces merged, a progress bar's carriage returns resolved), so an executed notebook keeps
one line per progress bar instead of one output per refresh.

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


def resolve_carriage_returns(text: str) -> str:
    """What a terminal shows: on every line, only the text after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def coalesce_streams(nb) -> None:
    """Merge consecutive stdout/stderr outputs of each cell and resolve carriage returns (in place)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                    and merged[-1].name == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream":
                out.text = resolve_carriage_returns(out.text)
        cell.outputs = merged


def execute(path: str | Path, out: str | Path | None = None, timeout: int | None = None) -> Path:
    """Execute notebook ``path`` top to bottom in its own folder; write it to ``out`` (default: in place).
    Raises nbclient's CellExecutionError at the first failing cell."""
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--record", action="store_true",
                        help="refresh the committed record: execute in place and write results/ (RECORD=1)")
    parser.add_argument("--out-dir", help="write executed copies here (default: runs/<mode>/, or in place "
                                          "with --record)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    args = parser.parse_args(argv)
    mode = get_mode()
    if args.record:
        os.environ["RECORD"] = "1"          # the kernels inherit it: utils.runtime then writes results/
        recording(mode)                     # refuses FAST=1 --record
    out_dir = Path(args.out_dir) if args.out_dir else (None if args.record else REPO_ROOT / "runs" / mode)
    for name in args.notebooks:
        src = Path(name) if Path(name).is_absolute() else REPO_ROOT / name
        if not src.is_file():
            parser.error(f"{name}: no such notebook (the notebooks are {', '.join(NOTEBOOKS)})")
        t0 = time.perf_counter()
        dst = execute(src, out_dir / src.name if out_dir else None, args.timeout)
        print(f"executed {rel(src)} ({mode} mode) in {time.perf_counter() - t0:.1f} s -> {rel(dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
