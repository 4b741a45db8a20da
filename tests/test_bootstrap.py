"""The first cell of every notebook: the copy of the helpers it carries is current, a notebook
opened alone runs top to bottom, VAE_AE_REPO clones the repository, and where nothing works the cell
says so in one line."""
import shutil
import subprocess

import nbformat
import pytest

from tools import bootstrap
from tools.notebooks import execute
from utils.runtime import REPO_ROOT


def one_cell_notebook(source, path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def run_cell_alone(source, folder, allow_errors=False):
    """Execute a one-cell notebook in ``folder``; return the cell's outputs."""
    from nbclient import NotebookClient

    path = one_cell_notebook(source, folder / "cell.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb.cells[0].outputs


@pytest.mark.parametrize("name", list(bootstrap.NOTEBOOKS))
def test_first_cells_carry_the_current_helpers(name):
    nb = nbformat.read(REPO_ROOT / name, as_version=4)
    cell = bootstrap.bootstrap_cell(nb)                  # the first code cell, tagged "bootstrap"
    assert cell.source.startswith("#@title"), "the cell should open with its Colab form title"
    carried = bootstrap.carried_files(bootstrap.copy_cell(nb).source)   # the second code cell
    assert "utils/runtime.py" in carried and "utils/mnist_judge.pt" not in carried
    assert all(f.startswith(("utils/", "extras/")) for f in carried), "tooling never travels"
    assert bootstrap.stale(name) == [], f"{name}: old copy: run `python -m tools.bootstrap`"


@pytest.mark.parametrize("name", list(bootstrap.NOTEBOOKS))
def test_setup_is_said_first_then_a_short_readable_cell_then_the_copy_collapsed(name):
    nb = nbformat.read(REPO_ROOT / name, as_version=4)
    first = bootstrap.bootstrap_cell(nb)
    at = nb.cells.index(first)
    assert nb.cells[at - 1].cell_type == "markdown" and "Setup" in nb.cells[at - 1].source
    lines = first.source.splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 100
    copy = bootstrap.copy_cell(nb)
    assert nb.cells[at + 1] is copy
    comment, *code = copy.source.splitlines()
    assert comment.startswith("#@title") and "python -m tools.bootstrap" in comment
    assert len(code) == 2 and len(code[1]) > 1000                # the copy: one line, at the end
    assert copy.metadata["jupyter"]["source_hidden"] and copy.metadata["cellView"] == "form"


def test_the_copy_holds_what_the_notebook_imports_and_nothing_else(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", metadata={"tags": ["bootstrap"]}),
                nbformat.v4.new_code_cell("from utils.classifier import judge\nimport numpy as np")]
    nbformat.write(nb, tmp_path / "demo.ipynb")
    files = bootstrap.files_for(tmp_path / "demo.ipynb")
    names = {p.relative_to(REPO_ROOT).as_posix() for p in files}
    # classifier imports batches, checks, runtime, training and (in its command line) data; no more
    assert names == {"utils/__init__.py", "utils/classifier.py", "utils/batches.py",
                     "utils/checks.py", "utils/runtime.py", "utils/training.py", "utils/data.py"}


def test_nothing_found_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("VAE_AE_REPO", raising=False)
    source = bootstrap.cell_source("Q1_VAE_CVAE.ipynb", with_copy=False)
    outputs = run_cell_alone(source, tmp_path, allow_errors=True)
    errors = [o for o in outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "SetupError"
    assert len(errors[0].traceback) == 1, "the user should see one line, not a traceback"
    line = errors[0].traceback[0]
    assert "open the notebook inside the repository" in line and "VAE_AE_REPO" in line


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_vae_ae_repo_clones_the_repository(tmp_path, monkeypatch):
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode:
        pytest.skip("the checkout has no commit to clone")
    monkeypatch.setenv("VAE_AE_REPO", str(REPO_ROOT))
    source = bootstrap.cell_source("Q1_VAE_CVAE.ipynb", with_copy=False)
    source += "\nimport utils.runtime\nprint(utils.runtime.REPO_ROOT)"
    outputs = run_cell_alone(source, tmp_path)
    printed = "".join(o.get("text", "") for o in outputs)
    assert printed.strip() == str((tmp_path / "vae-ae").resolve())
    assert (tmp_path / "vae-ae" / "README.md").is_file()       # the whole repository


def test_a_bad_vae_ae_repo_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_AE_REPO", str(tmp_path / "no-such-repo"))
    outputs = run_cell_alone(bootstrap.cell_source("Q2_VQVAE.ipynb"), tmp_path, allow_errors=True)
    errors = [o for o in outputs if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0].traceback) == 1
    assert "VAE_AE_REPO" in errors[0].traceback[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(bootstrap.NOTEBOOKS))
def test_notebook_runs_alone_in_an_empty_folder(name, tmp_path, monkeypatch):
    """What a Colab user or a copied file gets: the notebook and nothing else (data from DATA_ROOT).
    """
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(REPO_ROOT / name, alone / "notebook.ipynb")
    monkeypatch.setenv("FAST", "1")
    monkeypatch.setenv("DATA_ROOT", str(REPO_ROOT / "data"))
    monkeypatch.setenv("DATA_DOWNLOAD", "0")
    monkeypatch.delenv("VAE_AE_REPO", raising=False)
    monkeypatch.delenv("MODE", raising=False)
    monkeypatch.delenv("OUTPUT_ROOT", raising=False)      # outputs go where a lone user's would
    out = execute(alone / "notebook.ipynb", tmp_path / "executed.ipynb", timeout=600)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors
    assert (alone / "vae-ae" / "utils" / "runtime.py").is_file(), "the helpers were not unpacked"
    assert list((alone / "vae-ae" / "runs" / "fast" / "results").glob("*.json")), "no metrics"
