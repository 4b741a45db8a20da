"""Time loading each data set (train + test) onto a device: first load (decode + cache) vs cached.

    python bench/bench_data.py [--device cuda] [--datasets mnist cifar10]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from utils.data import canonical_name, default_root, load_dataset  # noqa: E402
from utils.runtime import get_device, hardware  # noqa: E402


def timed(name, device):
    t0 = time.perf_counter()
    for split in ("train", "test"):
        x, _ = load_dataset(name, split, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, x.shape


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    args = parser.parse_args(argv)
    for name in args.datasets:             # every name before the first (slow) load
        try:
            canonical_name(name)
        except ValueError as err:
            parser.error(str(err))
    device = get_device(args.device)
    print(hardware(), "| device:", device)
    for name in args.datasets:
        cached = (default_root() / "cache" / f"{name}.pt").exists()
        first, _ = timed(name, device)
        again, shape = timed(name, device)
        label = "from cache" if cached else "decode + cache"
        print(f"{name:8s} train+test -> {device}: first {first:.2f} s ({label}), cached "
              f"{again:.2f} s; test {tuple(shape)}")


if __name__ == "__main__":
    main()
