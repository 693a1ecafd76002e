"""Shared by ``quickstart.py`` and ``bench_train.py`` (their offline MNIST comes from ``hf_reinforce.testing``):
on-the-fly standard augmentation matching a stored policy, and one training loop for the three ways of training a
student compared there:

* ``plain``: images augmented on the fly, cross-entropy on the hard labels;
* ``reinforced``: a stored augmentation replayed by :class:`hf_reinforce.ReinforcedTransform`, distillation from
  the stored top-k;
* ``online``: the same on-the-fly augmentation as ``plain``, the teacher ensemble run on every batch, distillation
  from its full softmax.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, default_collate
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import hf_reinforce as hfr
from hf_reinforce.augment import center_view, interpolation_mode, normalize

Batch = Mapping[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


# -- data ----------------------------------------------------------------------------------------------------------


def standard_augmentation(policy: hfr.AugmentationPolicy | str, resolution: int, interpolation: str) -> v2.Compose:
    """torchvision v2 transforms drawing, on the fly, from the same distribution as ``policy``'s stored augmentations
    (the crop resized with ``interpolation``, like the replay): ``AugmentationPolicy.to_torchvision``."""
    return hfr.AugmentationPolicy.parse(policy).to_torchvision(resolution, interpolation)


@dataclasses.dataclass
class AugmentTransform:
    """``datasets`` transform: decode, augment on the fly, normalize. ``keep_uint8`` also returns the uint8
    pixels (``pixels``) for teachers that normalize images their own way (online KD)."""

    augment: Callable[[torch.Tensor], torch.Tensor]
    mean: Sequence[float]
    std: Sequence[float]
    keep_uint8: bool = False
    image_column: str = "image"
    label_column: str = "label"

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        pixels = [self.augment(hfr.to_rgb_uint8(image)) for image in batch[self.image_column]]
        out = {
            "pixel_values": [normalize(p, self.mean, self.std) for p in pixels],
            "labels": list(batch[self.label_column]),
        }
        if self.keep_uint8:
            out["pixels"] = pixels
        return out


def eval_pixels(
    dataset: datasets.Dataset, resolution: int, interpolation: str, image_column: str = "image"
) -> torch.Tensor:
    """uint8 ``(N, 3, r, r)``: the one evaluation view (the centred largest square resized, as for the teachers'
    accuracy and ``ReinforcedTransform.evaluation``) of every image."""
    return torch.stack([center_view(hfr.to_rgb_uint8(im), resolution, interpolation) for im in dataset[image_column]])


def loader(
    dataset: datasets.Dataset,
    transform: Callable,
    batch_size: int,
    num_workers: int,
    seed: int = 0,
    collate: Callable = default_collate,
    shuffle: bool = True,
) -> DataLoader:
    """A DataLoader over ``dataset`` transformed by ``transform`` (a ``ReinforcedTransform`` through its fast path,
    ``transform.apply``), in a fixed seeded order, last partial batch dropped."""
    generator = torch.Generator().manual_seed(seed)
    fast = isinstance(transform, hfr.ReinforcedTransform)
    return DataLoader(
        transform.apply(dataset) if fast else dataset.with_transform(transform),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
    )


# -- the three losses ----------------------------------------------------------------------------------------------


def plain_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy on the hard labels."""
    return F.cross_entropy(model(batch["pixel_values"]), batch["labels"])


def reinforced_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Distillation from the stored top-k of the replayed augmentation."""
    return hfr.distillation_loss(model(batch["pixel_values"]), batch["topk_ids"], batch["topk_probs"])


@dataclasses.dataclass
class OnlineKDLoss:
    """Distillation from the ensemble's full softmax, computed on the batch being trained on (each teacher gets
    the uint8 pixels at its own resolution and normalizes them itself)."""

    ensemble: Any  # hf_reinforce.Ensemble

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        probs = self.ensemble.probs(teacher_views(self.ensemble, batch["pixels"]))
        ids = torch.arange(probs.shape[1], device=probs.device).expand_as(probs)
        return hfr.distillation_loss(model(batch["pixel_values"]), ids, probs)


def teacher_views(ensemble: Any, pixels: torch.Tensor) -> dict[tuple[int, str], torch.Tensor]:
    """The uint8 batch at every (resolution, interpolation) the ensemble's teachers need."""
    return {
        spec: pixels
        if spec.resolution == pixels.shape[-1]
        else TF.resize(
            pixels, [spec.resolution] * 2, interpolation=interpolation_mode(spec.interpolation), antialias=True
        )
        for spec in ensemble.view_specs()
    }


