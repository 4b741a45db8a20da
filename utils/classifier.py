"""The MNIST judge of generated digits, shared by Q1 and Q2: one network, one recipe, committed
weights.

It scores samples three ways: the predicted class (conditional accuracy), the max-softmax
confidence, and its 128-d penultimate features (for a Fréchet distance to real test digits).
Confidence alone is a weak judge -- nets like this one can be confident on inputs far from any
digit -- so samples are ranked by the Fréchet distance and confidence is a side number.

The weights in ``utils/mnist_judge.pt`` were made by this module's own recipe (``RECIPE``: plain,
unfused Adam, the rate cut tenfold for the last epoch; the loop is ``utils.training.fit``)::

    python -m utils.classifier          # trains on the 60,000 training digits, tests, saves
    python -m utils.classifier --check  # only reports the committed weights' test accuracy

Without that file (a notebook copied out of the repository) ``load_judge`` trains the same recipe
once and caches the weights in ``checkpoints/``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .batches import ResidentBatches, stream
from .checks import check_count, check_ids, check_one_each, check_pixels
from .runtime import REPO_ROOT
from .training import fit, make_adam

JUDGE_PATH = Path(__file__).with_name("mnist_judge.pt")
# plain (unfused) Adam, lr / 10 in the last epoch: the recipe that made the committed weights
RECIPE = dict(epochs=5, batch_size=128, lr=1e-3, lr_last_epoch=1e-4, seed=0)


class MnistClassifier(nn.Module):
    """conv(32) - pool - conv(64) - pool - fc(128) - fc(10), on images in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)   # 28x28 -> 28x28 (pool -> 14x14)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)  # 14x14 -> 14x14 (pool -> 7x7)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout = nn.Dropout(0.25)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate 128-d features of images in [0, 1], shape (N, 1, 28, 28) or (N, 784)."""
        if x.dim() == 2 and x.shape[1] == 784:
            x = x.view(-1, 1, 28, 28)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError("MnistClassifier takes (N, 1, 28, 28) or (N, 784) images; got "
                             f"{tuple(x.shape)}")
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = RECIPE["epochs"],
                     batch_size: int = RECIPE["batch_size"], lr: float = RECIPE["lr"],
                     lr_last_epoch: float = RECIPE["lr_last_epoch"],
                     seed: int = RECIPE["seed"]) -> MnistClassifier:
    """The recipe: plain Adam (the recipe that made the committed weights) on cross-entropy,
    learning rate ``lr``, then ``lr_last_epoch`` for the last epoch; resident tensors ``x``
    (N, 1, 28, 28) in [0, 1], labels ``y`` (N,) digit classes 0..9 (both checked first).
    The loop is ``utils.training.fit``; the rate drops in ``on_epoch``."""
    check_pixels(x, "judge training images")
    check_ids(y, 10, "judge training labels", "the digits' classes 0..9")
    check_one_each(y, len(x), "labels", "image")
    epochs = check_count(epochs, "epochs")
    torch.manual_seed(seed)
    model = MnistClassifier().to(x.device)
    optimizer = make_adam(model.parameters(), lr, x.device, fused=False)
    # lr for every epoch but the last, lr_last_epoch for the last one
    schedule = (torch.optim.lr_scheduler.MultiStepLR(optimizer, [epochs - 1],
                                                     gamma=lr_last_epoch / lr)
                if epochs > 1 else None)        # a milestone at 0 would cut the first epoch's rate
    resident = ResidentBatches(x, y, batch_size=batch_size, seed=seed)

    def cross_entropy(model, batch):
        xb, yb = batch
        return F.cross_entropy(model(xb), yb)

    def next_rate(epoch, epoch_loss):
        if schedule is not None:
            schedule.step()

    fit(model, optimizer, stream(resident, x.device), cross_entropy, epochs * len(resident),
        desc="MNIST judge", epoch_steps=len(resident), on_epoch=next_rate)
    return model.eval()


@torch.no_grad()
def judge(model: MnistClassifier, x: torch.Tensor,
          batch_size: int = 2000) -> dict[str, torch.Tensor]:
    """Predicted labels, max-softmax confidences and penultimate features of images ``x`` in [0, 1].

    The range is checked (one host sync): the judge was trained on [0, 1] and scores anything else
    without a word (the VQ-VAE's [-0.5, 0.5] reads 95 % instead of 99 % and moves the Fréchet
    distance; 0-255 is worse)."""
    check_pixels(x, "images given to the judge")
    model.eval()
    preds, confs, feats = [], [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size])
        conf, pred = F.softmax(model.fc2(f), dim=1).max(1)
        preds.append(pred), confs.append(conf), feats.append(f)
    return {"pred": torch.cat(preds), "confidence": torch.cat(confs), "features": torch.cat(feats)}


