"""The private torch and torchvision functions the render kernels use: the one module that names them.

torchvision keeps underscored names out of its API, so any release may move or change one. Each is looked up here
when ``hf_reinforce.augment`` is imported; a missing one raises an ``ImportError`` that names it and the installed
versions, instead of an ``AttributeError`` deep in a render worker. ``tests/test_torchvision_private.py`` checks each
one and the behaviour the kernels rely on; the golden hashes (``tests/golden/``) pin the pixels they produce.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
import torchvision
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode


def _private(owner: Any, owner_name: str, name: str) -> Any:
    """``owner.name``, or an ``ImportError`` naming it, the installed versions and what to do."""
    try:
        return getattr(owner, name)
    except AttributeError:
        raise ImportError(
            f"{owner_name}.{name} is missing in torch {torch.__version__} / torchvision {torchvision.__version__}: "
            "hf_reinforce's render kernels use this private function (hf_reinforce/augment/_torchvision.py); install "
            "the torch/torchvision versions the golden hashes were made with, or port the kernel to the new release"
        ) from None


AUGMENTATION_SPACE: dict[str, tuple[Callable[[int, int, int], torch.Tensor | None], bool]] = _private(
    v2.RandAugment, "torchvision.transforms.v2.RandAugment", "_AUGMENTATION_SPACE"
)
"""RandAugment's ops in torchvision's order (stored op ids index it): name → (magnitude bins, signed)."""

upsample_bilinear_aa: Callable[..., torch.Tensor] = _private(torch._C._nn, "torch._C._nn", "_upsample_bilinear2d_aa")
upsample_bicubic_aa: Callable[..., torch.Tensor] = _private(torch._C._nn, "torch._C._nn", "_upsample_bicubic2d_aa")
"""torch's antialiased resize kernels ``(input, [h, w], align_corners, scales)``, which on ``uint8`` CPU tensors
resample in integer arithmetic (the same bytes under every ``ATEN_CPU_CAPABILITY``, measured)."""

_APPLY = _private(v2.RandAugment, "torchvision.transforms.v2.RandAugment", "_apply_image_or_video_transform")


@lru_cache(maxsize=64)
def rand_augment(interpolation: InterpolationMode, fill: tuple[int, ...]) -> v2.RandAugment:
    """torchvision's RandAugment with ``interpolation`` and ``fill`` (made once: its constructor costs 20 µs)."""
    return v2.RandAugment(interpolation=interpolation, fill=list(fill))


def rand_augment_op(
    images: torch.Tensor, op: str, magnitude: float, interpolation: InterpolationMode, fill: tuple[int, ...]
) -> torch.Tensor:
    """torchvision's own RandAugment ``op`` at ``magnitude`` (its dispatch: any device and dtype)."""
    augmenter = rand_augment(interpolation, fill)
    fills = _private(augmenter, "torchvision.transforms.v2.RandAugment()", "_fill")
    return _APPLY(augmenter, images, op, magnitude, interpolation=interpolation, fill=fills)
