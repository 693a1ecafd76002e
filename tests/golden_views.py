"""The golden view set: a fixed set of rendered views whose bytes are pinned in ``tests/golden/render_views.json``.

Every preset at 32, 160 and 224 px, bilinear and bicubic, on real photos (scikit-learn's two JPEGs, decoded by
Pillow), real digits (MNIST 28×28 and scikit-learn's 8×8) and odd sizes and modes; every RandAugment op at every
magnitude bin and sign, bilinear and nearest; resizes to odd resolutions and from degenerate crops. Each entry is a
short hash of a group of views, named by what rendered it, so a difference says which op, preset or stage changed.
The decoded and converted sources and the sampled parameters have entries of their own (decoding is Pillow's, and
sampling is numpy's: neither goes through torch's kernels).

    python tests/golden_views.py            # this machine's hashes as JSON (what the tests run per CPU capability)
    python tests/golden_views.py --check    # compare with the committed hashes; exit status 1 on a difference
    python tests/golden_views.py --write    # refresh the committed hashes: a format event (docs/exact-replay.md)
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import PIL
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, also when run as a script

from hf_reinforce import testing  # noqa: E402
from hf_reinforce.augment import (  # noqa: E402
    PRESETS,
    RAND_AUGMENT_OPS,
    AugmentationPolicy,
    Q,
    RandAugment,
    interpolation_mode,
    rendering_environment,
    to_rgb_uint8,
)
from hf_reinforce.augment.functional import RAND_AUGMENT_SIGNED, resized_crop  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "render_views.json"
AUGMENTATIONS = 4
SIZES = ((32, "bilinear"), (32, "bicubic"), (160, "bilinear"), (160, "bicubic"), (224, "bilinear"), (224, "bicubic"))


def digest(value: torch.Tensor | np.ndarray | bytes) -> str:
    """16 hex digits of the SHA-256 of an array's shape, dtype and bytes."""
    if isinstance(value, torch.Tensor):
        value = value.contiguous().numpy()
    if isinstance(value, np.ndarray):
        value = f"{value.shape}{value.dtype}".encode() + np.ascontiguousarray(value).tobytes()
    return hashlib.sha256(value).hexdigest()[:16]


def odd_images() -> list[PIL.Image.Image]:
    """Crops of the temple photo at odd sizes in the modes datasets hold (palette, gray, alpha, 16-bit, CMYK)."""
    photo = PIL.Image.fromarray(testing.photo_arrays()[0])
    rgba = photo.crop((200, 100, 261, 129)).convert("RGBA")
    rgba.putalpha(PIL.Image.linear_gradient("L").resize(rgba.size))
    return [
        photo.crop((0, 0, 131, 97)).convert("P"),
        photo.crop((300, 200, 347, 233)).convert("L"),
        rgba,
        PIL.Image.fromarray(testing.photo_arrays()[1][:40, :40, 0].astype(np.uint16) * 257),
        photo.crop((50, 50, 73, 150)).convert("CMYK"),
    ]


def sources() -> dict[str, list[torch.Tensor]]:
    """The rows rendered, by kind: decoded ``uint8 (3, H, W)`` images."""
    mnist, _ = testing.mnist_arrays()
    digits, _ = testing.digits_arrays()
    return {
        "photo": testing.photo_tensors(),
        "odd": [to_rgb_uint8(image) for image in odd_images()],
        "mnist": [to_rgb_uint8(mnist[i]) for i in (0, 1234, 2500, 4999)],
        "digits8": [to_rgb_uint8(digits[i]) for i in (0, 7, 1796)],
    }


def render() -> dict[str, str]:
    """Every entry of the golden view set: name → hash."""
    rows = sources()
    out = {f"source/{kind}/{i}": digest(image) for kind, images in rows.items() for i, image in enumerate(images)}
    out.update(_presets(rows))
    out.update(_rand_augment_ops(rows["photo"]))
    out.update(_resizes(rows["photo"][1]))
    return out


