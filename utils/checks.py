"""Input checks the notebooks' models and loops call in one line: each names the value it got, what
was expected and the fix, and raises before any work is done.

    check_grid(x, 4, "VQ-VAE encoder input")        # (B, C, H, W), H and W multiples of 4
    check_channels(z_e, embedding_dim, self)        # (B, D, H, W) into a quantiser; returns z_e
    check_ids(y, 10, "labels")                      # integer ids in [0, 10): one host sync
    check_codes(codes, K, "GatedPixelCNN", labels=y, num_classes=10)   # both: one host sync
    check_range(x, 0, 1, "probabilities")           # float, finite, in [0, 1]: one host sync
    check_pixels(x, "the training images", (-0.5, 0.5), slack=0.5)   # + advice for pixel ranges
    check_images(x, "images", shape=(1, 28, 28))    # the one image check: shape and pixels
    check_one_each(y, len(z), "labels", "z")        # one label per row, not one number for all
    check_vqvae_hp(hp, ema=True)                    # the skeleton's hyperparameter names are there
    check_count(limit, "limit")                     # a positive whole number, not "500" or 2.5
    check_writable(folder)                          # at the start of a run that writes at its end
    loader = checked(loader, check_batch)           # check_batch on every batch where that is free

What a check costs: the shape checks read no tensor data. A value check (ids, ranges, NaN) reads two
numbers back from the device: free on the CPU, a host sync on a GPU. ``checked`` therefore checks a
loader's resident tensors once (ResidentBatches, a DataLoader over a TensorDataset), every batch
that arrives on the host (a DataLoader over files: before it is moved to the device), and only the
first batch of an iterable that yields device tensors.
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

__all__ = ["check_grid", "check_channels", "check_ids", "check_codes", "check_range",
           "check_pixels", "check_one_each", "check_vqvae_hp", "MissingKeyError", "check_count",
           "check_writable", "check_images", "resident_tensors", "checked", "VQVAE_HP"]

# The skeleton's hyperparameter names for the VQ-VAE (Q2), and what each one is.
VQVAE_HP = {"num_hiddens": "encoder/decoder channels, e.g. 128", "num_residual_layers": "e.g. 2",
            "num_residual_hiddens": "e.g. 32", "num_embeddings": "K, the number of codes, e.g. 512",
            "embedding_dim": "D, the size of a code, e.g. 64", "commitment_cost": "beta, e.g. 0.25"}


def _name(what) -> str:
    """A check's subject: a string, or a module / object (its class name)."""
    return what if isinstance(what, str) else type(what).__name__


def _shape(x) -> str:
    return "x".join(str(s) for s in x.shape) if x.dim() else "a scalar"


def _need_tensor(x, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}: convert it with "
                        "torch.as_tensor")


