"""MNIST, FashionMNIST and CIFAR-10 as tensors, offline first, decoded once and cached.

    x, y = load_dataset("mnist", "train", device=device)   # x: (N, 1, 28, 28) float in [0, 1]

Where the loaders look (``root`` defaults to ``data/`` in the repository, or ``$DATA_ROOT``):

* MNIST / FashionMNIST: torchvision's layout, ``root/MNIST/raw/*-ubyte``.
* CIFAR-10: torchvision's pickles ``root/cifar-10-batches-py`` or the ImageFolder JPEG copy
  ``root/cifar10-jpg/{train,test}/<class>/*.jpg`` (the course's offline copy).

Only when none is there does torchvision download (e.g. on Colab). Offline, a missing data set ends
in one ``DataNotFoundError`` that names the folder and the command that fills it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .runtime import REPO_ROOT

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALIASES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist", "fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
}
DATASETS = ("mnist", "fashion_mnist", "cifar10")
_CACHE_VERSION = 1
FILL_HINT = "../shared/data/unpack.sh data"


class DataNotFoundError(FileNotFoundError):
    """The data set is neither on disk nor downloadable; the message says how to fill the folder."""


def default_root() -> Path:
    return Path(os.environ.get("DATA_ROOT") or REPO_ROOT / "data")


def canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    return _ALIASES[key]


_EXPECTED = {
    "MNIST": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (from yann.lecun.com/exdb/mnist, gunzipped)",
    "FashionMNIST": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "CIFAR-10": "cifar-10-batches-py/ (www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked) "
                "or cifar10-jpg/{train,test}/<class>/*.jpg",
}


def _missing(name: str, root: Path, why: str = "") -> DataNotFoundError:
    why = f" ({why})" if why else ""
    return DataNotFoundError(
        f"{name} not found in {root}{why}. Online: allow the download (unset DATA_DOWNLOAD, or run "
        f"`python -m utils.data`) and torchvision fetches it. Offline: place {_EXPECTED[name]} under {root}, "
        f"or set DATA_ROOT to a folder that holds them (course copy: `{FILL_HINT}`)."
    )


def _torchvision_mnist(cls_name: str, root: Path, download: bool) -> dict:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            if not download:
                raise _missing(cls_name, root, "download disabled") from None
            try:
                ds = cls(str(root), train=train, download=True)
            except Exception as err:  # URLError, RuntimeError from every mirror, ...
                raise _missing(cls_name, root, f"download failed: {type(err).__name__}: {str(err)[:120]}") from None
        out[f"{split}_x"] = ds.data.unsqueeze(1).contiguous()  # (N, 28, 28) -> (N, 1, 28, 28)
        out[f"{split}_y"] = ds.targets.long()
    out["classes"] = tuple(ds.classes)
    return out


def _decode_jpeg_folder(split_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageFolder layout -> uint8 (N, 3, H, W), int64 labels, in CIFAR10_CLASSES order."""
    import warnings

    from torchvision.io import decode_jpeg, read_file

    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if tuple(found) != CIFAR10_CLASSES:
        raise ValueError(f"{split_dir} should hold the 10 CIFAR-10 class folders {CIFAR10_CLASSES}, found {found}")
    images, labels = [], []
    for label, cls in enumerate(CIFAR10_CLASSES):
        files = sorted((split_dir / cls).glob("*.jpg"))
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders; they still work
            warnings.simplefilter("ignore", DeprecationWarning)
            data = [read_file(str(f)) for f in files]
            images.extend(decode_jpeg(data))  # batched decode: a list in, a list out
        labels.extend([label] * len(files))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _cifar10(root: Path, download: bool) -> dict:
    import torchvision

    jpg = root / "cifar10-jpg"
    pickles = root / "cifar-10-batches-py"
    out = {"classes": CIFAR10_CLASSES}
    if not pickles.is_dir() and (jpg / "train").is_dir() and (jpg / "test").is_dir():
        for split in ("train", "test"):
            out[f"{split}_x"], out[f"{split}_y"] = _decode_jpeg_folder(jpg / split)
        out["source"] = str(jpg)
        return out
    for split, train in (("train", True), ("test", False)):
        try:
            ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
        except RuntimeError:
            if not download:
                raise _missing("CIFAR-10", root, "download disabled") from None
            try:
                ds = torchvision.datasets.CIFAR10(str(root), train=train, download=True)
            except Exception as err:
                raise _missing("CIFAR-10", root, f"download failed: {type(err).__name__}: {str(err)[:120]}") from None
        out[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        out[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.long)
    out["source"] = str(pickles)
    return out


def load_raw(name: str, root: str | Path | None = None, download: bool | None = None) -> dict:
    """All splits of a data set as uint8 images and int64 labels, from ``root/cache`` when cached.

    ``download`` defaults to ``$DATA_DOWNLOAD`` (on unless set to 0).
    """
    name = canonical_name(name)
    root = Path(root) if root is not None else default_root()
    if download is None:
        download = os.environ.get("DATA_DOWNLOAD", "1") != "0"
    cache = root / "cache" / f"{name}.pt"
    if cache.exists():
        blob = torch.load(cache, weights_only=True, mmap=True)  # pages are read only when touched
        if blob.get("version") == _CACHE_VERSION:
            return blob
    if name == "cifar10":
        blob = _cifar10(root, download)
    else:
        blob = _torchvision_mnist({"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name], root, download)
    blob["version"] = _CACHE_VERSION
    blob["classes"] = list(blob["classes"])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(cache)  # atomic: a crash never leaves a half-written cache
    return blob


def load_dataset(
    name: str,
    split: str = "train",
    *,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as ``(x, y)`` on ``device``: x float32 (N, C, H, W) in [0, 1], y int64 (N,).

    ``limit`` keeps a fixed random subset of that many examples (seed 0, same on every machine),
    so a small subset still has every class.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    blob = load_raw(name, root, download)
    x, y = blob[f"{split}_x"], blob[f"{split}_y"]
    if limit is not None:
        if int(limit) < 1:
            raise ValueError(f"limit must be a positive number of examples, not {limit!r}")
        if limit < len(x):
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:limit].sort().values
            x, y = x[keep], y[keep]
    # Move uint8 (4x fewer bytes), then convert on the device.
    x = x.to(device, non_blocking=True).float().div_(255.0)
    return x, y.to(device)


def main(argv=None) -> int:
    """``python -m utils.data [names]``: load (downloading where allowed) and cache each data set."""
    import argparse

    parser = argparse.ArgumentParser(description="Fetch and cache the data sets the notebooks use.")
    parser.add_argument("names", nargs="*", default=["mnist", "cifar10"], help=f"any of {DATASETS}")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            blob = load_raw(name)
        except DataNotFoundError as err:
            print(err)
            return 1
        print(f"{canonical_name(name)}: train {tuple(blob['train_x'].shape)}, test {tuple(blob['test_x'].shape)} "
              f"in {default_root()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