def save_weights(model: MnistClassifier, path: str | Path, **info) -> Path:
    """fp16 state dict (half the bytes; the judge computes in fp32 after loading) and its recipe."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().half() for k, v in model.state_dict().items()}
    torch.save({"model": state, **info}, path)
    return path


class JudgeWeightsError(RuntimeError):
    """The judge's weights file is there but unusable; the message names it and the fix."""


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> MnistClassifier:
    """The judge stored at ``path``; a truncated, empty or foreign file: a JudgeWeightsError."""
    path = Path(path)
    if path == JUDGE_PATH:
        fix = ("restore it (`git checkout -- utils/mnist_judge.pt`; with Git LFS, `git lfs pull`) "
               "or rebuild it with `python -m utils.classifier`")
    else:
        fix = "delete it; it is rebuilt on the next run"
    if not path.is_file():
        raise JudgeWeightsError(f"{path} is missing: {fix}")
    head = path.read_bytes()[:64]
    if head.startswith(b"version https://git-lfs"):
        raise JudgeWeightsError(f"{path} is a Git LFS pointer, not the weights: {fix}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = MnistClassifier()
        model.load_state_dict({k: v.float() for k, v in blob["model"].items()})
    except Exception as err:   # empty, truncated, random bytes, another network's weights
        raise JudgeWeightsError(f"{path} is not a readable judge checkpoint ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:80] if str(err) else 'no detail'}): "
                                f"{fix}") from None
    return model.to(device).eval()


def load_judge(device: torch.device | str = "cpu", x_train: torch.Tensor | None = None,
               y_train: torch.Tensor | None = None,
               epochs: int = RECIPE["epochs"]) -> tuple[MnistClassifier, str]:
    """The committed judge; without it, train the recipe on (x_train, y_train) once and cache it.

    Returns the model and a few words on where it came from (for the notebook's output)."""
    if JUDGE_PATH.exists():
        model = load_weights(JUDGE_PATH, device)         # a broken file fails here, naming it
        return model, f"loaded {JUDGE_PATH.relative_to(REPO_ROOT).as_posix()}"
    if x_train is None or y_train is None:
        raise FileNotFoundError(f"{JUDGE_PATH.name} is missing and no training digits were given "
                                "to rebuild it: run `python -m utils.classifier` in the "
                                "repository, or pass x_train, y_train")
    cache = REPO_ROOT / "checkpoints" / f"mnist_judge_e{epochs}_n{len(x_train)}.pt"
    if cache.exists():
        model = load_weights(cache, device)
        return model, f"loaded {cache.relative_to(REPO_ROOT).as_posix()} (trained here earlier)"
    model = train_classifier(x_train, y_train, epochs=epochs)
    save_weights(model, cache, epochs=epochs, n_train=len(x_train))
    return load_weights(cache, device), (f"{JUDGE_PATH.name} not found beside this notebook, so "
                                         "the judge was RETRAINED here by the same recipe "
                                         f"({epochs} epochs on {len(x_train):,} digits; cached in "
                                         "checkpoints/): scores below may differ a little from "
                                         "the committed run's")


def test_accuracy(model: MnistClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images ``x`` (in [0, 1]) that the judge reads as their label ``y`` (N,) in 0..9."""
    check_one_each(y, len(x), "test labels", "image")
    check_ids(y, 10, "test labels")
    return float((judge(model, x)["pred"] == y).float().mean())


def main(argv=None) -> int:
    from .data import load_dataset

    parser = argparse.ArgumentParser(description="Train (or --check) the committed MNIST judge.")
    parser.add_argument("--check", action="store_true",
                        help="only report the committed weights' test accuracy")
    parser.add_argument("--verify", action="store_true",
                        help="only check that the committed weights load (no data needed; exit 1 "
                             "if not)")
    args = parser.parse_args(argv)
    if args.verify:
        try:
            load_weights(JUDGE_PATH)
        except JudgeWeightsError as err:
            print(f"JudgeWeightsError: {err}")
            return 1
        print(f"{JUDGE_PATH.relative_to(REPO_ROOT).as_posix()}: readable judge weights")
        return 0
    x_test, y_test = load_dataset("mnist", "test")
    if not args.check:
        x_train, y_train = load_dataset("mnist", "train")
        model = train_classifier(x_train, y_train)
        save_weights(model, JUDGE_PATH, **RECIPE, n_train=len(x_train))
        print(f"saved {JUDGE_PATH.relative_to(REPO_ROOT).as_posix()} (recipe {RECIPE})")
    acc = test_accuracy(load_weights(JUDGE_PATH), x_test, y_test)
    print(f"test accuracy of {JUDGE_PATH.name} (fp16 weights, fp32 compute): {100 * acc:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
