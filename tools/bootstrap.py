"""The first code cell of every notebook: make the helpers importable however the notebook was opened.

Opened inside the repository, the cell finds ``utils/`` in the notebook's folder or one or two levels
up. Opened alone -- uploaded to Colab, or a file copied out of the repository -- it unpacks the copy
of the helpers that the cell itself carries (a zip of ``utils/*.py``, plus the extra's own modules
for the extra) into ``./vae-ae/``, or, if ``VAE_AE_REPO`` names a git URL or path, clones the whole
repository there instead (the committed judge weights and results come along). If neither works, it
stops with one line that says what to do.

    python -m tools.bootstrap            # rewrite the first cell of every notebook from the current files
    python -m tools.bootstrap --check    # exit 1 if a notebook carries a stale copy (the tests do this)

Only the cell's source is rewritten; outputs and every other cell stay as they are.
"""
from __future__ import annotations

import argparse
import base64
import io
import sys
import zipfile
from pathlib import Path

from utils.runtime import REPO_ROOT

TAG = "bootstrap"
NOTEBOOKS = {
    "Q1_VAE_CVAE.ipynb": ["utils/*.py"],
    "Q2_VQVAE.ipynb": ["utils/*.py"],
    "extras/beta_vae_disentanglement.ipynb": ["utils/*.py", "extras/__init__.py", "extras/dsprites.py",
                                              "extras/disentanglement.py"],
}
TEMPLATE = '''\
#@title Helpers: find utils/ beside the notebook, or unpack the copy this cell carries {{ display-mode: "form" }}
# In the repository this finds utils/ next to (or above) the notebook. Opened alone (Colab, a copied file)
# it unpacks the zip below into ./vae-ae/, or clones the repository there if VAE_AE_REPO names its URL/path.
# `python -m tools.bootstrap` regenerates this cell; tests/test_bootstrap.py keeps the copy equal to utils/.
import base64, io, os, subprocess, sys, zipfile
from pathlib import Path

NEEDS = {needs!r}
HELPERS = "{payload}"


class SetupError(Exception):
    def _render_traceback_(self):  # Jupyter shows this one line instead of a traceback
        return [f"SetupError: {{self}}"]


def find_helpers(here=Path.cwd()):
    """The folder that holds NEEDS: here or above, else ./vae-ae (cloned or unpacked)."""
    for folder in [here, *here.parents][:3] + [here / "vae-ae"]:
        if all((folder / f).is_file() for f in NEEDS):
            return folder
    target = here / "vae-ae"
    if os.environ.get("VAE_AE_REPO"):
        git = subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ["VAE_AE_REPO"], str(target)],
                             capture_output=True, text=True)
        if git.returncode or not all((target / f).is_file() for f in NEEDS):
            raise SetupError(f"git clone of VAE_AE_REPO={{os.environ['VAE_AE_REPO']}} failed "
                             f"({{(git.stderr.strip().splitlines() or ['no utils/ in it'])[-1]}}); "
                             "fix the URL or unset VAE_AE_REPO to use the copy in this cell")
        return target
    if not HELPERS:
        raise SetupError("utils/ not found and this cell carries no copy of it: open the notebook inside the "
                         "repository folder, or set VAE_AE_REPO to the repository's git URL or path and rerun")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(HELPERS))) as z:
        z.extractall(target)
    return target


HELPERS_ROOT = find_helpers()
if str(HELPERS_ROOT) not in sys.path:
    sys.path.insert(0, str(HELPERS_ROOT))
'''


def files_for(notebook: str) -> list[Path]:
    """The repository files a notebook's cell carries, in a fixed order."""
    out: list[Path] = []
    for pattern in NOTEBOOKS[notebook]:
        out += sorted(REPO_ROOT.glob(pattern))
    return [p for p in out if p.is_file()]


def payload(files: list[Path]) -> str:
    """A zip of ``files`` (paths relative to the repository, fixed timestamps) as one base64 line."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(REPO_ROOT).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, path.read_bytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def cell_source(notebook: str, with_copy: bool = True) -> str:
    needs = ["utils/runtime.py"] + [p for p in NOTEBOOKS[notebook] if "*" not in p and p.endswith(".py")][-1:]
    return TEMPLATE.format(needs=needs, payload=payload(files_for(notebook)) if with_copy else "")


def carried_files(source: str) -> dict[str, bytes]:
    """The files a bootstrap cell's source carries: {relative path: bytes}."""
    line = next((l for l in source.splitlines() if l.startswith("HELPERS = ")), 'HELPERS = ""')
    data = line.split('"')[1]
    if not data:
        return {}
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as z:
        return {name: z.read(name) for name in z.namelist()}


def bootstrap_cell(nb):
    """The notebook's first code cell, which must be the bootstrap cell."""
    cell = next(c for c in nb.cells if c.cell_type == "code")
    if TAG not in cell.get("metadata", {}).get("tags", []):
        raise ValueError(f"the first code cell is not tagged {TAG!r}")
    return cell


def stale(notebook: str) -> list[str]:
    """What differs between the copy a notebook carries and the repository's files (empty: up to date)."""
    import nbformat

    carried = carried_files(bootstrap_cell(nbformat.read(REPO_ROOT / notebook, as_version=4)).source)
    current = {p.relative_to(REPO_ROOT).as_posix(): p.read_bytes() for p in files_for(notebook)}
    return sorted(name for name in set(carried) | set(current) if carried.get(name) != current.get(name))


def main(argv=None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale copies, change nothing")
    args = parser.parse_args(argv)
    bad = 0
    for name in NOTEBOOKS:
        if args.check:
            diff = stale(name)
            if diff:
                bad = 1
                print(f"{name}: stale copy of {', '.join(diff)} (run `python -m tools.bootstrap`)")
            continue
        path = REPO_ROOT / name
        nb = nbformat.read(path, as_version=4)
        cell = bootstrap_cell(nb)
        new = cell_source(name)
        if cell.source != new:
            cell.source = new
            nbformat.write(nb, path)
            print(f"{name}: first cell rewritten ({len(new):,} characters)")
    return bad


if __name__ == "__main__":
    sys.exit(main())
