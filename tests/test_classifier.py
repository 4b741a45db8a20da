"""The MNIST judge: shapes and clear errors, the recipe learns, the committed weights score >= 99 % on the
MNIST test set, and without them load_judge trains the recipe once and caches it."""
import pytest
import torch

from utils import classifier
from utils.classifier import JUDGE_PATH, MnistClassifier, judge, load_judge, load_weights, save_weights, train_classifier
from utils.data import load_dataset


def toy_digits(n=256):
    """Two trivially separable 'digits': bright top half (class 0) or bright bottom half (class 1)."""
    y = torch.arange(n) % 2
    x = torch.zeros(n, 1, 28, 28)
    x[y == 0, :, :14] = 1.0
    x[y == 1, :, 14:] = 1.0
    return x, y


def test_shapes_and_bad_input():
    model = MnistClassifier()
    assert model(torch.zeros(3, 784)).shape == (3, 10)
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, 128)
    with pytest.raises(ValueError, match="takes"):
        model(torch.zeros(3, 3, 32, 32))


def test_recipe_learns_and_fp16_weights_round_trip(tmp_path):
    x, y = toy_digits()
    model = train_classifier(x, y, epochs=2, batch_size=32)
    out = judge(model, x)
    assert (out["pred"] == y).float().mean() == 1.0
    assert out["features"].shape == (256, 128) and out["confidence"].min() > 0.5
    loaded = load_weights(save_weights(model, tmp_path / "j.pt", epochs=2))
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), msg=k)          # stored in fp16, computed in fp32


def test_committed_judge_scores_99_percent_on_the_test_set():
    assert JUDGE_PATH.is_file(), "utils/mnist_judge.pt is missing: run `python -m utils.classifier`"
    x, y = load_dataset("mnist", "test")
    model, source = load_judge("cpu")
    assert source.startswith("loaded utils/mnist_judge.pt")
    assert classifier.test_accuracy(model, x, y) >= 0.99


def test_without_committed_weights_the_recipe_trains_once(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "JUDGE_PATH", tmp_path / "missing.pt")
    monkeypatch.setattr(classifier, "REPO_ROOT", tmp_path)
    x, y = toy_digits()
    with pytest.raises(FileNotFoundError, match="python -m utils.classifier"):
        load_judge("cpu")
    first, how = load_judge("cpu", x, y, epochs=1)
    assert "trained by the same recipe" in how and (tmp_path / "checkpoints").is_dir()
    again, how = load_judge("cpu", x, y, epochs=1)
    assert "trained here earlier" in how
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
