"""torchvision's photometric RandAugment ops on ``uint8`` batches, faster, and with the same bytes on every CPU.

Each function returns exactly what torchvision v2's RandAugment op returns on AVX2/AVX-512 x86 for the same
``(B, C, H, W)`` ``uint8`` batch, by an argument that does not depend on the CPU's float arithmetic (the tests
compare every op, sign and magnitude bin with torchvision on real and random images of many sizes, and the bytes
under every ``ATEN_CPU_CAPABILITY``):

* TranslateX/Y move by a whole number of pixels: torchvision samples the image at integer coordinates (plus a
  rounding error far below half a pixel), so its result is the image shifted, with ``fill`` where nothing is;
* Sharpness blurs with a 3×3 kernel of 1/13 and a 5/13 centre and rounds: the weighted sum is ``k / 13`` for an
  integer ``k``, never within 1/26 of a half, so torchvision's float32 ``round(k / 13)`` is the integer
  ``(2k + 13) // 26`` whatever the convolution's summation order; the blend ``x + (1 - f)(blur - x)`` is one fused
  multiply-add in torch's AVX2/AVX-512 kernels and two roundings without them (``add_(..., alpha=)``), so it is read
  from a table of the fused result;
* Color and Contrast blend with torchvision's grayscale, ``0.2989 r + 0.587 g + 0.114 b`` as a product and two fused
  multiply-adds (exact in float64 for 8-bit values: 35 significant bits at most), floored; Color's blend
  ``x·f + (1 - f)·gray`` (a product and a fused multiply-add) is read from a table, Contrast's mean is the exact
  integer sum of the gray values over the pixel count, as torch's float32 ``mean`` computes it while the sum stays
  below 2**24 (images up to 256×256), and its blend is a 256-entry table per image;
* Brightness and AutoContrast are one correctly rounded float32 operation per value (a product; a difference and a
  quotient) on whole numbers, clamped and truncated: a 256-entry table made by torchvision's own arithmetic (per
  channel of each image for AutoContrast, from its exact minimum and maximum) gives the same bytes;
* Equalize is integer arithmetic on per-channel histograms (torchvision's formula, counted with ``bincount``);
* Solarize compares whole numbers with the threshold: the smallest value torchvision's own comparison inverts is
  found once on ``0..255``, then the image is compared with that integer in ``uint8`` and inverted by ``^ 255``.

Measured at 224 px on one CPU thread, per view, torchvision → here (``OMP_NUM_THREADS=1 python
scripts/bench_augment.py --ops``): translate 0.68 → 0.02 ms, sharpness 1.15 → 0.40 ms, equalize 0.59 → 0.42 ms,
solarize 0.29 → 0.11 ms, autocontrast 0.26 → 0.18 ms, brightness 0.19 → 0.15 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from .exact import fma


def translate(images: torch.Tensor, shift: int, dim: int, fill: tuple[int, ...]) -> torch.Tensor:
    """``images`` moved by ``shift`` pixels along ``dim`` (-1: right for ``shift > 0``; -2: down), ``fill`` where
    no pixel lands: torchvision's RandAugment TranslateX (``dim=-1``) / TranslateY (``dim=-2``)."""
    out = torch.empty_like(images)
    out.copy_(torch.tensor(fill, dtype=images.dtype, device=images.device).view(1, -1, 1, 1))
    size = images.shape[dim]
    kept = size - abs(shift)
    if kept > 0:
        out.narrow(dim, max(shift, 0), kept).copy_(images.narrow(dim, max(-shift, 0), kept))
    return out


