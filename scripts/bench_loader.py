"""Rows/s per DataLoader worker of a student's data path: timm's standard training pipeline against every documented
reinforced path, on the same source rows, at N = 4, 64, 400 and 1000 stored augmentations (K=10, ``rrc+ra+re``),
at 224 px (ImageNet-like JPEG photos) and 32 px (real MNIST digits), side by side with interleaved repeats, plus
each DataLoader worker's peak RSS. Goal: every reinforced path >= 1.0x the plain pipeline at every N (stretch 1.2x),
worker RSS flat in N. docs/benchmarks/loader.md holds the results.

The reinforced columns are written directly: each row's parameters are ``policy.sample`` at the row's image size,
exactly what a pass stores (a pass's output depends only on seed, row, augmentation and image size), its replay
fingerprint that of its augmentation 0 at the record's resolution, and its top-k those of a simulated ensemble, written
as a pass writes a shard (its parquet options and row groups); a pass over 64 rows x 1000 augmentations would take
minutes on 2 cores and the teachers' values do not change what a loader costs. Every path reads the same
memory-mapped Arrow files (``load_dataset`` of parquet), through a DataLoader with the same settings (batch size,
``--workers`` persistent workers, a seeded shuffle, one torch thread each); each measurement runs one untimed epoch,
then ``--epochs`` timed ones.

With ``--end-to-end`` (implied by ``--device cuda``): a data-bound student trained end to end instead (``--model``,
default ``resnet18``, at 224 px, channels_last, bf16 autocast on a GPU, ``--workers`` workers, default 4, batches of
64): images/s of plain training against reinforced training, interleaved. On the CPU this checks the script, with a
small ``--model`` such as ``test_resnet``; the numbers that matter come from a GPU.

Run: OMP_NUM_THREADS=1 python scripts/bench_loader.py [--sizes 224 32] [--n 4 64 400 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import pyarrow as pa
import timm
import timm.data
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import IMAGENET_MEAN, IMAGENET_STD, normalize, to_rgb_uint8
from hf_reinforce.distill import replay
from hf_reinforce.storage.format import (
    FINGERPRINT,
    FINGERPRINT_AUGMENTATION,
    encode_topk,
    replay_fingerprint,
    to_arrow,
)
from hf_reinforce.storage.shards import write_shard

K, POLICY = 10, "rrc+ra+re"
CLASSES = {224: 1000, 32: 100}


# -- data: source rows and their reinforcement columns ---------------------------------------------------------


def photo_rows(rows: int, seed: int = 0) -> list[PIL.Image.Image]:
    """ImageNet-like pictures, 500x375 or 375x500: crops of the two real photos at varied scales and flips, and every
    fourth a real MNIST digit drawn large in random colours over sensor-like noise."""
    photos = [PIL.Image.fromarray(a) for a in testing.photo_arrays()]
    digits, _ = testing.mnist_arrays()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(rows):
        w, h = (500, 375) if rng.random() < 0.7 else (375, 500)
        if i % 4 == 3:
            shape = PIL.Image.fromarray(digits[rng.integers(len(digits))]).resize((w, h), PIL.Image.BICUBIC)
            alpha = np.asarray(shape, np.float32)[..., None] / 255
            back, fore = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            pixels = back * (1 - alpha) + fore * alpha + rng.normal(0, 12, (h, w, 3))
            out.append(PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
            continue
        photo = photos[i % 2]
        side = rng.uniform(0.55, 1.0)
        cw, ch = int(photo.height * side * w / h), int(photo.height * side)
        x, y = rng.integers(0, photo.width - min(cw, photo.width) + 1), rng.integers(0, photo.height - ch + 1)
        image = photo.crop((x, y, x + cw, y + ch)).resize((w, h), PIL.Image.BICUBIC)
        out.append(image.transpose(PIL.Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image)
    return out


def source(size: int, rows: int) -> tuple[list[dict], list[int]]:
    """Encoded images (JPEG q90 photos at 224 px, 28x28 PNG digits at 32 px) and labels."""
    if size == 32:
        digits = testing.mnist_dataset(rows)
        return [testing.encode_image(im) for im in digits["image"]], list(digits["label"])
    images = [testing.encode_image(im, "JPEG", quality=90) for im in photo_rows(rows)]
    return images, np.random.default_rng(1).integers(0, CLASSES[size], rows).tolist()


def reinforced_parquet(size: int, rows: int, n: int, path: Path) -> hfr.RunRecord:
    """Write ``rows`` source rows with N stored augmentations and top-K to ``path``; the record that describes them."""
    policy = hfr.AugmentationPolicy.parse(POLICY)
    images, labels = source(size, rows)
    classes = CLASSES[size]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.Value("int64"),
            "row_index": datasets.Value("int64"),
            **hfr.reinforce_features(policy, n, K, classes),
        }
    )
    g = torch.Generator().manual_seed(size + n)
    params: dict[str, list] = {name: [] for name in policy.columns}
    ids, probs, fingerprints = [], [], []
    for i, image in enumerate(images):
        pixels = to_rgb_uint8(image)
        row_params = policy.sample(0, i, n, *pixels.shape[1:], num_rows=rows)
        for name, value in row_params.items():
            params[name].append(value)
        view = policy.render_block([pixels], [row_params], [FINGERPRINT_AUGMENTATION], size, "bilinear", rows=[i])[0]
        fingerprints.append(replay_fingerprint(view))
        logits = torch.randn(n, classes, generator=g) * 2
        logits[:, labels[i]] += 6
        top_ids, top_probs = encode_topk(torch.softmax(logits, -1), K, classes)
        ids.append(top_ids)
        probs.append(top_probs)
    columns = {
        "image": pa.array(images, type=features.arrow_schema.field("image").type),
        "label": labels,
        "row_index": list(range(rows)),
        **{name: to_arrow(np.stack(values)) for name, values in params.items()},
        "topk_ids": to_arrow(np.stack(ids)),
        "topk_probs": to_arrow(np.stack(probs)),
        FINGERPRINT: fingerprints,
    }
    table = pa.table(columns).cast(features.arrow_schema)
    write_shard(table, path, num_augmentations=n, rows=range(rows), source_sha256=None)  # as a pass writes shards
    return testing.run_record(
        POLICY,
        num_augmentations=n,
        top_k=K,
        num_classes=classes,
        resolution=size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


# -- paths: each returns (iterable over the epoch's batches, set_epoch) ------------------------------------------------


class WorkerMeter:
    """A collate function that records, per worker in shared memory, the worker's peak RSS (MB) and its CPU seconds
    so far (``time.process_time`` after each batch): CPU per row is what the data path costs, whatever else the
    machine runs (wall-clock rows/s moved ±30 % between rounds on the shared 2-core box)."""

    def __init__(self, collate: Callable, slots: int) -> None:
        self.collate = collate
        self.stats = torch.zeros((max(1, slots), 2), dtype=torch.float64).share_memory_()

    def __call__(self, rows: Any) -> Any:
        out = self.collate(rows)
        info = torch.utils.data.get_worker_info()
        slot = info.id if info is not None else 0
        self.stats[slot, 0] = max(float(self.stats[slot, 0]), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self.stats[slot, 1] = time.process_time()
        return out

    def cpu(self) -> float:
        """CPU seconds of all workers so far."""
        return float(self.stats[:, 1].sum())

    def rss(self) -> float:
        """The largest worker peak RSS, MB."""
        return float(self.stats[:, 0].max())


def timm_transform(size: int) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """timm's standard training transform: a picture → its normalized, augmented tensor."""
    return timm.data.create_transform(size, is_training=True, auto_augment="rand-m9-mstd0.5", re_prob=0.25)