# -- the three modes ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Mode:
    """One way of training the student: its data and its loss (``on_epoch`` selects the stored augmentations)."""

    name: str
    how: str
    data: DataLoader
    loss: LossFn
    on_epoch: Callable[[int], None] | None = None


def three_modes(
    train: datasets.Dataset,
    folder: str | os.PathLike,
    ensemble: Any,
    *,
    policy: str,
    resolution: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: str,
    batch_size: int,
    num_workers: int,
    plain_recipes: Sequence[str] = (),
    seed: int = 0,
) -> list[Mode]:
    """(a) plain, (b) reinforced from ``folder``, (c) online KD with ``ensemble``: the same order of rows, the same
    batch size and workers, and augmentations from the same distribution. With ``plain_recipes`` (e.g. ``"crop"``,
    the standard small-image recipe, and the ``"rrc+ra+re"`` preset) plain training runs once per recipe instead,
    (a1), (a2), ...; ``seed`` sets the loaders' row order and the choice of stored augmentations."""
    augment = standard_augmentation(policy, resolution, interpolation)
    transform = hfr.ReinforcedTransform.from_pretrained(
        folder, resolution=resolution, mean=mean, std=std, interpolation=interpolation, seed=seed
    )
    reinforced = hfr.load_reinforced(folder, split="train")
    plain = [
        Mode(
            "(a) plain",
            f"CE, {policy} on the fly",
            loader(train, AugmentTransform(augment, mean, std), batch_size, num_workers, seed),
            plain_loss,
        )
    ]
    if plain_recipes:
        plain = [
            Mode(
                f"(a{i}) plain",
                f"CE, {recipe} on the fly",
                loader(
                    train,
                    AugmentTransform(standard_augmentation(recipe, resolution, interpolation), mean, std),
                    batch_size,
                    num_workers,
                    seed,
                ),
                plain_loss,
            )
            for i, recipe in enumerate(plain_recipes, 1)
        ]
    return [
        *plain,
        Mode(
            "(b) reinforced",
            f"KD from stored top-{transform.record.top_k}",
            loader(reinforced, transform, batch_size, num_workers, seed, hfr.DistillationCollator(pack=False)),
            reinforced_loss,
            transform.set_epoch,
        ),
        Mode(
            "(c) online KD",
            f"KD from the {len(ensemble.teachers)}-teacher ensemble run on every batch",
            loader(train, AugmentTransform(augment, mean, std, keep_uint8=True), batch_size, num_workers, seed),
            OnlineKDLoss(ensemble),
        ),
    ]


def load_teachers(specs: Sequence[str], num_classes: int, resolution: int | None = None) -> list[hfr.Teacher]:
    """Load teacher specs; ``timm:<arch>`` teachers (random init or weights trained here) see ``resolution`` and the
    default interpolation and normalization unless their spec says otherwise (``...?resolution=32&mean=...``);
    pretrained Hub teachers keep their own preprocessing."""
    preprocessing = hfr.Preprocessing(resolution=resolution) if resolution else None
    return [hfr.load_teacher(spec, num_classes=num_classes, preprocessing=preprocessing) for spec in specs]


def set_threads(num_workers: int, threads: int | None) -> int:
    """Give the training process the cores the DataLoader workers leave (oversubscribed cores make small ops crawl)."""
    threads = threads or max(1, (os.cpu_count() or 1) - num_workers)
    torch.set_num_threads(threads)
    return threads


