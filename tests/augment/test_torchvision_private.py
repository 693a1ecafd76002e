"""The private torch/torchvision functions the render kernels use (``hf_reinforce.augment._torchvision``) are where
the kernels expect them and do what the kernels rely on; a release that moves one fails here, naming it."""

from __future__ import annotations

import importlib

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from hf_reinforce.augment import RAND_AUGMENT_OPS, _torchvision


def _defining(cls: type, name: str) -> type:
    """The class of ``cls``'s method resolution order that defines ``name`` (where a release would remove it)."""
    return next(base for base in cls.__mro__ if name in vars(base))


PRIVATE = [
    (v2.RandAugment, "torchvision.transforms.v2.RandAugment", "_AUGMENTATION_SPACE"),
    (
        _defining(v2.RandAugment, "_apply_image_or_video_transform"),
        "torchvision.transforms.v2.RandAugment",
        "_apply_image_or_video_transform",
    ),
    (torch._C._nn, "torch._C._nn", "_upsample_bilinear2d_aa"),
    (torch._C._nn, "torch._C._nn", "_upsample_bicubic2d_aa"),
]


@pytest.mark.parametrize("owner, owner_name, name", PRIVATE, ids=[name for _, _, name in PRIVATE])
def test_a_moved_private_function_is_an_import_error_that_names_it(monkeypatch, owner, owner_name, name):
    monkeypatch.delattr(owner, name)
    with pytest.raises(ImportError, match=rf"{owner_name}\.{name} is missing in torch .* / torchvision "):
        importlib.reload(_torchvision)
    monkeypatch.undo()
    importlib.reload(_torchvision)


def test_randaugment_space_is_torchvisions_ops_in_the_stored_order():
    assert tuple(_torchvision.AUGMENTATION_SPACE) == RAND_AUGMENT_OPS
    assert RAND_AUGMENT_OPS[:6] == ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
    for op, (magnitudes, signed) in _torchvision.AUGMENTATION_SPACE.items():
        assert isinstance(signed, bool)
        table = magnitudes(31, 224, 224)
        assert table is None or (table.shape == (31,) and table.dtype in (torch.float32, torch.int32)), op


@pytest.mark.parametrize("mode", [InterpolationMode.BILINEAR, InterpolationMode.BICUBIC])
def test_the_resize_kernels_resize_uint8_antialiased(photos, mode):
    kernel = {InterpolationMode.BILINEAR: _torchvision.upsample_bilinear_aa}.get(mode, _torchvision.upsample_bicubic_aa)
    out = kernel(photos[0][None], [97, 131], False, None)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 97, 131)
    expected = torch.nn.functional.interpolate(photos[0][None], [97, 131], mode=mode.value, antialias=True)
    assert torch.equal(out, expected)


def test_rand_augment_op_is_torchvisions_dispatch(photos):
    view = F.resize(photos[0], [64, 64], antialias=True)
    out = _torchvision.rand_augment_op(view, "Posterize", 4.0, InterpolationMode.BILINEAR, (1, 2, 3))
    assert torch.equal(out, view & 0xF0)
    moved = _torchvision.rand_augment_op(view[None], "TranslateX", 70.0, InterpolationMode.NEAREST, (1, 2, 3))
    assert torch.equal(moved, torch.tensor([1, 2, 3], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 64, 64))
