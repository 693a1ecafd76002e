"""RandAugment's sampled geometric ops (Rotate, ShearX, ShearY) on ``uint8`` CPU images: the bytes torchvision gives
on AVX2/AVX-512 x86, on every CPU.

torchvision (``affine_image``, ``rotate_image``) builds a grid of source coordinates with a batched matrix product
and samples it with ``grid_sample``. Both round differently on different CPUs: BLAS picks its summation order and
fused multiply-adds (FMA) by CPU, and ``grid_sample``'s vectorized code has its multiply-adds contracted into FMAs
where the CPU has them (AVX2, AVX-512, aarch64) and not elsewhere (measured under ``ATEN_CPU_CAPABILITY=default``:
1-level differences in 19 to 63 of 63 bilinear views per op; on aarch64, every view that changed had one of these
ops). Here, with every rounding step spelled out in :mod:`.exact`'s arithmetic:

* the grid is torchvision's formula, ``x·t0 + y·t1 + t2`` of the pixel's centred coordinates and the rescaled
  inverse matrix, rounded as MKL's sgemm rounds it on AVX-512 x86 (``x·t0``, then ``+ y·t1`` fused, then ``+ t2``;
  measured: equal to its grid on all 28 M coordinates of 720 grids); the source coordinates are unnormalized as
  AVX-512's ``grid_sample`` does it (``(g + 1)·size/2 - 0.5``, fused);
* bilinear: torch's ``grid_sample`` samples that grid and torchvision's fill blend follows; a value is kept only
  where no CPU's rounding can move it across a rounding boundary (:data:`_MARGIN`, wider where a CPU without FMA
  computes other coordinates: :func:`_coordinate_margin`); the few others are recomputed in numpy as AVX-512's kernel
  computes them (:func:`_interpolated`, :func:`_blended`); the fill mask is computed that way once per grid;
* nearest: ``grid_sample`` reads the pixel AVX-512's kernel picks, through a grid snapped to the centres of the
  chosen pixels, which every CPU rounds to the same pixel.

A plan (grid, mask, each pixel's neighbours and weights) is cached per (op, magnitude, size, mode): 45 bytes per
pixel, 5 ms to build at 224 px (RandAugment's default, a fixed magnitude, draws 6 of them per resolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.functional import grid_sample
from torchvision.transforms.v2 import InterpolationMode

from .exact import fma, fma_exact_in_float64

MultiplyAdd = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

GRID_OPS = ("ShearX", "ShearY", "Rotate")
"""RandAugment ops sampled through an affine grid (TranslateX/Y move whole pixels: :func:`.fast.translate`)."""

_MARGIN = 2.0**-10
"""A sampled, blended value farther than this from the nearest ``k + 0.5`` rounds like AVX-512's on any CPU. The
CPUs differ only in the order and fusion of the four weighted values' multiply-adds (the coordinates, weights and
blend are the same operations, each correctly rounded, where fused and unfused coordinates agree, see ``unfused``):
at most 7 roundings on each side of values below 256 (2**-16 each), so less than 2**-12.2, plus 6 roundings in the
blend: under 3.3e-4, a third of the margin. About 0.2 % of the values of a real photo fall within it."""

_TINY_WEIGHT = np.float32(2.0**-20)
"""Where every nonzero weight of a pixel is at least this, each of its multiply-adds is exact in float64: the
products of 8-bit values and such weights, and their float32 sums, are multiples of 2**-43 below 2**9 (52 bits)."""

_NEIGHBOURS = ((0, 0), (0, 1), (1, 0), (1, 1))
"""Row and column offsets of the north-west, north-east, south-west and south-east neighbours, the kernel's order."""


