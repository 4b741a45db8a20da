"""Disentanglement metrics for data with known generative factors (e.g. ``extras.dsprites``).

Both metrics fix one ground-truth factor y, look at how the representation of a batch of images
behaves, and ask which factor was fixed:

* ``higgins_score`` -- Higgins et al., "beta-VAE", ICLR 2017 (the paper's disentanglement metric).
  For one training point:
  draw L pairs of factor vectors (v1_l, v2_l) that agree on factor y and are independent otherwise,
  encode both images of each pair to posterior means, and average the absolute differences,
  z_diff = 1/L sum_l |z1_l - z2_l|. A linear classifier (multinomial logistic regression) learns
  p(y | z_diff) on ``n_train`` points; the score is its accuracy on ``n_test`` new points.
  If one latent unit alone codes y, that unit's entry of z_diff is ~0 and the task is easy.
* ``factorvae_score`` -- Kim & Mnih, "Disentangling by Factorising", ICML 2018. Divide
  each unit by its standard deviation over the whole data, drop units collapsed to the prior
  (std < ``prune_threshold`` before dividing), fix factor y across a batch of L images, and vote
  (y, argmin_d Var_batch[z_d] / Var_data[z_d]). The classifier is a majority vote per unit
  (no parameters to tune); the score is its accuracy on fresh votes.

Kim & Mnih's critique of the first: a linear classifier on z_diff can still score 100 % when only
K - 1 of the K factors have their own unit (the remaining factor is recognised as "no unit is ~0"),
and it depends on the classifier's optimiser. The majority vote scores (K - 1) / K in that case.

Both take a ``represent`` function from factor indices to codes, so the same code scores a trained
encoder (``lambda f: encoder_mu(render(f))``), the ground truth itself, or noise::

    score = higgins_score(lambda f: model_mu(render(f)), FACTOR_SIZES, n_train=10_000, n_test=5_000)

Defaults follow the paper for L (64) and the sample sizes used by disentanglement_lib's study
configuration (10,000 train / 5,000 test points, 10,000 images for the variances, prune at 0.05).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Represent = Callable[[torch.Tensor], torch.Tensor]


def _sample(n: int, factor_sizes: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """(n, K) factor indices drawn uniformly and independently (CPU)."""
    cols = [torch.randint(int(s), (n,), generator=generator) for s in factor_sizes]
    return torch.stack(cols, dim=1)


def _encode(represent: Represent, factors: torch.Tensor, device, chunk: int) -> torch.Tensor:
    """represent() over ``factors`` in chunks of ``chunk`` rows -> (N, D) float64 on the CPU."""
    codes = []
    with torch.no_grad():
        for start in range(0, len(factors), chunk):
            part = factors[start:start + chunk]
            z = represent(part.to(device))
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or len(z) != len(part):
                raise ValueError("represent(factors) must return an (N, D) tensor for (N, K) "
                                 f"factors; got {type(z).__name__} "
                                 f"{tuple(getattr(z, 'shape', ()))}")
            codes.append(z.detach().double().cpu())
    return torch.cat(codes)


def _check_sizes(factor_sizes: Sequence[int]) -> list[int]:
    sizes = [int(s) for s in factor_sizes]
    if len(sizes) < 2 or min(sizes) < 2:
        raise ValueError("need at least two factors with at least two values each; got sizes "
                         f"{sizes}")
    return sizes


# ----------------------------------------------------------------------------------------------
# Higgins et al. (2017)
# ----------------------------------------------------------------------------------------------

def higgins_points(represent: Represent, factor_sizes: Sequence[int], n_points: int,
                   batch_size: int = 64, generator: torch.Generator | None = None, device=None,
                   chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_points`` samples (z_diff, y) of the beta-VAE metric: (n_points, D) float64 and
    (n_points,) int64.

    For each point: y ~ U{0..K-1}; L = ``batch_size`` pairs of factor vectors that share factor y;
    z_diff = mean over the L pairs of |represent(v1) - represent(v2)| (Higgins et al. 2017).
    """
    sizes = _check_sizes(factor_sizes)
    k, L = len(sizes), int(batch_size)
    if L < 1 or n_points < 1:
        raise ValueError(f"batch_size (L) and n_points must be >= 1; got {L} and {n_points}")
    generator = generator or torch.Generator().manual_seed(0)
    y = torch.randint(k, (int(n_points),), generator=generator)
    per_chunk = max(1, chunk // (2 * L))  # points whose 2L images are encoded together
    diffs = []
    for start in range(0, len(y), per_chunk):
        yc = y[start:start + per_chunk]
        p = len(yc)
        v1 = _sample(p * L, sizes, generator).view(p, L, k)
        v2 = _sample(p * L, sizes, generator).view(p, L, k)
        same = F.one_hot(yc, k).bool().view(p, 1, k).expand(p, L, k)
        v2 = torch.where(same, v1, v2)  # the pair agrees on factor y only
        z = _encode(represent, torch.cat([v1.reshape(-1, k), v2.reshape(-1, k)]), device, chunk)
        z1, z2 = z[:p * L].view(p, L, -1), z[p * L:].view(p, L, -1)
        diffs.append((z1 - z2).abs().mean(dim=1))
    return torch.cat(diffs), y


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, num_classes: int, C: float = 1.0,
                            max_iter: int = 500):
    """Multinomial logistic regression with scikit-learn's default objective, by full-batch L-BFGS:

        minimise  C * sum_i CE(W x_i + b, y_i) + 1/2 |W|^2        (raw features, bias not penalised)

    which is what disentanglement_lib's beta-VAE metric fits (``LogisticRegression()`` defaults).
    Deterministic (zero start, no sampling). Returns ``predict(x) -> labels``.
    """
    x, y = x.double(), y.long()
    if x.dim() != 2 or len(x) != len(y):
        raise ValueError(f"x must be (N, D) and y (N,); got {tuple(x.shape)} and {tuple(y.shape)}")
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        # divided by C * N so the numbers stay O(1); the minimiser is the same
        return F.cross_entropy(x @ w + b, y) + 0.5 * (w * w).sum() / (C * len(x))

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()

    def predict(x_new: torch.Tensor) -> torch.Tensor:
        return (x_new.double() @ w + b).argmax(dim=1)

    predict.weight, predict.bias = w, b
    return predict


