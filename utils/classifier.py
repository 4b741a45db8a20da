"""A small MNIST CNN used as a judge of generated digits (Q1 and Q2 share it).

It scores samples three ways: predicted class (conditional accuracy), max-softmax confidence, and
its 128-d penultimate features (for a Fréchet distance to real test digits). Confidence alone is
easily fooled -- such nets are often near-certain on pure noise -- so rank samples by the Fréchet
distance and treat confidence as a side number.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .batches import ResidentBatches


class MnistClassifier(nn.Module):
    """conv(32) - pool - conv(64) - pool - fc(128) - fc(10); ~99.2 % test accuracy after 3 epochs."""

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
            raise ValueError(f"MnistClassifier takes (N, 1, 28, 28) or (N, 784) images; got {tuple(x.shape)}")
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 3, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0) -> MnistClassifier:
    """Adam on resident tensors ``x`` (N, 1, 28, 28) in [0, 1] and labels ``y``."""
    torch.manual_seed(seed)
    model = MnistClassifier().to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = ResidentBatches(x, y, batch_size=batch_size, seed=seed)
    model.train()
    for epoch in range(epochs):
        for xb, yb in tqdm(batches, desc=f"classifier epoch {epoch + 1}/{epochs}", leave=False):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def judge(model: MnistClassifier, x: torch.Tensor, batch_size: int = 2000) -> dict[str, torch.Tensor]:
    """Predicted labels, max-softmax confidences and penultimate features of images ``x``."""
    model.eval()
    preds, confs, feats = [], [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size])
        p = F.softmax(model.fc2(f), dim=1)
        conf, pred = p.max(1)
        preds.append(pred), confs.append(conf), feats.append(f)
    return {"pred": torch.cat(preds), "confidence": torch.cat(confs), "features": torch.cat(feats)}


def load_or_train_classifier(x_train, y_train, path: str | Path, epochs: int = 3, **kw) -> MnistClassifier:
    """Load weights from ``path`` if they exist (trained with the same settings), else train and save."""
    path = Path(path)
    model = MnistClassifier().to(x_train.device)
    if path.exists():
        state = torch.load(path, map_location=x_train.device, weights_only=True)
        if state.get("epochs") == epochs and state.get("n_train") == len(x_train):
            model.load_state_dict(state["model"])
            return model.eval()
    model = train_classifier(x_train, y_train, epochs=epochs, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "epochs": epochs, "n_train": len(x_train)}, path)
    return model
