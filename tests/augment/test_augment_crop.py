"""The padded random crop (``crop``): torchvision's RandomCrop semantics, exact replay, resolution independence,
odd sizes, presets with and without a flip, and old preset names parsing to the same policy as before."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import AugmentationPolicy, HorizontalFlip, Q, RandomCrop, RandomResizedCrop
from hf_reinforce.augment.functional import crop_offset, padding_pixels
from hf_reinforce.storage.format import to_arrow

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

crops = st.builds(
    RandomCrop,
    padding=st.sampled_from([0.0, 0.03, 0.125, 0.25, 0.49]),
    padding_mode=st.sampled_from(["constant", "edge", "reflect", "symmetric"]),
    fill=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    interpolation=st.sampled_from(["bilinear", "bicubic", "nearest"]),
)
policies = st.one_of(
    st.sampled_from(["crop", "crop+flip", "crop+ra+re", "crop+flip+ra+re", "crop+mix"]).map(AugmentationPolicy.parse),
    crops.map(lambda c: AugmentationPolicy((c, HorizontalFlip()))),
)
sizes = st.one_of(
    st.tuples(st.just(1), st.just(1)),
    st.tuples(st.just(1), st.integers(1, 500)),
    st.tuples(st.integers(1, 500), st.just(1)),
    st.tuples(st.integers(2, 120), st.integers(2, 120)),
)


def _photo(photos, height: int, width: int) -> torch.Tensor:
    photo = photos[(height + width) % 2]
    reps = (1, math.ceil(height / photo.shape[1]), math.ceil(width / photo.shape[2]))
    return photo.repeat(*reps)[:, :height, :width].contiguous()


def test_a_square_image_at_the_resolution_is_torchvisions_random_crop_at_the_stored_offsets(photos):
    """At 32 px a 32×32 image is only padded and cropped: torchvision's own RandomCrop with the same offsets."""
    image = F.resize(photos[0], [32, 32], antialias=True)
    for mode in ("constant", "edge", "reflect", "symmetric"):
        op = RandomCrop(padding=0.125, padding_mode=mode, fill=(10, 20, 30))
        policy = AugmentationPolicy((op,))
        params = policy.sample(3, 7, 40, 32, 32)
        transform = v2.RandomCrop(32, padding=4, fill=[10, 20, 30] if mode == "constant" else 0, padding_mode=mode)
        for j in range(40):
            torch_params = transform.make_params([image])
            torch_params["top"], torch_params["left"] = (crop_offset(u, 4) for u in params["aug_crop"][j])
            torch_params["needs_crop"] = True
            assert torch.equal(policy.render(image, params, j, 32), transform.transform(image, torch_params))


def test_window_offsets_are_uniform_over_every_position_like_torchvision():
    params = AugmentationPolicy.parse("crop").sample(0, 1, 18_000, 28, 28)
    offsets = np.array([[crop_offset(u, 4) for u in pair] for pair in params["aug_crop"].tolist()])
    for axis in (0, 1):
        counts = np.bincount(offsets[:, axis], minlength=9)
        assert len(counts) == 9 and counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000


@SETTINGS
@given(t=st.integers(0, Q), resolution=st.integers(1, 600), other=st.integers(1, 600))
def test_the_stored_position_is_the_same_relative_window_at_any_resolution(t, resolution, other):
    """Offsets are ``floor(t (2p + 1) / Q)``: at every resolution within one position of ``t / Q`` of the range."""
    for r in (resolution, other):
        pad = padding_pixels(0.125, r)
        assert 0 <= crop_offset(t, pad) <= 2 * pad
        assert t / Q - 1 / (2 * pad + 1) - 1e-12 <= crop_offset(t, pad) / (2 * pad + 1) <= t / Q + 1e-12
    assert padding_pixels(0.125, 32) == 4 and padding_pixels(0.125, 224) == 28