def check_grid(x: torch.Tensor, multiple: int, what="images") -> torch.Tensor:
    """``x`` is a (B, C, H, W) batch whose H and W are multiples of ``multiple`` (the VQ-VAE's
    encoder halves the size twice and its decoder doubles it back, so with 4 any other size comes
    back smaller). Returns ``x``."""
    what = _name(what)
    _need_tensor(x, what)
    if x.dim() != 4:
        raise ValueError(f"{what}: expected a batch of images (B, C, H, W), got shape "
                         f"{tuple(x.shape)}: add the batch axis with x.unsqueeze(0), or the "
                         "channel axis with x.unsqueeze(1)")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        sizes = sorted({max(multiple, h // multiple * multiple), -(-h // multiple) * multiple})
        raise ValueError(f"{what}: images of {h}x{w} pixels, but height and width must be "
                         f"multiples of {multiple} (the encoder halves them twice and the decoder "
                         f"doubles them back, so {h}x{w} would come back as "
                         f"{h // multiple * multiple}x{w // multiple * multiple}): crop or pad the "
                         f"images to {' or '.join(f'{s}x{s}' for s in sizes)} (e.g. F.pad, or "
                         "transforms.CenterCrop)")
    return x


def check_channels(x: torch.Tensor, channels: int, what="quantiser") -> torch.Tensor:
    """``x`` is (B, channels, H, W): the encoder outputs that a quantiser with codes of size
    ``channels`` takes (a wrong channel count would otherwise be reshaped into wrong vectors without
    an error). Returns ``x``."""
    what = _name(what)
    _need_tensor(x, what)
    if x.dim() != 4 or x.shape[1] != channels:
        got = f"{x.shape[1]} channels" if x.dim() == 4 else f"{x.dim()} axes"
        raise ValueError(f"{what}: inputs of shape {tuple(x.shape)} have {got}, expected (B, "
                         f"{channels}, H, W) with {channels} = embedding_dim, the size of a code: "
                         f"give the layer before it {channels} output channels, or build the "
                         "quantiser with embedding_dim equal to the input's channels")
    return x


def _int_ids(t, what: str, fix: str) -> torch.Tensor:
    _need_tensor(t, what)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{what}: expected integer ids (torch.long), got {t.dtype}: convert them "
                        "with .long()"
                        + (f" ({fix})" if fix else ""))
    return t


def _out_of_range(t, lo: int, hi: int, n: int, what: str, fix: str) -> ValueError:
    bad = ((t < 0) | (t >= n)).flatten().nonzero()
    first = int(bad[0]) if len(bad) else 0
    return ValueError(f"{what}: ids must lie in [0, {n - 1}] (there are {n}), got values from {lo} "
                      f"to {hi} ({len(bad)} outside, the first {int(t.flatten()[first])} at flat "
                      f"position {first})"
                      + (f": {fix}" if fix else ""))


def check_ids(t: torch.Tensor, n: int, what="ids", fix="") -> torch.Tensor:
    """``t`` holds integer ids in [0, n) (class labels, code indices); one host sync. Returns t."""
    what = _name(what)
    _int_ids(t, what, fix)
    if t.numel():
        lo, hi = torch.stack(torch.aminmax(t.detach())).tolist()
        if lo < 0 or hi >= n:
            raise _out_of_range(t, lo, hi, n, what, fix)
    return t


def check_codes(codes: torch.Tensor, num_codes: int, what="prior",
                labels: torch.Tensor | None = None,
                num_classes: int | None = None) -> torch.Tensor:
    """Code grids ``codes`` (B, h, w) with ids in [0, num_codes), and ``labels`` (B,) in
    [0, num_classes) if given: what a code prior (the PixelCNN) takes; one host sync for both.
    Returns ``codes``."""
    what = _name(what)
    fix = (f"the codes must come from a VQ-VAE with {num_codes} codes (encode_indices / "
           "encode_dataset of that model); build the prior with num_codes equal to that model's "
           "num_embeddings")
    _int_ids(codes, f"{what}: code grids", fix)
    if codes.dim() != 3:
        raise ValueError(f"{what}: expected code grids (B, h, w), got shape {tuple(codes.shape)}: "
                         "one grid per image (add the batch axis with codes.unsqueeze(0))")
    parts = [codes.detach().flatten()]
    if labels is not None:
        _int_ids(labels, f"{what}: labels", "")
        if labels.dim() != 1 or len(labels) != len(codes):
            raise ValueError(f"{what}: expected one label per code grid, (B,) = ({len(codes)},); "
                             f"got labels of shape {tuple(labels.shape)}")
        parts.append(labels.detach().flatten())
    if not codes.numel():
        return codes
    lo_hi = torch.stack([torch.stack(torch.aminmax(p)) if p.numel()
                         else torch.zeros(2, dtype=p.dtype, device=p.device)
                         for p in parts]).tolist()                     # one host sync for all
    (lo, hi), *rest = lo_hi
    if lo < 0 or hi >= num_codes:
        raise _out_of_range(codes, lo, hi, num_codes, f"{what}: code grids", fix)
    if rest and num_classes is not None and (rest[0][0] < 0 or rest[0][1] >= num_classes):
        raise _out_of_range(labels, *rest[0], num_classes, f"{what}: labels",
                            f"use class ids 0..{num_classes - 1} (labels counted from 1: y - 1), "
                            "or build the prior with more classes")
    return codes


def check_range(x: torch.Tensor, low: float, high: float, what="images",
                expected: str | None = None, fix="") -> torch.Tensor:
    """``x`` is float and every value finite and within [low, high] (``expected``: the range to name
    in the message, when the test allows some slack; ``fix``: the advice, or a function of the (min,
    max) found that returns it); one host sync, and a NaN or inf fails (a NaN compares False).
    Returns ``x``."""
    what = _name(what)
    _need_tensor(x, what)
    expected = expected or f"[{low:g}, {high:g}]"
    if not x.is_floating_point():
        advice = fix(0.0, 255.0) if callable(fix) else fix
        raise TypeError(f"{what} are {x.dtype}, expected float values in {expected}"
                        + (f": {advice}" if advice else ""))
    if not x.numel():
        return x
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        nan = bool(torch.isnan(x).any())
        raise ValueError(f"{what} hold {'NaN' if nan else 'infinite'} values, expected finite "
                         f"values in {expected}: find them with "
                         f"torch.{'isnan' if nan else 'isinf'}(x), then fix or drop those entries")
    if lo < low or hi > high:
        advice = fix(lo, hi) if callable(fix) else fix
        raise ValueError(f"{what} range from {lo:g} to {hi:g}, expected "
                         f"{expected}" + (f": {advice}" if advice else ""))
    return x


def _pixel_fix(low: float, high: float) -> Callable[[float, float], str]:
    """The advice for pixels found in [lo, hi] where [low, high] was expected: which range they look
    like, and the map from it."""
    to_01 = low == 0 and high == 1

    def fix(lo: float, hi: float) -> str:
        if hi > 10:                           # 0-255 images (any picture has a bright pixel)
            return ("they look like 0-255 pixels: divide by 255 (x.float() / 255)" if to_01 else
                    "they look like 0-255 pixels: divide by 255 and subtract 0.5 (x.float() / 255 "
                    "- 0.5; ToTensor() and Normalize((0.5,)*C, (1.0,)*C) do both)")
        if to_01 and lo < 0 and lo >= -0.5 - 1e-3 and hi <= 0.5 + 1e-3:
            return ("they look like the VQ-VAE's pixels in [-0.5, 0.5]: add 0.5 first (and "
                    "clamp(0, 1) a decoder's output), e.g. (x + 0.5).clamp(0, 1)")
        if to_01 and lo < 0 and lo >= -1 - 1e-3 and hi <= 1 + 1e-3:
            return "they look like pixels in [-1, 1] (a tanh output?): map them with (x + 1) / 2"
        return f"rescale them into [{low:g}, {high:g}]"

    return fix


def check_pixels(x: torch.Tensor, what="images", expected: tuple[float, float] = (0.0, 1.0),
                 slack: float = 0.0) -> torch.Tensor:
    """Float images, every pixel finite and within ``expected`` (widened by ``slack`` on both
    sides); the message says which range the pixels look like (0-255, [0, 1], [-0.5, 0.5], [-1, 1])
    and how to map them. One host sync. Returns ``x``."""
    low, high = expected
    return check_range(x, low - slack, high + slack, what, f"[{low:g}, {high:g}]",
                       _pixel_fix(low, high))


def check_images(x, what="images", pixels: tuple[float, float] = (0.0, 1.0), shape=None,
                 values: bool = True, slack: float = 0.0) -> torch.Tensor:
    """A batch of float images: ``shape`` the shape of one image (a tuple such as (1, 32, 32), or an
    int: its number of pixels, so (N, 784) and (N, 1, 28, 28) both pass), pixels in ``pixels``
    (widened by ``slack``) unless ``values`` is False (that test reads two numbers back from the
    device). The one image check of the notebooks. Returns ``x``."""
    what = _name(what)
    _need_tensor(x, what)
    if shape is not None:
        one = (tuple(x.shape[1:]) if isinstance(shape, tuple)
               else (x[0].numel() if x.dim() > 1 else None))
        if x.dim() < 2 or one != shape:
            want = (f"(N, {', '.join(map(str, shape))})" if isinstance(shape, tuple)
                    else f"images of {shape} pixels, (N, {shape}) or (N, 1, H, W)")
            raise ValueError(f"{what}: expected {want}; got shape {tuple(x.shape)}")
    if values:
        return check_pixels(x, what, pixels, slack)
    if not x.is_floating_point():
        raise TypeError(f"{what} are {x.dtype}, expected float pixels in [{pixels[0]:g}, "
                        f"{pixels[1]:g}]: "
                        + _pixel_fix(*pixels)(0.0, 255.0))
    return x


def check_one_each(y, n: int, what="labels", per="image") -> None:
    """``y`` holds one entry per row of a batch of ``n`` (not a single number for all of them)."""
    # 7, torch.tensor(7), np.int64(7)
    if isinstance(y, numbers.Number) or getattr(y, "shape", None) == ():
        value = y.item() if hasattr(y, "item") else y
        raise ValueError(f"{what}={value!r} is one number; expected one per {per}, {n} in all: "
                         f"pass torch.full(({n},), {value!r}) for the same one everywhere")
    if len(y) != n:
        raise ValueError(f"got {len(y)} {what} for a batch of {n}: pass one label per {per}")


class MissingKeyError(KeyError):
    """A dict of settings lacks a key the code needs; the message (printed as is) names the fix."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def check_vqvae_hp(hp: Mapping, *, ema: bool = True, learning_rate: bool = False,
                   what="hp") -> Mapping:
    """``hp`` has the skeleton's VQ-VAE hyperparameters (``VQVAE_HP``), ``decay`` too for an EMA
    quantiser and ``learning_rate`` for a training run; a KeyError halfway through a run otherwise.
    Returns ``hp``."""
    if not isinstance(hp, Mapping):
        raise TypeError(f"{what} must be a dict of hyperparameters, got {type(hp).__name__}")
    need = dict(VQVAE_HP)
    if ema:
        need["decay"] = "the EMA's decay, e.g. 0.99"
    if learning_rate:
        need["learning_rate"] = "Adam's, e.g. 1e-3"
    missing = [k for k in need if k not in hp]
    if missing:
        raise MissingKeyError(f"{what} lacks {', '.join(repr(k) for k in missing)} (it has "
                              f"{', '.join(map(repr, hp)) or 'none'}): add "
                              f"{', '.join(f'{k}=... ({need[k]})' for k in missing)}, e.g. "
                              f"dict({what}, {missing[0]}=...)")
    return hp


def check_count(value, name: str, low: int = 1):
    """``value`` is a whole number >= low (an int, a numpy int, or a float with no fraction);
    returns it as int. The message names ``name``, the value and an example of a good one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            not isinstance(value, numbers.Integral) and not float(value).is_integer()):
        digits = isinstance(value, str) and value.strip().isdigit()
        example = value.strip() if digits else max(low, 1000)
        raise TypeError(f"{name}={value!r} is a {type(value).__name__}, expected a whole number >= "
                        f"{low}: pass a number, e.g. {name}={example}")
    if int(value) < low:
        raise ValueError(f"{name} must be a whole number >= {low}, not {value!r}")
    return int(value)


def check_writable(folder, what="output folder") -> Path:
    """``folder`` exists (it is created) and a file can be written into it: checked at the start of
    a run that writes there at its end. Returns the folder as a Path."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"{what} {folder} is not writable ({type(err).__name__}: "
                              f"{err.strerror or err}): fix its permissions, or choose another "
                              "folder (OUTPUT_ROOT for a notebook's outputs)") from None
    return folder


def resident_tensors(loader) -> tuple | None:
    """The tensors a loader draws every batch from, where it exposes them:
    ``ResidentBatches.tensors``, or the tensors of a DataLoader over a TensorDataset; None for any
    other iterable."""
    tensors = getattr(loader, "tensors", None)
    if tensors is None:
        tensors = getattr(getattr(loader, "dataset", None), "tensors", None)
    return tuple(tensors) if tensors and all(isinstance(t, torch.Tensor) for t in tensors) else None


def _on_host(batch) -> bool:
    return all(t.device.type == "cpu" for t in batch if isinstance(t, torch.Tensor))


class _Checked:
    """An iterable over ``loader`` that checks its batches (see ``checked``); re-iterable, with the
    loader's len."""

    def __init__(self, loader, check: Callable):
        self.loader, self.check = loader, check

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):        # tensors, dataset, batch_size ... of the wrapped loader
        return getattr(self.__dict__["loader"], name)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            parts = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
            if i == 0 or _on_host(parts):
                try:
                    self.check(*parts)
                except (ValueError, TypeError) as err:
                    raise type(err)(f"batch {i + 1} of the loader: {err}") from None
            yield batch


def checked(loader: Iterable, check: Callable | None):
    """``loader`` with ``check(*batch)`` applied where it is cheap enough to stay on in training:
    once now on the tensors behind it (``resident_tensors``: then every batch is a part of checked
    data), else on every batch that arrives on the host (before it is moved) and on the first one of
    a loader that yields device tensors (one host sync per epoch). ``check`` None: the loader
    itself. A check's error names the batch."""
    if check is None or isinstance(loader, _Checked):
        return loader
    tensors = resident_tensors(loader)
    if tensors is not None:
        check(*tensors)
        return loader
    return _Checked(loader, check)
