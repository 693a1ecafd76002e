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
from .errors import ConfigError, NotFoundError, OutOfRangeError
from .format import TOPK_IDS, TOPK_PROBS
from .layout import load_config, load_reinforced
from .record import RunRecord, record_from_dataset
from .shared import check_split

CAPTION_LINES = 3


def _load(
    source: datasets.Dataset | str | os.PathLike, split: str, revision: str | None
) -> tuple[datasets.Dataset, RunRecord]:
    """The dataset and its run record, from a Dataset, a reinforced folder or a Hub repo."""
    if not isinstance(source, (str, os.PathLike)):
        check_split(source, "show")
    if isinstance(source, datasets.Dataset):
        record = record_from_dataset(source)
        if record is None:
            raise ConfigError(
                "this dataset does not carry its reinforcement config: pass its folder or repo id instead"
            )
        return source, record
    record = load_config(source, revision=revision)
    if record.splits and split not in record.splits:  # a Hub repo too: say which splits exist before loading
        raise NotFoundError(f"{source} has no split {split!r}; its splits are {sorted(record.splits)} (pass --split)")
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
) -> Path:
    """Write a PNG of the first ``num`` stored augmentations of ``row`` (replayed exactly) with their top-3 classes."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ConfigError(f"num: expected a positive number of augmentations to show, got {num!r}")
    dataset, record = _load(source, split, revision)
    if not 0 <= row < len(dataset):
        raise OutOfRangeError(
            f"row {row} out of range: the {split!r} split has {len(dataset)} rows (0 to {len(dataset) - 1})"
        )
    transform = ReinforcedTransform(record, dataset=dataset if record.mixing else None, resolution=resolution)
    example = dataset.with_format(None)[row]
    count = min(num, transform.num_augmentations)
    tiles = [transform.replay(example, j) for j in range(count)]
    names = record.class_names
    captions = [
        _caption(example[TOPK_IDS][j], list(np.asarray(example[TOPK_PROBS][j], np.float32)), names)
        for j in range(count)
    ]
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_grid(tiles, captions).save(path)
    return path
