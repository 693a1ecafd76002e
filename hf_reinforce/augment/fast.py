"""Faster, bit-identical versions of some of torchvision's RandAugment ops on ``uint8`` batches.

Each function returns exactly what torchvision v2's RandAugment op returns for the same ``(B, C, H, W)`` ``uint8``
batch, by an argument that does not depend on float rounding (the tests compare every op, sign and magnitude bin
with torchvision on real and random images of many sizes):

* TranslateX/Y move by a whole number of pixels: torchvision samples the image at integer coordinates (plus a
  rounding error far below half a pixel), so its result is the image shifted, with ``fill`` where nothing is;
* Sharpness blurs with a 3×3 kernel of 1/13 and a 5/13 centre and rounds: the weighted sum is ``k / 13`` for an
  integer ``k``, never within 1/26 of a half, so ``round(k / 13)`` in float32 is the rounded blur whatever the
  convolution's summation order; the blend after it is torchvision's own arithmetic;
* Equalize is integer arithmetic on per-channel histograms (torchvision's formula, counted with ``bincount``);
* Solarize compares whole numbers with the threshold: the smallest value torchvision's own comparison inverts is
  found once on ``0..255``, then the image is compared with that integer in ``uint8`` and inverted by ``^ 255``.

Measured at 224 px on one CPU thread, per view (``OMP_NUM_THREADS=1 python scripts/bench_augment.py --ops``):
translate 1.07 → 0.04 ms, sharpness 2.5 → 0.76 ms, equalize 1.1 → 0.51 ms, solarize 0.57 → 0.23 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F


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
    rounded 3×3 blur (edge pixels kept), then clamped and truncated to ``uint8``."""
    height, width = images.shape[-2:]
    if images.numel() == 0 or height <= 2 or width <= 2:
        return images
    output = images.to(dtype=torch.float32, copy=True)
    rows = output[..., :-2] + output[..., 1:-1]
    rows += output[..., 2:]  # whole numbers below 2**24: every sum is exact
    box = rows[..., :-2, :] + rows[..., 1:-1, :]
    box += rows[..., 2:, :]
    view = output[..., 1:-1, 1:-1]
    blurred = box.add_(view, alpha=4).div_(13).round_()  # the 3×3 sum weighted 1, 1, ..., 5 at the centre, / 13
    view.add_(blurred.sub_(view), alpha=1.0 - float(factor))
    return output.clamp_(0, 255).to(images.dtype)


_EQUALIZE_MIN_PIXELS = 64 * 64
"""Below this many pixels per channel torchvision's batched equalize is faster than a call per channel (measured:
0.069 vs 0.097 ms per 32-px view; 1.10 vs 0.51 ms at 224 px)."""


def equalize(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``equalize`` of ``uint8`` ``images``: each channel through the lookup table of PIL's
    histogram equalization (a channel with one value, or all but one pixel at its maximum, is kept)."""
    batch, channels, height, width = images.shape
    if images.numel() == 0:
        return images
    if height * width < _EQUALIZE_MIN_PIXELS:
        return F.equalize(images)
    planes = images.reshape(batch * channels, height * width)
    hist = torch.stack([torch.bincount(plane, minlength=256) for plane in planes])
    cum = hist.cumsum(dim=-1)
    num_non_max = height * width - hist.gather(-1, cum.argmax(dim=-1, keepdim=True))
    step = num_non_max.div(255, rounding_mode="floor")
    lut = (cum[:, :-1] + step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(0, 255).to(torch.uint8)
    lut = torch.cat([lut.new_zeros(len(planes), 1), lut], dim=-1)
    identity = torch.arange(256, dtype=torch.uint8, device=images.device).expand_as(lut)
    lut = torch.where(step != 0, lut, identity)
    return _apply_luts(planes, lut).view_as(images)


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


def _apply_luts(planes: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """``luts[p][planes[p]]`` for every plane ``p`` of a ``(P, n)`` ``uint8`` CPU tensor (``luts``: ``(P, 256)``)."""
    source, tables = planes.numpy(), luts.numpy()
    out = np.empty_like(source)
    for p in range(len(source)):
        np.take(tables[p], source[p], out=out[p])
    return torch.from_numpy(out)


FAST_OPS: dict[str, Callable[[torch.Tensor, float, tuple[int, ...]], torch.Tensor]] = {
    "TranslateX": lambda images, magnitude, fill: translate(images, int(magnitude), -1, fill),
    "TranslateY": lambda images, magnitude, fill: translate(images, int(magnitude), -2, fill),
    "Sharpness": lambda images, magnitude, fill: sharpness(images, 1.0 + magnitude),
    "Equalize": lambda images, magnitude, fill: equalize(images),
    "Solarize": lambda images, magnitude, fill: solarize(images, 255 * magnitude),
}
"""RandAugment op → ``(uint8 images, magnitude, fill) → images``: the ops above with RandAugment's arguments."""
