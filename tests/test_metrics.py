
import numpy as np
import pytest
import torch

from utils.metrics import active_units, frechet_distance


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
    still = torch.full((500, 2), 0.3) + 1e-3 * torch.randn(500, 2)       # two inactive units
    mu = torch.cat([torch.randn(500, 3), still], dim=1)
    assert active_units(mu) == 3
    with pytest.raises(ValueError):
        active_units(torch.zeros(5))