def timm_pipeline(size: int) -> Callable[[dict], dict]:
    """timm's standard training pipeline on the decoded picture (Pillow, as ``datasets``' Image feature gives it)."""
    augment = timm_transform(size)

    def plain(batch: dict) -> dict:
        return {"pixel_values": [augment(im.convert("RGB")) for im in batch["image"]], "labels": batch["label"]}

    return plain


class Case:
    """One (size, N) cell: the memory-mapped dataset, its stream, its record, and the loader settings."""

    def __init__(self, size: int, n: int, folder: Path, rows: int, args: argparse.Namespace) -> None:
        self.size, self.n, self.args = size, n, args
        parquet = folder / f"{size}px-n{n}.parquet"
        self.record = reinforced_parquet(size, rows, n, parquet)
        kwargs = {"data_files": str(parquet), "split": "train", "cache_dir": str(folder / "cache")}
        self.dataset = datasets.load_dataset("parquet", **kwargs)
        self.stream = datasets.load_dataset("parquet", streaming=True, **kwargs)

    def transform(self) -> hfr.ReinforcedTransform:
        return hfr.ReinforcedTransform(self.record)

    def loader(self, data: Any, collate: Callable, shuffle: bool = True) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            data,
            batch_size=self.args.batch_size,
            shuffle=shuffle,
            num_workers=self.args.workers,
            persistent_workers=True,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0) if shuffle else None,
            pin_memory=self.args.device == "cuda",
        )


