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
  where no CPU's rounding can move it across a rounding boundary (see :data:`_MARGIN`), and the few others, and
  every pixel whose coordinates a CPU without FMA computes differently, are recomputed as AVX-512's kernel
  computes them (:func:`_exact_values`); the fill mask is computed that way once per grid;
* nearest: ``grid_sample`` reads the pixel AVX-512's kernel picks, through a grid snapped to the centres of the
  chosen pixels, which every CPU rounds to the same pixel.

A grid, its mask and its list of such pixels are cached per (op, magnitude, size, mode): 1.4 ms to build at 224 px.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.functional import grid_sample
from torchvision.transforms.v2 import InterpolationMode

from . import _torchvision
from .exact import fma

GRID_OPS = ("ShearX", "ShearY", "Rotate")
"""RandAugment ops sampled through an affine grid (TranslateX/Y move whole pixels: :func:`.fast.translate`)."""

_MARGIN = 2.0**-10
"""A sampled, blended value farther than this from the nearest ``k + 0.5`` rounds like AVX-512's on any CPU. The
CPUs differ only in the order and fusion of the four weighted values' multiply-adds (the coordinates, weights and
blend are the same operations, each correctly rounded, once the pixels :func:`_unfused_differ` lists are set apart):
at most 7 roundings on each side of values below 256 (2**-16 each), so less than 2**-12.2, plus 6 roundings in the
blend: under 3.3e-4, a third of the margin. About 0.2 % of the values of a real photo fall within it."""


class _Pixels(NamedTuple):
    """Pixels of a bilinear sampling and their four neighbours (north-west, north-east, south-west, south-east)."""

    index: np.ndarray
    """``(n,)`` flat indices of the pixels in the output plane."""
    rows: np.ndarray
    """``(4, n)`` neighbour rows, clamped into the image."""
    cols: np.ndarray
    """``(4, n)`` neighbour columns, clamped into the image."""
    weights: np.ndarray
    """``(4, n)`` float32 bilinear weights as AVX-512's ``grid_sample`` computes them; 0 for a neighbour outside."""


class _Plan(NamedTuple):
    """A cached sampling plan for one op, magnitude, image size and mode."""

    grid: torch.Tensor
    """``(1, H, W, 2)`` float32: AVX-512's grid (bilinear) or one snapped to the chosen pixels' centres (nearest)."""
    mask: torch.Tensor
    """``(1, 1, H, W)`` float32: the fill mask, torchvision's fourth sampled channel of ones, as AVX-512 computes it."""
    recompute: _Pixels
    """Bilinear: the pixels whose coordinates a CPU without FMA computes differently, recomputed exactly in every
    view (0.7 % at 224 px, none at 32 px, measured); none for nearest."""


