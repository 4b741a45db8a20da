"""The MNIST judge: shapes and clear errors, the recipe learns, the committed weights score >= 99 %
on the MNIST test set, and without them load_judge trains the recipe once and caches it."""
import pytest
import torch

from utils import classifier
from utils.classifier import (JUDGE_PATH, MnistClassifier, judge, load_judge, load_weights,
                              save_weights, train_classifier)
from utils.data import load_dataset


def toy_digits(n=256):
    """Two trivially separable 'digits': bright top half (class 0) or bottom half (class 1)."""
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
        torch.testing.assert_close(b, a.half().float(), msg=k)   # stored in fp16, computed in fp32


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
    assert "RETRAINED here by the same recipe" in how and (tmp_path / "checkpoints").is_dir()
    again, how = load_judge("cpu", x, y, epochs=1)
    assert "trained here earlier" in how
    pairs = zip(first.state_dict().values(), again.state_dict().values())
    assert all(torch.equal(a, b) for a, b in pairs)


def test_the_recipe_is_adam_then_a_tenth_of_the_rate_in_the_last_epoch():
    """train_classifier equals the recipe written out by hand: plain Adam, the loop that made the
    committed weights (the same numbers, bit for bit)."""
    import torch.nn.functional as F

    from utils.batches import ResidentBatches

    x, y = toy_digits(96)
    torch.manual_seed(0)
    reference = MnistClassifier()
    opt = torch.optim.Adam(reference.parameters(), lr=1e-3)
    batches = ResidentBatches(x, y, batch_size=32, seed=0)
    for epoch in range(3):
        if epoch == 2:
            for group in opt.param_groups:
                group["lr"] = 1e-4
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(reference(xb), yb).backward()
            opt.step()
    model = train_classifier(x, y, epochs=3, batch_size=32, lr=1e-3, lr_last_epoch=1e-4, seed=0)
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("content, fragment", [
    (b"", "not a readable judge checkpoint"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 850000\n",
     "Git LFS pointer"),
    (bytes(range(256)) * 8, "not a readable judge checkpoint"),
    ("truncated", "not a readable judge checkpoint"),
])
def test_broken_judge_weights_name_the_file_and_the_fix(tmp_path, monkeypatch, content, fragment):
    path = tmp_path / "mnist_judge.pt"
    path.write_bytes(JUDGE_PATH.read_bytes()[:5000] if content == "truncated" else content)
    monkeypatch.setattr(classifier, "JUDGE_PATH", path)
    with pytest.raises(classifier.JudgeWeightsError) as info:
        load_judge("cpu")
    message = str(info.value)
    assert fragment in message and str(path) in message and "python -m utils.classifier" in message
    assert "weights_only" not in message              # never the misleading advice of torch.load
