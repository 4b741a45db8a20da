import json

import pytest
import torch

from utils.runtime import (REPO_ROOT, SettingError, get_device, get_mode, output_dir, pick, rel, save_json,
                           seed_everything, setup)


def test_modes_from_environment(monkeypatch):
    monkeypatch.delenv("MODE", raising=False)
    monkeypatch.setenv("FAST", "1")
    assert get_mode(torch.device("cpu")) == "fast"
    monkeypatch.setenv("FAST", "0")
    assert get_mode(torch.device("cpu")) == "cpu"
    assert get_mode(torch.device("cuda")) == "full"
    monkeypatch.setenv("MODE", "full")
    assert get_mode(torch.device("cpu")) == "full"
    monkeypatch.setenv("MODE", "turbo")
    with pytest.raises(ValueError, match="not a run mode"):
        get_mode(torch.device("cpu"))


def test_pick():
    assert [pick(m, full=20, cpu=5, fast=1) for m in ("full", "cpu", "fast")] == [20, 5, 1]
    with pytest.raises(ValueError, match="unknown run mode"):
        pick("slow", full=1, cpu=1, fast=1)


def test_device_override(monkeypatch):
    monkeypatch.setenv("DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_seed_reproducible():
    g = seed_everything(3)
    a = torch.randn(3), torch.randn(2, generator=g)
    g = seed_everything(3)
    b = torch.randn(3), torch.randn(2, generator=g)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_reruns_write_under_runs_unless_recording(monkeypatch, tmp_path):
    """Re-executing a notebook in any mode leaves results/ alone; only RECORD=1 (cpu/full) refreshes it."""
    monkeypatch.delenv("OUTPUT_ROOT")
    monkeypatch.delenv("RECORD", raising=False)
    from utils.runtime import REPO_ROOT

    for mode in ("fast", "cpu", "full"):
        assert output_dir("results", mode) == REPO_ROOT / "runs" / mode / "results"
    monkeypatch.setenv("RECORD", "1")
    assert output_dir("results", "full") == REPO_ROOT / "results"
    assert output_dir("results", "cpu") == REPO_ROOT / "results"
    assert output_dir("figures", "cpu") == REPO_ROOT / "runs" / "cpu" / "figures"
    with pytest.raises(SettingError, match="smoke run never replaces"):
        output_dir("results", "fast")
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path))
    assert output_dir("figures", "cpu") == tmp_path / "figures" and (tmp_path / "figures").is_dir()
    with pytest.raises(ValueError):
        output_dir("models", "full")


@pytest.mark.parametrize("var, value, fragment", [
    ("FAST", "on", "FAST='on' is not understood: set FAST=1"),
    ("RECORD", "y", "RECORD='y' is not understood"),
    ("MODE", "gpu", "MODE='gpu' is not a run mode"),
    ("CPU_THREADS", "two", "CPU_THREADS='two' is not an integer"),
    ("CPU_THREADS", "0", "CPU_THREADS=0 must be at least 1"),
    ("BUDGET_SCALE", "2", "must lie in (0, 1]"),
    ("BUDGET_SCALE", "tiny", "BUDGET_SCALE='tiny' is not a number"),
    ("DEVICE", "gpu", "DEVICE='gpu' is not a device"),
])
def test_bad_switches_name_the_variable_and_the_fix(monkeypatch, var, value, fragment):
    for other in ("FAST", "MODE", "RECORD", "CPU_THREADS", "BUDGET_SCALE", "DEVICE"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingError) as err:
        setup("demo")
    assert fragment in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setenv("DEVICE", "cuda")
    with pytest.raises(SettingError, match="no CUDA GPU"):
        setup("demo")


def test_budget_scale_shrinks_every_count(monkeypatch, capsys):
    for var in ("FAST", "RECORD", "CPU_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODE", "full")
    monkeypatch.setenv("BUDGET_SCALE", "0.001")
    run = setup("demo")
    assert run.count(full=15_000, cpu=2000, fast=10) == 15 and run.count(full=20, cpu=20, fast=1) == 1
    assert run.pick(full=256, cpu=32, fast=8) == 256            # settings that are not counts stay
    run.banner({})
    assert "BUDGET_SCALE=0.001" in capsys.readouterr().out


def test_save_json_rounds_and_converts(tmp_path):
    path = save_json({"a": 1 / 3, "t": torch.tensor([0.5, 2.0]), "n": {"k": 7}}, tmp_path / "m.json")
    assert json.loads(path.read_text()) == {"a": 0.333333, "t": [0.5, 2.0], "n": {"k": 7}}


def test_setup_decides_once_and_prints_one_banner(monkeypatch, capsys):
    for var in ("FAST", "MODE", "CPU_THREADS", "RECORD", "BUDGET_SCALE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FAST", "1")
    monkeypatch.setenv("DEVICE", "cpu")
    threads = torch.get_num_threads()
    monkeypatch.setenv("CPU_THREADS", "1")
    try:
        run = setup("demo", seed=3)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert run.mode == "fast" and run.device.type == "cpu" and run.seed == 3
    assert run.pick(full=1, cpu=2, fast=3) == 3
    with run.timer("phase"):
        pass
    assert run.seconds["phase"] >= 0 and run.seconds_total() > 0
    run.banner({"epochs": 1}, budget="tiny")
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("demo | ") and "mode     fast" in out and "budget   tiny" in out
    assert 'config   {"epochs": 1}' in out


def test_paths_are_printed_relative_to_the_repository(tmp_path):
    assert rel(REPO_ROOT / "results" / "q1_metrics.json") == "results/q1_metrics.json"
    assert rel(tmp_path / "elsewhere" / "x.json") == "x.json"      # never an absolute path of this machine
    assert json.loads(save_json({"p": REPO_ROOT / "results"}, tmp_path / "m.json").read_text()) == {"p": "results"}