def loop_path(make: Callable[[Case], tuple[Any, Any, Callable]]) -> Callable[[Case], dict]:
    """A path measured by iterating its DataLoader: ``make`` gives (data, collate, transform or None)."""

    def run(case: Case) -> dict:
        data, collate, transform = make(case)
        meter = WorkerMeter(collate, case.args.workers)
        loader = case.loader(data, meter, shuffle=not isinstance(data, datasets.IterableDataset))
        return timed_epochs(loader, transform, case.args.epochs, meter)

    return run


def timed_epochs(loader: Iterable, transform: Any, epochs: int, meter: WorkerMeter) -> dict:
    """One untimed epoch (workers start, pages load), then ``epochs`` timed ones: rows/s, worker CPU-ms per row and
    peak worker RSS."""
    rows, start, cpu = 0, 0.0, 0.0
    for epoch in range(epochs + 1):
        if transform is not None:
            transform.set_epoch(epoch)
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        if epoch == 1:
            start, cpu = time.perf_counter(), meter.cpu()
        for batch in loader:
            rows += len(batch["labels"]) if epoch else 0
    return measured(rows, time.perf_counter() - start, meter.cpu() - cpu, meter)


def measured(rows: int, seconds: float, cpu_seconds: float, meter: WorkerMeter) -> dict:
    return {"rows_per_s": rows / seconds, "cpu_ms": 1e3 * cpu_seconds / rows, "rss_mb": meter.rss()}


def plain(case: Case) -> tuple[Any, Any, Any]:
    source = case.dataset.select_columns(["image", "label"])  # the source rows, without reinforcement columns
    return source.with_transform(timm_pipeline(case.size)), hfr.DistillationCollator(pack=False), None


def set_transform(case: Case) -> tuple[Any, Any, Any]:
    transform = case.transform()
    return case.dataset.with_transform(transform), hfr.DistillationCollator(pack=False), transform


def apply(case: Case) -> tuple[Any, Any, Any]:
    transform = case.transform()
    return transform.apply(case.dataset), hfr.DistillationCollator(pack=False), transform


def streaming(case: Case) -> tuple[Any, Any, Any]:
    transform = case.transform()
    if hasattr(transform, "apply"):
        return transform.apply(case.stream), hfr.DistillationCollator(pack=False), transform
    columns = case.stream.column_names  # the streaming journey of earlier versions
    stream = case.stream.map(transform, batched=True, batch_size=case.args.batch_size, remove_columns=columns)
    return stream, hfr.DistillationCollator(pack=False), transform


def trainer_path(kind: str) -> Callable[[Case], dict]:
    """A Trainer training a near-free student for ``--epochs + 1`` epochs; rows/s from its epochs after the first.
    ``kind``: ``plain`` (the stock Trainer on the timm pipeline, cross-entropy: the reference of the Trainer paths),
    ``subclass`` (``DistillationTrainer``) or ``stock`` (``Trainer`` + ``DistillationCallback``), both given
    ``dataset.set_transform(transform)`` as Journey 1 does."""
    return functools.partial(train_rows_per_s, kind=kind)


