"""The fast RandAugment ops (``hf_reinforce.augment.fast``) return torchvision v2's result bit for bit.

Checked at every magnitude bin and sign RandAugment can draw, on real photos and digits at the pass's sizes, and
with hypothesis on random images of odd sizes and contents that reach the ops' edge cases (one-valued channels,
images of 1–3 pixels, shifts larger than the image).
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from conftest import fma_oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from hf_reinforce import testing
from hf_reinforce.augment import _torchvision, fast
from hf_reinforce.augment import functional as AF

FAST = sorted(fast.FAST_OPS)


def torchvision_op(images: torch.Tensor, op: str, magnitude: float, mode: InterpolationMode, fill) -> torch.Tensor:
    """torchvision v2's RandAugment ``op`` (its own dispatch, the reference the pass must equal)."""
    return _torchvision.rand_augment_op(images, op, magnitude, mode, tuple(fill))


def magnitudes(op: str, height: int, width: int, num_bins: int = 31) -> list[float]:
    signed = AF.RAND_AUGMENT_SIGNED[op]
    bins = [b for b in range(num_bins)] + ([-b for b in range(1, num_bins)] if signed else [])
    return sorted({AF.rand_augment_magnitude(op, b, num_bins, height, width) for b in bins})


def test_the_fast_ops_are_ones_randaugment_draws():
    assert set(FAST) == {
        "AutoContrast",
        "Brightness",
        "Color",
        "Contrast",
        "Equalize",
        "Sharpness",
        "Solarize",
        "TranslateX",
        "TranslateY",
    }
    assert set(FAST) <= set(AF.RAND_AUGMENT_OPS)


@fma_oracle
@pytest.mark.parametrize("op", FAST)
@pytest.mark.parametrize("mode", [InterpolationMode.BILINEAR, InterpolationMode.NEAREST])
def test_every_magnitude_and_sign_on_real_photos_and_digits(photos, op, mode):
    fill = (124, 116, 104) if mode == InterpolationMode.BILINEAR else (9, 0, 255)
    mnist, _ = testing.mnist_arrays()
    digits = [torch.from_numpy(mnist[i]).expand(3, -1, -1).contiguous() for i in (0, 600, 1200, 4999)]
    for images in (
        torch.stack([F.resize(photo, [224, 224], antialias=True) for photo in photos]),
        torch.stack([F.resize(photos[0], [97, 131], antialias=True)]),
        torch.stack([F.resize(digit, [32, 32], antialias=True) for digit in digits]),
        torch.stack(digits[:3]),  # real 28×28 MNIST digits: mostly black, so equalize's histograms are extreme
    ):
        for magnitude in magnitudes(op, *images.shape[-2:]):
            expected = torchvision_op(images, op, magnitude, mode, fill)
            assert torch.equal(fast.FAST_OPS[op](images, magnitude, fill), expected), (op, magnitude, images.shape)


def test_the_pass_uses_the_fast_ops_on_uint8_cpu_images(photos, monkeypatch):
    calls = []
    monkeypatch.setitem(fast.FAST_OPS, "Sharpness", lambda images, m, fill: calls.append(m) or images)
    AF._rand_augment_op(photos[0][None], "Sharpness", 0.5, InterpolationMode.BILINEAR, AF.FILL)
    assert calls == [0.5]
    float_images = photos[0][None].float()  # float images: torchvision's path
    AF._rand_augment_op(float_images, "Sharpness", 0.5, InterpolationMode.BILINEAR, AF.FILL)
    assert calls == [0.5]


def test_edge_cases():
    fill = (1, 2, 3)
    tiny = torch.arange(12, dtype=torch.uint8).view(1, 3, 2, 2)
    assert torch.equal(fast.sharpness(tiny, 1.9), tiny)  # no interior: unchanged, like torchvision
    for h, w in ((5, 7), (70, 66)):  # below and above the size where equalize takes its own path
        flat = torch.full((2, 3, h, w), 77, dtype=torch.uint8)
        assert torch.equal(fast.equalize(flat), flat)
        one_off = flat.clone()
        one_off[0, 0, 0, 0] = 3  # all but one pixel at the maximum: step 0, kept as is
        assert torch.equal(fast.equalize(one_off), F.equalize(one_off))
        assert torch.equal(fast.equalize(one_off), one_off)
    gone = fast.translate(torch.zeros((1, 3, 4, 5), dtype=torch.uint8), 9, -1, fill)
    assert torch.equal(gone, torch.tensor(fill, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 5))
    assert fast.equalize(torch.zeros((0, 3, 4, 4), dtype=torch.uint8)).shape == (0, 3, 4, 4)


def _images(draw) -> torch.Tensor:
    batch = draw(st.integers(1, 3))
    small = st.tuples(st.integers(1, 40), st.integers(1, 40))
    height, width = draw(st.one_of(small, st.sampled_from([(64, 64), (70, 90), (128, 37)])))  # and equalize's own path
    kind = draw(st.sampled_from(["random", "few values", "constant channel"]))
    if kind == "random":
        array = draw(hnp.arrays(np.uint8, (batch, 3, height, width)))
    else:
        values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=3))
        index = draw(hnp.arrays(np.uint8, (batch, 3, height, width), elements=st.integers(0, len(values) - 1)))
        array = np.asarray(values, dtype=np.uint8)[index]
        if kind == "constant channel":
            array[:, 1] = values[0]
    return torch.from_numpy(np.ascontiguousarray(array))


@fma_oracle
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_equal_to_torchvision_on_random_images_of_any_size(data):
    images = _images(data.draw)
    op = data.draw(st.sampled_from(FAST))
    choices = magnitudes(op, *images.shape[-2:], num_bins=data.draw(st.sampled_from([2, 10, 31, 128])))
    magnitude = data.draw(st.sampled_from(choices))
    mode = data.draw(st.sampled_from([InterpolationMode.BILINEAR, InterpolationMode.NEAREST]))
    fill = tuple(data.draw(st.lists(st.integers(0, 255), min_size=3, max_size=3)))
    expected = torchvision_op(images, op, magnitude, mode, fill)
    assert torch.equal(fast.FAST_OPS[op](images, magnitude, fill), expected)
