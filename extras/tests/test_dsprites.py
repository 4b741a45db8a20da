"""The dSprites-like generator: factor grids, indexing, determinism, and that each factor changes
only what it should (position translates, scale resizes, orientation rotates, shape swaps the
outline)."""
import math

import pytest
import torch

from extras import dsprites as ds


def centroid(img: torch.Tensor) -> torch.Tensor:
    """(x, y) centre of mass in pixels of a (1, H, W) or (H, W) binary image."""
    img = img.squeeze().double()
    rows, cols = torch.arange(img.shape[0]).double(), torch.arange(img.shape[1]).double()
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([(img * xs).sum(), (img * ys).sum()]) / img.sum()


def one(shape=0, scale=5, orientation=0, pos_x=16, pos_y=16) -> torch.Tensor:
    return ds.render(torch.tensor([[shape, scale, orientation, pos_x, pos_y]]))[0]


def test_factor_grids_match_dsprites_metadata():
    assert ds.FACTOR_NAMES == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert ds.NUM_COMBINATIONS == 737_280
    scales = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], dtype=torch.float64)
    assert torch.allclose(ds.SCALES, scales)
    assert len(ds.ORIENTATIONS) == 40 and ds.ORIENTATIONS[0] == 0
    assert ds.ORIENTATIONS[-1] == pytest.approx(2 * math.pi)  # dSprites includes both ends
    assert ds.ORIENTATIONS[1] == pytest.approx(0.16110732, abs=1e-8)  # dSprites' metadata says so
    assert len(ds.POSITIONS) == 32 and ds.POSITIONS[0] == 0 and ds.POSITIONS[-1] == 1
    assert ds.POSITIONS[1] == pytest.approx(0.03225806, abs=1e-8)


def test_sampled_factors_are_in_range_uniform_and_seeded():
    f = ds.sample_factors(20_000, generator=torch.Generator().manual_seed(3))
    assert f.shape == (20_000, 5) and f.dtype == torch.int64
    for k, size in enumerate(ds.FACTOR_SIZES):
        counts = torch.bincount(f[:, k], minlength=size)
        assert len(counts) == size and counts.min() > 0.6 * 20_000 / size  # each value, ~uniform
    again = ds.sample_factors(20_000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(f, again)
    values = ds.factor_values(f)
    assert values[:, 1].min() >= 0.5 and values[:, 1].max() <= 1.0
    assert values[:, 2].min() >= 0 and values[:, 2].max() <= 2 * math.pi + 1e-9
    assert values[:, 3:].min() >= 0 and values[:, 3:].max() <= 1


def test_index_order_is_dsprites_order():
    # dSprites: index 1 increases posY, index 32 posX, the last index is the last combination
    f = ds.index_to_factors(torch.tensor([0, 1, 32, 32 * 32, ds.NUM_COMBINATIONS - 1]))
    assert f.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                          [2, 5, 39, 31, 31]]
    some = ds.sample_factors(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ds.index_to_factors(ds.factors_to_index(some)), some)
    everything = ds.all_factors()
    assert everything.shape == (737_280, 5)
    assert torch.equal(ds.factors_to_index(everything), torch.arange(737_280))


def test_render_is_binary_deterministic_and_chunk_invariant():
    f = ds.sample_factors(300, generator=torch.Generator().manual_seed(1))
    x = ds.render(f)
    assert x.shape == (300, 1, 64, 64) and x.dtype == torch.uint8
    assert set(x.unique().tolist()) <= {0, 1}
    assert (x.flatten(1).sum(1) > 10).all()  # every sprite is visible
    assert torch.equal(x, ds.render(f, chunk=7))
    assert torch.equal(x, ds.render(f.clone()))


