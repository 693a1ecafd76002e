"""Reinforcement pass vs bare teacher forward, bytes per stored augmentation, and peak memory at 1× vs 4× rows.

    python scripts/bench_reinforce.py [--rows 32] [--augmentations 16] [--teachers timm:resnet18 timm:test_resnet]
                                      [--resolution R] [--device cpu|cuda]

The dataset is real images stored like a real dataset: the two scikit-learn photos (427×640, JPEG) and MNIST digits
upsampled to 224×224 (PNG), in an ``Image`` column of a ``save_to_disk`` folder. For each teacher (a comma-joined
list is one ensemble; random init, 10 classes), one subprocess measures, in this order:

1. the views the pass renders, captured by running ``ReinforceFunction`` with a recording ensemble;
2. the bare forward: ``Ensemble.probs`` over those pre-rendered uint8 batches (identical shapes and batch sizes),
   once before and once after the pass (after a warm-up batch); its rate is the mean of the two;
3. the full folder pass ``reinforce(ds, config, output_dir)``: decoding, sampling, rendering, teachers, top-k,
   Arrow and parquet writing, end to end (teachers are passed in already built).

Pass / bare is the overhead the pass adds to teacher compute (DESIGN goal: ≥ 0.90 with resnet18 at 224 on CPU).
Peak RSS comes from separate subprocesses that run only the folder pass of the last teacher over 1× and 4× rows
(``ru_maxrss`` of each). On CUDA the teachers run in bf16 with channels_last (the Teacher's default there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

BLOCK, STEP, K = 16, 16, 10


# -- the dataset -------------------------------------------------------------------------------------------------


def build_dataset(rows: int, path: Path) -> None:
    """``rows`` real images as encoded bytes: rows ≡ 0, 2 (mod 4) are the two photos (JPEG), odd rows MNIST (PNG)."""
    import datasets
    import PIL.Image

    from hf_reinforce import testing

    photos = [testing.encode_image(PIL.Image.fromarray(a), "JPEG", quality=90) for a in testing.photo_arrays()]
    digits, labels = testing.mnist_arrays()
    images, targets = [], []
    for i in range(rows):
        if i % 2 == 0:
            images.append(photos[(i // 2) % 2])
            targets.append(0)
        else:
            digit = PIL.Image.fromarray(digits[i % len(digits)])
            images.append(testing.encode_image(digit.resize((224, 224), PIL.Image.BICUBIC), "PNG"))
            targets.append(int(labels[i % len(labels)]))
    dataset = datasets.Dataset.from_dict({"image": images, "label": targets}, features=testing.DIGIT_FEATURES)
    dataset.save_to_disk(str(path))


# -- worker (runs in a subprocess) -------------------------------------------------------------------------------


class RecordingEnsemble:
    """Stands in for an Ensemble inside ``ReinforceFunction``: keeps the views it is given, returns uniform probs."""

    def __init__(self, ensemble: Any) -> None:
        self.ensemble = ensemble
        self.batches: list[dict[Any, torch.Tensor]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ensemble, name)

    def probs(self, views: dict[Any, torch.Tensor]) -> torch.Tensor:
        self.batches.append(dict(views))
        size = next(iter(views.values())).shape[0]
        return torch.full(
            (size, self.ensemble.num_classes), 1.0 / self.ensemble.num_classes, device=self.ensemble.device
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _bare(ensemble: Any, batches: list[dict[Any, torch.Tensor]]) -> tuple[float, float]:
    return _timed(lambda: [ensemble.probs(views) for views in batches], ensemble.device)


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh process (see the module docstring); returns JSON-able results."""
    import datasets

    from hf_reinforce.estimate import column_bytes, peak_rss_bytes
    from hf_reinforce.reinforce import (
        ReinforceConfig,
        ReinforceFunction,
        build_ensemble,
        reinforce,
        reinforce_columns,
    )
    from hf_reinforce.teachers import load_teacher

    datasets.disable_progress_bars()
    teachers = [load_teacher(spec, num_classes=10, device=job["device"]) for spec in job["teachers"]]
    if job["resolution"]:
        teachers = [dataclasses.replace(t, resolution=job["resolution"]) for t in teachers]
    config = ReinforceConfig(
        teachers=teachers,
        policy=job["policy"],
        num_augmentations=job["augmentations"],
        top_k=K,
        rows_per_block=BLOCK,
        augmentations_per_step=STEP,
        rows_per_shard=job["rows_per_shard"],
        device=job["device"],
    )
    ds = datasets.load_from_disk(job["data"])
    views = len(ds) * config.num_augmentations
    out: dict[str, Any] = {"views": views, "rows": len(ds), "resolution": [t.resolution for t in teachers]}

    if job["bare"]:
        ensemble = build_ensemble(config, 10, job["device"])
        recorder = RecordingEnsemble(ensemble)
        fn = ReinforceFunction(config, recorder, len(ds))
        encoded = ds.cast_column("image", datasets.Image(decode=False))
        for start in range(0, len(ds), BLOCK):
            fn(encoded[start : start + BLOCK], list(range(start, min(start + BLOCK, len(ds)))))
        batches = recorder.batches
        out["batch_shapes"] = sorted({tuple(v.shape) for b in batches for v in b.values()})
        _bare(ensemble, batches[:1])  # warm-up
        out["bare_seconds"] = [_bare(ensemble, batches)]

    with tempfile.TemporaryDirectory(dir=job["scratch"]) as folder:
        out["pass_seconds"] = _timed(
            lambda: reinforce(ds, config, output_dir=folder, progress=False), teachers[0].device
        )
        shards = sorted(Path(folder, "data").glob("*.parquet"))
        out["bytes_total"] = sum(p.stat().st_size for p in shards)
        out["bytes_reinforcement"] = sum(column_bytes(p, reinforce_columns(config)) for p in shards)
        out["shards"] = len(shards)
    out["peak_rss_bytes"] = peak_rss_bytes()

    if job["bare"]:
        out["bare_seconds"].append(_bare(ensemble, batches))
    return out