class _Plan(NamedTuple):
    """A cached sampling plan for one op, magnitude, image size and mode."""

    grid: torch.Tensor
    """``(1, H, W, 2)`` float32: AVX-512's grid (bilinear) or one snapped to the chosen pixels' centres (nearest)."""
    mask: torch.Tensor
    """``(1, 1, H, W)`` float32: the fill mask, torchvision's fourth sampled channel of ones, as AVX-512 computes it."""
    neighbours: np.ndarray
    """``(4, H·W)`` flat indices of each pixel's four neighbours (:data:`_NEIGHBOURS`), clamped into the image: where
    one lies outside, its weight is 0."""
    weights: np.ndarray
    """``(4, H·W)`` float32: the neighbours' weights as AVX-512's kernel computes them, 0 for one outside the image."""
    unfused: np.ndarray
    """Flat indices of the pixels whose coordinates a CPU without FMA computes differently (0.7 % at 224 px, none at
    32 px, measured): their values are trusted only outside :func:`_coordinate_margin`."""
    tiny: np.ndarray
    """``(H·W,)`` bool: pixels with a nonzero weight below :data:`_TINY_WEIGHT` (about 10 % of a shear's: one of its
    coordinates stays within rounding of a whole number)."""


def affine_matrix(op: str, magnitude: float, height: int, width: int) -> list[float] | None:
    """The inverse affine matrix of torchvision's ``affine_image``/``rotate_image`` for RandAugment's ``op``, with
    the arguments its ``_apply_image_or_video_transform`` passes; None where torchvision samples no grid (rotations
    it does with ``clone``/``rot90``; the oracle tests pin every op and sign)."""
    if op == "Rotate":
        angle = magnitude % 360
        if angle in (0, 180) or (angle in (90, 270) and height == width):
            return None
        return _inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0])
    if op in ("ShearX", "ShearY"):
        shear = math.degrees(_correctly_rounded("atan", magnitude))
        center = [0.0 - width * 0.5, 0.0 - height * 0.5]  # center=[0, 0], moved to the image-centred frame
        return _inverse_affine_matrix(center, 0.0, [shear, 0.0] if op == "ShearX" else [0.0, shear])
    return None


