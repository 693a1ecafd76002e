"""Augmentation as data: determinism, exact replay, resolution independence, op semantics, policy JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import fma_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2 import functional as F

from hf_reinforce.augment import (
    PRESETS,
    RAND_AUGMENT_OPS,
    AugmentationPolicy,
    MixUpCutMix,
    Q,
    RandAugment,
    RandomErasing,
    RandomResizedCrop,
    box_to_pixels,
    normalize,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g)


def _crop(photo: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A real-photo image of the requested size (crop, tiled when larger than the photo)."""
    reps = (1, math.ceil(height / photo.shape[1]), math.ceil(width / photo.shape[2]))
    return photo.repeat(*reps)[:, :height, :width].contiguous()


sizes = st.tuples(st.integers(1, 300), st.integers(1, 300))
presets = st.sampled_from(PRESETS)


@SETTINGS
@given(preset=presets, size=sizes, seed=st.integers(0, 2**31), row=st.integers(0, 10**6), n=st.integers(1, 12))
def test_sampling_depends_only_on_seed_row_index_and_size(preset, size, seed, row, n):
    policy = AugmentationPolicy.parse(preset)
    num_rows = row + 5
    a = policy.sample(seed, row, n, *size, num_rows=num_rows)
    b = policy.sample(seed, row, n + 47, *size, num_rows=num_rows)  # more augmentations: a prefix is unchanged
    assert set(a) == set(policy.columns)
    for name, (dtype, shape) in policy.columns.items():
        assert a[name].dtype == np.dtype(dtype) and a[name].shape == (n, *shape)
        np.testing.assert_array_equal(a[name], b[name][:n])
    other = policy.sample(seed + 1, row, n + 47, *size, num_rows=num_rows)
    # the seed matters (48+ draws: two seeds agree on every flip with probability 2**-48), except where nothing can vary: a crop-box-only policy on a tiny or very elongated image (no
    # box of ratio 3/4..4/3 fits, every augmentation falls back to the same centre crop)
    degenerate = set(policy.columns) == {"aug_rrc"} and (min(size) < 8 or max(size) > 4 * min(size))
    assert any(not np.array_equal(b[k], other[k]) for k in b) or degenerate


@SETTINGS
@given(preset=presets, size=sizes, seed=st.integers(0, 1000), n=st.integers(1, 6), res=st.sampled_from([1, 7, 32, 65]))
def test_exact_replay_and_any_batch_split(photos, preset, size, seed, n, res):
    policy = AugmentationPolicy.parse(preset)
    image = _crop(photos[seed % 2], *size)
    params = policy.sample(seed, 3, n, *size, num_rows=8)
    batch = policy.render_many(image, params, range(n), res)
    assert batch.dtype == torch.uint8 and batch.shape == (n, 3, res, res)
    split = seed % n
    parts = torch.cat(
        [
            policy.render_many(image, params, range(split), res) if split else batch[:0],
            policy.render_many(image, params, range(split, n), res),
        ]
    )
    assert torch.equal(parts, batch)
    for j in range(n):
        assert torch.equal(policy.render(image, params, j, res), batch[j])


@pytest.mark.parametrize("preset", PRESETS)
def test_replay_on_real_photos_and_digits(photos, digits, preset):
    policy = AugmentationPolicy.parse(preset)
    images = photos + [torch.from_numpy(digits[0][i]).expand(3, -1, -1).contiguous() for i in range(3)]
    for row, image in enumerate(images):
        h, w = image.shape[1:]
        params = policy.sample(0, row, 8, h, w, num_rows=len(images))
        batch = policy.render_many(image, params, range(8), 64)
        # Replaying from the *stored* representation (lists, as datasets returns them) gives the same pixels.
        stored = {k: np.asarray(v.tolist(), dtype=v.dtype) for k, v in params.items()}
        for j in range(8):
            assert torch.equal(policy.render(image, stored, j, 64), batch[j])
        assert len({bytes(b.numpy()) for b in batch}) > 1, "augmentations of a row must differ"


