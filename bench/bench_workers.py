"""Q1's CVAE trainings one after the other (all cores to one run) against side by side (one worker
per core).

    python bench/bench_workers.py [--runs 4] [--steps 600] [--repeats 3]

Each run is ``train_cvae_mlp`` from Q1_VAE_CVAE.ipynb (the skeleton's model and loop) for
``--steps`` updates of batch 128 on MNIST. The two ways alternate (A B A B ...) so that a drift of
the machine's speed hits both; the line to quote is the median ratio of their wall-clock times.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import count_arg  # noqa: E402
from tools.notebooks import load_definitions  # noqa: E402
from utils.data import load_dataset  # noqa: E402
from utils.parallel import cpu_workers, map_runs  # noqa: E402
from utils.runtime import hardware  # noqa: E402

nb = load_definitions("Q1_VAE_CVAE.ipynb")


def one_run(x, y, seed):
    """One CVAE run, seeded: len(x) // 128 updates."""
    nb.seed_everything(seed)
    model = nb.CVAE_MLP(784, 400, 20, 10, "cpu")
    loader = nb.LoaderOrderBatches(x, y, batch_size=128, seed=seed)
    nb.train_cvae_mlp(model, loader, 1, verbose=False)
    return model


def timed(x, y, runs, workers):
    t0 = time.perf_counter()
    map_runs(one_run, [(seed,) for seed in range(runs)], "cpu", shared=(x, y),
             desc=f"{workers} worker(s)", workers=workers)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=count_arg(1), default=4)
    parser.add_argument("--steps", type=count_arg(1), default=600)
    parser.add_argument("--repeats", type=count_arg(1), default=3)
    args = parser.parse_args(argv)
    workers = cpu_workers("cpu")
    if workers < 2:
        sys.exit("side-by-side runs need a Linux CPU with 2 cores or more (CPU_WORKERS unset or > "
                 "1)")
    x, y = load_dataset("mnist", "train", device="cpu", limit=128 * args.steps)
    print(hardware(), f"| {args.runs} runs of {args.steps} updates; {torch.get_num_threads()} "
                      "threads for one run, "
          f"or {workers} workers of one thread")
    one_after_other, side_by_side = [], []
    for _ in range(args.repeats):
        one_after_other.append(timed(x, y, args.runs, 1))
        side_by_side.append(timed(x, y, args.runs, workers))
    ratios = [a / b for a, b in zip(one_after_other, side_by_side)]
    steps = args.runs * args.steps
    print(f"one after the other: median {statistics.median(one_after_other):.1f} s "
          f"({steps / statistics.median(one_after_other):.0f} updates/s)")
    print(f"side by side:        median {statistics.median(side_by_side):.1f} s "
          f"({steps / statistics.median(side_by_side):.0f} updates/s)")
    print(f"speed-up (pairwise ratio): median {statistics.median(ratios):.2f}, range "
          f"{min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()
