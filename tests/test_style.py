"""Code a reader can scan: ruff (pyproject.toml: lines <= 100, rules E, W, F) is clean on the whole
tree, the notebooks' code cells included."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    if shutil.which("ruff"):
        return ["ruff"]
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.fail("ruff is not installed: pip install -r requirements-dev.txt")
    return [sys.executable, "-m", "ruff"]


def test_ruff_is_clean_on_the_tree_and_the_notebooks():
    done = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_reads_the_notebooks():
    """The check above covers the notebooks: ruff lists them among the files it checks."""
    done = subprocess.run([*_ruff(), "check", "--no-cache", "--show-files", "."],
                          cwd=ROOT, capture_output=True, text=True)
    for name in ("Q1_VAE_CVAE.ipynb", "Q2_VQVAE.ipynb", "beta_vae_disentanglement.ipynb"):
        assert name in done.stdout
