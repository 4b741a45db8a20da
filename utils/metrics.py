"""Metrics shared by the notebooks: PSNR, perplexity, code usage, Fréchet distance, active units."""
from __future__ import annotations

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


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula):

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (Heusel et al. 2017, eq. 6).
    """
    a = np.asarray(feats_a.detach().cpu() if isinstance(feats_a, torch.Tensor) else feats_a, dtype=np.float64)
    b = np.asarray(feats_b.detach().cpu() if isinstance(feats_b, torch.Tensor) else feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D; got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two samples per set to fit a covariance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
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
