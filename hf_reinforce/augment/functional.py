"""Pure functions that apply *given* augmentation parameters to ``uint8`` image tensors.

Generation (teacher inputs) and replay (student inputs) both call these functions, on batches of views (one
view is a batch of one), so a stored augmentation reproduces the teacher's pixels exactly. Pixel work is
torchvision's, or, on CPU where v2's per-call work costs more than the pixels or its float arithmetic depends on the
CPU, torch's integer resize kernel and :mod:`.fast` and :mod:`.geometry`: the bytes torchvision gives on AVX2/AVX-512
x86, on every CPU (``docs/exact-replay.md``). Boxes are stored normalized to ``[0, 65535]`` (see
:func:`box_to_pixels`) so they replay at any image size or output resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from . import _torchvision, fast, geometry
from .exact import linspace

Q = 65535  # fixed-point scale of normalized coordinates and mixing weights

RENDER_KERNELS = 2
"""Version of the render kernels' arithmetic, which a run record stores so that data rendered by older kernels is
recognised: 1, torchvision's float kernels (bytes depended on the CPU); 2, the same bytes on every CPU, those of 1 on
AVX2/AVX-512 x86 but for RandAugment's ShearX at bins ±12 and ±28 of 31 on some sizes (``docs/exact-replay.md``)."""

FILL: tuple[int, int, int] = (124, 116, 104)
"""Default colour of erased pixels and of pixels RandAugment's geometric ops expose (the ImageNet mean in uint8)."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

RESIZE_INTERPOLATIONS: tuple[str, ...] = ("nearest", "nearest-exact", "bilinear", "bicubic")
"""Interpolations for resizing ``uint8`` tensors with antialias on every supported torch (box and hamming fail on
tensors; lanczos needs a newer torch than the floor)."""

GRID_INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear")
"""Interpolations torchvision's rotate/affine (``grid_sample``) accept: RandAugment's geometric ops."""

_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL resample codes of these modes

RAND_AUGMENT_OPS: tuple[str, ...] = tuple(_torchvision.AUGMENTATION_SPACE)
"""Names of torchvision's RandAugment operations, in torchvision's order; stored op ids index this tuple."""

RAND_AUGMENT_SIGNED: dict[str, bool] = {op: signed for op, (_, signed) in _torchvision.AUGMENTATION_SPACE.items()}
"""Whether each RandAugment op's magnitude may be negated."""


def box_to_pixels(box: Sequence[int], height: int, width: int) -> tuple[int, int, int, int]:
    """Map a normalized ``(top, left, height, width)`` box (units of 1/65535) to an integer pixel box.

    Integer arithmetic only (round half up), so the mapping is identical on every platform and device; the box
    is clamped to lie inside the image and to be at least one pixel wide and tall.
    """
    top, left, box_h, box_w = (int(v) for v in box)
    h = min(max(_scale(box_h, height), 1), height)
    w = min(max(_scale(box_w, width), 1), width)
    return min(_scale(top, height), height - h), min(_scale(left, width), width - w), h, w


def _scale(value: int, size: int) -> int:
    return (2 * value * size + Q) // (2 * Q)


def resized_crop(
    image: torch.Tensor, box: Sequence[int], resolution: int, interpolation: InterpolationMode
) -> torch.Tensor:
    """Crop the normalized ``box`` out of ``image`` and resize it to ``resolution × resolution`` (antialiased)."""
    return _resized_crop(image, box_to_pixels(box, image.shape[-2], image.shape[-1]), resolution, interpolation)