def test_mixing_replay_uses_partner_row_and_block(photos):
    policy = AugmentationPolicy.parse("rrc+mix")
    mixing = policy.mix
    num_rows = 21  # last block (16..20) is partial
    images = [_crop(photos[i % 2].roll(37 * i, dims=-1), 120, 160) for i in range(num_rows)]
    params = [policy.sample(5, i, 16, 120, 160, num_rows=num_rows) for i in range(num_rows)]
    for i in range(num_rows):
        partners = params[i]["aug_mix_partner"]
        start, stop = mixing.block(i, num_rows)
        mixed = partners >= 0
        assert mixed.any()
        assert ((partners[mixed] >= start) & (partners[mixed] < stop) & (partners[mixed] != i)).all()
        for j in np.flatnonzero(mixed)[:3]:
            p = int(partners[j])
            out = policy.replay(images[i], params[i], j, 48, partner_image=images[p], partner_params=params[p])
            own = policy.render(images[i], params[i], j, 48)
            partner = policy.render(images[p], params[p], j, 48)
            lam, box = int(params[i]["aug_mix_lam"][j]), params[i]["aug_mix_box"][j]
            if box[2] and box[3]:  # CutMix: the box comes from the partner, the rest is the row's own image
                t, left, h, w = box_to_pixels(box, 48, 48)
                assert torch.equal(out[:, t : t + h, left : left + w], partner[:, t : t + h, left : left + w])
                outside = torch.ones(48, 48, dtype=torch.bool)
                outside[t : t + h, left : left + w] = False
                assert torch.equal(out[:, outside], own[:, outside])
            else:  # MixUp: a rounded blend
                expected = (own.float() * (lam / Q) + partner.float() * (1 - lam / Q)).round().to(torch.uint8)
                assert torch.equal(out, expected)
    single = AugmentationPolicy.parse("rrc+mix").sample(0, 16, 8, 10, 10, num_rows=17)  # a block of one row
    assert (single["aug_mix_partner"] == -1).all()
    with pytest.raises(ValueError, match="partner"):
        policy.replay(images[0], params[0], int(np.flatnonzero(params[0]["aug_mix_partner"] >= 0)[0]), 32)


def test_resolution_independence(photos):
    """A stored crop box covers the same image region at any output resolution."""
    policy = AugmentationPolicy.from_dict({"ops": [{"op": "rrc"}]})
    image = photos[0]
    params = policy.sample(0, 0, 6, *image.shape[1:])
    for j in range(6):
        small = policy.render(image, params, j, 56).float()
        large = policy.render(image, params, j, 224).float()
        down = F.resize(large, [56, 56], antialias=True)
        assert (small - down).abs().mean() < 4.0  # same region, only resampling differs


def test_rrc_matches_torchvision_constraints_and_statistics(photos):
    op = RandomResizedCrop()
    policy = AugmentationPolicy((op,))
    h, w = photos[0].shape[1:]
    boxes = policy.sample(0, 0, 4000, h, w)["aug_rrc"]
    pixel = np.array([box_to_pixels(b, h, w) for b in boxes])
    area = pixel[:, 2] * pixel[:, 3] / (h * w)
    aspect = pixel[:, 3] / pixel[:, 2]
    assert (pixel[:, 0] + pixel[:, 2] <= h).all() and (pixel[:, 1] + pixel[:, 3] <= w).all()
    assert area.min() >= 0.07 and area.max() <= 1.0
    assert aspect.min() >= 0.74 and aspect.max() <= 1.34
    torch.manual_seed(0)
    from torchvision.transforms import v2

    tv = np.array(
        [v2.RandomResizedCrop.make_params(v2.RandomResizedCrop(224), [photos[0]])["height"] for _ in range(2000)]
    )
    assert abs(np.mean(pixel[:, 2]) - tv.mean()) < 0.05 * tv.mean()


