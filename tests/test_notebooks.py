"""Every notebook runs top to bottom in fast mode (tests/test_bootstrap.py runs each alone, too)
without touching the committed results; the committed notebooks carry a real run that a reader can
read."""
import copy
import hashlib
import re
import shutil

import nbformat
import pytest

from tools.notebooks import NOTEBOOKS, coalesce_streams, execute
from utils.runtime import REPO_ROOT as ROOT

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users|content)/")


def snapshot(folder):
    return {p.relative_to(ROOT): hashlib.md5(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def outputs_of(nb):
    return [(c, o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def banner(nb):
    """The text of the first code cell that printed something (the first cell, the bootstrap, prints
    nothing)."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
    return "".join(o.get("text", "") for o in cell.outputs)


def stderr_lines(cell):
    """Lines of stderr as Jupyter displays them: consecutive pieces merged, carriage returns
    resolved (plain nbclient stores every tqdm refresh as its own record; a reader sees one line per
    bar)."""
    shown = nbformat.v4.new_notebook()
    shown.cells = [copy.deepcopy(cell)]
    coalesce_streams(shown)
    return sum(1 for o in shown.cells[0].outputs if o.get("name") == "stderr"
               for line in o.text.split("\n") if line.strip())


def readable_run_problems(nb, modes=("cpu", "full")):
    """What keeps an executed notebook from being a complete, readable run (empty: nothing)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    problems = []
    if not all(c.execution_count is not None for c in code if c.source.strip()):
        problems.append("a code cell was never executed")
    if [o for _, o in outputs_of(nb) if o.output_type == "error"]:
        problems.append("an error output is stored")
    if not re.search(rf"mode     ({'|'.join(modes)}):", banner(nb)):
        problems.append(f"the run must be a {' or '.join(modes)} run")
    if [o for _, o in outputs_of(nb) if ABSOLUTE_PATH.search(str(o))]:
        problems.append("absolute paths in the outputs")
    worst = max(stderr_lines(c) for c in code)
    if worst > 30:
        problems.append(f"a cell shows {worst} lines of progress bars")
    return problems


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
    assert any((tmp_path / "out" / "results").glob("*.json")), \
        "fast run wrote no metrics under OUTPUT_ROOT"
    assert (snapshot(ROOT / "results"), src.read_bytes()) == before, \
        "a fast run changed committed files"
    assert not [o for _, o in outputs_of(nb) if ABSOLUTE_PATH.search(str(o))], \
        "an absolute path was printed"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_a_complete_readable_run(name):
    assert readable_run_problems(nbformat.read(ROOT / name, as_version=4)) == []


def test_stderr_lines_count_what_jupyter_shows():
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=f"\rbar: {i:3d}%|")
        for i in range(0, 100, 2)])
    cell.outputs.append(
        nbformat.v4.new_output("stream", name="stderr", text="\rbar: 100%|\n\rnext: 1%"))
    assert stderr_lines(cell) == 2 and len(cell.outputs) == 51


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_plain_nbclient_rerun_in_place_keeps_the_suite_green(name, tmp_path, monkeypatch):
    """A grader's re-run: plain nbclient (as `jupyter nbconvert --execute --inplace`, none of our
    coalescing), in place on a copy; the executed file then passes the committed-notebook checks."""
    from nbclient import NotebookClient

    path = tmp_path / "rerun.ipynb"
    shutil.copy(ROOT / name, path)
    monkeypatch.setenv("FAST", "1")
    monkeypatch.setenv("DATA_ROOT", str(ROOT / "data"))
    for var in ("MODE", "RECORD", "VAE_AE_REPO"):
        monkeypatch.delenv(var, raising=False)
    before = snapshot(ROOT / "results")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, path)
    assert readable_run_problems(nbformat.read(path, as_version=4), modes=("fast",)) == []
    assert snapshot(ROOT / "results") == before, "a re-run changed the committed record"


def test_streams_are_stored_as_jupyter_shows_them():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="bar:  10%|#\r"),
        nbformat.v4.new_output("stream", name="stderr",
                               text="bar:  50%|#####\rbar: 100%|##########\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")])]
    coalesce_streams(nb)
    outs = nb.cells[0].outputs
    assert ([o.name for o in outs] == ["stderr", "stdout"]
            and outs[0].text == "bar: 100%|##########\n")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_full_mode_runs_on_the_cpu_at_a_tiny_budget(name, tmp_path, monkeypatch):
    """Every branch that only full mode takes runs here first, not on a grader's GPU: full mode with
    every count scaled down (BUDGET_SCALE), on the CPU. It writes where a grader's re-run writes
    (runs/full/, no OUTPUT_ROOT), and the committed record stays as it was."""
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
    assert (snapshot(ROOT / "results"), src.read_bytes()) == before, \
        "a dry run changed committed files"
    assert any((ROOT / "runs" / "full" / "results").glob("*.json")), \
        "the re-run wrote no metrics under runs/full/"
