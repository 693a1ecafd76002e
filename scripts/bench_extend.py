"""What growing a reinforced dataset costs against reinforcing it again, measured side by side in one run.

Reinforces real MNIST digits with N1 augmentations, extends that folder to N2 with ``hfr.extend``, and reinforces
the same rows with N2 from scratch; prints the wall time and the CPU time (this process and its render workers) of
each, the ratios extension / from scratch next to the share of views the extension computes ((N2 - first) / N2,
first = N1 rounded down to a multiple of augmentations_per_step), and whether the two N2 folders are
byte-identical. CPU time is the steadier figure on a machine shared with other work. ::

    python scripts/bench_extend.py --rows 2048 --n1 16 --n2 64 [--arch resnet18 --resolution 64] [--workers 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce.engine.render_workers import first_new_index
from hf_reinforce.storage.paths import DATA_DIR
from hf_reinforce.testing import mnist_dataset


def cpu_seconds() -> float:
    """User + system CPU of this process and of its reaped children (the render workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--n1", type=int, default=16)
    parser.add_argument("--n2", type=int, default=64)
    parser.add_argument("--arch", default="resnet18", help="timm architecture of the (random-init) teacher")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--step", type=int, default=16, help="augmentations_per_step")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--policy", default="rrc+ra+re")
    common.add_markdown_argument(parser)
    args = parser.parse_args()
    with common.markdown_output(args.markdown):
        run(args)


def run(args: argparse.Namespace) -> None:

    ds = mnist_dataset(args.rows)
    config = hfr.ReinforceConfig(
        teachers=[f"timm:{args.arch}"],
        policy=args.policy,
        num_augmentations=args.n1,
        top_k=10,
        resolution=args.resolution,
        augmentations_per_step=args.step,
        num_workers=args.workers,
        rows_per_shard=1024,
    )
    root = Path(tempfile.mkdtemp(prefix="hf-reinforce-bench-extend-"))
    datasets.config.HF_DATASETS_CACHE = str(root / "cache")
    try:
        times, cpu = {}, {}
        steps = {
            "reinforce N1": lambda: hfr.reinforce(ds, config, root / "small", progress=False),
            "extend N1 -> N2": lambda: hfr.extend(
                root / "small",
                args.n2,
                root / "grown",
                teachers=config.teachers,
                num_workers=args.workers,
                progress=False,
            ),
            "reinforce N2": lambda: hfr.reinforce(
                ds, dataclasses.replace(config, num_augmentations=args.n2), root / "whole", progress=False
            ),
        }
        for name, step in steps.items():
            start, start_cpu = time.perf_counter(), cpu_seconds()
            step()
            times[name], cpu[name] = time.perf_counter() - start, cpu_seconds() - start_cpu
        same = all(
            (root / "grown" / DATA_DIR / p.name).read_bytes() == p.read_bytes()
            for p in sorted((root / "whole" / DATA_DIR).glob("*.parquet"))
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    first = first_new_index(args.n1, args.step)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}\n")
    print(f"{args.rows} MNIST rows, timm:{args.arch} at {args.resolution} px, {args.policy}, {args.workers} worker(s)")
    print("\n| run | wall s | CPU s |\n|---|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} | {cpu[name]:.1f} |")
    wall, cpu_ratio = (d["extend N1 -> N2"] / d["reinforce N2"] for d in (times, cpu))
    print(
        f"\nextend / reinforce N2: {cpu_ratio:.2f} in CPU time, {wall:.2f} in wall time (views computed: "
        f"{(args.n2 - first) / args.n2:.2f} = ({args.n2} - {first}) / {args.n2})"
    )
    print(f"extended folder byte-identical to the N2 pass: {same}")


if __name__ == "__main__":
    main()
