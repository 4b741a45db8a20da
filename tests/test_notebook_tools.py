import nbformat
import pytest

from tools.notebooks import load_definitions


def test_load_definitions_runs_only_tagged_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import math\nK = 3\ndef f(x):\n    return K * x", metadata={"tags": ["defs"]}),
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
