"""A dSprites-like data set rendered in code: 64x64 binary images of one white shape on black.

dSprites (Matthey, Higgins, Hassabis, Lerchner 2017, github.com/deepmind/dsprites-dataset) holds
every combination of five varying ground-truth factors once (colour is constant):

==============  =====  =========================================  ======================
factor          size   values (as in the dSprites metadata)       here
==============  =====  =========================================  ======================
shape           3      square, ellipse, heart                     same
scale           6      linspace(0.5, 1, 6)                        same
orientation     40     linspace(0, 2 pi, 40) (both ends included)  same
posX            32     linspace(0, 1, 32)                         same
posY            32     linspace(0, 1, 32)                         same
==============  =====  =========================================  ======================

3 * 6 * 40 * 32 * 32 = 737,280 combinations, indexed as in dSprites by a mixed-radix number whose
fastest-changing digit is posY (``factors_to_index`` / ``index_to_factors``).

What dSprites does not publish -- the exact sprite outlines, their size in pixels and the pixel
range the positions span -- is our choice (documented in ``render``), so the images look like
dSprites but are not pixel-identical to it.

Symmetries (the data's own ambiguity, not a bug): a square looks the same after a quarter turn and
an ellipse after a half turn, so an image shows the orientation of a square only modulo 90 degrees
and of an ellipse modulo 180; the heart has no rotational symmetry. And since dSprites' orientation
grid includes both 0 and 2 pi, orientation indices 0 and 39 render the same image for every shape.
``ROTATIONAL_SYMMETRY`` records the order of each shape's rotation group.

    from extras.dsprites import render, sample_factors
    factors = sample_factors(1024, generator=torch.Generator().manual_seed(0))   # (1024, 5) int64
    x = render(factors)                                          # (1024, 1, 64, 64) uint8
"""
from __future__ import annotations

import math

import torch

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NUM_COMBINATIONS = math.prod(FACTOR_SIZES)  # 737,280
IMAGE_SIZE = 64
ROTATIONAL_SYMMETRY = {"square": 4, "ellipse": 2, "heart": 1}

# Factor values, exactly the dSprites metadata grids (float64 so the table prints as in dSprites).
SCALES = torch.linspace(0.5, 1.0, 6, dtype=torch.float64)
ORIENTATIONS = torch.linspace(0.0, 2 * math.pi, 40, dtype=torch.float64)
POSITIONS = torch.linspace(0.0, 1.0, 32, dtype=torch.float64)

# Geometry (our choice, in pixels of the 64x64 image): the centre of the sprite moves by exactly one
# pixel per position step, from pixel corner 16 to 47 (so a shift in posX is an exact one-pixel
# translation of the image), and a shape of scale s fits in a circle of radius s * RADIUS_PX, so
# that even at scale 1 and the extreme positions it stays inside the 64x64 frame (16 - 12 = 4 px
# margin at least). Another image size scales the whole geometry by size / 64 (at 32 px: centres
# from 8 to 23.5 in half-pixel steps, radius 6 px), so the same factors draw the same picture at
# any supported size.
FIRST_CENTRE_PX = 16
RADIUS_PX = 12.0
SUPPORTED_SIZES = (32, 64)  # at 16 px the smallest sprites (radius 1.5 px) can miss every centre

# Bases of the mixed-radix index: index = sum_k factor_k * BASES[k] (posY is the fastest digit).
BASES = tuple(math.prod(FACTOR_SIZES[k + 1:]) for k in range(len(FACTOR_SIZES)))


def _check_factors(factors: torch.Tensor) -> torch.Tensor:
    """Validate an (N, 5) integer tensor of factor indices; raise a clear error otherwise."""
    if not isinstance(factors, torch.Tensor):
        factors = torch.as_tensor(factors)
    if factors.dim() == 1 and factors.numel() == len(FACTOR_SIZES):
        factors = factors.unsqueeze(0)
    if factors.dim() != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"factors must be (N, {len(FACTOR_SIZES)}) indices in the order "
                         f"{FACTOR_NAMES}; got shape {tuple(factors.shape)}")
    if factors.dtype.is_floating_point or factors.dtype == torch.bool:
        raise TypeError(f"factors are integer indices (e.g. scale index 0..5), not values; got "
                        f"{factors.dtype}. Use factor_values() to turn indices into values, or "
                        "render_values() to draw values.")
    sizes = torch.tensor(FACTOR_SIZES, device=factors.device)
    bad = (factors < 0) | (factors >= sizes)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"factor {FACTOR_NAMES[col]!r} index {int(factors[row, col])} (row {row}) "
                         f"is out of range 0..{FACTOR_SIZES[col] - 1}")
    return factors.long()