@SETTINGS
@given(policy=policies, size=sizes, seed=st.integers(0, 2**31), row=st.integers(0, 10**5), n=st.integers(1, 8))
def test_crop_parameters_depend_only_on_seed_row_and_size_and_are_prefix_stable(policy, size, seed, row, n):
    a = policy.sample(seed, row, n, *size, num_rows=row + 20)
    b = policy.sample(seed, row, n + 5, *size, num_rows=row + 20)
    assert a["aug_crop"].dtype == np.uint16 and a["aug_crop"].shape == (n, 2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name][:n])
    np.testing.assert_array_equal(a["aug_crop"], policy.sample(seed, row, n, *size, num_rows=row + 20)["aug_crop"])


@SETTINGS
@given(policy=policies, size=sizes, seed=st.integers(0, 1000), n=st.integers(1, 6), res=st.sampled_from([1, 5, 32]))
def test_crop_renders_any_size_and_any_batch_split_identically(photos, policy, size, seed, n, res):
    image = _photo(photos, *size)
    params = policy.sample(seed, 0, n, *size, num_rows=1)
    if policy.mix is not None:
        params["aug_mix_partner"][:] = -1
    batch = policy.render_many(image, params, range(n), res)
    assert batch.shape == (n, 3, res, res) and batch.dtype == torch.uint8
    split = seed % n
    assert torch.equal(torch.cat([policy.render_many(image, params, range(split), res), batch[split:]]), batch)
    block = policy.render_block([image, image.flip(-1)], [params, params], range(n), res, rows=[0, 1])
    assert torch.equal(block[:n], batch)
    for j in range(n):
        assert torch.equal(policy.render(image, params, j, res), batch[j])


@SETTINGS
@given(policy=policies, seed=st.integers(0, 1000), n=st.integers(1, 5), res=st.sampled_from([16, 32, 48]))
def test_the_transform_replays_exactly_what_was_rendered_on_real_digits(digits, policy, seed, n, res):
    image = torch.from_numpy(digits[0][seed % 50]).expand(3, -1, -1).contiguous()
    params = policy.sample(seed, 0, n, 8, 8, num_rows=1)
    if policy.mix is not None:
        return  # mixing replay needs partner rows: covered by tests/test_augment_block.py
    record = testing.run_record(policy.to_json(), num_augmentations=n, resolution=res)
    transform = hfr.ReinforcedTransform(record)
    row = {"image": image, **{name: to_arrow(values[None]).to_pylist()[0] for name, values in params.items()}}
    for j in range(n):
        assert torch.equal(transform.replay(row, j), policy.render(image, params, j, res, record.teacher.interpolation))


def test_a_non_square_image_is_cropped_from_its_centred_square(photos):
    """A 40×100 image: the op sees its centred 40×40 square (the evaluation view), at any window position."""
    image = _photo(photos, 40, 100)
    policy = AugmentationPolicy.parse("crop")
    params = policy.sample(0, 0, 12, 40, 100)
    square = image[:, :, 30:70].contiguous()
    assert torch.equal(
        policy.render_many(image, params, range(12), 32), policy.render_many(square, params, range(12), 32)
    )
    assert torch.equal(
        policy.render(image, params, 0, 40), policy.render(square, params, 0, 40)
    )  # at the square's own size: only pad and crop


def test_zero_padding_is_the_evaluation_view(photos):
    from hf_reinforce.augment import center_view

    policy = AugmentationPolicy((RandomCrop(padding=0.0),))
    params = policy.sample(0, 0, 4, *photos[1].shape[1:])
    for j in range(4):
        assert torch.equal(policy.render(photos[1], params, j, 32), center_view(photos[1], 32, "bilinear"))


def test_crop_to_torchvision_draws_a_padded_window_of_the_evaluation_view(photos):
    torch.manual_seed(0)
    transform = AugmentationPolicy.parse("crop+flip").to_torchvision(32)
    image = F.resize(photos[0], [32, 32], antialias=True)
    padded = F.pad(image, [4, 4, 4, 4], fill=0)
    for _ in range(10):
        out = transform(image)
        assert out.shape == (3, 32, 32)
        assert any(
            torch.equal(out, padded[:, t : t + 32, x : x + 32])
            or torch.equal(out, padded[:, t : t + 32, x : x + 32].flip(-1))
            for t in range(9)
            for x in range(9)
        )


