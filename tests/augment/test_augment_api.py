"""Policy structure and its torchvision equivalent: mix is not an op, the stored form is unchanged, one
interpolation rule, ``to_torchvision`` builds the same augmentation with the same constants."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

import hf_reinforce as hfr
from hf_reinforce.augment import (
    PRESETS,
    RAND_AUGMENT_OPS,
    AugmentationPolicy,
    HorizontalFlip,
    MixUpCutMix,
    Op,
    RandAugment,
    RandomErasing,
    RandomResizedCrop,
    interpolation_mode,
)
from hf_reinforce.augment.functional import FILL, IMAGENET_MEAN, IMAGENET_STD

# Written by the code before mix left the ops: the stored JSON, column order and sampled values must not change.
STORED_JSON = (
    '{"ops": [{"interpolation": "bilinear", "op": "rrc", "ratio": [0.75, 1.3333333333333333], "scale": [0.08, 1.0]}, '
    '{"op": "flip", "p": 0.5}, {"fill": [124, 116, 104], "interpolation": "bilinear", "magnitude": 9, '
    '"magnitude_std": 0.0, "num_magnitude_bins": 31, "num_ops": 2, "op": "ra", "ops": ["Identity", "ShearX", '
    '"ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", '
    '"Solarize", "AutoContrast", "Equalize"]}, {"fill": [124, 116, 104], "op": "re", "p": 0.25, "ratio": [0.3, 3.3], '
    '"scale": [0.02, 0.33]}, {"block_size": 16, "cutmix_alpha": 1.0, "mixup_alpha": 0.8, "op": "mix", "prob": 1.0, '
    '"switch_prob": 0.5}]}'
)
STORED_SAMPLE = {
    "aug_rrc": [[32768, 20971, 29491, 30146], [4915, 2621, 54066, 36700]],
    "aug_flip": [False, True],
    "aug_ra_op": [[13, 10], [13, 8]],
    "aug_ra_mag": [[9, 9], [9, -9]],
    "aug_re": [[0, 0, 0, 0], [0, 0, 0, 0]],
    "aug_mix_partner": [0, 3],
    "aug_mix_lam": [65535, 65535],
    "aug_mix_box": [[1725, 29446, 54659, 36089], [0, 26279, 57978, 39256]],
}


def test_mix_is_not_an_op_and_the_stored_form_is_unchanged():
    policy = AugmentationPolicy.parse("rrc+mix+ra+re")
    assert isinstance(policy.mix, MixUpCutMix) and not isinstance(policy.mix, Op)
    assert policy.mix is policy.mix and all(isinstance(op, Op) for op in policy.ops)
    assert policy.to_json() == STORED_JSON
    assert AugmentationPolicy.parse(STORED_JSON) == policy
    assert list(policy.columns) == list(STORED_SAMPLE)
    sample = policy.sample(3, 5, 2, 40, 50, num_rows=20)
    assert {k: v.tolist() for k, v in sample.items()} == STORED_SAMPLE
    assert AugmentationPolicy.parse("rrc+ra+re").mix is None


def test_op_is_abstract_and_mix_cannot_be_passed_as_an_op():
    with pytest.raises(TypeError):
        Op()
    with pytest.raises(ValueError, match="policy.ops: MixUpCutMix is not an op"):
        AugmentationPolicy((RandomResizedCrop(), MixUpCutMix()))
    with pytest.raises(ValueError, match="policy.mix"):
        AugmentationPolicy((RandomResizedCrop(),), mix=HorizontalFlip())
    with pytest.raises(ValueError, match="each op may appear once"):
        AugmentationPolicy.parse({"ops": [{"op": "mix"}, {"op": "mix"}]})


def test_render_block_names_a_partner_outside_the_block(photos):
    policy = AugmentationPolicy.parse("rrc+mix")
    params = [policy.sample(0, row, 4, *photos[row % 2].shape[1:], num_rows=16) for row in range(16)]
    with pytest.raises(ValueError, match="rows: views mix with partner rows"):
        policy.render_block([photos[0]], params[:1], range(4), 16, rows=[0])


@pytest.mark.parametrize("resolution", [32, 224])
def test_to_torchvision_has_the_policy_ops_and_constants(photos, resolution):
    policy = AugmentationPolicy(
        (
            RandomResizedCrop(scale=(0.3, 0.9), interpolation="bicubic"),
            HorizontalFlip(p=0.3),
            RandAugment(num_ops=3, magnitude=7, num_magnitude_bins=21, fill=(1, 2, 3)),
            RandomErasing(p=0.4, scale=(0.05, 0.2), fill=(9, 8, 7)),
        )
    )
    crop, flip, ra, erase = policy.to_torchvision(resolution).transforms
    assert isinstance(crop, v2.RandomResizedCrop) and crop.size == (resolution, resolution)
    assert crop.scale == (0.3, 0.9) and crop.ratio == (3 / 4, 4 / 3) and crop.antialias
    assert crop.interpolation == InterpolationMode.BICUBIC
    assert policy.to_torchvision(resolution, "bilinear").transforms[0].interpolation == InterpolationMode.BILINEAR
    assert isinstance(flip, v2.RandomHorizontalFlip) and flip.p == 0.3
    assert isinstance(ra, v2.RandAugment) and (ra.num_ops, ra.magnitude, ra.num_magnitude_bins) == (3, 7, 21)
    assert ra.interpolation == InterpolationMode.BILINEAR and list(ra.fill) == [1, 2, 3]
    assert isinstance(erase, v2.RandomErasing) and erase.p == 0.4 and erase.scale == (0.05, 0.2)
    assert erase.ratio == (0.3, 3.3) and list(erase.value) == [9, 8, 7]
    torch.manual_seed(0)
    out = policy.to_torchvision(resolution)(photos[0])
    assert out.dtype == torch.uint8 and out.shape == (3, resolution, resolution)


def test_to_torchvision_without_crop_resizes_and_refuses_what_torchvision_cannot_draw(photos):
    resize, ra = AugmentationPolicy.parse("ra").to_torchvision(40).transforms
    assert isinstance(resize, v2.Resize) and resize.size == [40, 40] and isinstance(ra, v2.RandAugment)
    assert list(ra.fill) == list(FILL)
    assert AugmentationPolicy.parse("ra").to_torchvision(40)(photos[1]).shape == (3, 40, 40)
    with pytest.raises(ValueError, match="policy.mix"):
        AugmentationPolicy.parse("rrc+mix").to_torchvision(32)
    with pytest.raises(ValueError, match="ra.magnitude_std"):
        AugmentationPolicy((RandAugment(magnitude_std=0.5),)).to_torchvision(32)
    with pytest.raises(ValueError, match="ra.ops"):
        AugmentationPolicy((RandAugment(ops=("Rotate",)),)).to_torchvision(32)


@pytest.mark.parametrize("preset", [p for p in PRESETS if "mix" not in p])
def test_to_torchvision_of_every_preset_runs_on_a_real_photo(photos, preset):
    torch.manual_seed(1)
    assert AugmentationPolicy.parse(preset).to_torchvision(64)(photos[0]).shape == (3, 64, 64)


def test_one_interpolation_rule_everywhere():
    assert interpolation_mode("Bicubic") == InterpolationMode.BICUBIC
    assert interpolation_mode(InterpolationMode.NEAREST_EXACT) == InterpolationMode.NEAREST_EXACT
    assert interpolation_mode(2) == InterpolationMode.BILINEAR  # PIL's resample code
    for bad in ("lanczos", "box", "fancy", 1):
        with pytest.raises(ValueError, match="interpolation: unsupported interpolation .*expected one of nearest"):
            interpolation_mode(bad)
    with pytest.raises(ValueError, match="rrc.interpolation"):
        RandomResizedCrop(interpolation="lanczos")
    with pytest.raises(ValueError, match="ra.interpolation: .*nearest, bilinear"):
        RandAugment(interpolation="bicubic")  # rotations and shears sample with grid_sample
    with pytest.raises(ValueError, match="teacher 'net': interpolation: unsupported interpolation 'lanczos'"):
        hfr.Teacher(nn.Identity(), name="net", resolution=8, interpolation="lanczos", num_outputs=3)
    assert hfr.Teacher(nn.Identity(), resolution=8, interpolation=3, num_outputs=3).interpolation == "bicubic"


def test_constants_have_one_home():
    from hf_reinforce.teachers import teacher as teachers

    assert teachers.IMAGENET_MEAN is IMAGENET_MEAN and teachers.IMAGENET_STD is IMAGENET_STD
    assert RandAugment().fill == FILL and RandomErasing().fill == FILL
    assert json.loads(AugmentationPolicy.parse("ra").to_json())["ops"][0]["ops"] == list(RAND_AUGMENT_OPS)
    assert np.allclose(IMAGENET_MEAN, (0.485, 0.456, 0.406))
