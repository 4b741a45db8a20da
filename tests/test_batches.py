import pytest
import torch

from utils.batches import ResidentBatches, stream


def test_epoch_visits_every_example_once():
    x = torch.arange(10).float()
    y = torch.arange(10)
    batches = ResidentBatches(x, y, batch_size=3, drop_last=False, seed=1)
    assert len(batches) == 4
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in batches:  # pairs stay aligned through the permutation
        assert torch.equal(xb.long(), yb)


def test_drop_last_and_shapes():
    x = torch.randn(10, 1, 4, 4)
    batches = ResidentBatches(x, batch_size=3)
    out = list(batches)
    assert len(batches) == len(out) == 3 and all(b.shape == (3, 1, 4, 4) for b in out)


def test_seeded_order_is_reproducible_and_changes_per_epoch():
    x = torch.arange(100)
    a, b = ResidentBatches(x, batch_size=100, seed=0), ResidentBatches(x, batch_size=100, seed=0)
    first_a, first_b = next(iter(a)), next(iter(b))
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, next(iter(a)))  # a new permutation each epoch
    assert not torch.equal(first_a, next(iter(ResidentBatches(x, batch_size=100, seed=1))))


def test_no_shuffle_keeps_order():
    x = torch.arange(7)
    in_order = ResidentBatches(x, batch_size=2, shuffle=False, drop_last=False)
    assert torch.equal(torch.cat(list(in_order)), x)


def test_stream_rolls_over_epochs_as_tuples_on_the_device():
    batches = ResidentBatches(torch.arange(6), batch_size=4, seed=0)  # one batch per epoch
    feed = stream(batches, "cpu")
    got = [next(feed) for _ in range(3)]
    assert all(len(b) == 1 and b[0].shape == (4,) for b in got) and batches.epoch == 3


def test_stream_of_an_empty_loader_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="yielded no batch"):
        next(stream([], "cpu"))


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="share their first dimension"):
        ResidentBatches(torch.zeros(5), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="drop_last"):
        ResidentBatches(torch.zeros(5), batch_size=8)
    with pytest.raises(ValueError, match="batch_size must be"):
        ResidentBatches(torch.zeros(5), batch_size=0)
    with pytest.raises(TypeError, match="takes tensors"):
        ResidentBatches([1, 2, 3], batch_size=1)
