import pytest
import torch

from utils.classifier import MnistClassifier, judge, load_or_train_classifier, train_classifier


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


def test_training_learns_and_judge(tmp_path):
    x, y = toy_digits()
    model = train_classifier(x, y, epochs=2, batch_size=32)
    out = judge(model, x)
    assert (out["pred"] == y).float().mean() == 1.0
    assert out["features"].shape == (256, 128) and out["confidence"].min() > 0.5
    path = tmp_path / "clf.pt"
    a = load_or_train_classifier(x, y, path, epochs=1)
    b = load_or_train_classifier(x, y, path, epochs=1)  # second call loads the saved weights
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
