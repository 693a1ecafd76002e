"""Batched replay and the fast path: each view bit for bit what the pass rendered, whatever the batch; rows read
from Arrow without the other N−1 augmentations; the ``datasets`` format, streams and the augmentation choice."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pyarrow as pa
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hf_reinforce import testing
from hf_reinforce.augment import PRESETS, AugmentationPolicy, to_rgb_uint8
from hf_reinforce.distill.transform import ReinforcedTransform, augmentation_index, augmentation_indices
from hf_reinforce.errors import ConfigError
from hf_reinforce.storage.format import select_elements, to_arrow

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded(pixels: np.ndarray, fmt: str) -> dict:
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return {"bytes": buffer.getvalue(), "path": None}


class Pictures(list):
    def __repr__(self) -> str:
        return f"<{len(self)} encoded pictures>"


@pytest.fixture(scope="module")
def pictures() -> Pictures:
    """Encoded real pictures of odd sizes: crops of the two photos (JPEG and PNG) and MNIST digits (PNG, gray)."""
    photos = testing.photo_arrays()
    digits, _ = testing.mnist_arrays()
    crops = [photos[0][40:101, 100:145], photos[1][:37, 200:299], photos[1][150:330, 300:333], photos[0][:9, :200]]
    out = [_encoded(crop, fmt) for crop, fmt in zip(crops, ("JPEG", "PNG", "JPEG", "PNG"))]
    out += [_encoded(digits[k], "PNG") for k in (0, 1234, 4999)]
    return Pictures(out)


@SETTINGS
@given(
    preset=st.sampled_from(PRESETS),
    seed=st.integers(0, 2**31),
    n=st.integers(1, 5),
    res=st.sampled_from([1, 13, 32, 47]),
    interpolation=st.sampled_from(["bilinear", "bicubic"]),
    data=st.data(),
)
def test_batched_replay_is_what_the_pass_rendered_for_each_view(pictures, preset, seed, n, res, interpolation, data):
    """One view per row, each with its own stored augmentation, rendered together from the decoder's channels-last
    memory == the pass's block rendering of that augmentation (partners included), bit for bit."""
    policy = AugmentationPolicy.parse(preset)
    rows = data.draw(st.lists(st.integers(0, len(pictures) - 1), min_size=1, max_size=6))
    images = [to_rgb_uint8(pictures[k], channels_last=True) for k in rows]
    params = [policy.sample(seed, row, n, *image.shape[1:], num_rows=len(rows)) for row, image in enumerate(images)]
    chosen = data.draw(st.lists(st.integers(0, n - 1), min_size=len(rows), max_size=len(rows)))
    one = {name: np.stack([p[name][j] for p, j in zip(params, chosen)]) for name in policy.columns}
    partners = [int(p) for p in one["aug_mix_partner"] if p >= 0] if policy.mix is not None else []
    mixed = [b for b in range(len(rows)) if policy.mix is not None and one["aug_mix_partner"][b] >= 0]
    partner_params = None
    if partners:
        partner_params = {name: np.stack([params[p][name][chosen[b]] for p, b in zip(partners, mixed)]) for name in one}
    got = policy.replay_views(images, one, res, interpolation, [images[p] for p in partners], partner_params)
    contiguous = [image.contiguous() for image in images]
    for b, j in enumerate(chosen):
        expected = policy.render_block(contiguous, params, [j], res, interpolation)[b]
        assert torch.equal(got[b], expected), (b, j)


def test_replay_views_refuses_partners_that_do_not_match_the_mixed_views(photos):
    policy = AugmentationPolicy.parse("rrc+mix")
    params = policy.sample(0, 0, 1, *photos[0].shape[1:], num_rows=2)
    params["aug_mix_partner"][:] = 1
    with pytest.raises(ValueError, match="1 of 1 views mix with a partner row"):
        policy.replay_views([photos[0]], params, 16)


