"""utils.losses against torch.distributions: Gaussian KL per unit, Bernoulli NLL per image."""
import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from utils.losses import bernoulli_nll, gaussian_kl


def test_gaussian_kl_per_unit_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 10, generator=g), torch.randn(7, 10, generator=g)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (7, 10)
    torch.testing.assert_close(kl, ref, atol=1e-6, rtol=1e-5)
    assert torch.equal(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))


@pytest.mark.parametrize("shape", [(6, 1, 32, 32), (6, 784)])
def test_bernoulli_nll_per_image_matches_torch_distributions(shape):
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(shape, generator=g)
    x = (torch.rand(shape, generator=g) > 0.7).float()
    ref = -Independent(Bernoulli(logits=logits), len(shape) - 1).log_prob(x)
    nll = bernoulli_nll(logits, x)
    assert nll.shape == (6,)
    torch.testing.assert_close(nll, ref, atol=1e-4, rtol=1e-5)


def test_bernoulli_nll_of_a_soft_target_is_its_cross_entropy():
    """Grey pixels (area coverage): the NLL is the cross-entropy, above the target's entropy."""
    p = torch.tensor([[0.25, 0.5, 0.9]])
    at_floor = bernoulli_nll(torch.logit(p), p)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(1)
    torch.testing.assert_close(at_floor, entropy)
    assert bernoulli_nll(torch.logit(p) + 0.3, p) > at_floor


@pytest.mark.parametrize("fn, a, b", [(gaussian_kl, (4, 10), (4, 5)),
                                      (bernoulli_nll, (4, 1, 32, 32), (4, 1024))])
def test_mismatched_shapes_get_a_clear_error(fn, a, b):
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.zeros(a), torch.zeros(b))