def train_rows_per_s(case: Case, *, kind: str) -> dict:
    args = transformers.TrainingArguments(
        tempfile.mkdtemp(),
        per_device_train_batch_size=case.args.batch_size,
        num_train_epochs=case.args.epochs + 1,
        dataloader_num_workers=case.args.workers,
        dataloader_persistent_workers=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        logging_strategy="no",
        remove_unused_columns=False,
    )
    clock = EpochClock()
    pool = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, CLASSES[case.size])
    )
    student, transform = hfr.TimmStudent(pool), case.transform()
    if kind == "subclass":
        train = case.dataset.with_transform(transform)
        trainer = hfr.DistillationTrainer(student, args, train_dataset=train, transform=transform, callbacks=[clock])
    else:
        loss = hfr.DistillationLoss()
        callbacks = [clock] if kind == "plain" else [hfr.DistillationCallback(transform, loss), clock]
        trainer = transformers.Trainer(
            model=student,
            args=args,
            train_dataset=plain(case)[0] if kind == "plain" else case.dataset.with_transform(transform),
            data_collator=hfr.DistillationCollator(pack=kind != "plain"),
            compute_loss_func=loss,
            callbacks=callbacks,
        )
    trainer.remove_callback(transformers.PrinterCallback)
    clock.meter = trainer.data_collator = WorkerMeter(trainer.data_collator, case.args.workers)
    trainer.train()
    (start, cpu), (end, cpu_end) = clock.ends[0], clock.ends[-1]
    return measured(len(case.dataset) * case.args.epochs, end - start, cpu_end - cpu, clock.meter)


class EpochClock(transformers.TrainerCallback):
    """Records when each training epoch ends, with the workers' CPU seconds then."""

    def __init__(self) -> None:
        self.ends: list[tuple[float, float]] = []
        self.meter: WorkerMeter | None = None

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ends.append((time.perf_counter(), self.meter.cpu() if self.meter is not None else 0.0))


PATHS: dict[str, Callable[[Case], dict]] = {
    "plain timm": loop_path(plain),
    "set_transform": loop_path(set_transform),
    "apply": loop_path(apply),
    "plain timm, Trainer": trainer_path("plain"),
    "DistillationTrainer": trainer_path("subclass"),
    "Trainer + callback": trainer_path("stock"),
    "streaming": loop_path(streaming),
}


# -- running and reporting -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 32], choices=[224, 32])
    p.add_argument("--n", type=int, nargs="+", default=[4, 64, 400, 1000])
    p.add_argument(
        "--rows", type=int, nargs=2, help="rows at 224 px and at 32 px (default 64 512; 512 512 with --end-to-end)"
    )
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--batch-size", type=int, help="default 16; 64 with --end-to-end")
    p.add_argument("--workers", type=int, help="DataLoader workers (default 1; 4 with --end-to-end)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--end-to-end",
        action="store_true",
        help="instead, train --model end to end on plain and on reinforced data (implied by --device cuda)",
    )
    p.add_argument("--model", default="resnet18", help="the student of --end-to-end (a timm model name)")
    p.add_argument(
        "--steps",
        action="store_true",
        help="instead, CPU-ms per row of each step (reading, decoding, augmenting, ...) of the fast path and of "
        "timm's pipeline, in one process at N = the first --n",
    )
    common.add_markdown_argument(p)
    args = p.parse_args(argv)
    args.end_to_end = args.end_to_end or args.device == "cuda"
    defaults = {"rows": [512, 512], "batch_size": 64, "workers": 4} if args.end_to_end else {}
    defaults = {"rows": [64, 512], "batch_size": 16, "workers": 1, **defaults}
    for name, value in defaults.items():
        setattr(args, name, value if getattr(args, name) is None else getattr(args, name))
    return args


def available(name: str) -> bool:
    """Paths the installed hf_reinforce has (the benchmark also runs against earlier versions)."""
    return name not in ("apply",) or hasattr(hfr.ReinforcedTransform, "apply")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    with common.markdown_output(args.markdown):
        if args.end_to_end:
            end_to_end(args)
        elif args.steps:
            step_costs(args)
        else:
            loader_runs(args)


def quiet() -> None:
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(1)


