"""Milliseconds per row of ``ReinforcedTransform`` in the main process (``Trainer``'s default
``dataloader_num_workers=0``): torch's default thread pool vs one thread for the pixel work (what the transform
does, ``hf_reinforce.augment.single_thread``), side by side, interleaved repeats. docs/benchmarks/training.md.

Run: python scripts/bench_transform.py [--rows 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.distill import transform as transform_module


def ms_per_row(transform: hfr.ReinforcedTransform, batch: dict, rows: int) -> float:
    start = time.perf_counter()
    transform(batch)
    return 1e3 * (time.perf_counter() - start) / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    common.add_markdown_argument(parser)
    args = parser.parse_args()
    with common.markdown_output(args.markdown):
        run(args)


def run(args: argparse.Namespace) -> None:
    cases = [
        ("MNIST 28 px → 32 px", testing.mnist_dataset(args.rows), 32, 10),
        ("photo 427×640 → 224 px", testing.photos_dataset(max(2, args.rows // 4)), 224, 2),
    ]
    print(
        f"torch {torch.__version__}, default threads {torch.get_num_threads()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f}; rrc+ra+re, N=4, best of {args.repeats} interleaved repeats\n"
    )
    print("| rows | default threads (ms/row) | one thread (ms/row) | default / one |\n|---|---:|---:|---:|")
    for name, ds, resolution, classes in cases:
        config = testing.tiny_config(
            teachers=testing.tiny_teachers(classes), num_augmentations=4, top_k=2, num_workers=0
        )
        plus = hfr.reinforce(ds, config, progress=False)
        transform = hfr.ReinforcedTransform.from_dataset(plus, resolution=resolution)
        batch = plus.with_format(None)[:]
        transform(batch)  # warm-up
        default, single = [], []
        for _ in range(args.repeats):
            with mock.patch.object(transform_module, "single_thread", contextlib.nullcontext):
                default.append(ms_per_row(transform, batch, len(plus)))
            single.append(ms_per_row(transform, batch, len(plus)))
        print(f"| {name} | {min(default):.2f} | {min(single):.2f} | {min(default) / min(single):.1f}× |")


if __name__ == "__main__":
    main()
