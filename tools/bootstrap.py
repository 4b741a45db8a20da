"""The first code cells of every notebook: make the helpers importable however it was opened.

Opened inside the repository, the cell finds ``utils/`` in the notebook's folder or one or two
levels up. Opened alone -- uploaded to Colab, or a file copied out of the repository -- it unpacks
the copy that the cell itself carries into ``./vae-ae/``: an LZMA zip, on the cell's last line, of
exactly the repository modules the notebook imports (directly or through each other). If
``VAE_AE_REPO`` names a git URL or path, it clones the whole repository there instead (the committed
judge weights and results come along). If neither works, it stops with one line that says what to
do. The readable cell is under 30 lines; the copy lives in the cell after it, collapsed in Jupyter
and Colab.

    python -m tools.bootstrap            # rewrite every notebook's setup cells from the files
    python -m tools.bootstrap --check    # exit 1 if a notebook carries a stale copy (tests do)

Only these cells' sources are rewritten; outputs and every other cell stay as they are.
"""
from __future__ import annotations

import argparse
import base64
import io
import re
import sys
import zipfile
from pathlib import Path

from tools.notebooks import NOTEBOOKS
from utils.runtime import REPO_ROOT

TAG = "bootstrap"                         # the readable cell: finds or unpacks the helpers
COPY_TAG = "bootstrap-copy"               # the cell after it: the carried copy, collapsed
PACKAGES = ("utils", "extras")            # the code a notebook may import; tools/ never travels
INTRO = """\
**Setup.** The next two cells make this repository's helpers (`utils/`) importable however the
notebook was opened: inside the repository they are found beside it; opened alone (Colab, a copied
file) the second, collapsed cell unpacks the copy it carries into `./vae-ae/`, or the repository is
cloned there if `VAE_AE_REPO` names its URL or path. Nothing else happens in them."""
TEMPLATE = '''\
#@title Setup: find utils/ beside this notebook, or use the copy in the next cell
# Opened alone: `VAE_AE_REPO` (a git URL or path) is cloned into ./vae-ae/, else the next cell's
# copy
# of the repository modules this notebook imports is unpacked there.
import base64, io, os, pathlib, subprocess, sys, zipfile  # noqa: E401
NEEDS = {needs!r}


class SetupError(Exception):
    def _render_traceback_(self):  # Jupyter shows this one line instead of a traceback
        return [f"SetupError: {{self}}"]


def helpers_folder(copy, here=pathlib.Path.cwd()):
    for folder in [here, *here.parents][:3] + [here / "vae-ae"]:
        if all((folder / f).is_file() for f in NEEDS):
            return folder
    target, repo = here / "vae-ae", os.environ.get("VAE_AE_REPO")
    if repo:
        git = subprocess.run(["git", "clone", "-q", "--depth", "1", repo, str(target)],
                             capture_output=True, text=True)
        if git.returncode or not all((target / f).is_file() for f in NEEDS):
            why = (git.stderr.strip().splitlines() or ["no utils/ in it"])[-1]
            raise SetupError(f"git clone of VAE_AE_REPO={{repo}} failed ({{why}}); fix or unset it")
        return target
    if not copy:
        raise SetupError("utils/ not found and no copy of it here: open the notebook inside the "
                         "repository folder, or set VAE_AE_REPO to its git URL or path and rerun")
    zipfile.ZipFile(io.BytesIO(base64.b64decode(copy))).extractall(target)
    return target'''
COPY_TEMPLATE = '''\
#@title The modules this notebook imports, zipped (`python -m tools.bootstrap` refreshes them)
sys.path.insert(0, str(helpers_folder(copy=
"{payload}")))'''
IMPORT_RE = re.compile(r"^\s*(?:from\s+(\.?[\w.]*)\s+import\s+([\w, ()]+)|import\s+([\w.]+))", re.M)


