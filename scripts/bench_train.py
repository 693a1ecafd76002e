"""Student training step time, three ways side by side in one run, on the same student, batch and resolution:

  (a) plain: standard augmentation on the fly (RandomResizedCrop, flip, RandAugment, RandomErasing), cross-entropy;
  (b) reinforced: a stored augmentation replayed by ReinforcedTransform, distillation from the stored top-k;
  (c) online KD: (a)'s augmentation and the teacher ensemble run on every step, distillation from its softmax.

The data are real MNIST digits upscaled to ``--resolution`` (stored as PNG at that size, so decoding and cropping
cost what they cost for photos of that size), reinforced at the start with a small N (the pass is timed apart).
Every mode uses the same DataLoader settings; the training process gets the cores the workers leave. Modes run
interleaved ``--repeats`` times and the fastest repeat counts (the least disturbed by other load on the machine).
Goal: step time (b) / (a) <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import datasets
import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce import testing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--student", default="resnet10t")
    p.add_argument(
        "--teachers",
        nargs="+",
        default=["resnet18", "resnet34"],
        help="timm architectures of the ensemble, larger than the student as in KD practice "
        "(random init: only their speed matters here)",
    )
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rows", type=int, help="rows reinforced (default and minimum: one epoch of warm-up + timed steps)")
    p.add_argument("--num-augmentations", type=int, default=4)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--policy", default="rrc+ra+re")
    p.add_argument("--steps", type=int, default=15, help="timed steps per mode and repeat")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (workers starting, allocator)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    p.add_argument(
        "--threads", type=int, help="torch threads of the training process (default: the cores workers leave)"
    )
    common.add_markdown_argument(p)
    args = p.parse_args(argv)
    needed = args.batch_size * (args.warmup + args.steps)
    args.rows = args.rows or needed
    if args.rows < needed:
        p.error(f"--rows must be at least batch size x (warmup + steps) = {needed}: the timed steps stay in one epoch")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with common.markdown_output(args.markdown):
        run(args)


def run(args: argparse.Namespace) -> None:
    threads = common.set_threads(args.num_workers, args.threads)
    datasets.disable_progress_bars()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train = testing.mnist_dataset(args.rows, size=args.resolution)
    teachers = common.load_teachers([f"timm:{arch}" for arch in args.teachers], 10, args.resolution)
    ensemble = hfr.Ensemble(teachers)
    config = hfr.ReinforceConfig(
        teachers=teachers,
        policy=args.policy,
        num_augmentations=args.num_augmentations,
        top_k=args.top_k,
        resolution=args.resolution,
    )

    def make_student() -> torch.nn.Module:
        torch.manual_seed(0)
        return timm.create_model(args.student, num_classes=10).to(device)

    cfg = timm.data.resolve_model_data_config(make_student())
    total_steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "plus"
        start = time.perf_counter()
        hfr.reinforce(train, config, folder, progress=False)
        pass_s = time.perf_counter() - start
        modes = common.three_modes(
            train,
            folder,
            ensemble,
            policy=args.policy,
            resolution=args.resolution,
            mean=cfg["mean"],
            std=cfg["std"],
            interpolation=cfg["interpolation"],
            batch_size=args.batch_size,
            num_workers=args.num_workers,
        )
        runs: dict[str, list[common.Run]] = {mode.name: [] for mode in modes}
        for repeat in range(args.repeats):
            for mode in modes:
                run = common.train(
                    make_student(), mode.data, mode.loss, epochs=1, on_epoch=mode.on_epoch, max_steps=total_steps
                )
                runs[mode.name].append(run)
                print(
                    f"repeat {repeat + 1}, {mode.name}: {1000 * run.step_time(args.warmup):.1f} ms/step, "
                    f"{1000 * run.data_wait(args.warmup):.1f} ms waiting for data",
                    flush=True,
                )

        cached = [next(iter(modes[0].data))] * total_steps  # the model's forward/backward alone: the floor
        floor = common.train(make_student(), cached, common.plain_loss, epochs=1, max_steps=total_steps).step_time(
            args.warmup
        )

    best = {name: min(values, key=lambda r: r.step_time(args.warmup)) for name, values in runs.items()}
    step = {name: run.step_time(args.warmup) for name, run in best.items()}
    median = {name: statistics.median(r.step_time(args.warmup) for r in values) for name, values in runs.items()}
    a = modes[0].name
    rows = [
        [
            mode.name,
            mode.how,
            f"{1000 * step[mode.name]:.1f}",
            f"{1000 * median[mode.name]:.1f}",
            f"{1000 * best[mode.name].data_wait(args.warmup):.1f}",
            f"{args.batch_size / step[mode.name]:.0f}",
            f"{step[mode.name] / step[a]:.2f}",
        ]
        for mode in modes
    ]
    print()
    print(
        common.markdown_table(
            [
                "mode",
                "data + loss",
                "step time (ms, best)",
                "median (ms)",
                "of which waiting for data (ms)",
                "images/s",
                "vs (a)",
            ],
            rows,
        )
    )
    print(f"model step alone (one cached batch, CE): {1000 * floor:.1f} ms")
    for mode, goal in ((modes[1], " (goal <= 1.05)"), (modes[2], "")):
        print(
            f"step_time({mode.name[1]})/step_time(a) = {step[mode.name] / step[a]:.3f}{goal}; "
            f"of the medians: {median[mode.name] / median[a]:.3f}"
        )
    print(
        f"\nstudent {args.student}, batch {args.batch_size}, resolution {args.resolution}, {args.steps} timed steps after "
        f"{args.warmup} warm-up, best of {args.repeats}; teachers {', '.join(args.teachers)}; "
        f"N={args.num_augmentations}, top-{args.top_k}, policy {args.policy}; reinforcement pass over {args.rows} rows "
        f"{pass_s:.1f} s (not in the step times)"
    )
    print(f"DataLoader workers {args.num_workers}, training-process threads {threads}; {common.machine_info()}")


if __name__ == "__main__":
    main()
