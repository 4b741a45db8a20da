"""The Q2 gated PixelCNN prior: causal (no future leaks, at every position and for every layer type)
and blind-spot free; cropped sampling equals full-grid evaluation; training/scoring in bits."""
import math

import pytest
import torch
import torch.nn.functional as F

from tools.notebooks import load_definitions

nb = load_definitions("Q2_VQVAE.ipynb")


pytestmark = pytest.mark.usefixtures("one_thread")


def _dependence(net, e, y):
    """(positions, positions) matrix: dep[p, q] = True iff output at p has non-zero gradient wrt
    input at q."""
    out = net(e, y)
    b, _, h, w = out.shape
    dep = torch.zeros(h * w, h * w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            (g,) = torch.autograd.grad(out[:, :, i, j].sum(), e, retain_graph=True)
            dep[i * w + j] = (g.abs().sum((0, 1)) != 0).flatten()
    return dep


@pytest.mark.parametrize("grid", [(8, 8), (7, 7), (5, 9)])
def test_prior_is_causal_and_blind_spot_free(grid):
    torch.manual_seed(0)
    # the notebook's layer layout
    prior = nb.GatedPixelCNN(16, 10, channels=8, num_layers=8).double()
    e = torch.randn(2, 8, *grid, dtype=torch.double, requires_grad=True)
    dep = _dependence(prior.logits_from_embeddings, e, torch.tensor([1, 7]))
    n = grid[0] * grid[1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool))  # q >= p: the position itself and later
    assert not (dep & future).any(), "output depends on the current or a later position"
    assert dep[~future].all(), "blind spot: some earlier position does not reach the output"


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_single_gated_layer_is_causal_for_both_stacks(mask_type):
    """One layer, both outputs: the horizontal output never sees (i, j) or later for mask A, nor
    anything later than (i, j) for mask B; the vertical output only sees rows <= i (it reaches
    the horizontal stack shifted)."""
    torch.manual_seed(0)
    layer = nb.GatedMaskedConv2d(4, 5, mask_type, 3).double()
    h, w = 6, 6
    v = torch.randn(1, 4, h, w, dtype=torch.double, requires_grad=True)
    hx = torch.randn(1, 4, h, w, dtype=torch.double, requires_grad=True)
    y = torch.tensor([2])
    v_out, h_out = layer(v, hx, y)
    for i in range(h):
        for j in range(w):
            gv, gh = torch.autograd.grad(h_out[:, :, i, j].sum(), (v, hx), retain_graph=True)
            gv, gh = gv.abs().sum((0, 1)), gh.abs().sum((0, 1))
            assert (gv[i:] == 0).all(), "horizontal output sees the vertical stack's rows >= i"
            assert (gh[:i] == 0).all() and (gh[i + 1:] == 0).all(), "horizontal stack leaves row i"
            first_forbidden = j if mask_type == "A" else j + 1
            assert (gh[i, first_forbidden:] == 0).all()
            (gvv,) = torch.autograd.grad(v_out[:, :, i, j].sum(), v, retain_graph=True)
            assert (gvv.abs().sum((0, 1))[i + 1:] == 0).all(), "vertical stack sees a later row"


def test_logits_do_not_depend_on_later_codes_through_the_embedding():
    torch.manual_seed(0)
    prior = nb.GatedPixelCNN(32, 10, channels=8, num_layers=8)
    codes = torch.randint(0, 32, (3, 8, 8))
    y = torch.tensor([0, 4, 9])
    base = prior(codes, y)
    changed = codes.clone()
    # change (4, 3) and everything after it in row 4
    changed[:, 4, 3:] = (changed[:, 4, 3:] + 1) % 32
    changed[:, 5:] = (changed[:, 5:] + 7) % 32
    out = prior(changed, y)
    flat_b, flat_o = base.flatten(2), out.flatten(2)
    p = 4 * 8 + 3
    # up to and incl. (4, 3)
    assert torch.allclose(flat_b[:, :, :p + 1], flat_o[:, :, :p + 1], atol=1e-6)
    assert not torch.allclose(flat_b[:, :, p + 1:], flat_o[:, :, p + 1:])
    # cropping the rows below a position does not change it (what the sampler relies on)
    assert torch.allclose(prior(codes[:, :5], y), base[:, :, :5], atol=1e-6)
    # the class label changes the logits
    assert not torch.allclose(prior(codes, torch.tensor([1, 5, 8])), base)


def test_sample_shapes_and_bad_labels():
    torch.manual_seed(0)
    prior = nb.GatedPixelCNN(16, 10, channels=8, num_layers=3)
    s = prior.sample(torch.arange(4), (3, 5))
    assert s.shape == (4, 3, 5) and s.dtype == torch.long and s.min() >= 0 and s.max() < 16
    with pytest.raises(ValueError, match="labels"):
        prior.sample(torch.tensor([10]), (3, 3))
    with pytest.raises(ValueError, match="code grids"):
        prior(torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def test_training_lowers_bits_and_bits_match_cross_entropy():
    torch.manual_seed(0)
    # a learnable toy: each code copies its left neighbour (+ class), so context matters
    n, K = 256, 8
    y = torch.randint(0, 10, (n,))
    first = torch.randint(0, K, (n, 4, 1))
    codes = torch.cat([(first + t + y[:, None, None]) % K for t in range(4)], dim=2)
    prior = nb.GatedPixelCNN(K, 10, channels=16, num_layers=3)
    before = nb.prior_bits_per_code(prior, codes, y)
    hist = nb.train_prior(prior, codes, y, 80, 32, learning_rate=1e-2, desc="test")
    after = nb.prior_bits_per_code(prior, codes, y)
    ce = F.cross_entropy(prior(codes, y), codes).item() / math.log(2)
    assert math.isclose(after, ce, rel_tol=1e-5)
    assert after < before and after < 0.6 * math.log2(K)
    assert isinstance(hist["bits_per_code"], list) and len(hist["bits_per_code"]) == 80


def test_prior_training_stops_on_a_non_finite_loss():
    prior = nb.GatedPixelCNN(8, 10, channels=8, num_layers=2)
    with torch.no_grad():
        prior.head[-1].bias.fill_(float("nan"))
    codes, y = torch.randint(0, 8, (16, 4, 4)), torch.zeros(16, dtype=torch.long)
    with pytest.raises(Exception, match="the loss became nan") as info:
        nb.train_prior(prior, codes, y, 3, 8, desc="test")
    assert type(info.value).__name__ == "NonFiniteLossError"
