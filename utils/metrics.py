"""Metrics the notebooks share: the Fréchet distance between feature sets (Q1's and Q2's samples
against test digits, in the judge's features) and the number of active latent units."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def _feature_pair(feats_a, feats_b) -> tuple[np.ndarray, np.ndarray]:
    """Two feature sets (tensors or arrays) as float64 host arrays, checked: (N, D), the same D."""
    a, b = (np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f,
                       dtype=np.float64) for f in (feats_a, feats_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D; got {a.shape} and {b.shape}")
    for name, f in (("first", a), ("second", b)):
        rows = np.nonzero(~np.isfinite(f).all(1))[0]          # one pass over the features
        if len(rows):
            raise ValueError(f"the {name} feature set holds NaN or inf in {len(rows)} rows "
                             f"(first {rows[:5].tolist()}): the images behind them hold NaN, "
                             "or the network's weights went NaN")
    return a, b


def frechet_distance(feats_a: torch.Tensor | np.ndarray,
                     feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula):

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (Heusel et al. 2017, eq. 6).
    """
    a, b = _feature_pair(feats_a, feats_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two samples per set to fit a covariance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():      # dead ReLU features make the product singular: see below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # near-singular product: regularise as the FID reference
            eps = 1e-6 * np.eye(a.shape[1])
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.trace(covmean))


def active_mask(mu: torch.Tensor, threshold: float = 1e-2) -> torch.Tensor:
    """(latent_dim,) bool: the units whose posterior mean varies over the data,
    Var_x(E_q[z_j | x]) > threshold (Burda et al. 2016, sec. 5.2). ``mu``: (N, latent_dim)
    posterior means of a data set (float64 stays float64)."""
    if mu.dim() != 2:
        raise ValueError(f"mu must be (N, latent_dim); got {tuple(mu.shape)}")
    if len(mu) < 2:
        raise ValueError("active units need the posterior means of at least 2 inputs to measure "
                         f"a variance, got {len(mu)}")
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold must be a number >= 0 (Burda et al.: 0.01), not {threshold!r}")
    mu = mu if mu.dtype == torch.float64 else mu.float()
    return mu.var(dim=0) > threshold


def active_units(mu: torch.Tensor, threshold: float = 1e-2) -> int:
    """How many units are active (``active_mask``)."""
    return int(active_mask(mu, threshold).sum())
