import struct

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg

from utils.data import (CIFAR10_CLASSES, DataCorruptError, DataNotFoundError, canonical_name,
                        load_dataset, load_raw)
from utils.runtime import REPO_ROOT as ROOT


def write_idx(path, array):
    """Write an IDX (MNIST) file: magic (0, 0, uint8 type 0x08, ndim), big-endian dims, bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = (struct.pack(">BBBB", 0, 0, 8, array.ndim)
              + struct.pack(f">{array.ndim}I", *array.shape))
    path.write_bytes(header + array.tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


@pytest.fixture
def tiny_cifar_jpg(tmp_path):
    for split, per_class in (("train", 3), ("test", 2)):
        for c, name in enumerate(CIFAR10_CLASSES):
            folder = tmp_path / "cifar10-jpg" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = torch.full((3, 32, 32), 20 * c + i, dtype=torch.uint8)
                jpeg = encode_jpeg(img, quality=95).numpy().tobytes()
                (folder / f"{i:04d}.jpg").write_bytes(jpeg)
    return tmp_path


@pytest.mark.parametrize("name", ["imagenet", "", "mnist2"])
def test_unknown_name_lists_choices(name):
    with pytest.raises(ValueError, match="choose one of"):
        canonical_name(name)


def test_aliases():
    assert canonical_name("CIFAR-10") == "cifar10" and canonical_name(" MNIST ") == "mnist"


def test_bad_split_and_limit(tiny_mnist):
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("mnist", "val", root=tiny_mnist)
    with pytest.raises(ValueError, match="limit must be a whole number >= 1, not 0"):
        load_dataset("mnist", "train", root=tiny_mnist, limit=0)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_empty_folder_offline_gives_one_clear_line(tmp_path, name):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, root=tmp_path, download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path) in msg and "python -m utils.data" in msg      # online: how to download
    # offline: what to place where
    assert ("ubyte" in msg or "cifar-10-batches-py" in msg) and "DATA_ROOT" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback


def test_mnist_from_raw_then_cache(tiny_mnist):
    x, y = load_dataset("mnist", "train", root=tiny_mnist)
    assert x.shape == (50, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and y.dtype == torch.int64
    assert torch.equal(y, torch.arange(50) % 10)
    xt, _ = load_dataset("mnist", "test", root=tiny_mnist)
    assert xt.shape == (20, 1, 28, 28)
    assert (tiny_mnist / "cache" / "mnist.pt").exists()
    for f in (tiny_mnist / "MNIST" / "raw").iterdir():  # the cache alone must now suffice
        f.unlink()
    x2, y2 = load_dataset("mnist", "train", root=tiny_mnist)
    assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.parametrize("damage, fragment", [
    (lambda b: b[:len(b) // 2], "truncated"),                 # a copy cut short
    (lambda b: b[:6], "header is cut short"),
    (lambda b: b"\x1f\x8b" + b[2:], "not yet gunzipped"),      # still gzip-compressed
    (lambda b: b"", "does not start with an IDX header"),
])
def test_a_broken_mnist_file_is_named_not_called_missing(tiny_mnist, damage, fragment):
    path = tiny_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataCorruptError) as info:
        load_dataset("mnist", root=tiny_mnist, download=False)
    message = str(info.value)
    assert fragment in message and str(path) in message and "Delete it" in message


def test_a_truncated_cache_is_named_and_rebuilt(tiny_mnist):
    x, _ = load_dataset("mnist", root=tiny_mnist)
    cache = tiny_mnist / "cache" / "mnist.pt"
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning, match="mnist.pt is unreadable"):
        x2, _ = load_dataset("mnist", root=tiny_mnist)
    assert torch.equal(x, x2)


def test_mnist_pixels_exact(tiny_mnist):
    raw = load_raw("mnist", tiny_mnist)["train_x"]
    x, _ = load_dataset("mnist", "train", root=tiny_mnist)
    assert torch.equal((x * 255).round().to(torch.uint8), raw)


def test_cifar_jpeg_folder(tiny_cifar_jpg):
    x, y = load_dataset("cifar10", "train", root=tiny_cifar_jpg)
    assert x.shape == (30, 3, 32, 32)
    assert torch.equal(y.bincount(), torch.full((10,), 3))
    # class c was written with grey level 20c + i: decoded pixel means follow the class order
    means = torch.stack([x[y == c].mean() * 255 for c in range(10)])
    assert torch.allclose(means, torch.arange(10) * 20.0 + 1.0, atol=3)
    assert load_raw("cifar10", tiny_cifar_jpg)["classes"] == list(CIFAR10_CLASSES)


def test_cifar_wrong_class_folders(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "cifar10-jpg" / split / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="10 CIFAR-10 class folders"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_limit_is_a_fixed_stratified_looking_subset(tiny_cifar_jpg):
    a, ya = load_dataset("cifar10", "train", root=tiny_cifar_jpg, limit=12)
    b, yb = load_dataset("cifar10", "train", root=tiny_cifar_jpg, limit=12)
    assert a.shape[0] == 12 and torch.equal(a, b) and torch.equal(ya, yb)
    assert len(ya.unique()) > 3  # not the first 12 files (which would be 4 classes in folder order)


REAL = ROOT / "data"


@pytest.mark.skipif(not (REAL / "MNIST" / "raw" / "train-images-idx3-ubyte").exists(),
                    reason="data/ not filled")
def test_real_mnist_shapes_and_balance():
    x, y = load_dataset("mnist", "train")
    xt, yt = load_dataset("mnist", "test")
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert y.bincount().tolist()[:2] == [5923, 6742]  # the known MNIST train label counts


@pytest.mark.skipif(not (REAL / "cifar10-jpg" / "test").exists()
                    and not (REAL / "cifar-10-batches-py").exists(), reason="data/ not filled")
def test_real_cifar_shapes_and_balance():
    x, y = load_dataset("cifar10", "test")
    assert x.shape == (10000, 3, 32, 32)
    assert y.bincount().tolist() == [1000] * 10
