import json

import pytest
import torch

from utils.runtime import autocast, get_device, get_mode, output_dir, pick, save_json, seed_everything


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


def test_autocast_is_noop_on_cpu():
    with autocast("cpu"):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32


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
