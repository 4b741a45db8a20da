"""Independent trainings side by side on a CPU: one worker process per core, one torch thread each.

A small model on a few CPU cores spends much of each step in work that a second thread does not
share (Python, small element-wise kernels, the optimizer), so two single-threaded runs side by side
finish more steps than one two-threaded run: Q1's CVAE on 2 cores, 1.4-1.7 times as many
(``bench/bench_workers.py``).

    results = map_runs(train_one, [(row, seed) for ...], device, shared=(x, y), desc="study")

``map_runs`` returns ``[fn(*shared, *task) for task in tasks]`` in the order of ``tasks``. On a
Linux CPU with more than one core the tasks run in forked worker processes: ``fn`` and ``shared``
reach them through the fork (so functions and classes defined in a notebook work, and the training
data is not copied), the tasks and the results are pickled. Anywhere else (CUDA, MPS, macOS,
Windows, one core, or ``CPU_WORKERS=1``) the tasks run one after the other in this process. Either
way the per-run progress bars stay off and one bar counts the tasks.

A task should seed itself: its result then does not depend on which worker ran it or on how many
there were, and either way the caller's random streams (python, numpy, torch) are left as they were.
The thread count does change the last bits of a float sum, and training carries such differences
forward, so on a CPU the runs of the worker path (one thread each) differ a little from the same
runs made one after the other with more threads (in Q1's study every row's mean moved by less than
its standard deviation over the seeds).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import sys
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from utils import runtime
from utils.checks import check_count

_JOB: tuple | None = None                     # (fn, shared) in a worker process, set by the fork


def cpu_workers(device: torch.device | str) -> int:
    """How many worker processes ``map_runs`` uses: one per available core on a Linux CPU
    (``CPU_WORKERS`` sets the number; 1 turns the workers off), and 1 (no workers) on a GPU or where
    there is no fork."""
    if not _forks(device):
        return 1
    return runtime.env_number("CPU_WORKERS", int, low=1) or len(os.sched_getaffinity(0))


def _forks(device: torch.device | str) -> bool:
    """Worker processes only for CPU runs on Linux, where they start by fork."""
    return (torch.device(device).type == "cpu" and sys.platform.startswith("linux")
            and "fork" in multiprocessing.get_all_start_methods())


def _start_worker(fn: Callable, shared: tuple) -> None:
    global _JOB
    _JOB = (fn, shared)
    # the cores are shared out between the workers (the bars are off already: map_runs turned them
    # off before the fork)
    torch.set_num_threads(1)


def _run_one(indexed_task: tuple[int, tuple]):
    i, task = indexed_task
    fn, shared = _JOB
    return i, fn(*shared, *task)


@contextlib.contextmanager
def _random_streams_kept():
    """The caller's python, numpy and torch (CPU, CUDA) random states, restored after the block."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def map_runs(fn: Callable, tasks: Iterable[Sequence], device: torch.device | str,
             shared: Sequence = (), desc: str | None = None, workers: int | None = None) -> list:
    """``[fn(*shared, *task) for task in tasks]``, side by side in worker processes on a Linux CPU
    (see above). ``workers`` overrides ``cpu_workers(device)`` where workers can run; an exception
    in a task stops the whole map and is raised here."""
    try:
        tasks = [tuple(task) for task in tasks]
    except TypeError:
        raise TypeError("map_runs: tasks must be an iterable of argument tuples, e.g. [(seed,) "
                        "for seed in range(3)] (a bare seed is not a tuple: write "
                        "(seed,))") from None
    shared = tuple(shared)
    if workers is not None:                 # 1: one after the other
        workers = check_count(workers, "workers")
    if workers is None or not _forks(device):
        workers = cpu_workers(device)
    if not callable(fn):
        raise TypeError(f"map_runs: fn must be a function, got {type(fn).__name__}")
    workers = min(int(workers), len(tasks))
    results: list = [None] * len(tasks)
    bar = runtime.progress(total=len(tasks), desc=f"{desc or 'runs'} ({max(workers, 1)} at a time)")
    bars_were_on, runtime.BARS_ON = runtime.BARS_ON, False
    try:
        with _random_streams_kept():
            if workers <= 1:
                for i, task in enumerate(tasks):
                    results[i] = fn(*shared, *task)
                    bar.update()
            else:
                context = multiprocessing.get_context("fork")
                with context.Pool(workers, initializer=_start_worker,
                                  initargs=(fn, shared)) as pool:
                    for i, result in pool.imap_unordered(_run_one, enumerate(tasks)):
                        results[i] = result
                        bar.update()
    finally:
        runtime.BARS_ON = bars_were_on
        bar.close()
    return results
