"""The Higgins et al. (2017) and Kim & Mnih (2018) metrics on representations whose answer is known:
the ground-truth factors themselves (~100 %), random noise (chance), and K-1 of K factors (the case
Kim & Mnih use to criticise the first metric)."""
import pytest
import torch
import torch.nn.functional as F

from extras.disentanglement import (factor_association, factorvae_score, fit_logistic_regression,
                                   higgins_points, higgins_score)
from extras.dsprites import FACTOR_SIZES, sample_factors

SIZES = torch.tensor(FACTOR_SIZES)
K = len(FACTOR_SIZES)
SMALL = dict(n_train=1500, n_test=1000)


def perfect(f):
    """A perfect encoder: one unit per factor, the factor's index scaled to [0, 1]."""
    return f.double() / (SIZES - 1)


def without_first_factor(f):
    """K - 1 of the K factors have a unit; the first (shape) has none."""
    return perfect(f)[:, 1:]


def noise_encoder(seed=0, dim=10):
    g = torch.Generator().manual_seed(seed)
    return lambda f: torch.randn(len(f), dim, generator=g)


def test_higgins_points_zero_diff_on_the_fixed_factor():
    z_diff, y = higgins_points(perfect, FACTOR_SIZES, 200, batch_size=16)
    assert z_diff.shape == (200, K) and y.shape == (200,)
    assert torch.all(z_diff[torch.arange(200), y] == 0)  # the fixed factor's unit never changes
    others = z_diff.masked_fill(F.one_hot(y, K).bool(), float("inf"))
    assert others.min() > 0.05  # ... while every other unit does


def test_perfect_encoder_scores_100_percent_on_both_metrics():
    h = higgins_score(perfect, FACTOR_SIZES, **SMALL)
    f = factorvae_score(perfect, FACTOR_SIZES, **SMALL, n_variance=4000)
    assert h["test_accuracy"] >= 0.99 and h["chance"] == pytest.approx(1 / K)
    assert f["test_accuracy"] == 1.0 and f["active_dims"] == K
    assert torch.equal(f["majority"], torch.arange(K))  # unit k votes for factor k
    assert h["confusion"].sum() == SMALL["n_test"]


def test_random_noise_scores_near_chance():
    h = higgins_score(noise_encoder(1), FACTOR_SIZES, **SMALL)
    f = factorvae_score(noise_encoder(2), FACTOR_SIZES, **SMALL, n_variance=4000)
    assert abs(h["test_accuracy"] - 0.2) < 0.06
    assert abs(f["test_accuracy"] - 0.2) < 0.06


def test_k_minus_one_factors_fools_the_linear_classifier_not_the_majority_vote():
    h = higgins_score(without_first_factor, FACTOR_SIZES, **SMALL)
    f = factorvae_score(without_first_factor, FACTOR_SIZES, **SMALL, n_variance=4000)
    assert h["test_accuracy"] >= 0.98  # Kim & Mnih's failure mode of the beta-VAE metric
    assert f["test_accuracy"] == pytest.approx((K - 1) / K, abs=0.03)


def test_factorvae_is_invariant_to_unit_scale_and_order_and_prunes_dead_units():
    perm = torch.tensor([3, 0, 4, 1, 2])
    scale = torch.tensor([100.0, 0.4, 3.0, 7.0, 0.5], dtype=torch.float64)

    # (a unit's std must stay above the absolute prune threshold 0.05: index/31 * 0.4 has std ~0.12)
    def messy(f):  # permuted, rescaled units plus two dead units (zero and a tiny constant)
        z = perfect(f)[:, perm] * scale
        return torch.cat([z, torch.zeros(len(f), 1), 1e-4 * torch.ones(len(f), 1)], dim=1)

    f = factorvae_score(messy, FACTOR_SIZES, **SMALL, n_variance=4000)
    assert f["active_dims"] == K and f["test_accuracy"] == 1.0
    assert torch.equal(f["majority"][:K], perm)
    dead = factorvae_score(lambda f: torch.zeros(len(f), 3), FACTOR_SIZES, n_train=10, n_test=10,
                           n_variance=100)
    assert dead["active_dims"] == 0 and dead["test_accuracy"] == 0.0


def test_logistic_regression_minimises_the_scikit_learn_objective():
    # reference: the objective C * sum CE + |W|^2 / 2 is strictly convex, so the fit is its minimum
    # exactly when the gradient (computed here independently by autograd) vanishes
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 4, generator=g, dtype=torch.float64)
    w_true = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    y = (x @ w_true + 0.5 * torch.randn(600, generator=g) > 0).long() + (x[:, 3] > 1).long()
    predict = fit_logistic_regression(x, y, 3, C=0.05)
    w = predict.weight.clone().requires_grad_()
    b = predict.bias.clone().requires_grad_()
    loss = 0.05 * F.cross_entropy(x @ w + b, y, reduction="sum") + 0.5 * (w * w).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4
    assert float((predict(x) == y).double().mean()) > 0.8


