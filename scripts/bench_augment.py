"""Augmentations per second per preset: batched (one decode, ``render_many``) vs one-by-one vs torchvision v2.

    python scripts/bench_augment.py [--augmentations 32] [--resolution 224] [--repeats 3] [--device cpu|cuda]
                                   [--threads T]

Images are the two real scikit-learn photos (427×640), JPEG-encoded like a dataset column. Per preset and image:

* batched: decode once, sample N augmentations, ``render_many`` them on ``--device`` (what the pass does);
* one-by-one: for each augmentation a fresh decode + ``render`` (what a naive per-sample pipeline does);
* torchvision: ``v2.Compose([RandomResizedCrop, RandomHorizontalFlip, RandAugment, RandomErasing])`` (the ops the
  preset has) on the same decoded uint8 tensor, as a reference for the pixel work alone.

Mixing presets mix the two photos (one mixing block), batched: mix the rendered stacks; one-by-one: decode and
render both rows per augmentation. Methods alternate within each repeat; the table shows the median repeat.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import platform
import statistics
import time
from collections.abc import Callable

import PIL.Image
import torch
import torchvision
from torchvision.transforms import v2

from hf_reinforce.augment import PRESETS, AugmentationPolicy, to_rgb_uint8


def photos_as_jpeg() -> list[bytes]:
    """The two scikit-learn sample photos, JPEG-encoded (quality 90) as a dataset would store them."""
    from hf_reinforce import testing

    return [testing.encode_image(PIL.Image.fromarray(a), "JPEG", quality=90)["bytes"] for a in testing.photo_arrays()]


def machine(device: torch.device) -> str:
    """CPU model, cores, torch threads, library versions, load average and the accelerator if any."""
    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    text = (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"torchvision {torchvision.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batched(policy: AugmentationPolicy, encoded: list[bytes], n: int, resolution: int, device: torch.device) -> None:
    """Each image decoded once; its n augmentations rendered from the one decoded tensor."""
    images = [to_rgb_uint8(data).to(device) for data in encoded]
    params = [
        policy.sample(0, row, n, img.shape[1], img.shape[2], num_rows=len(images)) for row, img in enumerate(images)
    ]
    rendered = [policy.render_many(img, p, range(n), resolution) for img, p in zip(images, params)]
    if policy.mixing is not None:
        for row, p in enumerate(params):
            for j in range(n):
                partner = int(p["aug_mix_partner"][j])
                if partner >= 0:
                    policy.mix_rendered(rendered[row][j], rendered[partner][j], p, j)


def one_by_one(policy: AugmentationPolicy, encoded: list[bytes], n: int, resolution: int, device: torch.device) -> None:
    """A fresh decode (and, for mixing, a decode of the partner) and one ``render`` per augmentation."""
    shapes = [PIL.Image.open(io.BytesIO(data)).size[::-1] for data in encoded]
    params = [policy.sample(0, row, n, h, w, num_rows=len(encoded)) for row, (h, w) in enumerate(shapes)]
    for row, p in enumerate(params):
        for j in range(n):
            own = policy.render(to_rgb_uint8(encoded[row]).to(device), p, j, resolution)
            partner = int(p["aug_mix_partner"][j]) if policy.mixing is not None else -1
            if partner >= 0:
                other = policy.render(to_rgb_uint8(encoded[partner]).to(device), params[partner], j, resolution)
                policy.mix_rendered(own, other, p, j)


def torchvision_reference(preset: str, resolution: int) -> v2.Compose | None:
    """torchvision's own pipeline with the preset's ops (None for mixing presets: v2 mixes labelled batches)."""
    tokens = preset.split("+")
    if "mix" in tokens:
        return None
    ops: list[torch.nn.Module] = [v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip()]
    if "ra" in tokens:
        ops.append(v2.RandAugment())
    if "re" in tokens:
        ops.append(v2.RandomErasing())
    return v2.Compose(ops)


def reference(pipeline: v2.Compose, encoded: list[bytes], n: int, device: torch.device) -> None:
    images = [to_rgb_uint8(data).to(device) for data in encoded]
    for img in images:
        for _ in range(n):
            pipeline(img)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--augmentations", type=int, default=32, help="augmentations per image (default: 32)")
    parser.add_argument("--resolution", type=int, default=224, help="output side in pixels (default: 224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default: 3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help=f"presets (default: {' '.join(PRESETS)})")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, n, res = torch.device(args.device), args.augmentations, args.resolution
    encoded = photos_as_jpeg()
    total = n * len(encoded)

    print(f"machine: {machine(device)}; device {device}")
    print(
        f"{len(encoded)} sklearn photos 427×640 (JPEG q90) × {n} augmentations at {res}×{res}, median of {args.repeats} repeats\n"
    )
    print(
        "| preset | batched (aug/s) | one-by-one (aug/s) | batched / one-by-one | torchvision v2 (aug/s) | batched / torchvision |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        policy = AugmentationPolicy.parse(preset)
        pipeline = torchvision_reference(preset, res)
        methods: dict[str, Callable[[], None]] = {
            "batched": functools.partial(batched, policy, encoded, n, res, device),
            "one-by-one": functools.partial(one_by_one, policy, encoded, n, res, device),
        }
        if pipeline is not None:
            methods["torchvision"] = functools.partial(reference, pipeline, encoded, n, device)
        for fn in methods.values():  # warm-up (first calls, caches, CUDA kernels)
            fn()
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, fn in methods.items():
                times[name].append(timed(fn, device))
        rate = {name: total / statistics.median(values) for name, values in times.items()}
        tv = rate.get("torchvision")
        print(
            f"| {preset} | {rate['batched']:,.0f} | {rate['one-by-one']:,.0f} | {rate['batched'] / rate['one-by-one']:.2f}× | "
            + (f"{tv:,.0f} | {rate['batched'] / tv:.2f}× |" if tv else "— | — |")
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