def _inverse_affine_matrix(center: list[float], angle: float, shear: list[float]) -> list[float]:
    """torchvision's ``_get_inverse_affine_matrix(center, angle, [0, 0], 1.0, shear)``, operation for operation,
    with correctly rounded trigonometric functions in place of the C library's."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    cos_sy, tan_sx = _correctly_rounded("cos", sy), _correctly_rounded("tan", sx)
    a = _correctly_rounded("cos", rot - sy) / cos_sy
    b = -(a * tan_sx + _correctly_rounded("sin", rot))
    c = _correctly_rounded("sin", rot - sy) / cos_sy
    d = _correctly_rounded("cos", rot) - c * tan_sx
    matrix = [d / 1.0, -b / 1.0, 0.0, -c / 1.0, a / 1.0, 0.0]
    matrix[2] += cx - matrix[0] * (cx + 0.0) - matrix[1] * (cy + 0.0)
    matrix[5] += cy - matrix[3] * (cx + 0.0) - matrix[4] * (cy + 0.0)
    return matrix


@lru_cache(maxsize=4096)
def _correctly_rounded(function: str, x: float) -> float:
    """``math.<function>(x)`` correctly rounded (mpmath at 192 bits). glibc's results differ from the correctly
    rounded ones by a unit in the last place in 0.23 % of the calls a RandAugment matrix makes, and by CPU: its
    versions for CPUs with and without FMA disagree on 321 of 800,000 tan/atan/sin/cos values (measured with
    ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-FMA``); ShearX/Y's matrix multiplies tan by half the image size, which can
    land on a float32 rounding boundary, so one unit there changes the float32 matrix."""
    import mpmath  # imported on the first geometric op only

    with mpmath.workprec(192):
        return float(getattr(mpmath, function)(mpmath.mpf(x)))


def sample(
    images: torch.Tensor, op: str, magnitude: float, mode: InterpolationMode, fill: tuple[int, ...]
) -> torch.Tensor | None:
    """torchvision's RandAugment ``op`` (one of :data:`GRID_OPS`) of ``uint8`` CPU ``images`` ``(B, C, H, W)``;
    None where torchvision samples no grid (its own op is then exact)."""
    height, width = images.shape[-2:]
    plan = _plan(op, magnitude, height, width, mode)
    if plan is None:
        return None
    fills = _fills(tuple(fill))
    out = grid_sample(images.to(torch.float32), plan.grid.expand(len(images), -1, -1, -1), mode.value, "zeros", False)
    if mode == InterpolationMode.NEAREST:
        return torch.where(plan.mask < 0.5, fills, out).to(torch.int32).to(torch.uint8)
    shades = fills.numpy()
    values = np.ascontiguousarray(out.numpy())  # torchvision's blend, in numpy (the same roundings, less per call)
    values -= shades
    values *= plan.mask.numpy()
    values += shades
    rounded = np.rint(values)  # C-contiguous like values: the reshapes below are views, written through
    distance = np.abs(np.subtract(values, rounded, out=values), out=values)  # numpy: a third of torch's time here
    pixels = values[0, 0].size
    planes = rounded.reshape(-1, pixels)
    if len(plan.unfused):
        distance.reshape(planes.shape)[:, plan.unfused] += _coordinate_margin(height, width)
    near = np.flatnonzero(distance > np.float32(0.5 - _MARGIN))
    if len(near):
        plane = near // pixels
        pixel = near - plane * pixels
        neighbours = plan.neighbours[:, pixel] + plane * pixels
        values = images.numpy().reshape(-1)[neighbours].astype(np.float32)
        total = _interpolated(values, plan.weights[:, pixel], plan.tiny[pixel])
        shade = shades.reshape(-1)[plane % shades.size]
        planes.reshape(-1)[near] = _blended(total, shade, plan.mask.numpy().reshape(-1)[pixel])
    return torch.from_numpy(rounded.astype(np.uint8))


def _coordinate_margin(height: int, width: int) -> np.float32:
    """How much wider the margin is where a CPU without FMA computes other coordinates: they differ by at most 2
    units in the last place of coordinates below ``2**e`` (``e`` the bit length of the larger side), 2**(e - 23), so a
    bilinear value by at most 255 times that in x and in y: below 2**(e - 14) (0.016 from 128 to 255 px)."""
    return np.float32(2.0 ** (max(height, width).bit_length() - 14))


@lru_cache(maxsize=16)
def _fills(fill: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor([float(v) for v in fill], dtype=torch.float32).view(1, -1, 1, 1)


@lru_cache(maxsize=32)
def _plan(op: str, magnitude: float, height: int, width: int, mode: InterpolationMode) -> _Plan | None:
    matrix = affine_matrix(op, magnitude, height, width)
    if matrix is None:
        return None
    grid = _grid(matrix, height, width)
    x, y = _coordinates(grid, height, width)
    if mode == InterpolationMode.NEAREST:
        return _nearest_plan(x, y, height, width)
    northwest, weights = _corners(x.reshape(-1), y.reshape(-1), height, width)
    offsets = np.array([dy * width + dx for dy, dx in _NEIGHBOURS])[:, None]
    neighbours = np.clip(northwest[None] + offsets, 0, height * width - 1).astype(np.int32)
    mask = weights[0] + weights[1]  # the kernel's channel of ones: each multiply-add adds a weight, one rounding
    mask += weights[2]
    mask += weights[3]
    tiny = ((weights > 0) & (weights < _TINY_WEIGHT)).any(axis=0)
    unfused = np.flatnonzero(_unfused_differ(grid, x, y, height, width))
    mask_tensor = torch.from_numpy(mask).view(1, 1, height, width)
    return _Plan(torch.from_numpy(grid)[None], mask_tensor, neighbours, weights, unfused, tiny)


def _grid(matrix: list[float], height: int, width: int) -> np.ndarray:
    """torchvision's ``_affine_grid`` for an output of the input's size, ``(H, W, 2)`` float32, rounded as MKL's
    sgemm rounds its ``(H·W, 3) @ (3, 2)`` product on AVX-512 x86: ``x·t0`` rounded, ``+ y·t1`` fused, ``+ t2``."""
    theta = np.asarray(matrix, dtype=np.float32).reshape(2, 3)
    rescaled = theta.T / np.asarray([0.5 * width, 0.5 * height], dtype=np.float32)  # (3, 2)
    xs = np.arange(width, dtype=np.float32) - np.float32((width - 1) * 0.5)  # torch.linspace's half-integers
    ys = np.arange(height, dtype=np.float32) - np.float32((height - 1) * 0.5)
    return fma(ys[:, None, None], rescaled[1], xs[None, :, None] * rescaled[0]) + rescaled[2]


def _coordinates(grid: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The source pixel coordinates AVX-512's ``grid_sample`` unnormalizes ``grid`` (``(..., 2)``) to:
    ``(g + 1)·size/2 - 0.5`` with the multiply and subtract fused (``align_corners=False``)."""
    one, half = np.float32(1), np.float32(-0.5)
    x = fma(grid[..., 0] + one, np.float32(width / 2), half)
    y = fma(grid[..., 1] + one, np.float32(height / 2), half)
    return x, y