# -- training and evaluation ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What a training run measured: wall time, when every step ended, how long each step waited for its batch,
    the last loss."""

    seconds: float
    step_ends: list[float]
    data_waits: list[float]
    loss: float

    def step_time(self, warmup: int) -> float:
        """Mean seconds per step after ``warmup`` steps (data loading included, loader start-up excluded)."""
        ends = self.step_ends[warmup:]
        if len(ends) < 2:
            raise ValueError(f"need more than {warmup + 1} steps to time, ran {len(self.step_ends)}")
        return (ends[-1] - ends[0]) / (len(ends) - 1)

    def data_wait(self, warmup: int) -> float:
        """Mean seconds per step spent waiting for the DataLoader, over the steps :meth:`step_time` times."""
        return sum(self.data_waits[warmup + 1 :]) / len(self.data_waits[warmup + 1 :])


def train(
    model: nn.Module,
    data: DataLoader,
    loss_fn: LossFn,
    *,
    epochs: int,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    on_epoch: Callable[[int], None] | None = None,
    max_steps: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Run:
    """AdamW with a cosine schedule over ``epochs`` (or ``max_steps``); ``on_epoch(epoch)`` runs before each epoch
    (``transform.set_epoch``). The same loop for every mode, so the modes differ only in data and loss."""
    total = max_steps or epochs * len(data)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.1)
    device = next(model.parameters()).device
    model.train()
    start, ends, waits, loss = time.perf_counter(), [], [], torch.zeros(())
    for epoch in range(epochs if max_steps is None else 10**9):
        if on_epoch is not None:
            on_epoch(epoch)
        ready = time.perf_counter()
        for batch in data:
            waits.append(time.perf_counter() - ready)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            ends.append(time.perf_counter())
            ready = ends[-1]
            if len(ends) == total:
                break
        if log is not None:
            log(f"  epoch {epoch + 1}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
        if len(ends) == total:
            break
    return Run(time.perf_counter() - start, ends, waits, loss.item())


@torch.inference_mode()
def accuracy(
    predict: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy of ``predict`` (uint8 batch → scores) over ``pixels``."""
    hits = sum(
        int((predict(chunk).argmax(1).cpu() == y).sum())
        for chunk, y in zip(pixels.split(batch_size), labels.split(batch_size))
    )
    return hits / len(labels)


def student_predict(
    model: nn.Module, mean: Sequence[float], std: Sequence[float]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 batch → the student's logits (normalized as in training, eval mode)."""
    device = next(model.parameters()).device
    model.eval()
    return lambda pixels: model(normalize(pixels.to(device), mean, std))


def machine_info() -> str:
    """One line: CPU, cores, torch threads, accelerator."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, {gpu}{load}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- results for the documentation ---------------------------------------------------------------------------------


class _Tee(io.TextIOBase):
    """Writes to the real stdout and keeps a copy."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def add_markdown_argument(parser: argparse.ArgumentParser) -> None:
    """``--markdown FILE``: also write what the script prints to FILE (see :func:`markdown_output`)."""
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the output to FILE as markdown, under the command, machine and date that produced it "
        "(the documentation includes docs/generated/*.md files written this way)",
    )


def as_markdown(text: str) -> str:
    """Printed output as markdown: tables as they are, indented lines in a ``text`` block, every other line a
    paragraph of its own."""
    groups: list[tuple[str, list[str]]] = []
    for line in text.rstrip().splitlines():
        kind = (
            "blank"
            if not line.strip()
            else "table"
            if line.startswith("|")
            else "pre"
            if line[0].isspace()
            else "prose"
        )
        if not groups or groups[-1][0] != kind or kind == "prose":
            groups.append((kind, []))
        groups[-1][1].append(line.rstrip())
    out = []
    for kind, lines in groups:
        if kind == "table" or kind == "prose":
            out.append("\n".join(lines))
        elif kind == "pre":
            out.append("```text\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(out) + "\n"


def command_line() -> str:
    """How this script was started, as a shell command (with ``OMP_NUM_THREADS`` when it was set)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path.cwd())
    except ValueError:
        pass
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return prefix + shlex.join(["python", str(script), *sys.argv[1:]])


@contextlib.contextmanager
def markdown_output(path: Path | None) -> Iterator[None]:
    """With a ``path``, copy everything printed inside the block to ``path`` as markdown, under a header with the
    command that ran, the machine and the date: the documentation includes these files, so every table it shows
    says where it came from and is regenerated, never edited."""
    if path is None:
        yield
        return
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    command = command_line()
    header = [
        f"<!-- Generated by `{command}`: rerun it to update this file; do not edit by hand. -->",
        "",
        "| | |",
        "|---|---|",
        f"| command | `{command}` |",
        f"| machine | {machine_info()} |",
        f"| date | {datetime.date.today().isoformat()} |",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + as_markdown(tee.copy.getvalue()))
    print(f"wrote {path}")
