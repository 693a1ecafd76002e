"""The render kernels' exact arithmetic (``hf_reinforce.augment.exact``, the tables and grayscale of ``fast``) gives
the correctly rounded results it claims, which are the results of torch's fused kernels on AVX2/AVX-512 x86."""

from __future__ import annotations

from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from conftest import fma_oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2.functional import _color

from hf_reinforce.augment import RAND_AUGMENT_OPS, exact, fast
from hf_reinforce.augment import functional as AF

finite32 = st.floats(min_value=-(2.0**60), max_value=2.0**60, allow_nan=False, width=32)


def correctly_rounded(value: Fraction) -> np.float32:
    """The float32 nearest ``value``, ties to even, from exact rational comparisons."""
    guess = np.float32(float(value))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - value), int(np.float32(c).view(np.int32)) & 1))


@settings(max_examples=2000, deadline=None)
@given(a=finite32, b=finite32, c=finite32)
def test_fma_rounds_the_exact_result_once(a, b, c):
    got = exact.fma(np.float32(a), np.float32(b), np.float32(c))
    expected = correctly_rounded(Fraction(a) * Fraction(b) + Fraction(c))
    assert got == expected or (got == 0 and expected == 0)


def test_fma_on_values_near_a_rounding_boundary():
    """Products that put the exact sum just off a half-unit of the float32 result: where double rounding errs."""
    a = np.float32(1 + 2.0**-23)
    b = np.float32(1 + 2.0**-23)
    c = np.float32(-1)  # a·b - 1 = 2^-22 + 2^-46
    assert exact.fma(a, b, c) == np.float32(2.0**-22 + 2.0**-46)
    halfway = np.float32(2.0**24 + 2)  # 2^24 + 2 + 1 + 2^-30: just above the midpoint of 2^24 + 2 and 2^24 + 4
    assert exact.fma(np.float32(1 + 2.0**-30), np.float32(1), halfway + np.float32(1)) == np.float32(2.0**24 + 4)


@fma_oracle
@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(-1000, 1000, width=32),
    end=st.floats(-1000, 1000, width=32),
    steps=st.integers(1, 300),
)
def test_linspace_is_torchs_on_avx2_and_avx512(start, end, steps):
    assert np.array_equal(exact.linspace(start, end, steps), torch.linspace(start, end, steps).numpy())


@fma_oracle
def test_every_randaugment_magnitude_is_torchvisions_on_avx2_and_avx512():
    for num_bins in (*range(2, 18), 31, 32, 33, 64, 100, 128):
        for op in RAND_AUGMENT_OPS:
            for size in (8, 37, 384):
                table = AF._torchvision.AUGMENTATION_SPACE[op][0](num_bins, size, size)
                ours = [AF.rand_augment_magnitude(op, b, num_bins, size, size) for b in range(num_bins)]
                assert table is None or ours == [float(v) for v in table], (op, num_bins, size)


@fma_oracle
@pytest.mark.parametrize("signed_bin", [*range(31), *range(-30, 0)])
def test_the_blend_tables_are_torchvisions_fused_blends(signed_bin):
    """Every (pixel, other) pair, at every factor RandAugment's Color and Sharpness draw (bins of 31, both signs)."""
    factor = 1.0 + AF.rand_augment_magnitude("Color", signed_bin, 31, 1, 1)
    pixel = torch.arange(256, dtype=torch.uint8).repeat_interleave(256)
    other = torch.arange(256, dtype=torch.uint8).repeat(256)
    blended = _color._blend(pixel, other.to(torch.float32), factor)
    assert np.array_equal(fast._blend_table(factor).reshape(-1), blended.numpy())
    view = pixel.to(torch.float32)
    sharpened = view.add_(other.to(torch.float32).sub_(view), alpha=1.0 - factor).clamp_(0, 255).to(torch.uint8)
    assert np.array_equal(fast._sharpen_table(factor).reshape(-1), sharpened.numpy())


@fma_oracle
@settings(max_examples=200, deadline=None)
@given(images=hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(3), st.integers(1, 40), st.integers(1, 40))))
def test_grayscale_is_torchvisions_floored(images):
    images = torch.from_numpy(images)
    expected = _color._rgb_to_grayscale_image(images, num_output_channels=1, preserve_dtype=False).floor_()
    assert torch.equal(fast.grayscale(images), expected.to(torch.uint8))


def test_grayscale_sums_are_exact_in_float64_for_every_color():
    """The argument behind ``fast.grayscale``, checked for all 2**24 colours: each float64 multiply-add has no
    rounding error (TwoSum's error term is 0), so rounding it once to float32 is the fused result."""
    c2, c3 = float(np.float32(0.587)), float(np.float32(0.114))
    levels = np.arange(256, dtype=np.float64)
    for constant in (c2, c3):  # 24 + 8 significant bits: exact products
        assert all(Fraction(constant * level) == Fraction(constant) * int(level) for level in levels)
    products = c2 * levels
    for red in range(256):
        first = np.float64(np.float32(red) * np.float32(0.2989))
        sums = first + products
        assert not exact._two_sum_error(products, np.full(256, first), sums).any()
        partial = sums.astype(np.float32).astype(np.float64)[:, None]
        totals = partial + c3 * levels[None, :]
        assert not exact._two_sum_error(c3 * levels[None, :], partial, totals).any()
