import nbformat
import pytest

from tools.notebooks import coalesce_streams, load_definitions, load_settings


def test_load_definitions_runs_only_tagged_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import math\nK = 3\ndef f(x):\n    return K * "
                                  "x", metadata={"tags": ["defs"]}),
        nbformat.v4.new_code_cell("raise RuntimeError('training cell must not run')"),
        nbformat.v4.new_code_cell("%matplotlib inline\nG = f(2)", metadata={"tags": ["defs"]}),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    mod = load_definitions(path)
    assert mod.f(2) == 6 and mod.G == 6


def test_no_tagged_cells_is_explained(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="no code cell tagged"):
        load_definitions(tmp_path / "plain.ipynb")


def test_load_settings_reads_the_settings_cell_for_one_mode(tmp_path):
    table = ("from utils.runtime import count, modes\n"
             "TABLE = dict(batch_size=modes(256, 32, 16),\n"
             "             num_training_updates=count(15_000, 1_000, 8), learning_rate=1e-3)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("raise RuntimeError('only the settings cell runs')"),
        nbformat.v4.new_code_cell(table, metadata={"tags": ["settings"]}),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    full, fast = load_settings(path, "full"), load_settings(path, "fast")
    assert (full.batch_size, full.num_training_updates, full.learning_rate) == (256, 15_000, 1e-3)
    assert (fast.batch_size, fast.num_training_updates) == (16, 8)
    assert load_settings(path, "cpu", scale=0.5).num_training_updates == 500   # counts scale
    with pytest.raises(ValueError, match="unknown run mode"):
        load_settings(path, "gpu")


def test_load_settings_without_a_settings_cell_is_explained(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("TABLE = {}", metadata={"tags": ["defs"]})]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="no code cell tagged 'settings'"):
        load_settings(tmp_path / "plain.ipynb", "full")


def test_coalesce_streams_merges_pieces_and_resolves_carriage_returns():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="bar:  10%\rbar: 100%\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")])]
    coalesce_streams(nb)
    outs = nb.cells[0].outputs
    assert [(o.name, o.text) for o in outs] == [("stdout", "a\nb\n"), ("stderr", "bar: 100%\n"),
                                                ("stdout", "done\n")]