def sample_factors(n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """``n`` factor vectors drawn uniformly and independently: (n, 5) int64 indices.

    The draw happens on the CPU generator (same numbers on every device), then moves to ``device``.
    """
    cols = [torch.randint(size, (int(n),), generator=generator) for size in FACTOR_SIZES]
    return torch.stack(cols, dim=1).to(device)


def factors_to_index(factors: torch.Tensor) -> torch.Tensor:
    """dSprites image index of each factor vector (posY fastest, then posX, orientation, scale,
    shape)."""
    factors = _check_factors(factors)
    return (factors * torch.tensor(BASES, device=factors.device)).sum(dim=1)


def index_to_factors(index: torch.Tensor) -> torch.Tensor:
    """Inverse of ``factors_to_index``: (N,) indices in [0, 737280) -> (N, 5) factor indices."""
    index = torch.as_tensor(index).long()
    if ((index < 0) | (index >= NUM_COMBINATIONS)).any():
        raise ValueError(f"image indices must lie in [0, {NUM_COMBINATIONS}); got min "
                         f"{int(index.min())}, max {int(index.max())}")
    return torch.stack([(index // b) % s for b, s in zip(BASES, FACTOR_SIZES)], dim=1)


def all_factors(device=None) -> torch.Tensor:
    """Every one of the 737,280 factor vectors, in dSprites order: (737280, 5) int64."""
    return index_to_factors(torch.arange(NUM_COMBINATIONS, device=device))


def factor_values(factors: torch.Tensor) -> torch.Tensor:
    """Indices -> values: shape as 1, 2, 3 (dSprites' coding), scale, orientation (radians), posX,
    posY."""
    factors = _check_factors(factors)
    dev = factors.device
    return torch.stack([
        factors[:, 0].double() + 1,
        SCALES.to(dev)[factors[:, 1]],
        ORIENTATIONS.to(dev)[factors[:, 2]],
        POSITIONS.to(dev)[factors[:, 3]],
        POSITIONS.to(dev)[factors[:, 4]],
    ], dim=1)


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Is the point (u, v) of the shape's own frame (unit = one radius, v downwards) inside it?

    square : |u|, |v| <= 1/sqrt(2)            (its corners touch the unit circle)
    ellipse: u^2 + (2 v)^2 <= 1                (semi-axes 1 and 1/2)
    heart  : (a^2 + b^2 - 1)^3 - a^2 b^3 <= 0  (the classic heart curve, a = 1.2 u,
                                                b = 0.1 - 1.2 v, so it points down in the image
                                                and fits in the circle)
    """
    if shape == 0:
        half = 1 / math.sqrt(2)
        return (u.abs() <= half) & (v.abs() <= half)
    if shape == 1:
        return u * u + 4 * v * v <= 1
    a2, b = (1.2 * u) ** 2, 0.1 - 1.2 * v
    return (a2 + b * b - 1) ** 3 - a2 * b ** 3 <= 0


def _raster(shape, scale, angle, cx, cy, size: int) -> torch.Tensor:
    """Rasterise N sprites given per-image shape index, scale, angle (rad) and centre (pixels).

    A pixel (row i, column j) is white when its centre p = (j + 0.5, i + 0.5) lies inside the
    sprite: (u, v) = R(-angle) (p - c) / (scale * RADIUS_PX). Returns (N, size, size) bool.
    """
    dev = cx.device
    grid = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    # dx: (N, 1, size), dy: (N, size, 1); p - c is formed first: a whole-pixel shift of c is exact
    dx = grid.view(1, 1, size) - cx.view(-1, 1, 1)
    dy = grid.view(1, size, 1) - cy.view(-1, 1, 1)
    r = (scale * RADIUS_PX).view(-1, 1, 1)
    c, s = torch.cos(angle).view(-1, 1, 1) / r, torch.sin(angle).view(-1, 1, 1) / r
    out = torch.zeros(len(cx), size, size, dtype=torch.bool, device=dev)
    for k in range(len(SHAPES)):  # each shape's test only on its own images
        idx = (shape == k).nonzero().flatten()
        if len(idx):
            u = c[idx] * dx[idx] + s[idx] * dy[idx]
            v = c[idx] * dy[idx] - s[idx] * dx[idx]
            out[idx] = _inside(k, u, v)
    return out


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size not in SUPPORTED_SIZES:
        raise ValueError(f"image size must be one of {SUPPORTED_SIZES} pixels; got {size!r}")
    return size


def render(factors: torch.Tensor, chunk: int | None = None, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Draw factor vectors as binary images: (N, 5) indices -> (N, 1, size, size) uint8 in {0, 1}.

    Vectorised over the batch, on the device of ``factors``, ``chunk`` images at a time (default
    1024 on a CPU, where that stays in cache, 8192 on a GPU; temporaries take ~30 bytes a pixel).
    Deterministic: the same factors give the same image on every call, whatever the chunking.
    Convert with ``x.float()`` for a network.
    """
    factors = _check_factors(factors)
    return _draw(factors, _check_size(size), 1, chunk, torch.uint8)


def _draw(factors: torch.Tensor, size: int, k: int, chunk: int | None,
          dtype: torch.dtype) -> torch.Tensor:
    """Rasterise checked factors at k times the raster, each pixel the mean of its k x k point
    samples (k = 1: point sampling), ``chunk`` images at a time (default 1024 / k^2 on a CPU,
    8192 / k^2 on a GPU)."""
    dev = factors.device
    px = size * k / IMAGE_SIZE  # one pixel of the 64x64 geometry, in pixels of the fine raster
    chunk = int(chunk or max(1, (8192 if dev.type == "cuda" else 1024) // (k * k)))
    out = torch.empty(len(factors), 1, size, size, dtype=dtype, device=dev)
    scales = SCALES.to(dev, torch.float32) * px
    angles = ORIENTATIONS.to(dev, torch.float32)
    for start in range(0, len(factors), chunk):
        f = factors[start:start + chunk]
        # centre on a pixel corner, moving exactly 1 px per position step (see FIRST_CENTRE_PX)
        cx = (FIRST_CENTRE_PX + f[:, 3]).float() * px
        cy = (FIRST_CENTRE_PX + f[:, 4]).float() * px
        img = _raster(f[:, 0], scales[f[:, 1]], angles[f[:, 2]], cx, cy, size * k)
        if k > 1:
            img = torch.nn.functional.avg_pool2d(img.float().unsqueeze(1), k)[:, 0]
        out[start:start + chunk, 0] = img
    return out


def render_coverage(factors: torch.Tensor, size: int = IMAGE_SIZE, supersample: int = 4,
                    chunk: int | None = None) -> torch.Tensor:
    """Draw factor vectors by area coverage: each pixel holds the share of it the sprite covers,
    (N, 5) indices -> (N, 1, size, size) float32 in [0, 1].

    Point sampling (``render``) aliases at 32 px, where a position step is half a pixel: scales
    0.6 and 0.7 of the square then draw the same image. Here every pixel is the mean of
    ``supersample`` x ``supersample`` point samples (the same geometry at a finer raster, average-
    pooled), so on the square's task grid every combination is a distinct image and the sprite's
    area grows strictly with scale at every position (extras/tests/test_dsprites.py)."""
    factors = _check_factors(factors)
    size = _check_size(size)
    k = supersample
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 8:
        raise ValueError(f"supersample must be an integer from 1 to 8; got {supersample!r}")
    return _draw(factors, size, k, chunk, torch.float32)


def render_values(shape, scale, orientation, pos_x, pos_y, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Draw sprites from continuous factor values (for sweeps and tests), e.g. any angle in radians.

    ``shape``: index 0/1/2 (square/ellipse/heart); ``scale`` in [0.5, 1] (other values work but
    may leave the frame); ``pos_x``, ``pos_y`` in [0, 1]. Scalars or 1-D tensors (broadcast
    together). Returns (N, 1, size, size) uint8. On the grid values this equals ``render`` up to
    float rounding.
    """
    size = _check_size(size)
    px = size / IMAGE_SIZE
    shape, scale, orientation, pos_x, pos_y = torch.broadcast_tensors(
        *(torch.as_tensor(t, dtype=torch.float64).flatten()
          for t in (shape, scale, orientation, pos_x, pos_y)))
    if ((shape != shape.round()) | (shape < 0) | (shape > 2)).any():
        raise ValueError(f"shape must be an index 0, 1 or 2 ({SHAPES}); got "
                         f"{shape.unique().tolist()}")
    span = POSITIONS.numel() - 1  # 31 px between the first and the last position
    cx = ((FIRST_CENTRE_PX + pos_x * span) * px).float()
    cy = ((FIRST_CENTRE_PX + pos_y * span) * px).float()
    img = _raster(shape.long(), (scale * px).float(), orientation.float(), cx, cy, size)
    return img.to(torch.uint8).unsqueeze(1)


def make_dataset(n: int | None = None, seed: int = 0,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and factors: all 737,280 combinations in dSprites order (``n=None``), or ``n``
    distinct combinations drawn at random without replacement (seeded). Returns (x uint8
    (N,1,64,64), factors (N,5))."""
    if n is None:
        factors = all_factors(device)
    else:
        if not 0 < int(n) <= NUM_COMBINATIONS:
            raise ValueError(f"n must be in 1..{NUM_COMBINATIONS} (or None for all); got {n}")
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(NUM_COMBINATIONS, generator=generator)[:int(n)]
        factors = index_to_factors(index).to(device)
    return render(factors), factors
