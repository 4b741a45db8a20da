"""MNIST and CIFAR-10 as tensors, offline first, decoded once and cached.

    x, y = load_dataset("mnist", "train", device=device)   # x: (N, 1, 28, 28) float in [0, 1]

Where the loaders look (``root`` defaults to ``data/`` in the repository, or ``$DATA_ROOT``):

* MNIST: torchvision's layout, ``root/MNIST/raw/*-ubyte``.
* CIFAR-10: torchvision's pickles ``root/cifar-10-batches-py`` or the ImageFolder JPEG copy
  ``root/cifar10-jpg/{train,test}/<class>/*.jpg`` (the course's offline copy).

Only when none is there does torchvision download (e.g. on Colab). Offline, a missing data set ends
in one ``DataNotFoundError`` that names the folder and the command that fills it; a file that is
there but truncated or corrupt ends in a ``DataCorruptError`` that names the file and how to replace
it.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from .checks import check_count
from .runtime import REPO_ROOT

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
_ALIASES = {"mnist": "mnist", "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10"}
DATASETS = ("mnist", "cifar10")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
_CACHE_VERSION = 1
FILL_HINT = "../shared/data/unpack.sh data"


class DataNotFoundError(FileNotFoundError):
    """The data set is neither on disk nor downloadable; the message says how to fill the folder."""


class DataCorruptError(ValueError):
    """A data file is on disk but truncated or unreadable; the message names it and the fix."""


def default_root() -> Path:
    return Path(os.environ.get("DATA_ROOT") or REPO_ROOT / "data")


def canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    return _ALIASES[key]


_EXPECTED = {
    "MNIST": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (from "
             "yann.lecun.com/exdb/mnist, gunzipped)",
    "CIFAR-10": "cifar-10-batches-py/ (www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked) "
                "or cifar10-jpg/{train,test}/<class>/*.jpg",
}


def _missing(name: str, root: Path, why: str = "") -> DataNotFoundError:
    why = f" ({why})" if why else ""
    return DataNotFoundError(
        f"{name} not found in {root}{why}. Online: allow the download (unset DATA_DOWNLOAD, or run "
        f"`python -m utils.data`) and torchvision fetches it. Offline: place {_EXPECTED[name]} "
        f"under {root}, or set DATA_ROOT to a folder that holds them (course copy: `{FILL_HINT}`)."
    )


def _idx_problem(path: Path) -> str:
    """Why an IDX file (MNIST's format) is unusable, or "" if its size matches its header."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:3] != b"\x00\x00\x08":
            return "it does not start with an IDX header (a .gz not yet gunzipped? another file?)"
        dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return f"its header is cut short ({size} bytes)"
    sizes = (int.from_bytes(dims[i:i + 4], "big") for i in range(0, len(dims), 4))
    expected = 4 + len(dims) + math.prod(sizes)
    if size == expected:
        return ""
    return f"it has {size:,} bytes where its header promises {expected:,}: truncated"


def _check_mnist_files(root: Path) -> None:
    """Raw MNIST files that are there are whole (torchvision calls a broken one 'not found')."""
    for name in MNIST_FILES:
        path = root / "MNIST" / "raw" / name
        why = _idx_problem(path) if path.is_file() else ""
        if why:
            raise DataCorruptError(
                f"{path}: {why}. Delete it and put the original back (gunzip the .gz of the MNIST "
                f"distribution, `{FILL_HINT}`, or `python -m utils.data` online).")


def _torchvision_mnist(cls_name: str, root: Path, download: bool) -> dict:
    import torchvision

    _check_mnist_files(root)
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
                raise _missing(cls_name, root, f"download failed: {type(err).__name__}: "
                                               f"{str(err)[:120]}") from None
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
        raise ValueError(f"{split_dir} should hold the 10 CIFAR-10 class folders "
                         f"{CIFAR10_CLASSES}, found {found}")
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
                raise _missing("CIFAR-10", root, f"download failed: {type(err).__name__}: "
                                                 f"{str(err)[:120]}") from None
        out[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC->NCHW
        out[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.long)
    out["source"] = str(pickles)
    return out


def download_allowed() -> bool:
    """Whether a missing data set may be downloaded: ``$DATA_DOWNLOAD`` (on unless set to 0)."""
    return os.environ.get("DATA_DOWNLOAD", "1") != "0"


def load_raw(name: str, root: str | Path | None = None, download: bool | None = None) -> dict:
    """All splits of a data set as uint8 images and int64 labels, from ``root/cache`` when cached.

    ``download`` defaults to ``$DATA_DOWNLOAD`` (on unless set to 0).
    """
    name = canonical_name(name)
    root = Path(root) if root is not None else default_root()
    if download is None:
        download = download_allowed()
    cache = root / "cache" / f"{name}.pt"
    if cache.exists():
        try:
            blob = torch.load(cache, weights_only=True, mmap=True)  # pages read only when touched
        except Exception as err:    # truncated or foreign file: the cache is derived data: rebuild
            warnings.warn(f"{cache} is unreadable ({type(err).__name__}); rebuilding it from the "
                          "raw files")
            blob = {}
        if blob.get("version") == _CACHE_VERSION:
            return blob
    blob = (_cifar10(root, download) if name == "cifar10"
            else _torchvision_mnist("MNIST", root, download))
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

    ``limit`` (a whole number >= 1, or None: all) keeps a fixed random subset of that many examples
    (seed 0, same on every machine), so a small subset still has every class.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if limit is not None:                   # before any file is read: limit="500" or 2.5 is refused
        limit = check_count(limit, "limit")
    try:                                    # "gpu" or a typo fails here, before decoding the data
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:0' or "
                         "'mps' (in a notebook: RUN.device)") from None
    blob = load_raw(name, root, download)
    x, y = blob[f"{split}_x"], blob[f"{split}_y"]
    if limit is not None:
        if limit < len(x):
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
            keep = order[:limit].sort().values
            x, y = x[keep], y[keep]
    # Move uint8 (4x fewer bytes), then convert on the device.
    x = x.to(device, non_blocking=True).float().div_(255.0)
    return x, y.to(device)


def main(argv=None) -> int:
    """``python -m utils.data [names]``: load (download where allowed) and cache each data set."""
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
        print(f"{canonical_name(name)}: train {tuple(blob['train_x'].shape)}, test "
              f"{tuple(blob['test_x'].shape)} in {default_root()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
