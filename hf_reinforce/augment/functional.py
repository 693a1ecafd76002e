"""Pure functions that apply *given* augmentation parameters to ``uint8`` image tensors.

Generation (teacher inputs) and replay (student inputs) both call these functions, so a stored augmentation
reproduces the teacher's pixels exactly on the same device. Pixel work goes through
``torchvision.transforms.v2.functional``. Boxes are stored normalized to ``[0, 65535]`` (see
:func:`box_to_pixels`) so they replay at any image size or output resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

Q = 65535  # fixed-point scale of normalized coordinates and mixing weights

RAND_AUGMENT_OPS: tuple[str, ...] = tuple(v2.RandAugment._AUGMENTATION_SPACE)
"""Names of torchvision's RandAugment operations, in torchvision's order; stored op ids index this tuple."""

RAND_AUGMENT_SIGNED: dict[str, bool] = {op: signed for op, (_, signed) in v2.RandAugment._AUGMENTATION_SPACE.items()}
"""Whether each RandAugment op's magnitude may be negated."""


def box_to_pixels(box: Sequence[int], height: int, width: int) -> tuple[int, int, int, int]:
    """Map a normalized ``(top, left, height, width)`` box (units of 1/65535) to an integer pixel box.

    Integer arithmetic only (round half up), so the mapping is identical on every platform and device; the box
    is clamped to lie inside the image and to be at least one pixel wide and tall.
    """
    top, left, box_h, box_w = (int(v) for v in box)
    h = min(max(_scale(box_h, height), 1), height)
    w = min(max(_scale(box_w, width), 1), width)
    return min(_scale(top, height), height - h), min(_scale(left, width), width - w), h, w


def _scale(value: int, size: int) -> int:
    return (2 * value * size + Q) // (2 * Q)


def resized_crop(
    image: torch.Tensor, box: Sequence[int], resolution: int, interpolation: InterpolationMode
) -> torch.Tensor:
    """Crop the normalized ``box`` out of ``image`` and resize it to ``resolution × resolution`` (antialiased)."""
    top, left, h, w = box_to_pixels(box, image.shape[-2], image.shape[-1])
    if resolution == 1:  # torch's uint8 antialiased kernel fails an internal assert for 1×1 outputs: resample in float
        out = F.resized_crop(image.float(), top, left, h, w, [1, 1], interpolation=interpolation, antialias=True)
        return out.round_().clamp_(0, 255).to(image.dtype)
    return F.resized_crop(image, top, left, h, w, [resolution, resolution], interpolation=interpolation, antialias=True)


def horizontal_flip(image: torch.Tensor, flip: bool) -> torch.Tensor:
    """Mirror ``image`` left-right when ``flip`` is true."""
    return F.horizontal_flip(image) if flip else image


@lru_cache(maxsize=64)
def _rand_augment(interpolation: InterpolationMode, fill: tuple[int, ...]) -> v2.RandAugment:
    return v2.RandAugment(interpolation=interpolation, fill=list(fill))


def rand_augment_magnitude(op: str, signed_bin: int, num_bins: int, height: int, width: int) -> float:
    """Magnitude of RandAugment op ``op`` at bin ``|signed_bin|``, negated when ``signed_bin < 0`` (torchvision's space)."""
    magnitudes_fn, signed = v2.RandAugment._AUGMENTATION_SPACE[op]
    magnitudes = magnitudes_fn(num_bins, height, width)
    if magnitudes is None:
        return 0.0
    magnitude = float(magnitudes[abs(signed_bin)])
    return -magnitude if signed and signed_bin < 0 else magnitude


def rand_augment(
    image: torch.Tensor,
    op_ids: Sequence[int],
    signed_bins: Sequence[int],
    num_bins: int,
    interpolation: InterpolationMode,
    fill: tuple[int, int, int],
) -> torch.Tensor:
    """Apply RandAugment ops ``op_ids`` (indices into :data:`RAND_AUGMENT_OPS`) with signed magnitude bins, in order.

    The op implementations are torchvision's own RandAugment operations, driven with recorded choices.
    """
    augmenter = _rand_augment(interpolation, tuple(fill))
    height, width = image.shape[-2:]
    for op_id, signed_bin in zip(op_ids, signed_bins):
        op = RAND_AUGMENT_OPS[int(op_id)]
        magnitude = rand_augment_magnitude(op, int(signed_bin), num_bins, height, width)
        image = augmenter._apply_image_or_video_transform(
            image, op, magnitude, interpolation=interpolation, fill=augmenter._fill
        )
    return image


def erase(image: torch.Tensor, box: Sequence[int], fill: tuple[int, int, int]) -> torch.Tensor:
    """Fill the normalized ``box`` of ``image`` with the constant colour ``fill``; an all-zero box erases nothing."""
    if int(box[2]) == 0 or int(box[3]) == 0:
        return image
    top, left, h, w = box_to_pixels(box, image.shape[-2], image.shape[-1])
    value = torch.tensor(fill, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return F.erase(image, top, left, h, w, value)


def mix(own: torch.Tensor, partner: torch.Tensor, lam: int, box: Sequence[int]) -> torch.Tensor:
    """MixUp/CutMix of two equally sized ``uint8`` images.

    ``lam`` (units of 1/65535) weights ``own`` in a per-pixel blend (MixUp; 65535 keeps ``own``), then the
    normalized ``box`` is pasted from ``partner`` (CutMix; an all-zero box pastes nothing).
    """
    out = own
    if int(lam) != Q:
        weight = int(lam) / Q
        blended = own.to(torch.float32) * weight + partner.to(torch.float32) * (1.0 - weight)
        out = blended.round_().clamp_(0, 255).to(torch.uint8)
    if int(box[2]) > 0 and int(box[3]) > 0:
        top, left, h, w = box_to_pixels(box, own.shape[-2], own.shape[-1])
        out = out.clone() if out is own else out
        out[..., top : top + h, left : left + w] = partner[..., top : top + h, left : left + w]
    return out


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8`` images → float32 ``(x / 255 - mean) / std``: the one place pixels leave ``uint8`` (teachers and students)."""
    return F.normalize(F.to_dtype(images, torch.float32, scale=True), list(mean), list(std))


def interpolation_mode(name: str | InterpolationMode) -> InterpolationMode:
    """Parse an interpolation name (``"bilinear"``, ``"bicubic"``, ``"nearest"``, ...) into an ``InterpolationMode``."""
    if isinstance(name, InterpolationMode):
        return name
    try:
        return InterpolationMode(str(name).lower())
    except ValueError:
        valid = ", ".join(m.value for m in InterpolationMode)
        raise ValueError(f"interpolation: unknown mode {name!r}; expected one of {valid}") from None


__all__ = [
    "Q",
    "RAND_AUGMENT_OPS",
    "RAND_AUGMENT_SIGNED",
    "box_to_pixels",
    "erase",
    "horizontal_flip",
    "interpolation_mode",
    "mix",
    "normalize",
    "rand_augment",
    "rand_augment_magnitude",
    "resized_crop",
]