def resized_crops(
    images: Sequence[torch.Tensor], boxes: Sequence[Sequence[int]], resolution: int, interpolation: InterpolationMode
) -> torch.Tensor:
    """:func:`resized_crop` of each ``images[b]`` (``(3, H_b, W_b)``, repeated for views of one image) with
    ``boxes[b]``: ``(B, 3, r, r)``.

    On torch's uint8 antialiased CPU kernel, bit for bit the same as one call per view, faster (measured):
    an image whose crops cover more pixels than it has is cropped from one channels-last copy (the kernel packs
    its input channels-last itself; 1.5–3× faster at 224 px), and crops of equal size are resized in one call
    (4 µs per view instead of 24 at 32 px).
    """
    pixels = [box_to_pixels(box, *image.shape[-2:]) for image, box in zip(images, boxes)]
    if len(images) == 1:  # one view (replay): nothing to share
        view = _resized_crop(images[0], pixels[0], resolution, interpolation)
        if view.untyped_storage().data_ptr() == images[0].untyped_storage().data_ptr():
            view = view.clone()  # a crop already at the output size is a view of the image: later ops write in place
        return view[None]
    sources = _channels_last_sources(images, pixels)
    first = images[0]
    out = torch.empty((len(images), first.shape[-3], resolution, resolution), dtype=first.dtype, device=first.device)
    batched = resolution > 1 and first.dtype == torch.uint8 and first.device.type == "cpu"
    for (h, w), views in _by_size(pixels).items():
        if batched and len(views) > 1 and _UINT8_KERNELS.get(interpolation):
            crops = torch.stack([sources[b].permute(1, 2, 0)[t : t + h, x : x + w] for b, (t, x, _, _) in views])
            resized = _resize_uint8_cpu(crops.permute(0, 3, 1, 2), resolution, interpolation)
            _put(out, np.array([b for b, _ in views]), resized)
        else:
            for b, box in views:
                out[b] = _resized_crop(sources[b], box, resolution, interpolation)
    return out


def _channels_last_sources(
    images: Sequence[torch.Tensor], pixels: Sequence[tuple[int, int, int, int]]
) -> list[torch.Tensor]:
    """``images`` with each one whose crops cover more pixels than it has replaced by one channels-last copy."""
    covered: dict[int, int] = {}
    for image, (_, _, h, w) in zip(images, pixels):
        covered[id(image)] = covered.get(id(image), 0) + h * w
    copies: dict[int, torch.Tensor] = {}
    for image in images:
        if id(image) not in copies:
            many = covered[id(image)] > image.shape[-2] * image.shape[-1]
            copies[id(image)] = image.permute(1, 2, 0).contiguous().permute(2, 0, 1) if many else image
    return [copies[id(image)] for image in images]


def _by_size(pixels: Sequence[tuple[int, int, int, int]]) -> dict[tuple[int, int], list[tuple[int, tuple]]]:
    """Pixel boxes grouped by their ``(height, width)``, each as ``(view, box)``."""
    groups: dict[tuple[int, int], list[tuple[int, tuple]]] = {}
    for b, box in enumerate(pixels):
        groups.setdefault(box[2:], []).append((b, box))
    return groups


def _resized_crop(
    image: torch.Tensor, box: tuple[int, int, int, int], resolution: int, interpolation: InterpolationMode
) -> torch.Tensor:
    top, left, h, w = box
    if image.dtype == torch.uint8 and image.device.type == "cpu" and _UINT8_KERNELS.get(interpolation):
        return _resize_uint8_cpu(image[..., top : top + h, left : left + w], resolution, interpolation)
    if resolution == 1:  # torch's uint8 antialiased kernel fails an internal assert for 1×1 outputs: resample in float
        out = F.resized_crop(image.float(), top, left, h, w, [1, 1], interpolation=interpolation, antialias=True)
        return out.round_().clamp_(0, 255).to(image.dtype)
    return F.resized_crop(image, top, left, h, w, [resolution, resolution], interpolation=interpolation, antialias=True)


_UINT8_KERNELS: dict[InterpolationMode, Any] = {
    InterpolationMode.BILINEAR: _torchvision.upsample_bilinear_aa,
    InterpolationMode.BICUBIC: _torchvision.upsample_bicubic_aa,
}
"""torch's antialiased ``uint8`` CPU kernels, always (``F.resize`` takes a float path for bilinear below AVX2: 1-level
differences in 80 of 88 views under ``ATEN_CPU_CAPABILITY=default``; these give ``F.resize``'s AVX2 bytes on any CPU)."""


