"""utils.checks: each check passes good input unchanged and refuses bad input with a message that
names the value, what was expected and the fix."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from utils.batches import ResidentBatches
from utils.checks import (MissingKeyError, check_channels, check_codes, check_count, check_grid,
                          check_ids, check_one_each, check_pixels, check_range, check_vqvae_hp,
                          checked, resident_tensors)

HP = dict(num_hiddens=16, num_residual_layers=1, num_residual_hiddens=8, num_embeddings=32,
          embedding_dim=8, commitment_cost=0.25, decay=0.99, learning_rate=1e-3)


# check_grid
def test_grid_passes_multiples_and_returns_the_input():
    x = torch.zeros(2, 3, 32, 28)
    assert check_grid(x, 4) is x


def test_grid_names_the_size_the_result_and_two_fixes():
    with pytest.raises(ValueError) as info:
        check_grid(torch.zeros(2, 3, 30, 30), 4, "enc")
    msg = str(info.value)
    assert msg.startswith("enc: images of "
                          "30x30") and "come back as 28x28" in msg and "28x28 or 32x32" in msg


@pytest.mark.parametrize("x, err", [(torch.zeros(3, 32, 32), ValueError),
                                    (np.zeros((1, 3, 32, 32)), TypeError)])
def test_grid_refuses_a_missing_axis_and_non_tensors(x, err):
    with pytest.raises(err, match="unsqueeze|torch.as_tensor"):
        check_grid(x, 4)


# check_channels
def test_channels_name_the_count_the_expected_shape_and_the_module():
    check_channels(torch.zeros(1, 4, 2, 2), 4)
    with pytest.raises(ValueError, match=r"Linear: inputs of shape \(1, 5, 2, 2\) have 5 channels, "
                                         r"expected \(B, 4"):
        check_channels(torch.zeros(1, 5, 2, 2), 4, torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="have 2 axes"):
        check_channels(torch.zeros(4, 4), 4)


# check_ids / check_codes
def test_ids_pass_and_refuse_out_of_range_naming_the_first_bad_one():
    y = torch.tensor([0, 9, 3])
    assert check_ids(y, 10) is y
    check_ids(torch.zeros(0, dtype=torch.long), 10)                    # empty: nothing to check
    with pytest.raises(ValueError, match=r"labels: ids must lie in \[0, 9\].*from -2 to 11 "
                                         r"\(2 outside, the first 11 at flat position 1\): fix it"):
        check_ids(torch.tensor([3, 11, -2]), 10, "labels", "fix it")


@pytest.mark.parametrize("t", [torch.tensor([1.0]), torch.tensor([True])])
def test_ids_refuse_float_and_bool(t):
    with pytest.raises(TypeError, match=r"\.long\(\)"):
        check_ids(t, 10)


def test_codes_check_codes_and_labels_in_one_go():
    codes = torch.randint(0, 8, (3, 2, 2))
    assert check_codes(codes, 8, "p", torch.tensor([0, 1, 2]), 3) is codes
    with pytest.raises(ValueError,
                       match=r"p: code grids: ids must lie in \[0, 7\].*num_embeddings"):
        check_codes(codes + 8, 8, "p")
    with pytest.raises(ValueError, match=r"p: labels: ids must lie in \[0, 2\]"):
        check_codes(codes, 8, "p", torch.tensor([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="one label per code grid"):
        check_codes(codes, 8, "p", torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"code grids \(B, h, w\)"):
        check_codes(torch.zeros(2, 9, dtype=torch.long), 8, "p")


# check_range / check_pixels
def test_range_catches_nan_that_comparisons_let_through():
    x = torch.tensor([0.1, float("nan"), 0.2])
    assert not (x.min() < 0 or x.max() > 1)                   # the comparison a NaN slips past
    with pytest.raises(ValueError, match="hold NaN values.*torch.isnan"):
        check_range(x, 0, 1, "px")
    with pytest.raises(ValueError, match="hold infinite values"):
        check_range(torch.tensor([0.0, float("inf")]), 0, 1)
    with pytest.raises(ValueError, match=r"range from -1 to 0.5, expected \[0, 1\]: so"):
        check_range(torch.tensor([-1.0, 0.5]), 0, 1, fix="so")
    with pytest.raises(TypeError, match="are torch.int64"):
        check_range(torch.tensor([1]), 0, 1)


@pytest.mark.parametrize("x, expected, slack, hint", [
    (torch.tensor([3.0, 250.0]), (0, 1), 0, r"0-255 pixels: divide by 255 \(x.float\(\) / 255\)"),
    (torch.tensor([-0.4, 0.3]), (0, 1), 0, r"VQ-VAE's pixels in \[-0.5, 0.5\]: add 0.5"),
    (torch.tensor([-0.9, 0.8]), (0, 1), 0, r"\(x \+ 1\) / 2"),
    (torch.tensor([3.0, 250.0]), (-0.5, 0.5), 0.5, r"subtract 0.5 \(x.float\(\) / 255 - 0.5"),
    (torch.rand(4) + 3, (-0.5, 0.5), 0.5, r"rescale them into \[-0.5, 0.5\]"),
])
def test_pixels_say_which_range_they_look_like(x, expected, slack, hint):
    with pytest.raises(ValueError, match=hint):
        check_pixels(x, "px", expected, slack)


def test_pixels_in_range_pass_and_slack_widens():
    check_pixels(torch.rand(10), "px")
    check_pixels(torch.rand(10) - 0.5 + 0.4, "px", (-0.5, 0.5), slack=0.5)


# check_one_each
@pytest.mark.parametrize("y", [7, torch.tensor(7), np.int64(7)])
def test_one_number_for_a_batch_says_how_to_repeat_it(y):
    with pytest.raises(ValueError, match=r"labels=7 is one number; expected one per z, 5 in all: "
                                         r"pass torch.full\(\(5,\), 7\)"):
        check_one_each(y, 5, "labels", "z")


def test_wrong_count_keeps_the_old_message():
    check_one_each(torch.arange(3), 3)
    with pytest.raises(ValueError, match="got 4 labels for a batch of 3: pass one label per image"):
        check_one_each(torch.arange(4), 3)


# check_vqvae_hp
def test_hp_missing_decay_is_a_readable_key_error():
    hp = {k: v for k, v in HP.items() if k != "decay"}
    assert check_vqvae_hp(hp, ema=False) is hp
    with pytest.raises(KeyError) as info:
        check_vqvae_hp(hp)
    assert isinstance(info.value, MissingKeyError)
    assert str(info.value).startswith("hp lacks 'decay' (it has "
                                      "'num_hiddens'") and "dict(hp, decay=...)" in str(info.value)
    with pytest.raises(KeyError, match="'learning_rate'"):
        check_vqvae_hp({k: v for k, v in HP.items() if k != "learning_rate"}, learning_rate=True)
    with pytest.raises(TypeError, match="dict of hyperparameters"):
        check_vqvae_hp([1, 2])


# check_count
@pytest.mark.parametrize("value", [500, np.int64(500), 500.0])
def test_count_accepts_whole_numbers(value):
    assert check_count(value, "limit") == 500 and type(check_count(value, "limit")) is int


@pytest.mark.parametrize("value, err, text", [
    ("500", TypeError, "limit='500' is a str.*limit=500"), (2.5, TypeError, "is a float"),
    (True, TypeError, "is a bool"), (None, TypeError, "NoneType"),
    (0, ValueError, ">= 1, not 0")])
def test_count_refuses_strings_fractions_bools_and_zero(value, err, text):
    with pytest.raises(err, match=text):
        check_count(value, "limit")


# checked / resident_tensors
def test_resident_tensors_of_the_two_loaders_and_of_an_opaque_one():
    x, y = torch.zeros(8, 2), torch.zeros(8, dtype=torch.long)
    assert resident_tensors(ResidentBatches(x, y, batch_size=4))[1] is y
    assert resident_tensors(DataLoader(TensorDataset(x, y), batch_size=4))[0] is x
    assert resident_tensors([(x, y)]) is None


def test_checked_checks_resident_tensors_once_up_front():
    x = torch.zeros(8, 2)
    x[7] = float("nan")
    calls = []
    loader = ResidentBatches(x, batch_size=4)
    assert checked(loader, lambda t: calls.append(len(t))) is loader and calls == [8]
    with pytest.raises(ValueError, match="NaN"):
        checked(loader, lambda t: check_range(t, 0, 1))


def test_checked_checks_every_host_batch_and_names_it():
    batches = [(torch.zeros(2),), (torch.zeros(2),), (torch.full((2,), 5.0),)]
    seen = []

    def check(t):
        seen.append(1)
        check_range(t, 0, 1, "x")

    wrapped = checked(batches, check)
    assert len(wrapped) == 3
    with pytest.raises(ValueError, match=r"batch 3 of the loader: x range from 5 to 5"):
        list(wrapped)
    assert len(seen) == 3
    assert list(checked(batches[:2], check)) == batches[:2]   # re-iterable, batches unchanged
    assert checked(batches, None) is batches


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a device tensor")
def test_checked_checks_only_the_first_device_batch():
    batches = [(torch.zeros(2, device="cuda"),), (torch.full((2,), 5.0, device="cuda"),)]
    assert len(list(checked(batches, lambda t: check_range(t, 0, 1)))) == 2
