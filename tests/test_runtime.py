import json
import pickle

import pytest
import torch

from utils.runtime import (REPO_ROOT, SettingError, count, get_device, get_mode, modes, output_dir,
                           pick, rel, save_json, seed_everything, settings_for, setup)


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
    """Re-executing a notebook in any mode leaves results/ alone; only RECORD=1 (cpu/full) refreshes
    it."""
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
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
    table = dict(updates=count(15_000, 2000, 10), epochs=count(20, 20, 1),
                 n=count(60_000, 60_000, 2048, floor=1024), batch_size=modes(256, 32, 8), lr=1e-3)
    s = run.settings(table)
    assert (s.updates, s.epochs, s.n) == (15, 1, 1024)        # counts scaled, never below the floor
    assert s.batch_size == 256 and s.lr == 1e-3                # settings that are not counts stay
    run.banner(s)
    out = capsys.readouterr().out
    assert "BUDGET_SCALE=0.001" in out and "this run" in out


def test_save_json_rounds_and_converts(tmp_path):
    obj = {"a": 1 / 3, "t": torch.tensor([0.5, 2.0]), "n": {"k": 7}}
    path = save_json(obj, tmp_path / "m.json")
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
    assert run.settings(dict(k=modes(1, 2, 3))).k == 3
    with run.timer("phase"):
        pass
    assert run.seconds["phase"] >= 0 and run.seconds_total() > 0
    run.banner(run.settings(dict(epochs=count(20, 5, 1))), budget="tiny")
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("demo | ") and "mode     fast" in out
    assert "budget   tiny" in out and "settings (one row each" in out
    assert out.splitlines()[-1].split() == ["epochs", "20", "5", "1"]


def test_paths_are_printed_relative_to_the_repository(tmp_path):
    assert rel(REPO_ROOT / "results" / "q1_metrics.json") == "results/q1_metrics.json"
    assert rel(tmp_path / "elsewhere" / "x.json") == "x.json"   # never an absolute path here
    saved = save_json({"p": REPO_ROOT / "results"}, tmp_path / "m.json")
    assert json.loads(saved.read_text()) == {"p": "results"}

def test_the_settings_table_is_one_column_per_mode_printed_whole():
    table = dict(batch_size=modes(256, 32, 16), updates=count(15_000, 1_000, 8), lr=1e-3,
                 seeds=modes([0, 1, 2], [0, 1, 2], [0, 1]))
    columns = {m: settings_for(table, m) for m in ("full", "cpu", "fast")}
    assert dict(columns["cpu"]) == dict(batch_size=32, updates=1000, lr=1e-3, seeds=[0, 1, 2])
    assert columns["fast"].seeds == [0, 1] and columns["full"]["updates"] == 15_000
    text = columns["cpu"].text().splitlines()
    assert text[0].split() == ["setting", "full", "cpu*", "fast"] and len(text) == 1 + len(table)
    assert text[2].split() == ["updates", "15,000", "1,000", "8"]
    assert text[3].split() == ["lr", "0.001", "same", "same"]
    assert json.loads(json.dumps(columns["cpu"])) == dict(columns["cpu"])        # RESULTS' config
    assert pickle.loads(pickle.dumps(columns["cpu"])) == columns["cpu"]          # utils.parallel


def test_settings_are_read_only_and_a_missing_row_names_the_near_ones():
    s = settings_for(dict(learning_rate=1e-3, batch_size=modes(256, 32, 16)), "cpu")
    with pytest.raises(AttributeError, match="did you mean learning_rate"):
        s.learning_rat
    with pytest.raises(AttributeError, match="read-only"):
        s.batch_size = 64
    with pytest.raises(TypeError, match="read-only"):
        s["batch_size"] = 64
    with pytest.raises(ValueError, match="an int >= 1"):
        count(10, 0, 1)
    with pytest.raises(ValueError, match="unknown run mode"):
        settings_for({}, "gpu")