def affine_matrix(op: str, magnitude: float, height: int, width: int) -> list[float] | None:
    """The inverse affine matrix of torchvision's ``affine_image``/``rotate_image`` for RandAugment's ``op``, with
    the arguments its ``_apply_image_or_video_transform`` passes; None where torchvision samples no grid (rotations
    it does with ``clone``/``rot90``; the oracle tests pin every op and sign)."""
    inverse = _torchvision.inverse_affine_matrix
    if op == "Rotate":
        angle = magnitude % 360
        if angle in (0, 180) or (angle in (90, 270) and height == width):
            return None
        return inverse([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    if op in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(magnitude))
        center = [0.0 - width * 0.5, 0.0 - height * 0.5]  # center=[0, 0], moved to the image-centred frame
        return inverse(center, 0.0, [0.0, 0.0], 1.0, [shear, 0.0] if op == "ShearX" else [0.0, shear])
    return None


def sample(
    images: torch.Tensor, op: str, magnitude: float, mode: InterpolationMode, fill: tuple[int, ...]
) -> torch.Tensor | None:
    """torchvision's RandAugment ``op`` (one of :data:`GRID_OPS`) of ``uint8`` CPU ``images`` ``(B, C, H, W)``;
    None where torchvision samples no grid (its own op is then exact)."""
    plan = _plan(op, magnitude, *images.shape[-2:], mode)
    if plan is None:
        return None
    fills = torch.tensor([float(v) for v in fill], dtype=torch.float32).view(1, -1, 1, 1)
    out = grid_sample(images.to(torch.float32), plan.grid.expand(len(images), -1, -1, -1), mode.value, "zeros", False)
    if mode == InterpolationMode.NEAREST:
        return torch.where(plan.mask < 0.5, fills, out).to(torch.int32).to(torch.uint8)
    values = out.sub_(fills).mul_(plan.mask).add_(fills).numpy()  # torchvision's blend: 3 correctly rounded steps
    rounded = np.rint(values)
    distance = np.abs(np.subtract(values, rounded, out=values), out=values)  # numpy: a third of torch's time here
    planes, mask, shades = rounded.reshape(-1, values[0, 0].size), plan.mask.numpy().reshape(-1), _shades(fill)
    distance.reshape(planes.shape)[:, plan.recompute.index] = 0  # recomputed in every view below
    near = np.flatnonzero(distance > np.float32(0.5 - _MARGIN))
    pixels = plan.recompute
    if len(pixels.index):
        values = images.numpy()[:, :, pixels.rows, pixels.cols].astype(np.float32)  # (B, C, 4, n)
        exact = _blended(_interpolated(values, pixels.weights), shades[:, None], mask[pixels.index])
        rounded.reshape(*images.shape[:2], -1)[:, :, pixels.index] = exact
    if len(near):
        plane, pixel = np.divmod(near, planes.shape[1])
        view, channel = np.divmod(plane, images.shape[1])
        pixels = _pixels(plan.grid.numpy(), pixel, *images.shape[-2:])
        values = images.numpy()[view, channel, pixels.rows, pixels.cols].astype(np.float32)  # (4, n)
        planes.reshape(-1)[near] = _blended(_interpolated(values, pixels.weights), shades[channel], mask[pixel])
    return torch.from_numpy(rounded.astype(np.uint8))


@lru_cache(maxsize=16)
def _shades(fill: tuple[int, ...]) -> np.ndarray:
    return np.asarray(fill, dtype=np.float32)


@lru_cache(maxsize=64)
def _plan(op: str, magnitude: float, height: int, width: int, mode: InterpolationMode) -> _Plan | None:
    matrix = affine_matrix(op, magnitude, height, width)
    if matrix is None:
        return None
    grid = _grid(matrix, height, width)
    x, y = _coordinates(grid, height, width)
    if mode == InterpolationMode.NEAREST:
        return _nearest_plan(x, y, height, width)
    weights = _corners(x, y, height, width)[1].reshape(4, -1)
    mask = _interpolated(np.ones_like(weights), weights).reshape(height, width)  # the kernel's channel of ones
    recompute = _pixels(grid, np.flatnonzero(_unfused_differ(grid, x, y, height, width)), height, width)
    return _Plan(torch.from_numpy(grid)[None], torch.from_numpy(mask)[None, None], recompute)


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


def _corners(x: np.ndarray, y: np.ndarray, height: int, width: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The four neighbours (north-west, north-east, south-west, south-east) of source coordinates ``x``, ``y``:
    ``(rows, cols)`` clamped into the image, ``(4, ...)`` each, and their float32 bilinear weights, 0 for a neighbour
    outside the image (the kernel reads 0 there). Weights as the kernel computes them, one rounding per operation."""
    left, top = np.floor(x), np.floor(y)
    east, south = x - left, y - top
    west, north = np.float32(1) - east, np.float32(1) - south
    weights = np.stack([north * west, north * east, south * west, south * east])
    col, row = left.astype(np.int64), top.astype(np.int64)
    cols, rows = np.stack([col, col + 1, col, col + 1]), np.stack([row, row, row + 1, row + 1])
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    weights[~inside] = 0
    return (np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)), weights


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
    mask = inside.astype(np.float32)
    nothing = _Pixels(np.empty(0, np.int64), np.empty((4, 0), np.int64), np.empty((4, 0), np.int64), np.empty((4, 0)))
    return _Plan(torch.from_numpy(grid)[None], torch.from_numpy(mask)[None, None], nothing)


def _pixels(grid: np.ndarray, index: np.ndarray, height: int, width: int) -> _Pixels:
    """The neighbours and weights of the pixels ``index`` of ``grid`` (``(H, W, 2)``) as AVX-512 samples them."""
    (rows, cols), weights = _corners(*_coordinates(grid.reshape(-1, 2)[index], height, width), height, width)
    return _Pixels(index, rows, cols, weights)


def _interpolated(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(..., 4, n)`` float32 neighbour values weighted by ``weights`` ``(4, n)`` as AVX-512's ``grid_sample``
    adds them: ``nw·v_nw``, then the north-east, south-west and south-east terms each by a fused multiply-add
    (measured: equal on all 4.7 M values of 90 sampled batches)."""
    total = values[..., 0, :] * weights[0]
    for k in (1, 2, 3):
        total = fma(values[..., k, :], weights[k], total)
    return total


def _blended(sampled: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """torchvision's fill blend ``(v - fill)·mask + fill``, one rounding per operation, rounded half to even."""
    return np.rint((sampled - fill) * mask + fill)
