"""Augmentation as data: parameter schemas, seeded samplers, pure apply functions and policies.

``AugmentationPolicy.sample`` draws parameters, ``render``/``replay`` apply recorded parameters; generation and
replay share one code path, so a stored augmentation reproduces the teacher's pixels exactly.
"""

from .environment import environment_changes, rendering_environment
from .functional import (
    FILL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RAND_AUGMENT_OPS,
    RENDER_KERNELS,
    RESIZE_INTERPOLATIONS,
    Q,
    box_to_pixels,
    center_view,
    interpolation_mode,
    normalize,
)
from .image import open_image, to_rgb_uint8
from .ops import HorizontalFlip, MixUpCutMix, Op, RandAugment, RandomCrop, RandomErasing, RandomResizedCrop
from .policy import PRESETS, AugmentationPolicy, Params
from .threads import single_thread

__all__ = [
    "FILL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "Q",
    "RAND_AUGMENT_OPS",
    "RENDER_KERNELS",
    "RESIZE_INTERPOLATIONS",
    "AugmentationPolicy",
    "HorizontalFlip",
    "MixUpCutMix",
    "Op",
    "Params",
    "RandAugment",
    "RandomCrop",
    "RandomErasing",
    "RandomResizedCrop",
    "box_to_pixels",
    "center_view",
    "environment_changes",
    "interpolation_mode",
    "normalize",
    "rendering_environment",
    "open_image",
    "single_thread",
    "to_rgb_uint8",
]