def _corners(x: np.ndarray, y: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The north-west neighbour of source coordinates ``x``, ``y`` (``(n,)``) as a flat index (int32; it may lie
    outside the image), and the ``(4, n)`` float32 bilinear weights of the four neighbours (:data:`_NEIGHBOURS`), as
    the kernel computes them (one rounding per operation), 0 for a neighbour outside the image (it reads 0 there)."""
    left, top = np.floor(x), np.floor(y)
    east, south = x - left, y - top
    west, north = np.float32(1) - east, np.float32(1) - south
    col, row = left.astype(np.int64), top.astype(np.int64)
    weights = np.stack([north * west, north * east, south * west, south * east])
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        inside = (col + dx >= 0) & (col + dx < width) & (row + dy >= 0) & (row + dy < height)
        weights[k][~inside] = 0
    return (row * width + col).astype(np.int32), weights


def _unfused_differ(grid: np.ndarray, x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool: pixels whose coordinates a CPU without FMA unnormalizes to other values than ``x``, ``y`` and
    that read the image either way (0.7 % at 224 px, none at 32 px, measured)."""
    one, half = np.float32(1), np.float32(0.5)
    x_unfused = (grid[..., 0] + one) * np.float32(width / 2) - half
    y_unfused = (grid[..., 1] + one) * np.float32(height / 2) - half
    differ = (x_unfused != x) | (y_unfused != y)
    return differ & (_reads_image(x, y, height, width) | _reads_image(x_unfused, y_unfused, height, width))


def _reads_image(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    return (x > -1) & (x < width) & (y > -1) & (y < height)


def _nearest_plan(x: np.ndarray, y: np.ndarray, height: int, width: int) -> _Plan:
    """Nearest sampling: the pixel AVX-512 picks (coordinates rounded half to even), as a grid of that pixel's centre
    (every CPU's unnormalization lands within a few units in the last place of it, and rounds to it) or of a point far
    outside the image where the pick is outside; the mask is 1 where the pick is inside."""
    col, row = np.rint(x), np.rint(y)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    centres = np.stack([(col + 0.5) / (width / 2) - 1, (row + 0.5) / (height / 2) - 1], axis=-1)
    grid = np.where(inside[..., None], centres, -3.0).astype(np.float32)
    mask = torch.from_numpy(inside.astype(np.float32))[None, None]
    nothing = np.empty(0, np.int64)
    return _Plan(
        torch.from_numpy(grid)[None], mask, nothing.reshape(4, 0), np.empty((4, 0)), nothing, nothing.astype(bool)
    )


def _interpolated(values: np.ndarray, weights: np.ndarray, tiny: np.ndarray) -> np.ndarray:
    """``(..., 4, n)`` float32 neighbour values weighted by ``weights`` ``(4, n)`` as AVX-512's ``grid_sample``
    adds them: ``nw·v_nw``, then the north-east, south-west and south-east terms each by a fused multiply-add
    (measured: equal on all 4.7 M values of 90 sampled batches). In float64 where no weight of the pixel is below
    :data:`_TINY_WEIGHT` (``tiny``, ``(n,)`` bool, false), with :func:`.exact.fma` for the others."""
    total = _weighted_sum(values, weights, fma_exact_in_float64)
    if tiny.any():
        total[..., tiny] = _weighted_sum(values[..., tiny], weights[:, tiny], fma)
    return total


def _weighted_sum(values: np.ndarray, weights: np.ndarray, multiply_add: MultiplyAdd) -> np.ndarray:
    total = values[..., 0, :] * weights[0]
    for k in (1, 2, 3):
        total = multiply_add(values[..., k, :], weights[k], total)
    return total


def _blended(sampled: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """torchvision's fill blend ``(v - fill)·mask + fill``, one rounding per operation, rounded half to even."""
    return np.rint((sampled - fill) * mask + fill)
