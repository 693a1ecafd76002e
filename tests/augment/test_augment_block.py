"""Block rendering is bit-identical to the per-view reference, and generation (``render_block``) == replay.

The oracle below is a straightforward per-view implementation with torchvision v2 functional calls, copied from
the per-view ``render`` loop as it was before block rendering (one ``F.resized_crop``, flip, torchvision's own
RandAugment ops, ``F.erase``, then MixUp/CutMix against the partner's unmixed view). It must never call the
library's rendering code, so it stays a fixed point while the fast kernels change. It is the oracle where torch's
float kernels fuse multiply-adds (x86 AVX2/AVX-512); the 1-px resize is torchvision's uint8 resize in two passes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import fma_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from hf_reinforce.augment import (
    PRESETS,
    RAND_AUGMENT_OPS,
    AugmentationPolicy,
    HorizontalFlip,
    MixUpCutMix,
    Q,
    RandAugment,
    RandomCrop,
    RandomErasing,
    RandomResizedCrop,
    box_to_pixels,
)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- the oracle ---------------------------------------------------------------------------------------------------


def _oracle_crop(image, box, resolution, mode):
    top, left, h, w = box_to_pixels(box, image.shape[-2], image.shape[-1])
    if resolution == 1 and mode != InterpolationMode.NEAREST:
        # torchvision's uint8 resize cannot make 1×1 at once: its two passes (width, then height), one call each
        column = F.resize(F.crop(image, top, left, h, w), [h, 1], interpolation=mode, antialias=True)
        return F.resize(column.expand(-1, -1, 2), [1, 2], interpolation=mode, antialias=True)[..., :1]
    return F.resized_crop(image, top, left, h, w, [resolution, resolution], interpolation=mode, antialias=True)


def _oracle_padded_crop(image, op: RandomCrop, position, resolution, mode):
    """The centred square resized, then torchvision's own ``RandomCrop`` with its window at the stored position."""
    height, width = image.shape[-2:]
    side = min(height, width)
    box = ((height - side) // 2 * Q // height, (width - side) // 2 * Q // width, side * Q // height, side * Q // width)
    view = _oracle_crop(image, box, resolution, mode)
    pad = math.floor(op.padding * resolution + 0.5)
    fill = list(op.fill) if op.padding_mode == "constant" else 0
    crop = v2.RandomCrop(resolution, padding=pad or None, fill=fill, padding_mode=op.padding_mode)
    params = crop.make_params([view])
    params["top"], params["left"] = (min(int(u) * (2 * pad + 1) // Q, 2 * pad) for u in position)
    params["needs_crop"] = pad > 0
    return crop.transform(view, params)


def _oracle_rand_augment(image, op: RandAugment, op_ids, signed_bins):
    mode = InterpolationMode(op.interpolation)
    augmenter = v2.RandAugment(interpolation=mode, fill=list(op.fill))
    height, width = image.shape[-2:]
    for op_id, signed_bin in zip(op_ids, signed_bins):
        name = RAND_AUGMENT_OPS[int(op_id)]
        magnitudes_fn, signed = v2.RandAugment._AUGMENTATION_SPACE[name]
        magnitudes = magnitudes_fn(op.num_magnitude_bins, height, width)
        magnitude = 0.0 if magnitudes is None else float(magnitudes[abs(int(signed_bin))])
        magnitude = -magnitude if signed and int(signed_bin) < 0 else magnitude
        image = augmenter._apply_image_or_video_transform(
            image, name, magnitude, interpolation=mode, fill=augmenter._fill
        )
    return image


def oracle_view(policy, image, params, j, resolution, interpolation=None):
    """Unmixed view ``j`` of ``image``, per view, with torchvision v2 functional calls."""
    p = {name: values[j] for name, values in params.items()}
    out = image
    if not any(isinstance(op, (RandomResizedCrop, RandomCrop)) for op in policy.ops):
        out = _oracle_crop(out, (0, 0, Q, Q), resolution, InterpolationMode(interpolation or "bilinear"))
    for op in policy.ops:
        if isinstance(op, RandomResizedCrop):
            out = _oracle_crop(out, p["aug_rrc"], resolution, InterpolationMode(interpolation or op.interpolation))
        elif isinstance(op, RandomCrop):
            out = _oracle_padded_crop(
                out, op, p["aug_crop"], resolution, InterpolationMode(interpolation or op.interpolation)
            )
        elif isinstance(op, HorizontalFlip):
            out = F.horizontal_flip(out) if bool(p["aug_flip"]) else out
        elif isinstance(op, RandAugment):
            out = _oracle_rand_augment(out, op, p["aug_ra_op"], p["aug_ra_mag"])
        elif isinstance(op, RandomErasing) and int(p["aug_re"][2]) and int(p["aug_re"][3]):
            top, left, h, w = box_to_pixels(p["aug_re"], out.shape[-2], out.shape[-1])
            out = F.erase(out, top, left, h, w, torch.tensor(op.fill, dtype=torch.uint8).view(-1, 1, 1))
    return out


def oracle_mix(own, partner, lam, box):
    out = own
    if int(lam) != Q:
        weight = int(lam) / Q
        out = (own.float() * weight + partner.float() * (1.0 - weight)).round_().clamp_(0, 255).to(torch.uint8)
    if int(box[2]) > 0 and int(box[3]) > 0:
        top, left, h, w = box_to_pixels(box, own.shape[-2], own.shape[-1])
        out = out.clone()
        out[..., top : top + h, left : left + w] = partner[..., top : top + h, left : left + w]
    return out


def oracle_block(policy, images, params, js, resolution, interpolation=None, rows=None):
    """``(len(images) * len(js), 3, r, r)``: every view unmixed, then each mixed with its partner's same view."""
    rendered = [[oracle_view(policy, im, p, j, resolution, interpolation) for j in js] for im, p in zip(images, params)]
    position = {row: k for k, row in enumerate(rows or range(len(images)))}
    out = []
    for k, p in enumerate(params):
        for t, j in enumerate(js):
            view = rendered[k][t]
            partner = int(p["aug_mix_partner"][j]) if "aug_mix_partner" in p else -1
            if partner >= 0:
                view = oracle_mix(view, rendered[position[partner]][t], p["aug_mix_lam"][j], p["aug_mix_box"][j])
            out.append(view)
    return torch.stack(out)


# -- images -------------------------------------------------------------------------------------------------------


def _crop(photo: torch.Tensor, height: int, width: int) -> torch.Tensor:
    reps = (1, math.ceil(height / photo.shape[1]), math.ceil(width / photo.shape[2]))
    return photo.repeat(*reps)[:, :height, :width].contiguous()


def _images(kind: str, count: int, size: tuple[int, int], seed: int, photos, digits) -> list[torch.Tensor]:
    """``count`` images of one kind: real photo crops of ``size``, real digits, or grayscale-derived photo crops."""
    out = []
    for i in range(count):
        h, w = size[0] + (i * 7) % 5, size[1] + (i * 11) % 3  # sizes differ within a block
        if kind == "photo":
            out.append(_crop(photos[(seed + i) % 2].roll(31 * i + seed, dims=-1), h, w))
        elif kind == "digit":
            out.append(torch.from_numpy(digits[0][(seed + i) % len(digits[0])]).expand(3, -1, -1).contiguous())
        else:  # grayscale-derived: one channel repeated, as to_rgb_uint8 makes from an "L" image
            out.append(_crop(photos[(seed + i) % 2][1:2], h, w).expand(3, -1, -1).contiguous())
    return out


POLICIES = [*PRESETS, "ra", "re", "mix", "rrc+ra", "rrc+re", "ra+re"]
EXTRA_POLICIES = [
    AugmentationPolicy((RandomResizedCrop(interpolation="bicubic"), HorizontalFlip(p=1.0), RandAugment(num_ops=3))),
    AugmentationPolicy((RandAugment(magnitude_std=2.0, interpolation="nearest", fill=(0, 255, 7)),)),
    AugmentationPolicy((RandomResizedCrop(scale=(0.5, 1.0)), RandomErasing(p=1.0)), mix=MixUpCutMix(block_size=3)),
    AugmentationPolicy((RandomCrop(padding=0.3, padding_mode="reflect", interpolation="bicubic"), RandAugment())),
    AugmentationPolicy((RandomCrop(padding=0.49, padding_mode="edge"), HorizontalFlip()), mix=MixUpCutMix()),
    AugmentationPolicy((RandomCrop(padding=0.2, padding_mode="symmetric"), RandomErasing(p=1.0))),
    AugmentationPolicy((RandomCrop(padding=0.0, fill=(9, 0, 255)),)),
]
policies = st.one_of(st.sampled_from(POLICIES).map(AugmentationPolicy.parse), st.sampled_from(EXTRA_POLICIES))
sizes = st.one_of(
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.just(1), st.integers(1, 90)),
    st.tuples(st.integers(1, 90), st.just(1)),
    st.tuples(st.integers(2, 160), st.integers(2, 160)),
)


def _block(policy, seed, start, count, images, n):
    """Params of a whole mixing block of rows ``start..start+count-1`` (the dataset ends there)."""
    num_rows = start + count
    rows = list(range(start, num_rows))
    if policy.mix is not None:
        block_start, _ = policy.mix.block(start, num_rows)
        rows = list(range(block_start, num_rows))
        images = (images * len(rows))[: len(rows)]
    params = [policy.sample(seed, row, n, *im.shape[1:], num_rows=rows[-1] + 1) for row, im in zip(rows, images)]
    return rows, images, params


# -- properties ---------------------------------------------------------------------------------------------------


@fma_oracle
@SETTINGS
@given(
    policy=policies,
    kind=st.sampled_from(["photo", "digit", "gray"]),
    size=sizes,
    seed=st.integers(0, 2**31),
    start=st.integers(0, 10**5),
    count=st.integers(1, 5),
    n=st.integers(1, 6),
    res=st.sampled_from([1, 2, 7, 32, 33]),
    interpolation=st.sampled_from([None, "bilinear", "bicubic"]),
)
def test_render_block_equals_per_view_oracle(
    photos, digits, policy, kind, size, seed, start, count, n, res, interpolation
):
    images = _images(kind, count, size, seed, photos, digits)
    rows, images, params = _block(policy, seed, start, count, images, n + 2)
    js = list(range(seed % 3, seed % 3 + n))
    before = [image.clone() for image in images]
    out = policy.render_block(images, params, js, res, interpolation, rows=rows)
    assert out.dtype == torch.uint8 and out.shape == (len(images) * n, 3, res, res)
    assert torch.equal(out, oracle_block(policy, images, params, js, res, interpolation, rows))
    assert all(torch.equal(a, b) for a, b in zip(images, before)), "rendering must not write into the inputs"
    hwc_backed = [image.permute(1, 2, 0).contiguous().permute(2, 0, 1) for image in images]  # as decoders give them
    assert torch.equal(policy.render_block(hwc_backed, params, js, res, interpolation, rows=rows), out)


@fma_oracle
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("resolution", [32, 224])
def test_render_block_equals_oracle_on_real_photos_and_digits(photos, digits, preset, resolution):
    policy = AugmentationPolicy.parse(preset)
    images = [*photos, *(torch.from_numpy(d).expand(3, -1, -1).contiguous() for d in digits[0][:3])]
    params = [policy.sample(7, row, 6, *im.shape[1:], num_rows=len(images)) for row, im in enumerate(images)]
    out = policy.render_block(images, params, range(6), resolution, rows=list(range(len(images))))
    assert torch.equal(out, oracle_block(policy, images, params, range(6), resolution))


@fma_oracle
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("op", RAND_AUGMENT_OPS)
def test_each_rand_augment_op_at_every_sign_and_several_magnitudes_equals_torchvision(photos, op, mode):
    """Each op applied to a block where views drew different magnitudes and signs (batched where the code batches)."""
    ra = RandAugment(
        num_ops=2, ops=(op,), interpolation=mode, fill=(124, 116, 104) if mode == "bilinear" else (9, 0, 255)
    )
    policy = AugmentationPolicy((RandomResizedCrop(), ra))
    bins = [0, 1, 5, 9, 17, 30, -1, -5, -9, -30, 9, 9, -9, 30, 0, 17] if ra_signed(op) else [0, 1, 5, 9, 17, 30, 9, 30]
    images = [_crop(photos[0], 97, 131), _crop(photos[1], 64, 50)]
    params = []
    for row, image in enumerate(images):
        p = policy.sample(3, row, len(bins), *image.shape[1:])
        p["aug_ra_mag"] = np.array([[b, bins[-1 - t]] for t, b in enumerate(bins)], dtype=np.int8)
        params.append(p)
    for res in (3, 40, 224):
        out = policy.render_block(images, params, range(len(bins)), res, rows=[0, 1])
        assert torch.equal(out, oracle_block(policy, images, params, range(len(bins)), res))


def ra_signed(op: str) -> bool:
    return v2.RandAugment._AUGMENTATION_SPACE[op][1]


@fma_oracle
@pytest.mark.parametrize("preset", ["rrc+ra+re", "rrc+mix+ra+re"])
def test_render_block_equals_oracle_for_views_larger_than_an_op_chunk(photos, preset):
    """At 600 px one view holds more values than a chunk of a batched op: each view still goes through once."""
    policy = AugmentationPolicy.parse(preset)
    params = [policy.sample(5, row, 4, *photos[row].shape[1:], num_rows=2) for row in range(2)]
    params[0]["aug_ra_op"][:] = RAND_AUGMENT_OPS.index("Rotate")  # a group of 4 views, each over the chunk size
    out = policy.render_block(photos, params, range(4), 600, rows=[0, 1])
    assert torch.equal(out, oracle_block(policy, photos, params, range(4), 600))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=policies, seed=st.integers(0, 2**31), n=st.integers(1, 8), res=st.sampled_from([5, 32]))
def test_render_block_equals_stacked_replay(photos, policy, seed, n, res):
    """Generation == replay: each view of the block is what a student's ``replay`` (with partner) returns."""
    images = [_crop(photos[i % 2].roll(53 * i, dims=-1), 60 + 9 * i, 80 - 5 * i) for i in range(4)]
    rows, images, params = _block(policy, seed, 4 * (seed % 50), 4, images, n)
    out = policy.render_block(images, params, range(n), res, rows=rows)
    position = {row: k for k, row in enumerate(rows)}
    replayed = []
    for k, p in enumerate(params):
        for j in range(n):
            partner = int(p["aug_mix_partner"][j]) if policy.mix is not None else -1
            other = position.get(partner, k)
            replayed.append(
                policy.replay(images[k], p, j, res, partner_image=images[other], partner_params=params[other])
            )
    assert torch.equal(out, torch.stack(replayed))


@fma_oracle
def test_oracle_equals_render_per_view(photos):
    """The oracle is today's per-view path (kept as a guard that the oracle itself is right)."""
    for preset in POLICIES:
        policy = AugmentationPolicy.parse(preset)
        params = policy.sample(11, 2, 5, *photos[1].shape[1:], num_rows=4)
        for j in range(5):
            assert torch.equal(policy.render(photos[1], params, j, 48), oracle_view(policy, photos[1], params, j, 48))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("preset", PRESETS)
def test_render_block_on_gpu_equals_replay_on_gpu(photos, preset):
    """On a GPU the block path falls back to torchvision's calls; generation == replay holds per device."""
    policy = AugmentationPolicy.parse(preset)
    images = [_crop(photos[i % 2], 200 + 7 * i, 300 - 11 * i).cuda() for i in range(3)]
    params = [policy.sample(2, row, 6, *im.shape[1:], num_rows=3) for row, im in enumerate(images)]
    out = policy.render_block(images, params, range(6), 64, rows=[0, 1, 2])
    for k, p in enumerate(params):
        for j in range(6):
            partner = int(p["aug_mix_partner"][j]) if policy.mix is not None else -1
            other = partner if partner >= 0 else k
            expected = policy.replay(images[k], p, j, 64, partner_image=images[other], partner_params=params[other])
            assert torch.equal(out[k * 6 + j], expected)


@pytest.mark.parametrize("policy", ["rrc+re", "rrc+ra+re", "rrc"])
def test_one_view_whose_crop_is_already_the_output_size_leaves_the_image_alone(policy):
    """A crop at the output size comes back from the resize as a view of the image; erasing, flipping or RandAugment
    then wrote into the caller's decoded image (found by the block property test on a 1×1 image)."""
    policy = AugmentationPolicy.parse(policy)
    for size in (1, 32):
        image = torch.arange(3 * size * size, dtype=torch.uint8).view(3, size, size)
        before = image.clone()
        for seed in range(20):
            params = policy.sample(seed, 0, 1, size, size, num_rows=1)
            params["aug_rrc"][:] = (0, 0, 65535, 65535)  # the whole image: the crop is the output size
            if "aug_re" in params:
                params["aug_re"][:] = (0, 0, 65535, 65535)  # erase everything
            out = policy.render_block([image], [params], [0], size, rows=[0])
            assert torch.equal(image, before), (size, seed)
            assert out.untyped_storage().data_ptr() != image.untyped_storage().data_ptr()