def test_factor_association_matches_a_direct_group_mean_computation():
    f = sample_factors(3000, generator=torch.Generator().manual_seed(4))
    eta = factor_association(perfect(f), f, FACTOR_SIZES)
    assert torch.allclose(eta.diag(), torch.ones(K, dtype=torch.float64))
    g = torch.Generator().manual_seed(5)
    codes = torch.randn(3000, 2, generator=g, dtype=torch.float64) + 0.3 * f[:, 3:4].double()
    eta = factor_association(codes, f, FACTOR_SIZES)
    z = codes[:, 0]
    group_means = torch.stack([z[f[:, 3] == v].mean() for v in range(FACTOR_SIZES[3])])
    counts = torch.bincount(f[:, 3], minlength=FACTOR_SIZES[3]).double()
    direct = (counts * (group_means - z.mean()) ** 2).sum() / ((z - z.mean()) ** 2).sum()
    assert eta[0, 3] == pytest.approx(float(direct), rel=1e-9)
    assert eta[:, [0, 1, 2, 4]].max() < 0.03  # independent factors explain ~nothing


def test_metrics_reject_bad_representations():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        higgins_score(lambda f: torch.zeros(len(f)), FACTOR_SIZES, n_train=5, n_test=5)
    with pytest.raises(ValueError, match="at least two"):
        higgins_score(perfect, [5], n_train=5, n_test=5)


def test_factorvae_takes_ones_own_active_mask():
    def code(f):  # the true factors and a unit that varies a little (std ~0.03, below K & M's 0.05)
        g = torch.Generator().manual_seed(len(f))
        wobble = 0.03 * torch.randn(len(f), 1, generator=g, dtype=torch.float64)
        return torch.cat([perfect(f), wobble], dim=1)

    default = factorvae_score(code, FACTOR_SIZES, **SMALL, n_variance=4000)
    assert default["active_dims"] == K  # pruned by std < 0.05
    keep_all = factorvae_score(code, FACTOR_SIZES, **SMALL, n_variance=4000,
                               active=torch.ones(K + 1, dtype=torch.bool))
    assert keep_all["active_dims"] == K + 1
    drop_shape = torch.tensor([False] + [True] * (K - 1) + [False])
    fewer = factorvae_score(code, FACTOR_SIZES, **SMALL, n_variance=4000, active=drop_shape)
    assert fewer["active_dims"] == K - 1
    assert fewer["test_accuracy"] == pytest.approx((K - 1) / K, abs=0.03)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: higgins_score(lambda f: torch.zeros(len(f)), FACTOR_SIZES, n_train=5, n_test=5),
     ValueError, r"\(N, D\)"),
    (lambda: higgins_score(lambda f: torch.zeros(3, 2), FACTOR_SIZES, n_train=5, n_test=5),
     ValueError, r"\(N, D\)"),
    (lambda: higgins_score(perfect, [5], n_train=5, n_test=5), ValueError, "at least two"),
    (lambda: higgins_score(perfect, [5, 1], n_train=5, n_test=5), ValueError, "at least two"),
    (lambda: higgins_points(perfect, FACTOR_SIZES, 0), ValueError, "n_points"),
    (lambda: factorvae_score(perfect, FACTOR_SIZES, n_train=5, n_test=5, batch_size=1),
     ValueError, "batch_size"),
    (lambda: factorvae_score(perfect, FACTOR_SIZES, n_train=5, n_test=5, n_variance=100,
                             active=torch.ones(K + 2, dtype=torch.bool)),
     ValueError, "one entry per unit"),
    (lambda: factorvae_score(perfect, FACTOR_SIZES, n_train=5, n_test=5, n_variance=100,
                             active=torch.ones(K)), ValueError, "bool mask"),
    (lambda: factor_association(torch.zeros(10, 2), torch.zeros(9, K, dtype=torch.long),
                                FACTOR_SIZES),
     ValueError, r"codes must be \(N, D\)"),
    (lambda: factor_association(torch.zeros(10, 2), torch.zeros(10, 3, dtype=torch.long),
                                FACTOR_SIZES),
     ValueError, r"factors \(N, 5\)"),
])
def test_bad_input_to_the_metrics_gets_a_clear_error(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()
