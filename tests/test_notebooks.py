"""Every notebook runs top to bottom in fast mode (tests/test_bootstrap.py runs each alone, too) without touching
the committed results; the committed notebooks carry a real run that a reader can read."""
import hashlib
import re

import nbformat
import pytest

from tools.notebooks import NOTEBOOKS, coalesce_streams, execute, resolve_carriage_returns
from utils.runtime import REPO_ROOT as ROOT

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users|content)/")


def snapshot(folder):
    return {p.relative_to(ROOT): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def outputs_of(nb):
    return [(c, o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def banner(nb):
    """The text of the first code cell that printed something (the first cell, the bootstrap, prints nothing)."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
    return "".join(o.get("text", "") for o in cell.outputs)


def stderr_lines(cell):
    return sum(o.text.count("\n") + 1 for o in cell.get("outputs", []) if o.get("name") == "stderr")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode(name, tmp_path, monkeypatch):
    src = ROOT / name
    monkeypatch.setenv("FAST", "1")
    monkeypatch.delenv("MODE", raising=False)
    before = snapshot(ROOT / "results"), src.read_bytes()
    out = execute(src, tmp_path / src.name, timeout=600)  # raises CellExecutionError on any error
    nb = nbformat.read(out, as_version=4)
    assert not [o for _, o in outputs_of(nb) if o.output_type == "error"]
    assert "mode     fast" in banner(nb)                 # the first output says the run mode
    assert any((tmp_path / "out" / "results").glob("*.json")), "fast run wrote no metrics under OUTPUT_ROOT"
    assert (snapshot(ROOT / "results"), src.read_bytes()) == before, "a fast run changed committed files"
    assert not [o for _, o in outputs_of(nb) if ABSOLUTE_PATH.search(str(o))], "an absolute path was printed"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_a_complete_readable_run(name):
    nb = nbformat.read(ROOT / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code if c.source.strip()), "a code cell was never executed"
    assert not [o for _, o in outputs_of(nb) if o.output_type == "error"], "an error output is committed"
    assert re.search(r"mode     (cpu|full):", banner(nb)), "the committed run must be a cpu or full run"
    assert not [o for _, o in outputs_of(nb) if ABSOLUTE_PATH.search(str(o))], "absolute paths in committed outputs"
    worst = max(stderr_lines(c) for c in code)
    assert worst <= 30, f"a cell carries {worst} lines of progress bars"


def test_streams_are_stored_as_jupyter_shows_them():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="bar:  10%|#\r"),
        nbformat.v4.new_output("stream", name="stderr", text="bar:  50%|#####\rbar: 100%|##########\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")])]
    coalesce_streams(nb)
    outs = nb.cells[0].outputs
    assert [o.name for o in outs] == ["stderr", "stdout"] and outs[0].text == "bar: 100%|##########\n"
    assert resolve_carriage_returns("a\rb\nc") == "b\nc"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_full_mode_runs_on_the_cpu_at_a_tiny_budget(name, tmp_path, monkeypatch):
    """Every branch that only full mode takes runs here first, not on a grader's GPU: full mode with every count
    scaled down (BUDGET_SCALE), on the CPU. It writes where a grader's re-run writes (runs/full/, no OUTPUT_ROOT),
    and the committed record stays as it was."""
    src = ROOT / name
    monkeypatch.delenv("FAST", raising=False)
    monkeypatch.delenv("OUTPUT_ROOT", raising=False)
    monkeypatch.delenv("RECORD", raising=False)
    monkeypatch.setenv("MODE", "full")
    monkeypatch.setenv("BUDGET_SCALE", "0.001")
    monkeypatch.setenv("DEVICE", "cpu")
    before = snapshot(ROOT / "results"), src.read_bytes()
    out = execute(src, tmp_path / src.name, timeout=600)
    nb = nbformat.read(out, as_version=4)
    assert "mode     full" in banner(nb) and "BUDGET_SCALE=0.001" in banner(nb)
    assert not [o for _, o in outputs_of(nb) if o.output_type == "error"]
    assert (snapshot(ROOT / "results"), src.read_bytes()) == before, "a dry run changed committed files"
    assert any((ROOT / "runs" / "full" / "results").glob("*.json")), "the re-run wrote no metrics under runs/full/"