def higgins_score(represent: Represent, factor_sizes: Sequence[int], n_train: int = 10_000,
                  n_test: int = 5_000, batch_size: int = 64, seed: int = 0, device=None,
                  chunk: int = 4096) -> dict:
    """The beta-VAE disentanglement metric: test accuracy of a linear classifier predicting the
    fixed factor from z_diff. Returns {"test_accuracy", "train_accuracy", "chance", "confusion",
    ...}."""
    sizes = _check_sizes(factor_sizes)
    gen = torch.Generator().manual_seed(seed)
    x_tr, y_tr = higgins_points(represent, sizes, n_train, batch_size, gen, device, chunk)
    x_te, y_te = higgins_points(represent, sizes, n_test, batch_size, gen, device, chunk)
    predict = fit_logistic_regression(x_tr, y_tr, len(sizes))
    pred_te = predict(x_te)
    confusion = torch.zeros(len(sizes), len(sizes), dtype=torch.long)
    confusion.index_put_((y_te, pred_te), torch.ones_like(y_te), accumulate=True)
    return {
        "test_accuracy": float((pred_te == y_te).double().mean()),
        "train_accuracy": float((predict(x_tr) == y_tr).double().mean()),
        "chance": 1.0 / len(sizes),
        "confusion": confusion,  # rows: fixed factor, columns: predicted factor (test points)
        "n_train": int(n_train), "n_test": int(n_test), "batch_size": int(batch_size),
    }


# ----------------------------------------------------------------------------------------------
# Kim & Mnih (2018)
# ----------------------------------------------------------------------------------------------