def _module_file(name: str) -> Path | None:
    """utils.metrics -> utils/metrics.py (None for anything outside the repository's packages)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = REPO_ROOT / (name.replace(".", "/") + ".py")
    return path if path.is_file() else None


def _imports(source: str, package: str | None = None) -> set[str]:
    """Modules of the repository's packages that ``source`` imports (``package`` resolves relative
    imports)."""
    found = set()
    for m in IMPORT_RE.finditer(source):
        base, names, plain = m.groups()
        if plain:
            found.add(plain)
            continue
        if base.startswith("."):
            base = package + base if base != "." else package
        found.add(base)
        for name in re.split(r"[\s,()]+", names):          # `from utils import data` names a module
            if name:
                found.add(f"{base}.{name}")
    return {n for n in found if _module_file(n)}


def files_for(notebook: str) -> list[Path]:
    """The repository files a notebook imports, directly or through each other, plus their packages'
    __init__.py, in a fixed order."""
    import nbformat

    nb = nbformat.read(REPO_ROOT / notebook, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code"
                     and not {TAG, COPY_TAG} & set(c.metadata.get("tags", [])))
    todo, seen = sorted(_imports(code)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(_imports(_module_file(name).read_text(), name.rsplit(".", 1)[0]))
    inits = {REPO_ROOT / n.split(".")[0] / "__init__.py" for n in seen}
    files = {_module_file(n) for n in seen} | inits
    return sorted(f for f in files if f.is_file())


def payload(files: list[Path]) -> str:
    """A zip (LZMA, fixed timestamps, paths relative to the repository) of ``files`` as one base64
    line."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_LZMA) as z:
        for path in files:
            name = path.relative_to(REPO_ROOT).as_posix()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            info.external_attr = 0o644 << 16
            z.writestr(info, path.read_bytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def cell_sources(notebook: str, with_copy: bool = True) -> tuple[str, str]:
    """The sources of the bootstrap cell and of the copy cell after it."""
    files = files_for(notebook)
    extra = [p.relative_to(REPO_ROOT).as_posix() for p in files
             if p.parent.name == "extras" and p.stem != "__init__"]
    needs = ["utils/runtime.py"] + extra[-1:]
    return (TEMPLATE.format(needs=needs),
            COPY_TEMPLATE.format(payload=payload(files) if with_copy else ""))


def cell_source(notebook: str, with_copy: bool = True) -> str:
    """Both cells as one source (what the tests run as a one-cell notebook)."""
    return "\n\n".join(cell_sources(notebook, with_copy))


def carried_files(source: str) -> dict[str, bytes]:
    """The files a copy cell's source carries: {relative path: bytes}."""
    last = source.rstrip().splitlines()[-1] if source.strip() else ""
    data = last.split('"')[1] if last.endswith('")))') else ""
    if not data:
        return {}
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as z:
        return {name: z.read(name) for name in z.namelist()}


def _tagged(c, tag) -> bool:
    return c.cell_type == "code" and tag in c.get("metadata", {}).get("tags", [])


def bootstrap_cell(nb):
    """The notebook's first code cell, which must be the bootstrap cell."""
    cell = next(c for c in nb.cells if c.cell_type == "code")
    if not _tagged(cell, TAG):
        raise ValueError(f"the first code cell is not tagged {TAG!r}")
    return cell


def copy_cell(nb):
    """The notebook's second code cell, which must be the carried copy."""
    cell = [c for c in nb.cells if c.cell_type == "code"][1]
    if not _tagged(cell, COPY_TAG):
        raise ValueError(f"the second code cell is not tagged {COPY_TAG!r}")
    return cell


HIDDEN = {"jupyter": {"source_hidden": True}, "cellView": "form"}   # collapsed: Jupyter, Colab


def write_cells(nb, notebook: str) -> bool:
    """Put the intro, the bootstrap cell and the copy cell at the top of ``nb``; True if it changed.
    A notebook whose first code cell still carries the copy (the old one-cell form) is split."""
    import nbformat

    code, copy = cell_sources(notebook)
    first = bootstrap_cell(nb)
    at = nb.cells.index(first)
    changed = first.source != code or any(k in first.metadata for k in HIDDEN)
    first.source = code
    for key in HIDDEN:                       # the readable cell stays open
        first.metadata.pop(key, None)
    codes = [c for c in nb.cells if c.cell_type == "code"]
    if len(codes) > 1 and _tagged(codes[1], COPY_TAG):
        cell = codes[1]
    else:
        cell = nbformat.v4.new_code_cell(metadata={"tags": [COPY_TAG]})
        nb.cells.insert(at + 1, cell)
        changed = True
    if cell.source != copy or any(cell.metadata.get(k) != v for k, v in HIDDEN.items()):
        cell.source, changed = copy, True
        cell.metadata.update(HIDDEN)
    before = nb.cells[at - 1] if at else None
    if before is None or before.cell_type != "markdown" or before.source != INTRO:
        if (before is not None and before.cell_type == "markdown"
                and before.source.startswith("**Setup.**")):
            before.source = INTRO
        else:
            nb.cells.insert(at, nbformat.v4.new_markdown_cell(INTRO))
        changed = True
    return changed


def stale(notebook: str) -> list[str]:
    """What differs between the copy a notebook carries and the repository's files (empty: up to
    date)."""
    import nbformat

    carried = carried_files(copy_cell(nbformat.read(REPO_ROOT / notebook, as_version=4)).source)
    current = {p.relative_to(REPO_ROOT).as_posix(): p.read_bytes() for p in files_for(notebook)}
    return sorted(name for name in set(carried) | set(current)
                  if carried.get(name) != current.get(name))


def main(argv=None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
        if write_cells(nb, name):
            nbformat.write(nb, path)
            print(f"{name}: setup cells rewritten")
    return bad


if __name__ == "__main__":
    sys.exit(main())
