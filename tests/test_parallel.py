"""utils.parallel.map_runs: the same results in order, whether the tasks run in workers or one after
the other."""
import random
import sys

import numpy as np
import pytest
import torch

from utils import runtime
from utils.parallel import cpu_workers, map_runs

forks = pytest.mark.skipif(cpu_workers("cpu") < 2,
                           reason="worker processes need a Linux CPU with 2 cores or more")


def seeded_draw(scale, seed):
    """A task that seeds itself: its result does not depend on where it runs."""
    torch.manual_seed(seed)
    return scale * torch.randn(5), torch.get_num_threads(), runtime.BARS_ON


def failing(seed):
    if seed == 2:
        raise ValueError(f"task {seed} failed")
    return seed


@forks
def test_workers_give_the_results_of_running_the_tasks_one_after_the_other_in_order():
    tasks = [(seed,) for seed in range(5)]
    side_by_side = map_runs(seeded_draw, tasks, "cpu", shared=(3.0,), workers=2)
    in_turn = map_runs(seeded_draw, tasks, "cpu", shared=(3.0,), workers=1)
    for (a, threads, bars), (b, _, bars_in_turn) in zip(side_by_side, in_turn):
        assert torch.equal(a, b)
        assert threads == 1                                  # one torch thread per worker
        assert not bars and not bars_in_turn                 # the runs' own bars stay off ...
    assert runtime.BARS_ON                                   # ... and come back on afterwards


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=forks)])
def test_the_callers_random_streams_are_left_as_they_were(workers):
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    map_runs(seeded_draw, [(0,), (1,)], "cpu", shared=(1.0,), workers=workers)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=forks)])
def test_a_failing_task_raises_its_own_error(workers):
    with pytest.raises(ValueError, match="task 2 failed"):
        map_runs(failing, [(s,) for s in range(4)], "cpu", workers=workers)
    assert runtime.BARS_ON


def test_no_workers_off_the_cpu_or_when_switched_off(monkeypatch):
    assert cpu_workers("cuda") == 1 and cpu_workers("mps") == 1
    monkeypatch.setenv("CPU_WORKERS", "1")
    assert cpu_workers("cpu") == 1
    monkeypatch.setenv("CPU_WORKERS", "two")
    if sys.platform.startswith("linux"):
        with pytest.raises(runtime.SettingError, match="CPU_WORKERS='two' is not an integer"):
            cpu_workers("cpu")