def test_every_sprite_stays_inside_the_frame():
    # the largest sprites at the four extreme positions, every shape and orientation
    rows = [[s, 5, o, px, py] for s in range(3) for o in range(40)
            for px in (0, 31) for py in (0, 31)]
    x = ds.render(torch.tensor(rows))
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    assert border.sum() == 0


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_position_shift_translates_the_image_exactly(shape):
    base = one(shape, scale=3, orientation=7, pos_x=5, pos_y=9)
    moved_x = one(shape, scale=3, orientation=7, pos_x=5 + 11, pos_y=9)
    moved_y = one(shape, scale=3, orientation=7, pos_x=5, pos_y=9 + 4)
    assert torch.equal(moved_x, torch.roll(base, 11, dims=-1))  # one position step = one pixel
    assert torch.equal(moved_y, torch.roll(base, 4, dims=-2))
    assert moved_x.sum() == base.sum()  # area unchanged
    shift = centroid(moved_x) - centroid(base)
    assert shift.tolist() == pytest.approx([11.0, 0.0])  # only the x centroid moves


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_scale_changes_the_area_like_scale_squared(shape):
    areas = torch.stack([one(shape, scale=i, orientation=3).double().sum() for i in range(6)])
    assert (areas[1:] > areas[:-1]).all()  # strictly growing
    ratio = areas / areas[-1]
    expected = ds.SCALES ** 2
    assert torch.allclose(ratio, expected, rtol=0.12)
    if shape < 2:  # square and ellipse are centred on the sprite's centre: the centroid stays put
        c = torch.stack([centroid(one(shape, scale=i, orientation=3)) for i in range(6)])
        assert (c - c[-1]).abs().max() < 0.6


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_orientation_rotates_without_moving_or_resizing(shape):
    imgs = ds.render(torch.tensor([[shape, 5, o, 16, 16] for o in range(40)]))
    areas = imgs.flatten(1).double().sum(1)
    # rotation keeps the area up to rasterisation (worst: the axis-aligned square loses a 1-px rim)
    assert areas.max() / areas.min() < 1.15
    if shape < 2:
        cs = torch.stack([centroid(i) for i in imgs])
        assert (cs - cs.mean(0)).abs().max() < 0.6
    assert len({tuple(i.flatten().tolist()) for i in imgs[:39]}) > 5  # it does change the image


def test_shape_factor_changes_the_outline_only():
    imgs = ds.render(torch.tensor([[s, 5, 0, 10, 20] for s in range(3)]))
    assert not torch.equal(imgs[0], imgs[1]) and not torch.equal(imgs[1], imgs[2])
    cs = torch.stack([centroid(i) for i in imgs[:2]])
    assert (cs[0] - cs[1]).abs().max() < 0.6  # same place


