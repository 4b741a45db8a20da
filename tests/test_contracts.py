"""Issue #32, part B: what the public functions of utils/, tools/ and bench/ accept, and a clear
error (before any work or write) for what a user plausibly gets wrong; one parser for every switch,
shell scripts included."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from utils import runtime
from utils.batches import ResidentBatches
from utils.checks import check_writable
from utils.classifier import (JudgeWeightsError, MnistClassifier, judge, load_weights,
                              train_classifier)
from utils.classifier import test_accuracy as judge_accuracy
from utils.classifier import main as classifier_main
from utils.data import load_dataset
from utils.metrics import active_units, frechet_distance
from utils.parallel import map_runs
from utils.plotting import image_grid
from utils.runtime import REPO_ROOT, SettingError
from utils.training import make_adam, stop_if_nonfinite

ENV = {k: v for k, v in os.environ.items()
       if k not in ("FAST", "MODE", "RECORD", "CPU_THREADS", "CPU_WORKERS", "BUDGET_SCALE",
                    "DEVICE", "OUTPUT_ROOT")}


def run(cmd, **env):
    return subprocess.run(cmd, cwd=REPO_ROOT, env={**ENV, "MPLBACKEND": "Agg", **env},
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ one parser for the switches
@pytest.mark.parametrize("value, out", [
    ("1", "1"),
    ("yes", "1"),
    ("TRUE", "1"),
    ("0", "0"),
    ("", "0"),
    ("no", "0")])
def test_runtime_flag_cli_reads_fast_as_the_notebooks_do(value, out, monkeypatch):
    monkeypatch.setenv("FAST", value)
    assert runtime.main(["--flag", "FAST"]) == 0
    assert runtime._flag("FAST") == (out == "1")


@pytest.mark.parametrize("value", ["2", "on", "y"])
def test_runtime_flag_cli_refuses_what_the_notebooks_refuse(value, monkeypatch, capsys):
    monkeypatch.setenv("FAST", value)
    assert runtime.main(["--flag", "FAST"]) == 2
    assert f"FAST={value!r} is not understood" in capsys.readouterr().err
    with pytest.raises(SettingError):
        runtime._flag("FAST")                                           # same code, same answer


@pytest.mark.parametrize("var, value, fragment", [
    ("CPU_WORKERS", "x", "CPU_WORKERS='x' is not an integer"),
    ("BUDGET_SCALE", "2", "must lie in (0, 1]"),
    ("MODE", "gpu", "is not a run mode")])
def test_runtime_check_cli_and_setup_read_every_switch_at_the_start(var, value, fragment,
                                                                     monkeypatch, capsys):
    monkeypatch.setenv(var, value)
    assert runtime.main(["--check"]) == 2 and fragment in capsys.readouterr().err
    with pytest.raises(SettingError,
                       match=fragment.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        # CPU_WORKERS too: not minutes later
        runtime.setup("demo")


def test_runtime_check_cli_prints_device_and_mode(monkeypatch, capsys):
    monkeypatch.setenv("FAST", "1")
    assert runtime.main(["--check"]) == 0 and "mode fast" in capsys.readouterr().out


def test_gpu_run_fast_2_stops_before_collecting_anything(tmp_path):
    out = tmp_path / "out"
    result = run(["bash", "bench/gpu_run.sh", "collect", str(out)], FAST="2")
    assert result.returncode == 2 and "FAST='2' is not understood" in result.stderr
    # nothing packed, no folder made
    assert not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["smoke", "bogus"], "unknown stage 'bogus'"),
    (["collect"], "collect needs a folder"),
    (["collect", "q1"], "collect needs a folder"),
    ([], "no stage given")])
def test_gpu_run_checks_every_stage_before_the_first_runs(args, fragment):
    result = run(["bash", "bench/gpu_run.sh", *args], FAST="1")
    assert result.returncode == 2 and fragment in result.stderr
    assert "== " not in result.stdout                                   # no stage started


def test_gpu_run_refuses_an_unwritable_collect_folder_at_the_start(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run(["bash", "bench/gpu_run.sh", "smoke", "collect", str(blocker / "sub")],
                 FAST="1")
    assert (result.returncode == 2 and "cannot write into" in result.stderr
            and "== " not in result.stdout)


def test_gpu_run_fast_collect_without_smoke_needs_the_copies(tmp_path, monkeypatch):
    copies = [REPO_ROOT / "runs" / "fast" / n for n in ("Q1_VAE_CVAE.ipynb", "Q2_VQVAE.ipynb",
                                                          "beta_vae_disentanglement.ipynb")]
    if all(p.exists() for p in copies):
        pytest.skip("the fast-mode copies exist here; the check only fires without them")
    result = run(["bash", "bench/gpu_run.sh", "collect", str(tmp_path / "out")], FAST="1")
    assert result.returncode == 2 and "put smoke before collect" in result.stderr


# ------------------------------------------------------------------ utils.runtime: outputs
def test_output_dir_refuses_an_unwritable_root_at_setup(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("OUTPUT_ROOT", str(blocker))
    with pytest.raises(PermissionError, match="is not writable.*OUTPUT_ROOT"):
        runtime.output_dir("results", "cpu")


def test_check_writable_leaves_nothing_behind(tmp_path):
    assert (check_writable(tmp_path / "new") == tmp_path / "new"
            and list((tmp_path / "new").iterdir()) == [])


# ------------------------------------------------------------------ the judge
@pytest.fixture(scope="module")
def judge_net():
    torch.manual_seed(0)
    return MnistClassifier().eval()


@pytest.mark.parametrize("shift, scale, fragment", [
    (-0.5, 1, r"VQ-VAE's pixels in \[-0.5, 0.5\]: add 0.5"),
    (0, 255, "0-255 pixels: divide by 255")])
def test_judge_refuses_pixels_outside_0_1(judge_net, shift, scale, fragment):
    x = torch.rand(4, 1, 28, 28) * scale + shift
    x[0, 0, 0, 0], x[1, 0, 0, 0] = shift, shift + scale                 # the range hits both ends
    with pytest.raises(ValueError, match=f"images given to the judge range from .*{fragment}"):
        judge(judge_net, x)


def test_judge_refuses_nan_and_uint8(judge_net):
    x = torch.rand(2, 784)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        judge(judge_net, x)
    with pytest.raises(TypeError, match="divide by 255"):
        judge(judge_net, (torch.rand(2, 784) * 255).to(torch.uint8))


def test_judge_takes_images_in_0_1(judge_net):
    out = judge(judge_net, torch.rand(3, 1, 28, 28))
    assert out["pred"].shape == (3,) and out["features"].shape == (3, 128)


@pytest.mark.parametrize("y, fragment", [
    (torch.full((8,), 10), r"\[0, 9\]"),
    (torch.zeros(7, dtype=torch.long), "got 7 labels for a batch of 8: pass one label per image")])
def test_train_classifier_refuses_bad_labels_before_training(y, fragment):
    with pytest.raises(ValueError, match=fragment):
        train_classifier(torch.rand(8, 1, 28, 28), y, epochs=1, batch_size=4)


def test_test_accuracy_refuses_a_length_mismatch(judge_net):
    fragment = "got 2 test labels for a batch of 3: pass one label per image"
    with pytest.raises(ValueError, match=fragment):
        judge_accuracy(judge_net, torch.rand(3, 1, 28, 28), torch.zeros(2, dtype=torch.long))


def test_missing_weight_file_is_a_judge_weights_error(tmp_path):
    with pytest.raises(JudgeWeightsError, match="is missing"):
        load_weights(tmp_path / "none.pt")


def test_classifier_verify_loads_the_committed_weights(capsys):
    assert (classifier_main(["--verify"]) == 0
            and "readable judge weights" in capsys.readouterr().out)


# ------------------------------------------------------------------ data, batches, training,
# metrics, plotting
@pytest.mark.parametrize("limit, err, fragment", [
    ("500", TypeError, "limit='500' is a str.*limit=500"), (2.5, TypeError, "is a float"),
    (0, ValueError, "limit must be a whole number >= 1, not 0")])
def test_load_dataset_refuses_a_bad_limit_before_reading_anything(tmp_path, limit, err, fragment):
    with pytest.raises(err, match=fragment):
        load_dataset("mnist", "train", root=tmp_path / "nothing_here", limit=limit)


def test_load_dataset_refuses_a_device_typo_before_reading_anything(tmp_path):
    with pytest.raises(ValueError, match="device='gpu' is not a torch device"):
        load_dataset("mnist", "train", root=tmp_path / "nothing_here", device="gpu")


@pytest.mark.parametrize("batch_size, err", [("128", TypeError), (0, ValueError), (2.5, TypeError)])
def test_resident_batches_refuse_a_bad_batch_size(batch_size, err):
    with pytest.raises(err, match="batch_size"):
        ResidentBatches(torch.zeros(8, 2), batch_size=batch_size)


@pytest.mark.parametrize("lr", ["1e-3", 0, -1e-3, float("nan"), None])
def test_make_adam_refuses_a_learning_rate_that_is_not_a_positive_number(lr):
    with pytest.raises(ValueError, match="is not a learning rate"):
        make_adam([torch.nn.Parameter(torch.zeros(1))], lr)


def test_make_adam_refuses_no_parameters():
    with pytest.raises(ValueError, match="no parameters"):
        make_adam([], 1e-3)


def test_stop_if_nonfinite_takes_a_tensor():
    with pytest.raises(TypeError, match="torch.stack"):
        stop_if_nonfinite([0.5, float("nan")], "demo")


def test_frechet_distance_refuses_nan_features():
    a, b = np.random.default_rng(0).normal(size=(2, 20, 4))
    a[3, 1] = np.nan
    with pytest.raises(ValueError, match="first feature set holds NaN or inf in 1 rows"):
        frechet_distance(a, b)


@pytest.mark.parametrize("mu, threshold, fragment", [(torch.zeros(1, 4), 1e-2, "at least 2"),
                                                     (torch.zeros(5, 4), -1, "threshold")])
def test_active_units_contract(mu, threshold, fragment):
    with pytest.raises(ValueError, match=fragment):
        active_units(mu, threshold)


@pytest.mark.parametrize("kw, fragment", [
    (dict(value_range=(1, 0)), "high > low"),
    (dict(nrow=0), "nrow")])
def test_image_grid_refuses_an_empty_range_and_no_columns(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        image_grid(torch.rand(4, 1, 8, 8), **kw)


def _square(x):
    return x * x


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(workers=0), ValueError, "workers must be a whole number >= 1, not 0"),
    (dict(workers="2"), TypeError, "workers='2' is a str.*e.g. workers=2"),
    (dict(tasks=[1, 2]), TypeError, r"write \(seed,\)")])
def test_map_runs_contract(kw, err, fragment):
    args = {"tasks": [(1,), (2,)], "workers": 1, **kw}
    with pytest.raises(err, match=fragment):
        map_runs(_square, args["tasks"], "cpu", workers=args["workers"])


# ------------------------------------------------------------------ bench/ and tools/
def test_cuda_graph_step_contract():
    sys.path.insert(0, str(REPO_ROOT))
    from bench.cuda_graph import CUDAGraphStep

    with pytest.raises(ValueError, match="warmup must be a whole number >= 1"):
        CUDAGraphStep(lambda x: x, warmup="3")
    with pytest.raises(TypeError, match="update function"):
        CUDAGraphStep(None)


@pytest.mark.parametrize("argv, fragment", [
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, not 0"),
    (["--test-limit", "0"], "argument --test-limit: must be >= 1, not 0"),
    (["--restart-every", "-1"], "argument --restart-every: must be >= 0, not -1"),
    (["--updates", "2.5"], "argument --updates: '2.5' is not a whole number"),
    (["--train-limit", "100", "--batch-size", "256"], "smaller than one batch"),
    (["--variants", "fast"], "unknown variants")])
def test_bench_q2_refuses_bad_arguments_before_loading_anything(argv, fragment, capsys):
    from bench.bench_q2 import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and fragment in capsys.readouterr().err


def test_bench_q2_refuses_an_unwritable_output_before_the_timed_loops(tmp_path, monkeypatch):
    from bench import bench_q2

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("OUTPUT_ROOT", str(blocker))
    monkeypatch.setattr(bench_q2, "load_raw",
                        lambda *a, **k: pytest.fail("data loaded before the output check"))
    with pytest.raises(PermissionError, match="not writable"):
        bench_q2.main(["--updates", "1", "--warmup", "0"])


def test_bench_workers_refuses_zero_runs(capsys):
    # bench_workers loads Q1's definitions under that name at import; test_q1_models' worker
    # processes pickle its classes by it
    before = sys.modules.get("Q1_VAE_CVAE")
    try:
        from bench.bench_workers import main
    finally:
        if before is not None:
            sys.modules["Q1_VAE_CVAE"] = before

    with pytest.raises(SystemExit):
        main(["--runs", "0"])
    assert "argument --runs: must be >= 1, not 0" in capsys.readouterr().err


def test_bench_data_refuses_an_unknown_data_set_before_loading(capsys):
    from bench.bench_data import main

    with pytest.raises(SystemExit):
        main(["--datasets", "mnist", "imagenet"])
    assert "unknown data set 'imagenet'" in capsys.readouterr().err


def test_quoted_numbers_refuses_a_missing_path(tmp_path, capsys):
    from tools.quoted_numbers import main

    with pytest.raises(SystemExit):
        main(["--results", str(tmp_path / "missing")])
    assert "not found" in capsys.readouterr().err