def sharpness(images: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_sharpness`` of ``uint8`` ``images`` by ``factor``: the interior blended with its
    rounded 3×3 blur (edge pixels kept), then clamped and truncated to ``uint8``. In integers: the blur is
    ``round(k / 13)`` of the weighted sum ``k`` (at most 3315), never a half, so ``(2k + 13) // 26``."""
    height, width = images.shape[-2:]
    if images.numel() == 0 or height <= 2 or width <= 2:
        return images
    pixels = images.numpy()
    wide = pixels.astype(np.uint16)
    rows = wide[..., :-2] + wide[..., 1:-1]
    rows += wide[..., 2:]
    weighted = rows[..., :-2, :] + rows[..., 1:-1, :]
    weighted += rows[..., 2:, :]
    interior = wide[..., 1:-1, 1:-1]
    weighted += interior * np.uint16(4)  # the 3×3 sum weighted 1, ..., 5 (centre)
    weighted *= np.uint16(2)
    weighted += np.uint16(13)
    weighted //= np.uint16(26)  # the rounded blur
    index = interior << np.uint16(8)
    index |= weighted
    output = pixels.copy()
    output[..., 1:-1, 1:-1] = np.take(_sharpen_table(float(factor)).reshape(-1), index)
    return torch.from_numpy(output)


@lru_cache(maxsize=128)
def _sharpen_table(factor: float) -> np.ndarray:
    """``table[x · 256 + b]``: torchvision's sharpness blend of pixel ``x`` with its blur ``b``, ``x + (1 - f)(b - x)``
    with one rounding (AVX2/AVX-512's fused multiply-add), clamped and truncated to ``uint8``."""
    pixel, blur = np.arange(256, dtype=np.float32)[:, None], np.arange(256, dtype=np.float32)[None, :]
    return _to_uint8(fma(np.float32(1.0 - factor), blur - pixel, pixel))


def color(images: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_saturation`` of ``uint8`` RGB ``images`` by ``factor``: each value blended with its
    pixel's floored grayscale."""
    if images.shape[-3] != 3:
        return images
    return _lookup(_blend_table(float(factor)), images, grayscale(images))


@lru_cache(maxsize=128)
def _blend_table(ratio: float) -> np.ndarray:
    """``table[x · 256 + y]``: torchvision's ``_blend`` of ``x`` with ``y``, ``x·ratio`` rounded, then
    ``+ (1 - ratio)·y`` with one rounding (AVX2/AVX-512's fused multiply-add), clamped and truncated to ``uint8``."""
    own, other = np.arange(256, dtype=np.float32)[:, None], np.arange(256, dtype=np.float32)[None, :]
    return _to_uint8(fma(np.float32(1.0 - ratio), other, own * np.float32(ratio)))


def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_contrast`` of ``uint8`` ``images`` (RGB or one channel) by ``factor``: each value
    blended with the mean of its image's floored grayscale."""
    gray = (grayscale(images) if images.shape[-3] == 3 else images).numpy()
    total = gray.reshape(len(gray), -1).sum(axis=1, dtype=np.int64)  # exact
    mean = total.astype(np.float32) / np.float32(gray[0].size)  # torch's float32 mean: sum (exact below 2**24), / count
    own = np.arange(256, dtype=np.float32) * np.float32(factor)
    luts = _to_uint8(fma(np.float32(1.0 - factor), mean[:, None], own[None, :]))  # (B, 256)
    planes = images.reshape(-1, images.shape[-2] * images.shape[-1])
    return _apply_luts(planes, np.repeat(luts, images.shape[-3], axis=0)).view_as(images)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` of ``uint8`` RGB ``images`` ``(B, 3, H, W)`` as its float32 kernels compute
    it on AVX2/AVX-512, floored: ``r·0.2989`` rounded, ``+ 0.587 g`` and ``+ 0.114 b`` each with one rounding.
    Those two sums are exact in float64 (a float32 of at least 2**-25 plus an 8-bit value times a 24-bit constant:
    35 significant bits), so one float64 add rounded to float32 is the fused result. ``(B, 1, H, W)`` ``uint8``.
    In numpy: 2× faster than the same steps in torch for one 32-px view, as fast at 224 px (measured)."""
    red, green, blue = (images.numpy()[:, c] for c in range(3))
    total = np.multiply(red, _GRAY[0], dtype=np.float32).astype(np.float64)
    total += np.multiply(green, float(_GRAY[1]), dtype=np.float64)
    total = total.astype(np.float32).astype(np.float64)
    total += np.multiply(blue, float(_GRAY[2]), dtype=np.float64)
    gray = total.astype(np.float32)
    return torch.from_numpy(np.floor(gray, out=gray).astype(np.uint8)).unsqueeze(-3)


_GRAY = (np.float32(0.2989), np.float32(0.587), np.float32(0.114))
"""torchvision's grayscale weights, as float32 (the dtype its kernels use them in)."""


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """float32 values clamped to ``[0, 255]`` and truncated, as ``clamp_(0, 255).to(torch.uint8)``."""
    return np.clip(values, 0, 255).astype(np.uint8)


def _lookup(table: np.ndarray, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """``table[high · 256 + low]`` for ``uint8`` CPU tensors (``low`` broadcast over ``high``), as a new tensor."""
    index = high.numpy().astype(np.uint16)  # 16-bit indices: 7× faster than intp ones here (measured at 224 px)
    index <<= 8
    index |= low.numpy()
    return torch.from_numpy(np.take(table.reshape(-1), index))


def equalize(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``equalize`` of ``uint8`` ``images``: each channel through the lookup table of PIL's
    histogram equalization (a channel with one value, or all but one pixel at its maximum, is kept)."""
    batch, channels, height, width = images.shape
    if images.numel() == 0:
        return images
    planes = images.reshape(batch * channels, height * width)
    hist = _histograms(planes.numpy())
    cum = hist.cumsum(axis=1)
    num_non_max = height * width - hist[np.arange(len(hist)), cum.argmax(axis=1)]
    step = (num_non_max // 255)[:, None]
    lut = np.empty(hist.shape, dtype=np.uint8)
    lut[:, 0] = 0
    lut[:, 1:] = np.clip((cum[:, :-1] + step // 2) // np.maximum(step, 1), 0, 255)
    lut = np.where(step != 0, lut, np.arange(256, dtype=np.uint8))
    return _apply_luts(planes, lut).view_as(images)


def _histograms(planes: np.ndarray) -> np.ndarray:
    """``(P, 256)`` int64 value counts of each row of a ``(P, n)`` ``uint8`` array: one ``bincount`` of all planes
    (values offset by 256 per plane) for small planes, one per plane for large ones (measured: 126 planes of 32×32,
    0.03 against 0.2 ms; 3 planes of 224×224, 0.5 against 0.3 ms)."""
    if planes.shape[1] < _PLANE_LOOKUP:
        return np.bincount(_in_all_planes(planes).reshape(-1), minlength=256 * len(planes)).reshape(len(planes), 256)
    return np.stack([np.bincount(plane, minlength=256) for plane in planes])


def brightness(images: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_brightness`` of ``uint8`` ``images``: each value times ``factor``, clamped, truncated."""
    return torch.from_numpy(np.take(_brightness_table(float(factor)), images.numpy()))


@lru_cache(maxsize=256)
def _brightness_table(factor: float) -> np.ndarray:
    return F.adjust_brightness(torch.arange(256, dtype=torch.uint8).view(1, 1, 256), factor).numpy().reshape(256)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``autocontrast`` of ``uint8`` ``images`` (1 or 3 channels): each channel stretched from its
    minimum to its maximum, by a table per channel made with torchvision's float32 steps."""
    if images.numel() == 0:
        return images
    planes = images.reshape(-1, images.shape[-2] * images.shape[-1])
    values = planes.numpy()
    minimum, maximum = values.min(axis=1).astype(np.float32), values.max(axis=1).astype(np.float32)
    same = maximum == minimum
    inv_scale = (maximum - minimum) * np.float32(1.0 / 255)
    minimum[same], inv_scale[same] = 0, 1
    luts = (_RAMP - minimum[:, None]) / inv_scale[:, None]
    return _apply_luts(planes, np.clip(luts, 0, 255).astype(np.uint8)).view_as(images)


_RAMP = np.arange(256, dtype=np.float32)


def solarize(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """torchvision's ``solarize``: values at or above ``threshold`` inverted."""
    if threshold > 255:
        raise TypeError(f"Threshold should be less or equal the maximum value of the dtype, but got {threshold}")
    first = _first_inverted(float(threshold))
    if first > 255:
        return images
    return images ^ ((images >= first).view(torch.uint8) * 255)  # x ^ 255 is x inverted; faster than torch.where


@lru_cache(maxsize=256)
def _first_inverted(threshold: float) -> int:
    """The smallest ``uint8`` value that torchvision's ``image >= threshold`` holds for (256 if none)."""
    return int((torch.arange(256, dtype=torch.uint8) < threshold).sum())


def _apply_luts(planes: torch.Tensor, luts: np.ndarray) -> torch.Tensor:
    """``luts[p][planes[p]]`` for every plane ``p`` of a ``(P, n)`` ``uint8`` CPU tensor (``luts``: ``(P, 256)``):
    one lookup per plane, or, for planes below :data:`_PLANE_LOOKUP` values, one lookup into all the tables."""
    source, tables = planes.numpy(), luts
    if source.shape[1] < _PLANE_LOOKUP:
        return torch.from_numpy(np.take(tables.reshape(-1), _in_all_planes(source)))
    out = np.empty_like(source)
    for p in range(len(source)):
        np.take(tables[p], source[p], out=out[p])
    return torch.from_numpy(out)


def _in_all_planes(planes: np.ndarray) -> np.ndarray:
    """``(P, n)`` int32: each ``uint8`` value of plane ``p`` plus ``256 p``, its index among all planes' 256 bins."""
    index = planes.astype(np.int32)
    index += (np.arange(len(planes), dtype=np.int32) * 256)[:, None]
    return index


_PLANE_LOOKUP = 4096
"""Below this many values per plane one lookup into all the tables is faster than one per plane (measured: 126
planes of 32×32, 0.20 against 0.82 ms; 3 planes of 224×224, 0.24 against 0.17 ms)."""


FAST_OPS: dict[str, Callable[[torch.Tensor, float, tuple[int, ...]], torch.Tensor]] = {
    "TranslateX": lambda images, magnitude, fill: translate(images, int(magnitude), -1, fill),
    "TranslateY": lambda images, magnitude, fill: translate(images, int(magnitude), -2, fill),
    "Sharpness": lambda images, magnitude, fill: sharpness(images, 1.0 + magnitude),
    "Color": lambda images, magnitude, fill: color(images, 1.0 + magnitude),
    "Contrast": lambda images, magnitude, fill: contrast(images, 1.0 + magnitude),
    "Equalize": lambda images, magnitude, fill: equalize(images),
    "Brightness": lambda images, magnitude, fill: brightness(images, 1.0 + magnitude),
    "AutoContrast": lambda images, magnitude, fill: autocontrast(images),
    "Solarize": lambda images, magnitude, fill: solarize(images, 255 * magnitude),
}
"""RandAugment op → ``(uint8 images, magnitude, fill) → images``: the ops above with RandAugment's arguments."""