@fma_oracle
def test_rand_augment_ops_equal_torchvision_ops(photos):
    image = F.resize(photos[1], [64, 64])
    ra = RandAugment()
    ids = ra.sample(3000, _ctx())["aug_ra_op"]
    assert set(np.unique(ids)) == set(range(len(RAND_AUGMENT_OPS)))  # every torchvision op is drawn
    rotate = RAND_AUGMENT_OPS.index("Rotate")
    out = ra.apply(image[None], {"aug_ra_op": [[rotate]], "aug_ra_mag": [[-9]]}, 64, None)[0]
    expected = F.rotate(image, angle=-9.0, interpolation=F.InterpolationMode.BILINEAR, fill=[124, 116, 104])
    assert torch.equal(out, expected)  # bin 9 of 31 over 0..30 degrees, negated
    posterize = RAND_AUGMENT_OPS.index("Posterize")
    out = ra.apply(image[None], {"aug_ra_op": [[posterize]], "aug_ra_mag": [[30]]}, 64, None)[0]
    assert torch.equal(out, F.posterize(image, bits=4))
    mags = RandAugment(magnitude_std=0.5).sample(2000, _ctx())["aug_ra_mag"]
    assert len(np.unique(np.abs(mags))) > 1 and np.abs(mags).max() <= 30


def test_random_erasing_fills_box_with_constant(photos):
    op = RandomErasing(p=0.5)
    boxes = op.sample(4000, _ctx())["aug_re"]
    applied = boxes[:, 2] > 0
    assert 0.45 < applied.mean() < 0.55
    image = F.resize(photos[0], [50, 70])
    j = int(np.flatnonzero(applied)[0])
    out = op.apply(image[None].clone(), {"aug_re": boxes[j : j + 1]}, 50, None)[0]
    t, left, h, w = box_to_pixels(boxes[j], 50, 70)
    assert (out[:, t : t + h, left : left + w] == torch.tensor([124, 116, 104], dtype=torch.uint8).view(3, 1, 1)).all()
    assert torch.equal(op.apply(image[None].clone(), {"aug_re": np.zeros((1, 4), np.uint16)}, 50, None)[0], image)


def _ctx():
    from hf_reinforce.augment.ops import SampleContext

    return SampleContext(lambda sub: np.random.default_rng([0, sub]), 100, 100, 0, (0, 1))


@given(h=st.integers(1, 5000), w=st.integers(1, 5000), box=st.lists(st.integers(0, Q), min_size=4, max_size=4))
def test_box_to_pixels_stays_inside(h, w, box):
    t, left, bh, bw = box_to_pixels(box, h, w)
    assert 0 <= t and 0 <= left and 1 <= bh and 1 <= bw and t + bh <= h and left + bw <= w


@pytest.mark.parametrize("preset", PRESETS)
def test_policy_json_round_trip_keeps_every_constant(preset):
    policy = AugmentationPolicy.parse(preset)
    text = policy.to_json()
    assert AugmentationPolicy.parse(text) == policy
    assert AugmentationPolicy.from_dict(json.loads(text)) == policy
    data = json.loads(text)
    if any(op["op"] == "ra" for op in data["ops"]):
        ra = next(op for op in data["ops"] if op["op"] == "ra")
        assert ra["num_ops"] == 2 and ra["magnitude"] == 9 and ra["num_magnitude_bins"] == 31
        assert ra["ops"] == list(RAND_AUGMENT_OPS)


def test_custom_policy_composition():
    policy = AugmentationPolicy(
        (
            RandomResizedCrop(scale=(0.35, 1.0), interpolation="bicubic"),
            RandAugment(num_ops=1, ops=("Rotate", "Equalize")),
        ),
        mix=MixUpCutMix(block_size=4),
    )
    params = policy.sample(1, 2, 50, 30, 40, num_rows=9)
    assert set(params["aug_ra_op"].ravel()) <= {RAND_AUGMENT_OPS.index("Rotate"), RAND_AUGMENT_OPS.index("Equalize")}
    assert AugmentationPolicy.parse(policy.to_dict()) == policy
    assert policy.interpolation == "bicubic"