def _resize_uint8_cpu(crop: torch.Tensor, resolution: int, interpolation: InterpolationMode) -> torch.Tensor:
    """``F.resize(crop, [r, r], antialias=True)`` for ``uint8`` CPU images, minus v2's dispatch layers.

    The same steps as torchvision's ``resize_image`` (same-size shortcut, the channels-last restride, the kernel);
    skipping the dispatch saves 12 µs of 43 per view (measured, 28×28 crop to 32 px).
    """
    channels, height, width = crop.shape[-3:]
    if (height, width) == (resolution, resolution):
        return crop
    batch = crop.reshape(-1, channels, height, width)
    if resolution == 1:
        return _resize_uint8_cpu_to_one_pixel(batch, interpolation).reshape(crop.shape[:-2] + (1, 1))
    strides = batch.stride()
    if batch.is_contiguous(memory_format=torch.channels_last) and batch.shape[0] == 1 and crop.numel() != strides[0]:
        batch = batch.as_strided((1, channels, height, width), [crop.numel(), *strides[1:]])
    out = _UINT8_KERNELS[interpolation](batch, [resolution, resolution], False, None)
    return out.reshape(crop.shape[:-2] + (resolution, resolution))


def _resize_uint8_cpu_to_one_pixel(batch: torch.Tensor, interpolation: InterpolationMode) -> torch.Tensor:
    """The integer kernel's two passes (width, then height, rounding to ``uint8`` between) to a 1×1 output, one call
    each: asked for 1×1 at once it fails an internal assert. The height pass runs on two equal columns so that its
    output is not 1×1. (The float path used before differed by CPU in 216 of 800 crops before rounding, measured.)"""
    kernel, (height, width) = _UINT8_KERNELS[interpolation], batch.shape[-2:]
    column = kernel(batch, [height, 1], False, None) if width > 1 else batch
    return kernel(column.expand(-1, -1, -1, 2).contiguous(), [1, 2], False, None)[..., :1] if height > 1 else column


PADDING_MODES: tuple[str, ...] = ("constant", "edge", "reflect", "symmetric")
"""torchvision's padding modes (``RandomCrop(padding_mode=...)``)."""


def center_square_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The centred largest square of a ``height × width`` image as a normalized box (units of 1/65535)."""
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return top * Q // height, left * Q // width, side * Q // height, side * Q // width


def center_square(image: torch.Tensor, resolution: int, interpolation: InterpolationMode) -> torch.Tensor:
    """The centred largest square of ``image`` resized to ``resolution × resolution`` (the evaluation view)."""
    return resized_crop(image, center_square_box(*image.shape[-2:]), resolution, interpolation)


def center_view(image: torch.Tensor, resolution: int, interpolation: str | InterpolationMode) -> torch.Tensor:
    """The centred largest square of ``image`` resized to ``resolution`` (antialiased): the one evaluation view,
    used for the teachers' accuracy, the students' evaluation transform and the scripts' test sets alike."""
    return center_square(image, resolution, interpolation_mode(interpolation))


def padding_pixels(padding: float, resolution: int) -> int:
    """Padding of a padded crop in pixels at ``resolution``: ``padding`` (a fraction of the output size) × resolution,
    rounded half up (4 px at 32 px for 0.125; 28 px at 224 px)."""
    return int(math.floor(padding * resolution + 0.5))


