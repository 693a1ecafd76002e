"""RandAugment's sampled geometric ops (``hf_reinforce.augment.geometry``): torchvision's bytes on AVX2/AVX-512 x86,
computed so that a CPU that rounds ``grid_sample`` differently still gives them."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from conftest import fma_oracle
from torch.nn.functional import grid_sample
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2.functional import _geometry

from hf_reinforce.augment import FILL, geometry
from hf_reinforce.augment import functional as AF

BILINEAR, NEAREST = InterpolationMode.BILINEAR, InterpolationMode.NEAREST
SIZES = [(224, 224), (32, 32), (37, 53)]


def draws(height: int, width: int) -> list[tuple[str, float]]:
    """Every geometric op at every magnitude bin and sign of 31 (every third one at 224 px, to keep the tests fast)."""
    bins = [*range(31), *range(-30, 0)][:: 3 if height >= 224 else 1]
    return [(op, AF.rand_augment_magnitude(op, b, 31, height, width)) for op in geometry.GRID_OPS for b in bins]


def views(photos, height: int, width: int) -> torch.Tensor:
    return torch.stack(
        [torch.nn.functional.interpolate(p[None], [height, width], mode="bilinear", antialias=True)[0] for p in photos]
    )


@fma_oracle
@pytest.mark.parametrize("height, width", SIZES)
def test_the_grid_and_mask_are_torchvisions_on_avx512_with_mkl(height, width):
    """torchvision's grid is a BLAS product (MKL on x86): the emulation equals it on every coordinate."""
    for op, magnitude in draws(height, width):
        matrix = geometry.affine_matrix(op, magnitude, height, width)
        if matrix is None:
            continue
        theta = torch.tensor(matrix, dtype=torch.float32).reshape(1, 2, 3)
        expected = _geometry._affine_grid(theta, w=width, h=height, ow=width, oh=height)
        plan = geometry._plan(op, magnitude, height, width, BILINEAR)
        assert torch.equal(plan.grid, expected), (op, magnitude)
        ones = torch.ones((1, 1, height, width))
        assert torch.equal(plan.mask, grid_sample(ones, expected, "bilinear", "zeros", align_corners=False))


@fma_oracle
@pytest.mark.parametrize("height, width", SIZES)
def test_the_exact_path_is_avx512s_grid_sample_on_every_pixel(photos, height, width):
    """``_interpolated`` and ``_blended``, applied to every pixel, give what grid_sample and the blend give here."""
    images = views(photos, height, width)
    fill = np.asarray(FILL, dtype=np.float32)
    for op, magnitude in draws(height, width)[::2]:
        plan = geometry._plan(op, magnitude, height, width, BILINEAR)
        if plan is None:
            continue
        sampled = grid_sample(images.float(), plan.grid.expand(2, -1, -1, -1), "bilinear", "zeros", False)
        fills = torch.tensor(FILL, dtype=torch.float32).view(1, 3, 1, 1)
        expected = sampled.sub_(fills).mul_(plan.mask).add_(fills).round_()
        weights = plan.weights
        values = images.numpy().reshape(6, -1)[:, plan.neighbours].astype(np.float32)
        total = geometry._interpolated(values, weights, np.ones(height * width, dtype=bool))  # exact.fma throughout
        ours = geometry._blended(total, np.tile(fill, 2)[:, None], plan.mask.numpy().reshape(-1))
        assert np.array_equal(geometry._interpolated(values, weights, plan.tiny), total)  # float64 where it is exact
        assert np.array_equal(ours.reshape(expected.shape), expected.numpy()), (op, magnitude)


def unfused_grid_sample(images, grid, mode, padding_mode, align_corners):
    """Bilinear ``grid_sample`` as a CPU without fused multiply-adds computes it: coordinates ``(g + 1)·size/2``
    rounded, then ``- 0.5`` rounded; the weighted sum as four rounded products and three rounded sums."""
    assert (mode, padding_mode, align_corners) == ("bilinear", "zeros", False)
    pixels, g = images.numpy(), grid[0].numpy()
    height, width = pixels.shape[-2:]
    x = (g[..., 0] + np.float32(1)) * np.float32(width / 2) - np.float32(0.5)
    y = (g[..., 1] + np.float32(1)) * np.float32(height / 2) - np.float32(0.5)
    left, top = np.floor(x), np.floor(y)
    east, south = x - left, y - top
    west, north = np.float32(1) - east, np.float32(1) - south
    total = np.zeros(pixels.shape[:2] + x.shape, dtype=np.float32)
    for dy, dx, weight in ((0, 0, north * west), (0, 1, north * east), (1, 0, south * west), (1, 1, south * east)):
        row, col = top.astype(np.int64) + dy, left.astype(np.int64) + dx
        inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
        value = pixels[:, :, np.clip(row, 0, height - 1), np.clip(col, 0, width - 1)].astype(np.float32)
        total = total + np.where(inside, value, np.float32(0)) * weight
    return torch.from_numpy(total)