def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=job["scratch"]) as result:
        cmd = [sys.executable, __file__, "--worker", json.dumps(job), "--result", result.name]
        subprocess.run(cmd, check=True)
        return json.load(open(result.name))


# -- report ------------------------------------------------------------------------------------------------------


def machine(device: str) -> str:
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    if device.startswith("cuda"):
        text += f", {torch.cuda.get_device_name(torch.device(device))} (bf16, channels_last)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32, help="rows of the timed pass (default: 32)")
    parser.add_argument("--augmentations", type=int, default=16, help="augmentations per row (default: 16)")
    parser.add_argument(
        "--teachers",
        nargs="+",
        default=["timm:resnet18", "timm:test_resnet"],
        help="teacher specs, one benchmark each; comma-join specs for an ensemble",
    )
    parser.add_argument("--resolution", type=int, help="teacher view resolution (default: each teacher's own)")
    parser.add_argument("--policy", default="rrc+ra+re", help="augmentation policy (default: rrc+ra+re)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rss-augmentations", type=int, default=4, help="augmentations per row of the RSS runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.result).write_text(json.dumps(worker(json.loads(args.worker))))
        return

    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="bench-reinforce-") as scratch:
        data1, data4 = Path(scratch, "rows1"), Path(scratch, "rows4")
        build_dataset(args.rows, data1)
        build_dataset(4 * args.rows, data4)
        base = {"device": args.device, "resolution": args.resolution, "policy": args.policy, "scratch": scratch}
        load = [os.getloadavg()[0]]
        speed = []
        for spec in args.teachers:
            job = {
                **base,
                "teachers": spec.split(","),
                "data": str(data1),
                "augmentations": args.augmentations,
                "rows_per_shard": BLOCK * max(1, -(-args.rows // BLOCK)),
                "bare": True,
            }
            speed.append((spec, run_worker(job)))
            load.append(os.getloadavg()[0])
        rss_teacher = args.teachers[-1].split(",")
        rss = [
            run_worker(
                {
                    **base,
                    "teachers": rss_teacher,
                    "data": str(data),
                    "augmentations": args.rss_augmentations,
                    "rows_per_shard": BLOCK,
                    "bare": False,
                }
            )
            for data in (data1, data4)
        ]
        load.append(os.getloadavg()[0])

    print(f"machine: {machine(args.device)}; load average during the run: {min(load):.2f}–{max(load):.2f}")
    print(
        f"dataset: {args.rows} rows (sklearn photos 427×640 JPEG + MNIST upsampled to 224 PNG), "
        f"{args.augmentations} augmentations/row, policy {args.policy}, top-{K}, "
        f"teacher batches of {BLOCK} rows × {STEP} augmentations\n"
    )
    print(
        "| teacher | view px | bare forward (views/s) | full pass (views/s) | pass / bare (wall) | pass / bare (CPU) "
        "| CPU ms/view bare / pass | reinforcement B/aug | all columns B/aug |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec, r in speed:
        bare = [sum(t[i] for t in r["bare_seconds"]) / len(r["bare_seconds"]) for i in (0, 1)]  # mean (wall, CPU)
        full = r["pass_seconds"]
        print(
            f"| {spec} | {'/'.join(map(str, r['resolution']))} | {r['views'] / bare[0]:,.1f} | {r['views'] / full[0]:,.1f} | "
            f"{bare[0] / full[0]:.2f} | {bare[1] / full[1]:.2f} | {1e3 * bare[1] / r['views']:.1f} / {1e3 * full[1] / r['views']:.1f} | "
            f"{r['bytes_reinforcement'] / r['views']:.1f} | {r['bytes_total'] / r['views']:.1f} |"
        )
    print(
        "\nbare forward runs before / after the pass (wall s): "
        + "; ".join(f"{s}: " + " / ".join(f"{t[0]:.1f}" for t in r["bare_seconds"]) for s, r in speed)
    )
    print("CPU time is this process's (all threads): it shows work, unlike wall time, also on a busy machine.")
    print(
        f"\npeak RSS of the folder pass ({args.teachers[-1]}, {args.rss_augmentations} augmentations/row, shards of {BLOCK} rows):\n"
    )
    print("| rows | shards | pass (s) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|")
    for r in rss:
        print(f"| {r['rows']} | {r['shards']} | {r['pass_seconds'][0]:.1f} | {r['peak_rss_bytes'] / 1e6:,.0f} |")
    print(f"\npeak RSS 4× / 1× rows: {rss[1]['peak_rss_bytes'] / rss[0]['peak_rss_bytes']:.2f}")


if __name__ == "__main__":
    main()