def test_presets_with_and_without_flip():
    names = lambda p: [op.name for op in AugmentationPolicy.parse(p).ops]  # noqa: E731
    assert names("crop") == ["crop"]
    assert names("crop+flip") == ["crop", "flip"]
    assert names("crop+flip+ra+re") == ["crop", "flip", "ra", "re"]
    assert names("crop+ra+re") == ["crop", "ra", "re"]
    assert names("rrc-noflip") == ["rrc"]
    assert names("rrc-noflip+ra+re") == ["rrc", "ra", "re"]
    assert AugmentationPolicy.parse("rrc+flip") == AugmentationPolicy.parse("rrc")
    for preset in hfr.PRESETS:
        policy = AugmentationPolicy.parse(preset)
        assert AugmentationPolicy.parse(policy.to_json()) == policy


def test_old_preset_names_parse_to_the_policies_they_always_stored():
    """The JSON that 0.1 wrote for ``rrc+ra+re`` (copied from a record of that version) is what the name gives."""
    stored = {
        "ops": [
            {"op": "rrc", "scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3], "interpolation": "bilinear"},
            {"op": "flip", "p": 0.5},
            {
                "op": "ra",
                "num_ops": 2,
                "magnitude": 9,
                "num_magnitude_bins": 31,
                "magnitude_std": 0.0,
                "ops": list(hfr.augment.RAND_AUGMENT_OPS),
                "interpolation": "bilinear",
                "fill": [124, 116, 104],
            },
            {"op": "re", "p": 0.25, "scale": [0.02, 0.33], "ratio": [0.3, 3.3], "fill": [124, 116, 104]},
        ]
    }
    assert AugmentationPolicy.parse("rrc+ra+re").to_dict() == stored
    assert AugmentationPolicy.from_dict(stored) == AugmentationPolicy.parse("rrc+ra+re")
    assert AugmentationPolicy.parse("rrc").to_dict() == {"ops": stored["ops"][:2]}


def test_crop_json_carries_every_constant():
    op = RandomCrop(padding=0.25, padding_mode="reflect", fill=(1, 2, 3), interpolation="bicubic")
    data = AugmentationPolicy((op,)).to_dict()
    assert data == {
        "ops": [
            {"op": "crop", "padding": 0.25, "padding_mode": "reflect", "fill": [1, 2, 3], "interpolation": "bicubic"}
        ]
    }
    assert AugmentationPolicy.from_dict(data).ops == (op,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomCrop(padding=0.5), "crop.padding"),
        (lambda: RandomCrop(padding=-0.1), "crop.padding"),
        (lambda: RandomCrop(padding=4), "crop.padding"),
        (lambda: RandomCrop(padding_mode="wrap"), "crop.padding_mode"),
        (lambda: RandomCrop(fill=(0, 0)), "crop.fill"),
        (lambda: RandomCrop(interpolation="box"), "crop.interpolation"),
        (lambda: AugmentationPolicy((RandomCrop(), RandomResizedCrop())), "at most one crop"),
        (lambda: AugmentationPolicy((HorizontalFlip(), RandomCrop())), "crop must be the first op"),
        (lambda: AugmentationPolicy.parse("crop+rrc"), "choose one"),
        (lambda: AugmentationPolicy.parse("crop+rrc-noflip"), "choose one"),
    ],
)
def test_bad_crop_settings_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("preset", hfr.PRESETS)
def test_the_record_names_each_preset_so_that_the_name_parses_back_to_it(preset):
    name = testing.run_record(preset).policy_name
    assert AugmentationPolicy.parse(name) == AugmentationPolicy.parse(preset)
