"""Every notebook runs top to bottom in fast mode, and never touches the committed results."""
import hashlib

import nbformat
import pytest

from conftest import ROOT
from utils.notebooks import execute

NOTEBOOKS = ["Q1_VAE_CVAE.ipynb", "Q2_VQVAE.ipynb", "extras/beta_vae_disentanglement.ipynb"]


def snapshot(folder):
    return {p.relative_to(ROOT): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode(name, tmp_path, monkeypatch):
    src = ROOT / name
    assert src.exists(), f"{name} is missing"
    monkeypatch.setenv("FAST", "1")
    monkeypatch.delenv("MODE", raising=False)
    before = snapshot(ROOT / "results"), src.read_bytes()
    out = execute(src, tmp_path / src.name, timeout=600)  # raises CellExecutionError on any error
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    first = "".join(o.get("text", "") for o in nb.cells[[c.cell_type for c in nb.cells].index("code")].outputs)
    assert "fast" in first  # the first output says the run mode
    assert any((tmp_path / "out" / "results").glob("*.json")), "fast run wrote no metrics under OUTPUT_ROOT"
    assert (snapshot(ROOT / "results"), src.read_bytes()) == before, "a fast run changed committed files"