def loader_runs(args: argparse.Namespace) -> None:
    """Every path at every (size, N), ``--repeats`` interleaved rounds: progress on stderr, the table on stdout."""
    wanted = (
        set(args.paths)
        | {"plain timm"}
        | ({"plain timm, Trainer"} if any("Trainer" in p for p in args.paths) else set())
    )
    paths = [name for name in PATHS if name in wanted and available(name)]
    results: dict[tuple[int, int, str], list[dict]] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            Case(size, n, Path(tmp), args.rows[0] if size == 224 else args.rows[1], args)
            for size in args.sizes
            for n in args.n
        ]
        for repeat in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for case in cases:
                for name in paths:
                    result = PATHS[name](case)
                    results.setdefault((case.size, case.n, name), []).append(result)
                    print(
                        f"round {repeat + 1} {case.size}px N={case.n} {name}: {result['rows_per_s']:.1f} rows/s, "
                        f"{result['cpu_ms']:.3f} worker CPU-ms/row, worker peak RSS {result['rss_mb']:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    print(report(results, paths, args))
    print(
        "\n*: the Trainer paths against the plain pipeline through the same Trainer, the others against the plain loop"
    )
    print(f"load average at the start of each round: {', '.join(f'{x:.2f}' for x in loads)}; {common.machine_info()}")


def report(results: dict, paths: list[str], args: argparse.Namespace) -> str:
    """Per path and cell: median rows/s per worker with every round, median worker CPU-ms per row, peak worker RSS
    (MB), and the ratios to plain (> 1: faster, cheaper) as the median of each round's ratio: a path and its plain
    reference run seconds apart in a round, while the machine's speed drifts between rounds."""
    rows = []
    for size in args.sizes:
        for n in args.n:
            for name in paths:
                runs, base = results[(size, n, name)], results[(size, n, reference(name))]
                speed = [r["rows_per_s"] / args.workers for r in runs]
                faster = statistics.median(r["rows_per_s"] / b["rows_per_s"] for r, b in zip(runs, base))
                cheaper = statistics.median(b["cpu_ms"] / r["cpu_ms"] for r, b in zip(runs, base))
                rows.append(
                    [
                        f"{size} px",
                        n,
                        name,
                        f"{statistics.median(speed):.0f}",
                        f"{faster:.2f}x",
                        " / ".join(f"{v:.0f}" for v in speed),
                        f"{statistics.median(r['cpu_ms'] for r in runs):.3f}",
                        f"{cheaper:.2f}x",
                        f"{max(r['rss_mb'] for r in runs):.0f}",
                    ]
                )
    header = [
        "size",
        "N",
        "path",
        "rows/s per worker",
        "vs plain*",
        "rounds",
        "worker CPU-ms/row",
        "vs plain*",
        "RSS MB",
    ]
    return common.markdown_table(header, rows)


def reference(name: str) -> str:
    """The plain path a path is compared with: through the same Trainer for the Trainer paths."""
    return "plain timm, Trainer" if "Trainer" in name else "plain timm"


# -- --device cuda: a data-bound student end to end ------------------------------------------------------------


def end_to_end(args: argparse.Namespace) -> None:
    """images/s of ``--model`` at 224 px, channels_last (bf16 autocast on a GPU), trained on plain and on reinforced
    data (N=400 unless one ``--n`` is given), interleaved ``--repeats``: a table of both and their ratio."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda needs a GPU")
    n = args.n[0] if len(args.n) == 1 else 400
    with tempfile.TemporaryDirectory() as tmp:
        case = Case(224, n, Path(tmp), args.rows[0], args)
        transform = case.transform()
        fast = transform.apply(case.dataset) if available("apply") else case.dataset.with_transform(transform)
        modes = {"plain timm": (plain(case)[0], None, cross_entropy), "reinforced": (fast, transform, distill)}
        results: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.repeats):
            for name, (data, epochs, loss) in modes.items():
                results[name].append(train_images_per_s(case, data, epochs, loss))
                print(f"{name}: {results[name][-1]:.0f} images/s", file=sys.stderr, flush=True)
    base = statistics.median(results["plain timm"])
    rows = [
        [name, f"{statistics.median(v):.0f}", f"{statistics.median(v) / base:.2f}x", " / ".join(f"{x:.0f}" for x in v)]
        for name, v in results.items()
    ]
    print(common.markdown_table(["training data", "images/s", "vs plain", "rounds"], rows))
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(
        f"\n{args.model} at 224 px on {device}, batches of {args.batch_size}, DataLoader workers: {args.workers}, "
        f"N={n}, K={K}, {POLICY}, {args.rows[0]} rows, {args.epochs} timed epochs after one untimed, median of "
        f"{args.repeats}; {common.machine_info()}"
    )


STEPS = (
    ("reading the row (the chosen augmentation only)", "select", None),
    ("decoding the picture (Pillow)", "decode", "read+decode"),
    ("augmenting (replay / drawing and applying)", "augment", "augment"),
    ("normalizing", "normalize", None),
    ("a row through `datasets` (all of the above and its own overhead)", "row", "row"),
    ("collating", "collate", "collate"),
)
"""The rows of ``--steps``: label, the fast path's step, timm's (None where it has no step of its own)."""


def step_costs(args: argparse.Namespace) -> None:
    """``--steps``: CPU-ms per row of each step of the fast path and of timm's pipeline, in this process on one
    thread, on the same batches of ``--batch-size`` seeded random rows at N = the first ``--n``; every step of both
    runs once per repeat, interleaved, and the median is printed."""
    timings: dict[tuple[int, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            case = Case(size, args.n[0], Path(tmp), args.rows[0] if size == 224 else args.rows[1], args)
            for _ in range(args.repeats):
                for (kind, step), seconds in step_timings(case).items():
                    timings.setdefault((size, kind, step), []).append(seconds)
    header = ["step", *(f"{size} px: {kind}" for size in args.sizes for kind in ("fast path", "timm's pipeline"))]
    rows = []
    for label, fast_step, timm_step in STEPS:
        row = [label]
        for size in args.sizes:
            for kind, step in (("fast", fast_step), ("timm", timm_step)):
                values = timings.get((size, kind, step)) if step else None
                row.append(f"{statistics.median(values):.3f}" if values else "—")
        rows.append(row)
    print(common.markdown_table(header, rows))
    print(
        f"\nCPU-ms per row, median of {args.repeats}; N={args.n[0]}, batches of {args.batch_size}, "
        f"{common.machine_info()}"
    )


def step_timings(case: Case) -> dict[tuple[str, str], float]:
    """CPU-ms per row of each step over one pass through the case's rows in seeded random batches (after the
    transform's first use)."""
    transform, size = case.transform(), case.size
    fast, source = transform.apply(case.dataset), plain(case)[0]
    raw, decoded = case.dataset.with_format("arrow"), case.dataset.select_columns(["image", "label"])
    augment = timm_transform(size)
    collate = hfr.DistillationCollator(pack=False)
    order = np.random.default_rng(size).permutation(len(case.dataset)).tolist()
    batches = [order[i : i + case.args.batch_size] for i in range(0, len(order), case.args.batch_size)]
    totals: dict[tuple[str, str], float] = {}

    @contextlib.contextmanager
    def timed(kind: str, step: str) -> Iterator[None]:
        start = time.process_time()
        yield
        totals[kind, step] = totals.get((kind, step), 0.0) + time.process_time() - start

    transform.select(raw[batches[0]])  # the first use checks stored fingerprints (rendering a few rows): not timed
    for batch in batches:
        with timed("fast", "select"):
            chosen = transform.select(raw[batch])
        with timed("fast", "decode"):
            images = replay.decode(chosen.images, chosen.rows, "image")
        with timed("fast", "augment"):
            pixels = transform.policy.replay_views(images, chosen.params, size)
        out = torch.empty(pixels.shape)
        with timed("fast", "normalize"):
            normalize(pixels, transform.mean, transform.std, out=out)
        with timed("fast", "row"):
            rows = fast.__getitems__(batch)
        with timed("fast", "collate"):
            collate(rows)
        with timed("timm", "read+decode"):
            pictures = [im.convert("RGB") for im in decoded[batch]["image"]]
        with timed("timm", "augment"):
            [augment(im) for im in pictures]
        with timed("timm", "row"):
            rows = source.__getitems__(batch)
        with timed("timm", "collate"):
            collate(rows)
    return {key: 1e3 * seconds / len(order) for key, seconds in totals.items()}


def cross_entropy(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), batch["labels"])


def distill(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    return hfr.distillation_loss(logits, batch["topk_ids"], batch["topk_probs"])


def train_images_per_s(case: Case, data: Any, transform: Any, loss_fn: Callable) -> float:
    """Images/s of ``--epochs`` epochs of SGD on ``--device`` after one untimed epoch (workers start, kernels tune)."""
    device = torch.device(case.args.device)
    model = timm.create_model(case.args.model, num_classes=CLASSES[224]).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = case.loader(data, hfr.DistillationCollator(pack=False))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    images, start = 0, 0.0
    for epoch in range(case.args.epochs + 1):
        if transform is not None:
            transform.set_epoch(epoch)
        if epoch == 1:
            synchronize(device)
            start = time.perf_counter()
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                logits = model(batch["pixel_values"].contiguous(memory_format=torch.channels_last))
            loss = loss_fn(logits, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += len(batch["labels"]) if epoch else 0
    synchronize(device)
    return images / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