def factorvae_votes(represent: Represent, factor_sizes: Sequence[int], n_votes: int,
                    global_var: torch.Tensor, active: torch.Tensor, batch_size: int = 64,
                    generator: torch.Generator | None = None, device=None,
                    chunk: int = 4096) -> torch.Tensor:
    """(K, D) vote counts: votes[y, d] = how often unit d had the least normalised variance in a
    batch of L = ``batch_size`` images sharing factor y (a uniformly drawn y and value per vote)."""
    sizes = _check_sizes(factor_sizes)
    k, L = len(sizes), int(batch_size)
    if L < 2:
        raise ValueError(f"batch_size must be >= 2 to estimate a variance; got {L}")
    generator = generator or torch.Generator().manual_seed(0)
    y = torch.randint(k, (int(n_votes),), generator=generator)
    per_chunk = max(1, chunk // L)
    votes = torch.zeros(k, len(global_var), dtype=torch.long)
    for start in range(0, len(y), per_chunk):
        yc = y[start:start + per_chunk]
        p = len(yc)
        f = _sample(p * L, sizes, generator).view(p, L, k)
        fixed = f[:, :1, :].expand(p, L, k)  # the first image's value of every factor ...
        keep = F.one_hot(yc, k).bool().view(p, 1, k).expand(p, L, k)
        f = torch.where(keep, fixed, f)                                 # ... kept for y
        z = _encode(represent, f.reshape(-1, k), device, chunk).view(p, L, -1)
        ratio = z.var(dim=1, unbiased=True) / global_var
        ratio[:, ~active] = float("inf")  # collapsed units never win the argmin
        d = ratio.argmin(dim=1)
        votes.index_put_((yc, d), torch.ones_like(yc), accumulate=True)
    return votes


def factorvae_score(represent: Represent, factor_sizes: Sequence[int], n_train: int = 10_000,
                    n_test: int = 5_000, batch_size: int = 64, n_variance: int = 10_000,
                    prune_threshold: float = 0.05, seed: int = 0, device=None, chunk: int = 4096,
                    active: torch.Tensor | None = None) -> dict:
    """The FactorVAE disentanglement metric: accuracy of the per-unit majority vote on fresh votes.

    ``active``: a (D,) bool mask of the units to keep, to use one's own definition of an active
    unit; by default Kim & Mnih's pruning, std of the unit over the data >= ``prune_threshold``.
    Returns {"test_accuracy", "train_accuracy", "chance", "active_dims", "majority", "votes"}."""
    sizes = _check_sizes(factor_sizes)
    gen = torch.Generator().manual_seed(seed)
    z = _encode(represent, _sample(int(n_variance), sizes, gen), device, chunk)
    global_var = z.var(dim=0, unbiased=True)
    if active is None:
        active = global_var.sqrt() >= prune_threshold
    else:
        active = torch.as_tensor(active).cpu()
        if active.dtype != torch.bool or active.shape != global_var.shape:
            raise ValueError("active must be a bool mask with one entry per unit, shape "
                             f"{tuple(global_var.shape)}; got {active.dtype} "
                             f"{tuple(active.shape)}")
    result = {"chance": 1.0 / len(sizes), "active_dims": int(active.sum()), "n_train": int(n_train),
              "n_test": int(n_test), "batch_size": int(batch_size)}
    if not active.any():  # every unit collapsed: nothing can be voted for
        return {**result, "test_accuracy": 0.0, "train_accuracy": 0.0, "majority": None,
                "votes": None}
    global_var = global_var.clamp_min(1e-12)
    votes = (global_var, active, batch_size, gen, device, chunk)
    train = factorvae_votes(represent, sizes, n_train, *votes)
    test = factorvae_votes(represent, sizes, n_test, *votes)
    majority = train.argmax(dim=0)  # the factor each unit votes for most often
    cols = torch.arange(train.shape[1])
    return {**result,
            "train_accuracy": float(train[majority, cols].sum() / train.sum()),
            "test_accuracy": float(test[majority, cols].sum() / test.sum()),
            "majority": majority, "votes": train}


# ----------------------------------------------------------------------------------------------
# Which factor does a unit track?
# ----------------------------------------------------------------------------------------------

def factor_association(codes: torch.Tensor, factors: torch.Tensor,
                       factor_sizes: Sequence[int]) -> torch.Tensor:
    """(D, K) correlation ratio eta^2: the fraction of unit d's variance explained by factor k's
    value, Var(E[z_d | v_k]) / Var(z_d). 1 when z_d is a function of v_k alone, ~0 when
    independent of it. Works for categorical (shape) and cyclic (orientation) factors alike, unlike
    a correlation."""
    sizes = _check_sizes(factor_sizes)
    codes, factors = codes.double().cpu(), factors.long().cpu()
    if (codes.dim() != 2 or factors.dim() != 2 or len(codes) != len(factors)
            or factors.shape[1] != len(sizes)):
        raise ValueError(f"codes must be (N, D) and factors (N, {len(sizes)}); got "
                         f"{tuple(codes.shape)} and {tuple(factors.shape)}")
    centred = codes - codes.mean(0)
    total = (centred ** 2).sum(0).clamp_min(1e-12)
    eta = torch.zeros(codes.shape[1], len(sizes), dtype=torch.float64)
    for k, size in enumerate(sizes):
        counts = torch.bincount(factors[:, k], minlength=size).double()
        sums = torch.zeros(size, codes.shape[1], dtype=torch.float64)
        sums.index_add_(0, factors[:, k], centred)
        between = (sums ** 2 / counts.clamp_min(1).unsqueeze(1)).sum(0)  # sum_g n_g * mean_g^2
        eta[:, k] = between / total
    return eta