def _presets(rows: dict[str, list[torch.Tensor]]) -> dict[str, str]:
    """Every preset's views of every row (one mixing block), at each size and interpolation, hashed per kind of row."""
    images = [image for kind in rows.values() for image in kind]
    kinds = [name for name, kind in rows.items() for _ in kind]
    out = {}
    for preset in PRESETS:
        policy = AugmentationPolicy.parse(preset)
        params = [
            policy.sample(0, row, AUGMENTATIONS, *im.shape[1:], num_rows=len(images)) for row, im in enumerate(images)
        ]
        out[f"params/{preset}"] = digest(b"".join(digest(p[name]).encode() for p in params for name in sorted(p)))
        for resolution, interpolation in SIZES:
            views = policy.render_block(images, params, range(AUGMENTATIONS), resolution, interpolation)
            for kind in rows:
                mine = [j for j, k in enumerate(kinds) for _ in range(AUGMENTATIONS) if k == kind]
                out[f"views/{preset}/{resolution}/{interpolation}/{kind}"] = digest(views[mine])
    return out


def _rand_augment_ops(photos: list[torch.Tensor]) -> dict[str, str]:
    """Each RandAugment op at every bin and sign of 31 on views of both photos (square and not), by interpolation;
    19 and 24 px are sizes where ShearX's float32 matrix is a tie at bins ±12 and ±28 (``RENDER_KERNELS``)."""
    out = {}
    for mode, fill in (("bilinear", (124, 116, 104)), ("nearest", (9, 0, 255))):
        for op in RAND_AUGMENT_OPS[1:]:
            policy = AugmentationPolicy((RandAugment(num_ops=1, ops=(op,), interpolation=mode, fill=fill),))
            bins = list(range(31)) + ([-b for b in range(1, 31)] if RAND_AUGMENT_SIGNED[op] else [])
            for height, width in ((224, 224), (32, 32), (37, 53), (19, 19), (24, 24)):
                views = [_resize(photo, height, width) for photo in photos]
                params = {"aug_ra_op": np.full((len(bins), 1), RAND_AUGMENT_OPS.index(op), dtype=np.uint8)}
                params["aug_ra_mag"] = np.array(bins, dtype=np.int8)[:, None]
                rendered = [
                    policy.ops[0].apply(view.expand(len(bins), -1, -1, -1).clone(), params, 0, None) for view in views
                ]
                out[f"ra/{op}/{mode}/{height}x{width}"] = digest(torch.stack(rendered))
    return out


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``image`` resized to ``height × width`` by torch's integer antialiased kernel (``uint8`` in, on any CPU)."""
    return torch.nn.functional.interpolate(image[None], [height, width], mode="bilinear", antialias=True)[0]


def _resizes(photo: torch.Tensor) -> dict[str, str]:
    """Crops to odd resolutions (1, 2, 7, 33, 97 px) in every interpolation, and degenerate crops to 32 px."""
    out = {}
    boxes = [(0, 0, Q, Q), (1000, 20000, 30000, 9000), (65000, 65000, 1, 1), (0, 0, 1, Q), (0, 0, Q, 1)]
    for interpolation in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        mode = interpolation_mode(interpolation)
        for resolution in (1, 2, 7, 33, 97, 32):
            views = torch.stack([resized_crop(photo, box, resolution, mode) for box in boxes])
            out[f"resize/{interpolation}/{resolution}"] = digest(views)
    return out


def environment() -> dict[str, str]:
    """What rendered the hashes: the rendering environment (render kernels included) and the date."""
    return {**rendering_environment(), "date": datetime.date.today().isoformat()}


def differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    """Names whose hashes differ or that only one side has."""
    return sorted(name for name in expected.keys() | got.keys() if expected.get(name) != got.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="compare with the committed hashes")
    action.add_argument("--write", action="store_true", help="refresh the committed hashes (a format event)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hashes = render()
    if args.write:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"environment": environment(), "hashes": hashes}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(hashes)} hashes to {GOLDEN}")
        return 0
    if args.check:
        changed = differences(json.loads(GOLDEN.read_text())["hashes"], hashes)
        print(f"{len(changed)} of {len(hashes)} golden entries differ" + "".join(f"\n  {name}" for name in changed))
        return 1 if changed else 0
    print(json.dumps({"environment": environment(), "hashes": hashes}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
