"""Pure samplers: uniform random numbers (and an image size) in, integer augmentation parameters out.

Each sampler consumes a fixed number of uniforms per augmentation, drawn row-major as ``rng.random((n, D))``,
so augmentation ``j`` of a row gets the same numbers whatever the number of augmentations ``n`` is. Geometric
results are normalized to the image size and quantized to units of 1/65535 (see ``functional.box_to_pixels``).
"""

from __future__ import annotations

import numpy as np

from .functional import Q

RRC_ATTEMPTS = 10
ERASE_ATTEMPTS = 10


def quantize(fraction: np.ndarray) -> np.ndarray:
    """Fractions in ``[0, 1]`` → ``uint16`` fixed point (units of 1/65535)."""
    return np.rint(np.clip(fraction, 0.0, 1.0) * Q).astype(np.uint16)


def _pixels_to_units(pixels: np.ndarray, size: int) -> np.ndarray:
    """Exact integer rounding of ``pixels / size`` to 1/65535 units (inverse of ``box_to_pixels``)."""
    return ((2 * pixels.astype(np.int64) * Q + size) // (2 * size)).astype(np.uint16)


def sample_resized_crop(
    u: np.ndarray, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> np.ndarray:
    """torchvision's RandomResizedCrop box search (10 tries, then a centre crop), vectorized over rows of ``u``.

    ``u`` has shape ``(n, 40)``; returns ``(n, 4)`` ``uint16`` boxes ``(top, left, height, width)`` in 1/65535
    units of the image size.
    """
    n = u.shape[0]
    tries = u.reshape(n, RRC_ATTEMPTS, 4)
    area = float(height * width)
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    target = area * (scale[0] + tries[..., 0] * (scale[1] - scale[0]))
    aspect = np.exp(log_lo + tries[..., 1] * (log_hi - log_lo))
    w = np.rint(np.sqrt(target * aspect)).astype(np.int64)
    h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    top = np.floor(tries[..., 2] * (height - h + 1)).astype(np.int64)
    left = np.floor(tries[..., 3] * (width - w + 1)).astype(np.int64)

    first = np.argmax(valid, axis=1)
    pick = np.arange(n), first
    box = np.stack([top[pick], left[pick], h[pick], w[pick]], axis=1)

    fallback = ~valid.any(axis=1)
    if fallback.any():
        box[fallback] = _center_crop_box(height, width, ratio)
    out = np.empty((n, 4), dtype=np.uint16)
    out[:, 0], out[:, 2] = _pixels_to_units(box[:, 0], height), _pixels_to_units(box[:, 2], height)
    out[:, 1], out[:, 3] = _pixels_to_units(box[:, 1], width), _pixels_to_units(box[:, 3], width)
    return out


def _center_crop_box(height: int, width: int, ratio: tuple[float, float]) -> np.ndarray:
    """The centre crop torchvision falls back to when no random box fits."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    h, w = min(max(h, 1), height), min(max(w, 1), width)
    return np.array([(height - h) // 2, (width - w) // 2, h, w], dtype=np.int64)


def sample_crop_offsets(u: np.ndarray) -> np.ndarray:
    """``(n, 2)`` uniforms → ``(n, 2)`` ``uint16`` window positions ``(top, left)`` of a padded crop, in 1/65535 of
    the range of offsets (0 = top/left-most, 65535 = bottom/right-most), whatever the padding in pixels."""
    return quantize(u[:, :2])


def sample_flip(u: np.ndarray, p: float) -> np.ndarray:
    """``(n, 1)`` uniforms → ``(n,)`` bools, true with probability ``p``."""
    return u[:, 0] < p


def sample_rand_augment(
    u: np.ndarray, num_ops: int, signed: np.ndarray, magnitude: int, num_bins: int, magnitude_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """RandAugment choices: ``u`` of shape ``(n, num_ops * 4)`` → op ids ``uint8`` and signed magnitude bins ``int8``.

    Ops are drawn uniformly from ``len(signed)`` ops; a signed op is negated with probability 1/2; with
    ``magnitude_std > 0`` the bin is drawn from a normal around ``magnitude`` (Box–Muller), rounded and clipped.
    """
    n = u.shape[0]
    draws = u.reshape(n, num_ops, 4)
    op_ids = np.minimum(np.floor(draws[..., 0] * len(signed)), len(signed) - 1).astype(np.int64)
    if magnitude_std > 0:
        z = np.sqrt(-2.0 * np.log1p(-draws[..., 2])) * np.cos(2.0 * np.pi * draws[..., 3])
        bins = np.clip(np.rint(magnitude + magnitude_std * z), 0, num_bins - 1).astype(np.int64)
    else:
        bins = np.full((n, num_ops), magnitude, dtype=np.int64)
    negate = signed[op_ids] & (draws[..., 1] < 0.5)
    return op_ids.astype(np.uint8), np.where(negate, -bins, bins).astype(np.int8)


def sample_erasing(u: np.ndarray, p: float, scale: tuple[float, float], ratio: tuple[float, float]) -> np.ndarray:
    """torchvision's RandomErasing box search in normalized output coordinates.

    ``u`` has shape ``(n, 41)``: one uniform for "erase or not", then 10 tries of (area, aspect, top, left).
    Returns ``(n, 4)`` ``uint16`` boxes; all zeros where nothing is erased.
    """
    n = u.shape[0]
    apply = u[:, 0] < p
    tries = u[:, 1:].reshape(n, ERASE_ATTEMPTS, 4)
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    area = scale[0] + tries[..., 0] * (scale[1] - scale[0])
    aspect = np.exp(log_lo + tries[..., 1] * (log_hi - log_lo))
    h = np.sqrt(area * aspect)
    w = np.sqrt(area / aspect)
    valid = (h < 1.0) & (w < 1.0)
    top = tries[..., 2] * (1.0 - h)
    left = tries[..., 3] * (1.0 - w)
    first = np.argmax(valid, axis=1)
    pick = np.arange(n), first
    box = quantize(np.stack([top[pick], left[pick], h[pick], w[pick]], axis=1))
    box[~(apply & valid.any(axis=1))] = 0
    return box


def sample_mix(
    u: np.ndarray,
    mixup_lam: np.ndarray,
    cutmix_lam: np.ndarray,
    row: int,
    block: tuple[int, int],
    prob: float,
    switch_prob: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MixUp/CutMix choices for one row: partner row, own-image weight and CutMix box.

    ``u`` has shape ``(n, 5)`` (apply, mixup-or-cutmix, partner, box centre y, x); ``mixup_lam``/``cutmix_lam``
    are Beta draws. The partner is another row of the fixed block ``[start, stop)`` that contains ``row``.
    Returns ``partner`` (int32, -1 = not mixed), ``lam`` (uint16, 65535 = own image only) and ``box`` (uint16).
    """
    start, stop = block
    others = stop - start - 1
    apply = (u[:, 0] < prob) & (others > 0)
    cut = u[:, 1] < switch_prob
    offset = np.minimum(np.floor(u[:, 2] * max(others, 1)), max(others - 1, 0)).astype(np.int64)
    partner = start + offset + (start + offset >= row)
    partner = np.where(apply, partner, -1).astype(np.int32)

    lam = np.where(apply & ~cut, quantize(mixup_lam), Q).astype(np.uint16)
    side = np.sqrt(1.0 - cutmix_lam)
    top, bottom = np.clip(u[:, 3] - side / 2, 0, 1), np.clip(u[:, 3] + side / 2, 0, 1)
    left, right = np.clip(u[:, 4] - side / 2, 0, 1), np.clip(u[:, 4] + side / 2, 0, 1)
    box = quantize(np.stack([top, left, bottom - top, right - left], axis=1))
    box[~(apply & cut)] = 0
    return partner, lam, box
