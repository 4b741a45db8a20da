import math

import numpy as np
import pytest
import torch

from utils.metrics import active_units, code_usage, frechet_distance, perplexity, precision_recall, psnr


def test_psnr_known_value():
    x = torch.zeros(2, 3)
    assert psnr(x + 0.1, x) == pytest.approx(20.0)  # mse 0.01 -> 20 dB
    with pytest.raises(ValueError):
        psnr(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("k", [1, 7, 512])
def test_perplexity_bounds(k):
    assert perplexity(torch.arange(k).repeat(3), k) == pytest.approx(k, rel=1e-6)
    assert perplexity(torch.zeros(100, dtype=torch.long), k) == pytest.approx(1.0)
    rand = perplexity(torch.randint(0, k, (1000,)), k)
    assert 1.0 - 1e-6 <= rand <= k + 1e-6


def test_code_usage():
    assert code_usage(torch.tensor([0, 0, 3]), 4) == 0.5


def test_frechet_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 1, (20000, 2)) * np.array([2.0, 0.5]) + np.array([1.0, 0.0])
    # diagonal covariances: |dmu|^2 + sum(sa + sb - 2 sqrt(sa sb)) with sa = 1, sb = (4, 0.25)
    expected = 1.0 + (1 + 4 - 2 * 2) + (1 + 0.25 - 2 * 0.5)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.05)
    assert frechet_distance(torch.tensor(a), torch.tensor(a)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, b[:, :1])


def test_active_units():
    mu = torch.cat([torch.randn(500, 3), torch.full((500, 2), 0.3) + 1e-3 * torch.randn(500, 2)], dim=1)
    assert active_units(mu) == 3
    with pytest.raises(ValueError):
        active_units(torch.zeros(5))


def test_precision_recall_known_answers():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 8, generator=g)
    p, r = precision_recall(real, real + 1e-4 * torch.randn(2000, 8, generator=g))
    assert p > 0.99 and r > 0.99                                   # the same set: inside each other's manifold
    p, r = precision_recall(real, torch.randn(2000, 8, generator=g) + 50.0)
    assert p == 0.0 and r == 0.0                                   # far away: nothing in common
    # mode collapse: samples from one small part of the data are all data-like, but cover little of it
    mode = real[torch.cdist(real[:1], real)[0].argsort()[:200]]     # the 200 points nearest to one point
    collapsed = mode + 1e-3 * torch.randn(mode.shape, generator=g)
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.4                                   # (the 200 points are 10 % of the data)
    with pytest.raises(ValueError, match="same D"):
        precision_recall(real, real[:, :3])
