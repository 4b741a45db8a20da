"""Metrics shared by the notebooks: PSNR, perplexity, code usage, Fréchet distance, precision and recall,
active units."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def psnr(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of the mean squared error over the whole batch."""
    if x_hat.shape != x.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    mse = torch.mean((x_hat.float() - x.float()) ** 2).item()
    return float(10 * np.log10(data_range ** 2 / max(mse, 1e-20)))


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """exp(entropy) of the empirical code distribution: 1 for a single code, K for uniform use."""
    counts = torch.bincount(indices.flatten().long(), minlength=num_codes).double()
    p = counts / counts.sum()
    return float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))


def code_usage(indices: torch.Tensor, num_codes: int) -> float:
    """Fraction of the ``num_codes`` codes used at least once in ``indices``."""
    return float((torch.bincount(indices.flatten().long(), minlength=num_codes) > 0).double().mean())


def _feature_pair(feats_a, feats_b) -> tuple[np.ndarray, np.ndarray]:
    """Two feature sets (tensors or arrays) as float64 host arrays, checked to be (N, D) with the same D."""
    a, b = (np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f, dtype=np.float64)
            for f in (feats_a, feats_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D; got {a.shape} and {b.shape}")
    return a, b


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula):

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (Heusel et al. 2017, eq. 6).
    """
    a, b = _feature_pair(feats_a, feats_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two samples per set to fit a covariance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():      # dead ReLU features make the product singular: handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # near-singular product: regularise as the FID reference does
            eps = 1e-6 * np.eye(a.shape[1])
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def active_units(mu: torch.Tensor, threshold: float = 1e-2) -> int:
    """Latent units whose posterior mean varies over the data: Cov_x(E_q[z_j | x]) > threshold
    (Burda et al. 2016, sec. 5.2). ``mu``: (N, latent_dim) posterior means of a data set."""
    if mu.dim() != 2:
        raise ValueError(f"mu must be (N, latent_dim); got {tuple(mu.shape)}")
    return int((mu.float().var(dim=0) > threshold).sum())


def _kth_neighbour_distance(feats: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from every row of ``feats`` to its k-th nearest other row."""
    out = []
    for i in range(0, len(feats), chunk):
        d = torch.cdist(feats[i:i + chunk], feats)
        out.append(d.kthvalue(k + 1, dim=1).values)          # the 1st "neighbour" is the row itself
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For every point: does it lie within radii[i] of some centres[i]?"""
    out = []
    for i in range(0, len(points), chunk):
        out.append((torch.cdist(points[i:i + chunk], centres) <= radii[None]).any(1))
    return torch.cat(out)


def precision_recall(real_feats, fake_feats, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) in a feature space.

    precision: the share of generated samples inside the real data's manifold (the union of balls around
    each real feature reaching its k-th nearest real neighbour) -- how often a sample looks like data;
    recall: the share of real samples inside the generated manifold -- how much of the data is covered."""
    real, fake = (torch.from_numpy(f).float() for f in _feature_pair(real_feats, fake_feats))
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} samples in each set")
    precision = _inside(fake, real, _kth_neighbour_distance(real, k)).float().mean()
    recall = _inside(real, fake, _kth_neighbour_distance(fake, k)).float().mean()
    return float(precision), float(recall)