@pytest.mark.parametrize(
    "spec, field",
    [
        ("rrc+cutout", "policy: unknown preset"),
        ({"ops": [{"op": "rotate"}]}, r"policy.ops\[0\].op"),
        ({"ops": [{"op": "rrc", "scale": [0.5, 0.1]}]}, "rrc.scale"),
        ({"ops": [{"op": "rrc", "ratio": [0, 1]}]}, "rrc.ratio"),
        ({"ops": [{"op": "rrc", "interpolation": "fancy"}]}, "interpolation"),
        ({"ops": [{"op": "flip", "p": 1.5}]}, "flip.p"),
        ({"ops": [{"op": "ra", "magnitude": 40}]}, "ra.magnitude"),
        ({"ops": [{"op": "ra", "num_ops": 0}]}, "ra.num_ops"),
        ({"ops": [{"op": "ra", "ops": ["Zoom"]}]}, "ra.ops"),
        ({"ops": [{"op": "re", "fill": [300, 0, 0]}]}, "re.fill"),
        ({"ops": [{"op": "mix", "block_size": 1}]}, "mix.block_size"),
        ({"ops": [{"op": "mix", "mixup_alpha": 0}]}, "mix.mixup_alpha"),
        ({"ops": [{"op": "rrc", "colour": 1}]}, "unknown field"),
        ({"ops": [{"op": "flip"}, {"op": "rrc"}]}, "rrc must be the first"),
        ({"ops": [{"op": "mix"}, {"op": "flip"}]}, "mix must be the last"),
    ],
)
def test_invalid_policy_names_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        AugmentationPolicy.parse(spec)


def test_policy_without_crop_resizes_whole_image(photos):
    policy = AugmentationPolicy.parse({"ops": [{"op": "flip", "p": 1.0}]})
    params = policy.sample(0, 0, 2, *photos[0].shape[1:])
    out = policy.render(photos[0], params, 0, 32)
    expected = F.horizontal_flip(F.resize(photos[0], [32, 32], antialias=True))
    assert torch.equal(out, expected)


def test_extreme_sizes(photos):
    policy = AugmentationPolicy.parse("rrc+ra+re")
    for h, w in [(1, 1), (1, 500), (700, 2), (3, 3)]:
        image = _crop(photos[0], h, w)
        params = policy.sample(0, 0, 5, h, w)
        out = policy.render_many(image, params, range(5), 40)
        assert out.shape == (5, 3, 40, 40)


@SETTINGS
@given(
    batch=st.integers(1, 6),
    size=st.integers(1, 48),
    stats=st.lists(st.floats(0.01, 2.0), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_normalize_is_the_formula_and_independent_of_the_batch(batch, size, stats, seed):
    """A view normalizes to the same floats alone, in any batch, into a reused buffer, and as a channels-last
    tensor (what a student gets equals what its teacher saw), and the floats are ``(x / 255 - mean) / std``."""
    mean, std = stats[:3], stats[3:]
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (batch, 3, size, size), dtype=np.uint8))
    together = normalize(images, mean, std)
    into = torch.full((batch, 3, size, size), float("nan"))
    assert normalize(images, mean, std, out=into) is into and torch.equal(into, together)
    assert torch.equal(normalize(images.contiguous(memory_format=torch.channels_last), mean, std), together)
    for i in range(batch):
        assert torch.equal(normalize(images[i], mean, std), together[i])
    expected = (images.double() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(together, expected.float(), rtol=1e-5, atol=1e-5)


def test_normalize_refuses_images_that_are_not_uint8():
    images = torch.rand(2, 3, 8, 8)
    before = images.clone()
    with pytest.raises(TypeError, match="uint8 images.*torch.float32"):
        normalize(images, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(images, before)  # not scaled in place


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_exact_replay_on_gpu(photos):
    policy = AugmentationPolicy.parse("rrc+ra+re")
    image = photos[0].cuda()
    params = policy.sample(0, 0, 8, *image.shape[1:])
    batch = policy.render_many(image, params, range(8), 224)
    for j in range(8):
        assert torch.equal(policy.render(image, params, j, 224), batch[j])
