"""Test-wide settings: nothing downloads, nothing a test writes lands in results/ or figures/."""
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
os.environ["DATA_DOWNLOAD"] = "0"


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _outputs_elsewhere(tmp_path, monkeypatch):
    """Any output_dir() call during a test writes under the test's temporary folder."""
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path / "out"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster (and much faster on a busy machine) than OpenMP's
    spin-waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
