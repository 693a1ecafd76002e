"""``show``: a PNG grid of one row's stored augmentations, replayed, captioned with the teachers' top-3."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from .distill import ReinforcedTransform
from .errors import ConfigError, OutOfRangeError
from .format import TOPK_IDS, TOPK_PROBS
from .layout import load_config, load_reinforced
from .record import RunRecord, record_from_dataset

CAPTION_LINES = 3


def _load(
    source: datasets.Dataset | str | os.PathLike, split: str, revision: str | None
) -> tuple[datasets.Dataset, RunRecord]:
    """The dataset and its run record, from a Dataset, a reinforced folder or a Hub repo."""
    if isinstance(source, datasets.Dataset):
        record = record_from_dataset(source)
        if record is None:
            raise ConfigError(
                "this dataset does not carry its reinforcement config: pass its folder or repo id instead"
            )
        return source, record
    record = load_config(source, revision=revision)
    return load_reinforced(source, split=split, revision=revision), record


def _caption(ids: list[int], probs: list[float], names: list[str] | None) -> list[str]:
    label = (lambda c: names[c]) if names else str
    return [f"{label(int(c))[:14]} {p:.2f}" for c, p in list(zip(ids, probs))[:CAPTION_LINES]]


def render_grid(tiles: list[torch.Tensor], captions: list[list[str]], columns: int = 4) -> PIL.Image.Image:
    """Tiles ``uint8 (3, r, r)`` in a grid, each with caption lines underneath."""
    font = PIL.ImageFont.load_default()
    size = tiles[0].shape[-1]
    line = 12
    cell_w, cell_h = max(size, 110) + 8, size + line * CAPTION_LINES + 10
    rows = -(-len(tiles) // columns)
    canvas = PIL.Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    for k, (tile, lines) in enumerate(zip(tiles, captions)):
        x, y = (k % columns) * cell_w + 4, (k // columns) * cell_h + 4
        canvas.paste(PIL.Image.fromarray(tile.permute(1, 2, 0).cpu().numpy()), (x, y))
        for i, text in enumerate(lines):
            draw.text((x, y + size + 2 + i * line), text, fill="black", font=font)
    return canvas


def show(
    source: datasets.Dataset | str | os.PathLike,
    *,
    row: int = 0,
    output: str | os.PathLike = "augmentations.png",
    num: int = 8,
    split: str = "train",
    resolution: int | None = None,
    revision: str | None = None,
    lowest_agreement: int | None = None,
) -> Path:
    """Write a PNG of the first ``num`` stored augmentations of ``row`` (replayed exactly) with their top-3 classes;
    with ``lowest_agreement=K`` instead the K stored views of the split whose stored ensemble probability of the true
    label is lowest (from the stored top-k, no teacher runs; see :func:`lowest_agreement_views`)."""
    dataset, record = _load(source, split, revision)
    if lowest_agreement is not None:
        return _save(_lowest_agreement_grid(dataset, record, lowest_agreement, resolution), output)
    if not 0 <= row < len(dataset):
        raise OutOfRangeError(f"row {row} out of range: the {split!r} split has {len(dataset)} rows")
    transform = ReinforcedTransform(record, dataset=dataset if record.mixing else None, resolution=resolution)
    example = dataset.with_format(None)[row]
    count = min(num, transform.num_augmentations)
    tiles = [transform.replay(example, j) for j in range(count)]
    names = record.class_names
    captions = [
        _caption(example[TOPK_IDS][j], list(np.asarray(example[TOPK_PROBS][j], np.float32)), names)
        for j in range(count)
    ]
    return _save(render_grid(tiles, captions), output)


def _save(image: PIL.Image.Image, output: str | os.PathLike) -> Path:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def lowest_agreement_views(dataset: datasets.Dataset, record: RunRecord, count: int) -> list[tuple[int, int, float]]:
    """``(row position, augmentation, probability)`` of the ``count`` stored views whose ensemble probability of the
    row's label is lowest, lowest first: the stored top-k probability of the label, or its share of the residual
    (``(1 - sum(top-k)) / (C - K)``, as the loss expands it) when the label is not in the top-k."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"lowest_agreement: expected a positive number of views, got {count!r}")
    label = record.label_column
    if not label or label not in dataset.column_names:
        raise ConfigError(
            f"lowest_agreement: needs the label column {label!r}, which the dataset does not have "
            f"(columns: {dataset.column_names})"
        )
    table = dataset.with_format("numpy", columns=[label, TOPK_IDS, TOPK_PROBS])[:]
    labels = np.asarray(table[label], dtype=np.int64)[:, None, None]
    ids, probs = np.asarray(table[TOPK_IDS]), np.asarray(table[TOPK_PROBS], dtype=np.float64)
    residual = np.clip(1.0 - probs.sum(-1), 0.0, None) / max(record.num_classes - record.top_k, 1)
    hit = ids == labels
    p_label = np.where(hit.any(-1), (probs * hit).sum(-1), residual)
    p_label[np.broadcast_to(labels[..., 0] < 0, p_label.shape)] = np.inf  # unlabelled rows are never "lowest"
    order = np.argsort(p_label, axis=None, kind="stable")[:count]
    rows, augs = np.unravel_index(order, p_label.shape)
    return [(int(r), int(j), float(p_label[r, j])) for r, j in zip(rows, augs) if np.isfinite(p_label[r, j])]


def _lowest_agreement_grid(
    dataset: datasets.Dataset, record: RunRecord, count: int, resolution: int | None
) -> PIL.Image.Image:
    transform = ReinforcedTransform(record, dataset=dataset if record.mixing else None, resolution=resolution)
    names = record.class_names
    plain = dataset.with_format(None)
    tiles, captions = [], []
    for row, j, p in lowest_agreement_views(dataset, record, count):
        example = plain[row]
        truth = int(example[record.label_column])
        tiles.append(transform.replay(example, j))
        name = names[truth] if names else str(truth)
        top = _caption(example[TOPK_IDS][j], list(np.asarray(example[TOPK_PROBS][j], np.float32)), names)
        captions.append([f"row {row} #{j}", f"{name[:10]}: p={p:.2f}", *top[:1]])
    if not tiles:
        raise ConfigError("lowest_agreement: no stored view has a label (every label is < 0)")
    return render_grid(tiles, captions)