def crop_offset(unit: int, pad: int) -> int:
    """A stored window position (units of 1/65535 of the ``2 * pad + 1`` possible offsets) → the offset in pixels,
    uniform over ``0 .. 2 * pad`` like torchvision's ``RandomCrop`` (integer arithmetic)."""
    return min(int(unit) * (2 * pad + 1) // Q, 2 * pad)


def padded_crops(
    images: Sequence[torch.Tensor],
    offsets: Sequence[Sequence[int]],
    resolution: int,
    padding: float,
    padding_mode: str,
    fill: Sequence[int],
    interpolation: InterpolationMode,
) -> torch.Tensor:
    """torchvision's ``RandomCrop(r, padding, padding_mode, fill)`` of each ``images[b]`` resized to its centred
    square at ``r = resolution``, with the window at ``offsets[b]`` ``(top, left)`` (see :func:`crop_offset`):
    ``(B, 3, r, r)``. A row's views share one source tensor, which is resized and padded once."""
    pad = padding_pixels(padding, resolution)
    padded: dict[int, torch.Tensor] = {}
    out = torch.empty((len(images), 3, resolution, resolution), dtype=torch.uint8, device=images[0].device)
    for b, (image, (top, left)) in enumerate(zip(images, offsets)):
        if id(image) not in padded:
            padded[id(image)] = pad_image(center_square(image, resolution, interpolation), pad, padding_mode, fill)
        dy, dx = crop_offset(top, pad), crop_offset(left, pad)
        out[b] = padded[id(image)][:, dy : dy + resolution, dx : dx + resolution]
    return out


def pad_image(image: torch.Tensor, pad: int, padding_mode: str, fill: Sequence[int]) -> torch.Tensor:
    """``image`` padded by ``pad`` pixels on every side (torchvision's ``F.pad``; ``fill`` for ``constant``)."""
    if pad == 0:
        return image
    value = list(fill) if padding_mode == "constant" else 0
    return F.pad(image, [pad, pad, pad, pad], fill=value, padding_mode=padding_mode)


def horizontal_flip(images: torch.Tensor, flips: npt.ArrayLike) -> torch.Tensor:
    """Mirror left-right the views ``b`` of ``images`` (``(B, 3, H, W)``) where ``flips[b]`` is true."""
    index = np.flatnonzero(np.asarray(flips, dtype=bool))
    if len(index) == len(images):
        return F.horizontal_flip(images)
    return _put(images, index, F.horizontal_flip(_view_run(images, index))) if len(index) else images


@lru_cache(maxsize=4096)
def rand_augment_magnitude(op: str, signed_bin: int, num_bins: int, height: int, width: int) -> float:
    """Magnitude of RandAugment op ``op`` at bin ``|signed_bin|``, negated when ``signed_bin < 0`` (torchvision's space).

    torchvision's bins are ``torch.linspace`` tables (Posterize's are integers), whose float32 values depend on the
    CPU (see :func:`.exact.linspace`): the table's ends are torchvision's, its values those of AVX2/AVX-512 x86.
    """
    magnitudes_fn, signed = _torchvision.AUGMENTATION_SPACE[op]
    magnitudes = magnitudes_fn(num_bins, height, width)
    if magnitudes is None:
        return 0.0
    if magnitudes.is_floating_point():
        magnitude = float(linspace(float(magnitudes[0]), float(magnitudes[-1]), num_bins)[abs(signed_bin)])
    else:
        magnitude = float(magnitudes[abs(signed_bin)])
    return -magnitude if signed and signed_bin < 0 else magnitude


def rand_augment(
    images: torch.Tensor,
    op_ids: np.ndarray,
    signed_bins: np.ndarray,
    num_bins: int,
    interpolation: InterpolationMode,
    fill: Sequence[int],
) -> torch.Tensor:
    """Apply to view ``b`` of ``images`` (``(B, 3, H, W)``) the RandAugment ops ``op_ids[b]`` (indices into
    :data:`RAND_AUGMENT_OPS`) with signed magnitude bins ``signed_bins[b]``, in order.

    The op implementations are torchvision's own RandAugment operations, driven with recorded choices. At each
    step, the views that drew the same op and bin go through one call on their stacked batch: torchvision's ops
    treat a batch image by image (the tests check every op against one-view calls, bit for bit).
    """
    op_ids, signed_bins = np.asarray(op_ids).reshape(len(images), -1), np.asarray(signed_bins).reshape(len(images), -1)
    height, width = images.shape[-2:]
    for step in range(op_ids.shape[1]):
        for (op_id, signed_bin), index in _same_draws(op_ids[:, step].tolist(), signed_bins[:, step].tolist()).items():
            op = RAND_AUGMENT_OPS[op_id]
            if op != "Identity":
                magnitude = rand_augment_magnitude(op, signed_bin, num_bins, height, width)
                images = _rand_augment_views(images, index, op, magnitude, interpolation, tuple(fill))
    return images


def _same_draws(op_ids: list[int], signed_bins: list[int]) -> dict[tuple[int, int], list[int]]:
    """Views grouped by their drawn (op, signed bin) (a dict: ``np.unique(axis=0)`` costs 0.1 ms per call)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for b, draw in enumerate(zip(op_ids, signed_bins)):
        groups.setdefault(draw, []).append(b)
    return groups


_CHUNK_VALUES = 2**19
"""At most this many values (3 views at 224 px) per photometric op call; geometric ops, which sample in float32,
take a quarter. Per view at 224 px, colour on 4 views at once costs 0.33 ms, alone 0.67 ms; a cached-grid
rotation alone 0.56 ms, on 4 views at once 1.46 ms (cache misses). At 32 px batching helps to any size."""


def _rand_augment_views(
    images: torch.Tensor,
    index: list[int],
    op: str,
    magnitude: float,
    interpolation: InterpolationMode,
    fill: tuple[int, ...],
) -> torch.Tensor:
    """Apply one op to the views ``index`` (ascending) of ``images``, in cache-sized chunks, written back in place.
    Most groups are one view (a batch's draws rarely repeat): it goes through as a slice, with no index arrays."""
    limit = _CHUNK_VALUES // 4 if op in geometry.GRID_OPS else _CHUNK_VALUES
    values = len(index) * images[0].numel()
    if len(index) == len(images) and values <= limit:
        return _rand_augment_op(images, op, magnitude, interpolation, fill)
    if len(index) == 1:
        b = index[0]
        view = images[b : b + 1]
        out = _rand_augment_op(view, op, magnitude, interpolation, fill)
        if out.data_ptr() != view.data_ptr():
            images[b].copy_(out[0])
        return images
    chunks = [np.asarray(index)] if values <= limit else _chunks(np.asarray(index), images[0].numel(), limit)
    for chunk in chunks:
        _put(images, chunk, _rand_augment_op(_view_run(images, chunk), op, magnitude, interpolation, fill))
    return images


def _chunks(index: np.ndarray, values_per_view: int, limit: int) -> list[np.ndarray]:
    """``index`` split into about equal runs of at most ``limit`` values (at least one view each)."""
    return np.array_split(index, min(len(index), -(-len(index) * values_per_view // limit))) if len(index) else []


def _take(images: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """A copy of the views ``index`` of ``images`` (``index_select``: 4× faster than advanced indexing, measured at
    224 px)."""
    return images.index_select(0, torch.as_tensor(index, device=images.device))


def _view_run(images: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """The views ``index`` (ascending, distinct) of ``images`` for an op whose result is put back: a slice of
    ``images`` when they are consecutive (no copy; at 224 px most op chunks are one view), else :func:`_take`."""
    first, last = int(index[0]), int(index[-1])
    return images[first : last + 1] if last - first + 1 == len(index) else _take(images, index)


def _put(images: torch.Tensor, index: np.ndarray, views: torch.Tensor) -> torch.Tensor:
    """Write ``views`` into ``images`` at ``index`` (one copy per view: 3.5× faster than ``images[index] = views``);
    a view that already is ``images[b]`` (an op that returned its input slice) is left as it is."""
    for b, view in zip(index.tolist(), views):
        target = images[b]
        if view.data_ptr() != target.data_ptr():
            target.copy_(view)
    return images


def _rand_augment_op(
    images: torch.Tensor, op: str, magnitude: float, interpolation: InterpolationMode, fill: tuple[int, ...]
) -> torch.Tensor:
    """torchvision's RandAugment ``op`` on a batch. On ``uint8`` CPU images, the ops whose torchvision arithmetic
    depends on the CPU run through :mod:`.fast` and :mod:`.geometry` (the bytes torchvision gives on AVX2/AVX-512
    x86, on every CPU); the others (Brightness, Posterize, AutoContrast, rotations by multiples of 90°) are
    torchvision's, whose operations are each correctly rounded, integer or copies."""
    if images.dtype == torch.uint8 and images.device.type == "cpu":
        if op in fast.FAST_OPS:
            return fast.FAST_OPS[op](images, magnitude, fill)
        if op in geometry.GRID_OPS:
            sampled = geometry.sample(images, op, magnitude, interpolation, fill)
            if sampled is not None:
                return sampled
    return _torchvision.rand_augment_op(images, op, magnitude, interpolation, fill)


@lru_cache(maxsize=16)
def _fill_tensor(fill: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``fill`` as a CPU ``(1, C, 1, 1)`` tensor (built once: ``torch.tensor`` costs 2–3 µs per call at 32 px)."""
    return torch.tensor([float(v) for v in fill], dtype=dtype).view(1, -1, 1, 1)


def erase(images: torch.Tensor, boxes: np.ndarray, fill: Sequence[int]) -> torch.Tensor:
    """Fill the normalized ``boxes[b]`` of view ``b`` of ``images`` (``(B, 3, H, W)``, in place) with the colour
    ``fill``; an all-zero box erases nothing."""
    value = _fill_tensor(tuple(fill), images.dtype).view(-1, 1, 1).to(images.device)
    height, width = images.shape[-2:]
    for b, box in enumerate(np.asarray(boxes).reshape(len(images), 4).tolist()):
        if box[2] and box[3]:
            top, left, h, w = box_to_pixels(box, height, width)
            images[b, :, top : top + h, left : left + w] = value
    return images


def mix(own: torch.Tensor, partner: torch.Tensor, lam: int, box: Sequence[int]) -> torch.Tensor:
    """MixUp/CutMix of two equally sized ``uint8`` views.

    ``lam`` (units of 1/65535) weights ``own`` in a per-pixel blend (MixUp; 65535 keeps ``own``), then the
    normalized ``box`` is pasted from ``partner`` (CutMix; an all-zero box pastes nothing).
    """
    out = own
    if int(lam) != Q:
        weight = int(lam) / Q
        blended = own.to(torch.float32) * weight + partner.to(torch.float32) * (1.0 - weight)
        out = blended.round_().clamp_(0, 255).to(torch.uint8)
    if int(box[2]) > 0 and int(box[3]) > 0:
        top, left, h, w = box_to_pixels(box, own.shape[-2], own.shape[-1])
        out = out.clone() if out is own else out
        out[..., top : top + h, left : left + w] = partner[..., top : top + h, left : left + w]
    return out


def mix_views(
    views: torch.Tensor, index: npt.ArrayLike, source: npt.ArrayLike, lams: npt.ArrayLike, boxes: npt.ArrayLike
) -> torch.Tensor:
    """:func:`mix`, in place, of view ``index[i]`` of ``views`` with view ``source[i]``, both as they were before
    any mixing, by ``lams[i]`` and ``boxes[i]``.

    One view at a time: a batched blend with a ``(B, 1, 1, 1)`` weight tensor saved 0.02 ms per mixed view at
    32 px and nothing at 224 px (measured), not worth a second code path next to replay's.
    """
    targets = np.asarray(index, dtype=np.int64).reshape(-1)
    own, partner = _take(views, targets), _take(views, np.asarray(source, dtype=np.int64).reshape(-1))
    for i, (lam, box) in enumerate(
        zip(np.asarray(lams).reshape(-1).tolist(), np.asarray(boxes).reshape(-1, 4).tolist())
    ):
        own[i] = mix(own[i], partner[i], lam, box)
    return _put(views, targets, own)


def normalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], out: torch.Tensor | None = None
) -> torch.Tensor:
    """``uint8 (..., 3, H, W)`` → float32 ``(x / 255 - mean) / std``: the one place pixels leave ``uint8`` (teachers
    and students). Computed in place as ``x * (1 / (255 std)) + (-mean / std)`` after the conversion, equal to
    within float rounding (7e-7). A multiply and an add, each with one broadcast ``(3, 1, 1)`` operand, run in
    torch's vectorized loop and round the same way in any layout or batch (no fused multiply-add).

    ``out`` (float32, the images' shape and device) is written and returned instead of a new tensor: a reused
    buffer skips the fresh pages a large new tensor costs, and it is filled a few images at a time so the later
    passes read from cache; the values are the same. Measured on 64-view batches at 224 px, CPU-ms per view: 0.12
    into a buffer (0.22 with one ``addcmul`` whose two broadcast operands kept it off the vectorized loop), 0.45
    into a new tensor, 1.06 with torchvision's four passes."""
    if images.dtype != torch.uint8:  # a float input would be scaled in place, and by the wrong factor
        raise TypeError(f"normalize expects uint8 images (..., 3, H, W), got {images.dtype}")
    scale, shift = _affine(tuple(map(float, mean)), tuple(map(float, std)), images.device)
    if out is None:
        return images.to(torch.float32).mul_(scale).add_(shift)
    step = max(1, _NORMALIZE_VALUES // max(1, images[0].numel())) if images.ndim == 4 else len(images)
    for part, target in zip(images.split(step), out.split(step)):
        target.copy_(part).mul_(scale).add_(shift)
    return out


@lru_cache(maxsize=32)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / (255 std)`` and ``-mean / std`` as float32 ``(3, 1, 1)`` tensors on ``device`` (made once: 8 µs a call)."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=device).view(3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32, device=device).view(3, 1, 1)
    return scale, shift


_NORMALIZE_VALUES = 2**18
"""Values per slice of :func:`normalize` into a buffer: 1 MB of float32, two 224-px views."""


def interpolation_mode(
    name: str | int | InterpolationMode, field: str = "interpolation", allowed: Sequence[str] = RESIZE_INTERPOLATIONS
) -> InterpolationMode:
    """The one interpolation rule: a name, ``InterpolationMode`` or PIL resample code, if ``allowed`` (by default
    the modes that resize ``uint8`` tensors with antialias); ``field`` names the setting in the error."""
    value = getattr(name, "value", name)
    value = _PIL_RESAMPLE.get(value, value) if isinstance(value, int) else str(value).lower()
    if value not in allowed:
        raise ValueError(
            f"{field}: unsupported interpolation {name!r}; expected one of {', '.join(allowed)} "
            "(the modes torchvision resamples uint8 image tensors with)"
        )
    return InterpolationMode(value)


__all__ = [
    "FILL",
    "RENDER_KERNELS",
    "GRID_INTERPOLATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Q",
    "RAND_AUGMENT_OPS",
    "RAND_AUGMENT_SIGNED",
    "RESIZE_INTERPOLATIONS",
    "PADDING_MODES",
    "box_to_pixels",
    "center_square",
    "center_square_box",
    "center_view",
    "crop_offset",
    "erase",
    "horizontal_flip",
    "interpolation_mode",
    "mix",
    "mix_views",
    "normalize",
    "pad_image",
    "padded_crops",
    "padding_pixels",
    "rand_augment",
    "rand_augment_magnitude",
    "resized_crop",
    "resized_crops",
]