# -- the augmentation choice -----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rows=st.lists(st.integers(0, 2**40), min_size=1, max_size=8),
    n=st.integers(1, 700),
    cycle=st.integers(0, 50),
)
@example(seed=0, rows=[0, 1, 2], n=1, cycle=0)
@example(seed=0, rows=[0, 1, 2], n=2, cycle=3)  # the smallest prime
@example(seed=3, rows=[0, 5, 2**40], n=7, cycle=1)  # N prime: P = N, nothing to walk past
@example(seed=1, rows=[0, 9, 4], n=400, cycle=2)  # N not prime: P = 401
@example(seed=2, rows=[1, 2**33], n=1000, cycle=0)  # P = 1009
def test_each_cycle_of_each_row_is_a_permutation_and_the_vectorized_choice_agrees(seed, rows, n, cycle):
    """Every stored augmentation once per cycle of N epochs; a row's choice depends only on (seed, row, epoch): the
    same alone as among any other rows."""
    epochs = range(cycle * n, cycle * n + n)
    table = np.stack([augmentation_indices(seed, np.array(rows), e, n) for e in epochs])
    for k, row in enumerate(rows):
        assert sorted(table[:, k].tolist()) == list(range(n))
        for e in (0, n // 2, n - 1):
            assert table[e, k] == augmentation_index(seed, row, epochs[e], n)
    assert np.array_equal(augmentation_indices(seed, np.array(rows[::-1]), epochs[0], n), table[0, ::-1])


def test_the_choice_is_pinned_and_the_transform_uses_it():
    """The epoch → augmentation mapping is part of what a training run replays (it changed from 0.1's): pinned, so it
    changes only on purpose. Integer arithmetic, the same on every machine."""
    assert [[augmentation_index(0, row, e, 400) for e in range(4)] for row in range(3)] == [
        [195, 166, 137, 108],
        [185, 315, 44, 174],
        [82, 41, 0, 360],
    ]
    assert [augmentation_index(7, 12345, e, 5) for e in range(10)] == [1, 4, 2, 0, 3, 4, 3, 2, 1, 0]
    transform = ReinforcedTransform(testing.run_record(num_augmentations=400), seed=0, epoch=2)
    assert transform.augmentation_index(1) == 44 and transform.augmentation_index(1, epoch=0) == 185


def test_rows_seeds_and_cycles_get_different_orders():
    orders = {
        tuple(augmentation_index(seed, row, cycle * 50 + e, 50) for e in range(50))
        for seed, row, cycle in ((0, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 1))
    }
    assert len(orders) == 4


# -- reading one element per row through Arrow ----------------------------------------------------------------------


def test_select_elements_reads_element_j_of_each_row_from_any_arrow_layout():
    values = np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3)
    fixed = to_arrow(values)
    positions = np.array([3, 0, 2, 1, 3])
    expected = values[np.arange(5), positions]
    variable = pa.array(values.tolist(), type=pa.list_(pa.list_(pa.int16())))
    shuffled = [2, 4, 0, 1, 3]  # a shuffled batch arrives as one chunk per row
    cases = [
        (fixed, positions, expected),
        (
            pa.chunked_array([fixed.slice(k, 1) for k in shuffled]),
            positions[shuffled],
            values[shuffled, positions[shuffled]],
        ),
        (variable, positions, expected),
        (pa.chunked_array([variable.slice(3), variable.slice(1, 2)]), positions[[3, 4, 1, 2]], expected[[3, 4, 1, 2]]),
    ]
    for column, where, want in cases:
        assert np.array_equal(select_elements(column, where, "c"), want)
    flags = pa.array([[True, False], [False, True]], type=pa.list_(pa.bool_(), 2))
    assert select_elements(flags, np.array([1, 1]), "aug_flip").tolist() == [False, True]
    with pytest.raises(ConfigError, match=r"column 'c': a row stores 4 augmentations, augmentation 4 was asked for"):
        select_elements(fixed, np.array([0, 0, 4, 0, 0]), "c")
    with pytest.raises(ConfigError, match="column 'c': a row stores 4"):
        select_elements(variable, np.array([0, 0, 4, 0, 0]), "c")