@pytest.mark.parametrize("height, width", SIZES)
def test_a_cpu_without_fused_multiply_adds_gives_the_same_bytes(photos, monkeypatch, height, width):
    noise = torch.randint(0, 256, (1, 3, height, width), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images = torch.cat([views(photos, height, width), noise])  # noise: steep gradients, where coordinates matter most
    expected = [geometry.sample(images, op, magnitude, BILINEAR, FILL) for op, magnitude in draws(height, width)]
    monkeypatch.setattr(geometry, "grid_sample", unfused_grid_sample)
    for (op, magnitude), want in zip(draws(height, width), expected):
        got = geometry.sample(images, op, magnitude, BILINEAR, FILL)
        assert want is None and got is None or torch.equal(got, want), (op, magnitude)


def test_a_sampler_off_by_less_than_the_margin_gives_the_same_bytes(photos, monkeypatch):
    """Any rounding of the weighted sum within 3.3e-4 (the bound of ``geometry._MARGIN``) changes no byte."""
    images = views(photos, 224, 224)
    noise = torch.Generator().manual_seed(0)
    expected = [geometry.sample(images, op, magnitude, BILINEAR, FILL) for op, magnitude in draws(224, 224)[::4]]

    def off(*args):
        exact = grid_sample(*args)
        return exact + (torch.rand(exact.shape, generator=noise) - 0.5) * 6.6e-4

    monkeypatch.setattr(geometry, "grid_sample", off)
    for (op, magnitude), want in zip(draws(224, 224)[::4], expected):
        assert want is None or torch.equal(geometry.sample(images, op, magnitude, BILINEAR, FILL), want), op


@pytest.mark.parametrize("height, width", SIZES)
def test_nearest_sampling_reads_the_same_pixels_from_a_grid_off_by_a_thousandth(photos, monkeypatch, height, width):
    images = views(photos, height, width)
    fill = (9, 0, 255)
    expected = [geometry.sample(images, op, magnitude, NEAREST, fill) for op, magnitude in draws(height, width)]

    def off(images, grid, *args):
        return grid_sample(images, grid + (torch.rand(grid.shape) - 0.5) * 2e-3 / max(height, width), *args)

    monkeypatch.setattr(geometry, "grid_sample", off)
    for (op, magnitude), want in zip(draws(height, width), expected):
        assert want is None or torch.equal(geometry.sample(images, op, magnitude, NEAREST, fill), want), op


def test_channels_last_views_give_the_same_bytes(photos):
    images = views(photos, 37, 53)
    for op, magnitude in draws(37, 53)[::7]:
        for mode in (BILINEAR, NEAREST):
            expected = geometry.sample(images, op, magnitude, mode, FILL)
            got = geometry.sample(images.contiguous(memory_format=torch.channels_last), op, magnitude, mode, FILL)
            assert expected is None and got is None or torch.equal(got, expected), (op, magnitude, mode)


@pytest.mark.parametrize("function", ["atan", "tan", "sin", "cos"])
def test_trigonometry_is_correctly_rounded(function):
    """Within a unit in the last place of the C library's, and the nearest double to a 400-bit value."""
    xs = np.random.default_rng(0).uniform(-1.5, 1.5, 300).tolist() + [0.0, 0.11942893071902021, 0.273008704192138]
    for x in xs:
        ours = geometry._correctly_rounded(function, x)
        with mpmath.workprec(400):
            exact = getattr(mpmath, function)(mpmath.mpf(x))
            neighbours = (np.nextafter(ours, -np.inf), np.nextafter(ours, np.inf))
            assert all(abs(exact - ours) <= abs(exact - float(n)) for n in neighbours), (function, x)
        assert abs(ours - getattr(math, function)(x)) <= 2 * np.spacing(abs(ours)), (function, x)


def test_the_matrix_is_torchvisions_but_where_the_c_library_broke_a_float32_tie():
    """torchvision computes the same formula with the C library's trigonometry: the float32 matrices agree but where
    a matrix entry lies within a few units of the last place of a float32 rounding boundary (RENDER_KERNELS)."""
    inverse = _geometry._get_inverse_affine_matrix
    for op, magnitude in draws(32, 32) + [("ShearX", AF.rand_augment_magnitude("ShearX", 12, 31, 1, 1))]:
        for size in range(8, 257):
            ours = geometry.affine_matrix(op, magnitude, size, size)
            if op == "Rotate":
                theirs = None if ours is None else inverse([0.0, 0.0], -(magnitude % 360), [0.0, 0.0], 1.0, [0.0, 0.0])
            else:
                shear = [math.degrees(math.atan(magnitude)), 0.0][:: 1 if op == "ShearX" else -1]
                theirs = inverse([-size * 0.5, -size * 0.5], 0.0, [0.0, 0.0], 1.0, shear)
            if ours is None or np.array_equal(np.float32(ours), np.float32(theirs)):
                continue
            for a, b in zip(ours, theirs):
                if np.float32(a) != np.float32(b):
                    boundary = (float(np.float32(a)) + float(np.float32(b))) / 2
                    assert abs(a - boundary) <= 4 * np.spacing(abs(a)), (op, magnitude, size, a, b)


def test_rotations_by_multiples_of_90_degrees_are_left_to_torchvision_only_where_it_copies():
    assert geometry.affine_matrix("Rotate", 0.0, 32, 32) is None
    assert geometry.affine_matrix("Rotate", -180.0, 32, 48) is None
    assert geometry.affine_matrix("Rotate", 90.0, 32, 32) is None
    assert geometry.affine_matrix("Rotate", 90.0, 32, 48) is not None  # torchvision samples a grid here
    assert geometry.affine_matrix("TranslateX", 3.0, 32, 32) is None
