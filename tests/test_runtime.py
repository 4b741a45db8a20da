import json

import pytest
import torch

from utils.runtime import (REPO_ROOT, autocast, bf16_native, get_device, get_mode, output_dir, pick, rel, save_json,
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


def test_autocast_only_where_bf16_is_native():
    assert not bf16_native("cpu") and not bf16_native("mps")
    with autocast("cpu"):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32
    if torch.cuda.is_available():
        assert bf16_native("cuda") == (torch.cuda.get_device_capability() >= (8, 0))


def test_seed_reproducible():
    g = seed_everything(3)
    a = torch.randn(3), torch.randn(2, generator=g)
    g = seed_everything(3)
    b = torch.randn(3), torch.randn(2, generator=g)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_fast_outputs_never_land_in_results(monkeypatch, tmp_path):
    monkeypatch.delenv("OUTPUT_ROOT")
    from utils.runtime import REPO_ROOT

    assert output_dir("results", "fast") == REPO_ROOT / "runs" / "fast" / "results"
    assert output_dir("results", "full") == REPO_ROOT / "results"
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path))
    assert output_dir("figures", "cpu") == tmp_path / "figures" and (tmp_path / "figures").is_dir()
    with pytest.raises(ValueError):
        output_dir("models", "full")


def test_save_json_rounds_and_converts(tmp_path):
    path = save_json({"a": 1 / 3, "t": torch.tensor([0.5, 2.0]), "n": {"k": 7}}, tmp_path / "m.json")
    assert json.loads(path.read_text()) == {"a": 0.333333, "t": [0.5, 2.0], "n": {"k": 7}}


def test_setup_decides_once_and_prints_one_banner(monkeypatch, capsys):
    for var in ("FAST", "MODE", "CUDA_GRAPHS", "AMP", "CPU_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FAST", "1")
    monkeypatch.setenv("CUDA_GRAPHS", "1")          # asked for, but there is no CUDA device here
    monkeypatch.setenv("AMP", "1")
    monkeypatch.setenv("DEVICE", "cpu")
    threads = torch.get_num_threads()
    monkeypatch.setenv("CPU_THREADS", "1")
    try:
        run = setup("demo", seed=3)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert run.mode == "fast" and run.device.type == "cpu" and run.seed == 3
    assert not run.cuda_graphs and not run.amp             # opt-ins only where they can run
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