"""Images users actually have: modes, bit depths, EXIF rotation, arrays, encoded bytes, corrupt files."""

from __future__ import annotations

import gc
import io

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch

from hf_reinforce.augment import to_rgb_uint8
from hf_reinforce.testing import photo_arrays


def _encode(image: PIL.Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> PIL.Image.Image:
    return PIL.Image.fromarray(photo_arrays()[0][:120, :160])


def test_rgb_photo_is_unchanged(photo):
    out = to_rgb_uint8(photo)
    assert out.dtype == torch.uint8 and out.shape == (3, 120, 160)
    assert torch.equal(out, torch.from_numpy(np.asarray(photo)).permute(2, 0, 1))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "I;16", "F"])
def test_channels_last_decoding_gives_the_same_writable_pixels(photo, mode):
    """The render workers' decoding (``channels_last=True``, no transposing copy) equals the default's values."""
    image = photo.convert(mode) if mode not in ("I;16", "F") else PIL.Image.fromarray(np.asarray(photo.convert("L")))
    image = image.convert(mode) if mode == "F" else image
    value = {"bytes": _encode(image, "TIFF"), "path": None}
    plain, last = to_rgb_uint8(value), to_rgb_uint8(value, channels_last=True)
    assert plain.is_contiguous() and last.shape == plain.shape and torch.equal(last, plain)
    if mode in ("RGB", "L", "P", "RGBA"):  # 8-bit pictures: the decoder's (H, W, channel) memory, not transposed
        assert last.stride(0) == 1
    last[0, 0, 0] = 7  # writable: its own memory, not Pillow's read-only buffer
    assert torch.equal(to_rgb_uint8(value, channels_last=True), plain)


def test_a_callers_picture_is_copied_and_a_decoded_view_outlives_its_picture(photo):
    picture = photo.copy()
    for channels_last in (False, True):
        out = to_rgb_uint8(picture, channels_last=channels_last)
        out[:, :10] = 0
        assert np.array_equal(np.asarray(picture), np.asarray(photo))  # the caller's picture is never written
    view = to_rgb_uint8({"bytes": _encode(photo, "PNG"), "path": None}, channels_last=True)
    gc.collect()
    others = [to_rgb_uint8({"bytes": _encode(photo.rotate(k), "PNG"), "path": None}) for k in (90, 180)]
    assert others and torch.equal(view, torch.from_numpy(np.asarray(photo)).permute(2, 0, 1))


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr"])
def test_modes_convert_like_pillow(photo, mode):
    image = photo.convert(mode)
    out = to_rgb_uint8(_encode(image, "TIFF" if mode == "CMYK" else "PNG") if mode != "YCbCr" else image)
    expected = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(out, expected)


def test_transparency_is_composited_over_white(photo):
    rgba = photo.convert("RGBA")
    alpha = np.zeros((120, 160), np.uint8)
    alpha[:, 80:] = 255
    rgba.putalpha(PIL.Image.fromarray(alpha))
    out = to_rgb_uint8({"bytes": _encode(rgba), "path": None})
    assert (out[:, :, :80] == 255).all()
    assert torch.equal(out[:, :, 80:], torch.from_numpy(np.asarray(photo)).permute(2, 0, 1)[:, :, 80:])
    la = photo.convert("LA")
    assert to_rgb_uint8(la).shape == (3, 120, 160)
    palette = photo.convert("P")
    palette.info["transparency"] = 0
    assert to_rgb_uint8(palette).shape == (3, 120, 160)


def test_sixteen_bit_and_float_images_scale_to_eight_bits():
    values = np.array([[0, 257, 65535], [128, 32896, 1000]], dtype=np.uint16)
    image = PIL.Image.fromarray(values)
    assert image.mode.startswith("I;16")
    out = to_rgb_uint8(_encode(image))
    assert out[0].tolist() == [[0, 1, 255], [0, 128, 4]]
    assert torch.equal(out[0], out[2])
    as_int32 = PIL.Image.fromarray(values.astype(np.int32))
    assert torch.equal(to_rgb_uint8(as_int32), out)
    floats = PIL.Image.fromarray(np.array([[0.0, 0.5, 2.0]], dtype=np.float32))
    assert to_rgb_uint8(floats)[0].tolist() == [[0, 128, 255]]


def test_exif_orientation_is_applied(photo):
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = _encode(photo, "JPEG", exif=exif.tobytes(), quality=95)
    out = to_rgb_uint8({"bytes": data, "path": None})
    assert out.shape == (3, 160, 120)
    turned = PIL.ImageOps.exif_transpose(PIL.Image.open(io.BytesIO(data)))
    assert torch.equal(out, torch.from_numpy(np.asarray(turned)).permute(2, 0, 1))
    assert torch.equal(to_rgb_uint8({"bytes": data, "path": None}, channels_last=True), out)


def test_arrays_and_tensors(photo):
    hwc = np.asarray(photo)
    expected = to_rgb_uint8(photo)
    assert torch.equal(to_rgb_uint8(hwc), expected)
    assert torch.equal(to_rgb_uint8(torch.from_numpy(hwc.copy()).permute(2, 0, 1)), expected)
    gray = np.asarray(photo.convert("L"))
    assert to_rgb_uint8(gray).shape == (3, 120, 160)
    assert torch.equal(to_rgb_uint8(hwc.astype(np.float32) / 255.0), expected)
    with pytest.raises(ValueError, match="shape"):
        to_rgb_uint8(np.zeros((2, 3, 5, 5), np.uint8))


def test_path_and_odd_sizes(tmp_path, photo):
    path = tmp_path / "x.png"
    photo.crop((0, 0, 1, 1)).save(path)
    assert to_rgb_uint8({"bytes": None, "path": str(path)}).shape == (3, 1, 1)
    assert to_rgb_uint8(str(path)).shape == (3, 1, 1)


def test_corrupt_and_truncated_bytes_raise(photo):
    with pytest.raises(PIL.UnidentifiedImageError):
        to_rgb_uint8(b"definitely not an image")
    truncated = _encode(photo, "JPEG")[:300]
    with pytest.raises(OSError):
        to_rgb_uint8({"bytes": truncated, "path": None})
    with pytest.raises(ValueError, match="neither"):
        to_rgb_uint8({"bytes": None, "path": None})
    with pytest.raises(TypeError):
        to_rgb_uint8(12)