def mismatch(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of the sprite's pixels that differ between two renders."""
    return float((a != b).sum()) / float(max(a.sum(), b.sum()))


def test_symmetries_square_90_ellipse_180_heart_none():
    theta = torch.tensor(0.37)
    for shape, period in ((0, math.pi / 2), (1, math.pi)):
        a = ds.render_values(shape, 1.0, theta, 0.5, 0.5)
        b = ds.render_values(shape, 1.0, theta + period, 0.5, 0.5)
        assert mismatch(a, b) < 0.02, ds.SHAPES[shape]
        c = ds.render_values(shape, 1.0, theta + period / 2, 0.5, 0.5)
        assert mismatch(a, c) > 0.1  # half the period is a genuinely different image
    h0 = ds.render_values(2, 1.0, theta, 0.5, 0.5)
    assert mismatch(h0, ds.render_values(2, 1.0, theta + math.pi, 0.5, 0.5)) > 0.2
    assert mismatch(h0, ds.render_values(2, 1.0, theta + math.pi / 2, 0.5, 0.5)) > 0.2
    # dSprites' orientation grid holds both 0 and 2 pi: indices 0 and 39 draw the same image
    for shape in range(3):
        assert torch.equal(one(shape, orientation=0), one(shape, orientation=39))
    assert ds.ROTATIONAL_SYMMETRY == {"square": 4, "ellipse": 2, "heart": 1}


def test_render_values_agrees_with_render_on_the_grid():
    f = ds.sample_factors(64, generator=torch.Generator().manual_seed(5))
    v = ds.factor_values(f)
    a = ds.render(f)
    b = ds.render_values(f[:, 0], v[:, 1], v[:, 2], v[:, 3], v[:, 4])
    assert (a != b).flatten(1).sum(1).max() <= 3  # float rounding at the outline only


def test_make_dataset_subset_is_distinct_and_seeded():
    x, f = ds.make_dataset(500, seed=2)
    assert x.shape == (500, 1, 64, 64) and f.shape == (500, 5)
    assert len(ds.factors_to_index(f).unique()) == 500
    x2, f2 = ds.make_dataset(500, seed=2)
    assert torch.equal(f, f2) and torch.equal(x, x2)
    with pytest.raises(ValueError, match="n must be"):
        ds.make_dataset(0)


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="scale.*out of range"):
        ds.render(torch.tensor([[0, 6, 0, 0, 0]]))
    with pytest.raises(TypeError, match="indices"):
        ds.render(torch.tensor([[0.0, 1.0, 0.0, 0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        ds.render(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shape must be"):
        ds.render_values(3, 1.0, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="737280"):
        ds.index_to_factors(torch.tensor([737_280]))


@pytest.mark.parametrize("size", ds.SUPPORTED_SIZES)
def test_every_factor_combination_draws_pixels_at_every_supported_size(size):
    """All 737,280 combinations, in chunks: each image shows its sprite, inside the frame."""
    everything = ds.all_factors()
    smallest, on_border = None, 0
    for start in range(0, len(everything), 65_536):
        x = ds.render(everything[start:start + 65_536], size=size)
        area = x.flatten(1).sum(1)
        smallest = int(area.min()) if smallest is None else min(smallest, int(area.min()))
        border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
        on_border += int(border.sum())
    assert smallest >= (4 if size == 32 else 16) and on_border == 0


def test_a_smaller_size_draws_the_same_picture_scaled():
    f = ds.sample_factors(200, generator=torch.Generator().manual_seed(6))
    big, small = ds.render(f).double(), ds.render(f, size=32).double()
    assert small.shape == (200, 1, 32, 32)
    pooled = torch.nn.functional.avg_pool2d(big, 2)              # 64 px geometry seen at 32 px
    assert ((pooled - small).abs().flatten(1).sum(1) / small.flatten(1).sum(1)).max() < 0.5
    ratio = small.flatten(1).sum(1) / big.flatten(1).sum(1)
    assert ratio.mean() == pytest.approx(0.25, abs=0.03)                 # a quarter of the area
    c_big = torch.stack([centroid(i) for i in big[:20]])
    c_small = torch.stack([centroid(i) for i in small[:20]])
    assert (c_small - (c_big + 0.5) / 2 + 0.5).abs().max() < 0.6   # same place, half the pixels
    v = ds.factor_values(f[:20])
    again = ds.render_values(f[:20, 0], v[:, 1], v[:, 2], v[:, 3], v[:, 4], size=32)
    assert (again != small[:20]).flatten(1).sum(1).max() <= 3


@pytest.mark.parametrize("size", [16, 48, 64.0, "32", True])
def test_unsupported_image_sizes_get_a_clear_error(size):
    with pytest.raises(ValueError, match="image size must be one of"):
        ds.render(torch.tensor([[0, 5, 0, 16, 16]]), size=size)
    with pytest.raises(ValueError, match="image size must be one of"):
        ds.render_values(0, 1.0, 0.0, 0.5, 0.5, size=size)


def _task_grid_factors():
    """The extra's task: the upright square, every scale x posX x posY (6,144 vectors, scale
    slowest)."""
    axes = torch.arange(6), torch.arange(32), torch.arange(32)
    g = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    g = g.reshape(-1, 3)
    zero = torch.zeros(len(g), dtype=torch.long)
    return torch.stack([zero, g[:, 0], zero, g[:, 1], g[:, 2]], dim=1)


@pytest.mark.parametrize("size", ds.SUPPORTED_SIZES)
def test_coverage_rendering_makes_every_task_combination_a_distinct_image(size):
    f = _task_grid_factors()
    x = ds.render_coverage(f, size=size)
    assert x.shape == (6144, 1, size, size) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert len(x.flatten(1).unique(dim=0)) == 6144
    # the point-sampled renderer aliases on the same grid (the defect coverage removes)
    assert len(ds.render(f, size=size).flatten(1).unique(dim=0)) < 6144


@pytest.mark.parametrize("size", ds.SUPPORTED_SIZES)
def test_coverage_area_grows_strictly_with_scale_at_every_position(size):
    area = ds.render_coverage(_task_grid_factors(), size=size).flatten(1).sum(1).view(6, 32, 32)
    assert (area[1:] > area[:-1]).all()
    side = 2 * ds.SCALES * ds.RADIUS_PX / 2 ** 0.5 * size / 64        # the square's side in pixels
    assert torch.allclose(area.mean((1, 2)).double(), side ** 2, rtol=0.15)  # 4 x 4 samples a px


def test_coverage_is_the_mean_of_the_fine_point_samples_and_deterministic():
    f = ds.sample_factors(50, generator=torch.Generator().manual_seed(3))
    x = ds.render_coverage(f, size=32, supersample=2)
    fine = ds.render(f, size=64).float()                 # the same geometry at twice the raster
    assert torch.equal(x, torch.nn.functional.avg_pool2d(fine, 2))
    assert torch.equal(ds.render_coverage(f, size=32), ds.render_coverage(f, size=32, chunk=7))


@pytest.mark.parametrize("k", [0, 9, 2.0, True])
def test_coverage_refuses_a_bad_supersample(k):
    with pytest.raises(ValueError, match="supersample must be an integer from 1 to 8"):
        ds.render_coverage(torch.tensor([[0, 5, 0, 16, 16]]), supersample=k)
