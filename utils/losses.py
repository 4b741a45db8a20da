"""The loss terms of a VAE, written once: the Gaussian KL per unit and the Bernoulli NLL per image.

    kl = gaussian_kl(mu, logvar).sum(1)      # KL(q(z|x) || N(0, I)) per image, nats: (N,)
    recon = bernoulli_nll(x_logits, x)       # -log p(x|z) of a Bernoulli decoder on logits: (N,)

Both are checked against ``torch.distributions`` in tests/test_losses.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per image and unit, in nats: (N, D).
    0.5 (mu^2 + sigma^2 - log sigma^2 - 1); sum over dim 1 for the KL of a diagonal Gaussian."""
    if mu.shape != logvar.shape:
        raise ValueError(f"gaussian_kl: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must "
                         "have the same shape (N, latent_dim): split the encoder's output with "
                         ".chunk(2, dim=1)")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def bernoulli_nll(x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) of a Bernoulli decoder given its logits, summed over each image's pixels: (N,).
    ``x``: targets in [0, 1] of the logits' shape (a grey target is a soft label)."""
    if x_logits.shape != x.shape:
        raise ValueError(f"bernoulli_nll: logits {tuple(x_logits.shape)} and targets "
                         f"{tuple(x.shape)} must have the same shape (no broadcasting): "
                         "reshape the decoder's output with .view_as(x)")
    return F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)
