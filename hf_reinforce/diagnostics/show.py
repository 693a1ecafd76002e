"""``show``: a PNG grid of one row's stored augmentations, replayed, captioned with the teachers' top-3."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from ..deprecation import warn_renamed
from ..distill import ReinforcedTransform
from ..errors import ConfigError, NotFoundError, OutOfRangeError
from ..storage.files import file_errors
from ..storage.format import ROW_INDEX, TOPK_IDS, TOPK_PROBS, read_columns, topk_residual
from ..storage.reader import load_record, load_reinforced
from ..storage.record import RunRecord, record_from_dataset
from ..validation import check_int, check_split

CAPTION_LINES = 3


LINE = 12
TITLE_HEIGHT = 2 * LINE + 6
"""Pixels above the grid for the title (the grid's first tile starts at ``(4, TITLE_HEIGHT + 4)``)."""
MATCH = (0, 120, 0)
"""Caption colour of a class that is the row's true label."""


def _load(
    source: datasets.Dataset | str | os.PathLike,
    split: str,
    revision: str | None,
    given: RunRecord | str | os.PathLike | None = None,
) -> tuple[datasets.Dataset, RunRecord]:
    """The dataset and its run record, from a Dataset (its own record, else the ``given`` one), a reinforced folder
    or a Hub repo."""
    if not isinstance(source, (str, os.PathLike)):
        check_split(source, "show")
    if isinstance(given, (str, os.PathLike)):
        given = load_record(given, revision=revision)
    if isinstance(source, datasets.Dataset):
        record = given or record_from_dataset(source)
        if record is None:
            raise ConfigError(
                "this dataset does not carry its run record (load_dataset/load_reinforced drop it): pass "
                "record=<its folder or repo id> (or the folder or repo id instead of the dataset)"
            )
        return source, record
    record = given or load_record(source, revision=revision)
    if record.splits and split not in record.splits:  # a Hub repo too: say which splits exist before loading
        raise NotFoundError(f"{source} has no split {split!r}; its splits are {sorted(record.splits)} (pass --split)")
    return load_reinforced(source, split=split, revision=revision), record


def class_label(class_id: int, names: Sequence[str] | None) -> str:
    """How a class is shown: its name where it says more than the id (``"cat"``), else the id (``"3"``)."""
    name = names[class_id] if names is not None and 0 <= class_id < len(names) else None
    return name[:14] if name is not None and name != str(class_id) else str(class_id)


def _caption(ids: Sequence[int], probs: Sequence[float] | np.ndarray, names: Sequence[str] | None) -> list[str]:
    """Top-3 lines ``"3 (0.91)"`` / ``"cat (0.91)"``: the probability in brackets can never be read as a class."""
    return [f"{class_label(int(c), names)} ({p:.2f})" for c, p in list(zip(ids, probs))[:CAPTION_LINES]]


def title(row: int, example: Mapping[str, Any], record: RunRecord) -> str:
    """``"row 3 (row_index 3) · label 7"`` (with the class name where it differs from the id)."""
    text = f"row {row} (row_index {example.get(ROW_INDEX)})"
    label = example.get(record.label_column) if record.label_column else None
    if label is not None:
        text += f" · label {int(label)}"
        shown = class_label(int(label), record.class_names)
        text += f" ({shown})" if shown != str(int(label)) else ""
    return text


def render_grid(
    tiles: list[torch.Tensor],
    captions: list[list[str]],
    columns: int = 4,
    *,
    title: str = "",
    highlight: Sequence[set[int]] | None = None,
) -> PIL.Image.Image:
    """Tiles ``uint8 (3, r, r)`` in a grid under ``title``, each with caption lines underneath; line ``i`` of tile
    ``k`` is drawn in :data:`MATCH` colour when ``i`` is in ``highlight[k]`` (the true label)."""
    font = PIL.ImageFont.load_default()
    size = tiles[0].shape[-1]
    cell_w, cell_h = max(size, 110) + 8, size + LINE * (CAPTION_LINES + 1) + 10
    rows = -(-len(tiles) // columns)
    canvas = PIL.Image.new("RGB", (columns * cell_w, TITLE_HEIGHT + rows * cell_h), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill="black", font=font)
    for k, (tile, lines) in enumerate(zip(tiles, captions)):
        x, y = (k % columns) * cell_w + 4, TITLE_HEIGHT + (k // columns) * cell_h + 4
        canvas.paste(PIL.Image.fromarray(tile.permute(1, 2, 0).cpu().numpy()), (x, y))
        for i, text in enumerate(lines):
            colour = MATCH if highlight is not None and i in highlight[k] else "black"
            draw.text((x, y + size + 2 + i * LINE), text, fill=colour, font=font)
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
    record: RunRecord | str | os.PathLike | None = None,
    lowest_agreement: int | None = None,
    config: RunRecord | str | os.PathLike | None = None,
) -> Path:
    """Write a PNG of the first ``num`` stored augmentations of ``row`` (replayed exactly) with their top-3 classes,
    under a title with the row, its true label and class name. ``source`` is a reinforced folder, a Hub repo or a
    ``datasets.Dataset``: one returned by ``reinforce`` carries its record, one from ``load_dataset`` /
    ``load_reinforced`` needs ``record=`` (its folder, repo id or :class:`RunRecord`). With ``lowest_agreement=K``
    instead the K stored views of the split whose stored ensemble probability of the true label is lowest (from the
    stored top-k, no teacher runs; see :func:`lowest_agreement_views`).

    Args:
        source: a reinforced folder, Hub repo id or ``datasets.Dataset``.
        row: position of the row in the split.
        output: the PNG file to write.
        num: how many stored augmentations to draw.
        split: the split of a folder or repo.
        resolution: replay at this resolution (default: the record's).
        revision: branch, tag or commit of a Hub repo.
        record: the run record, its folder or repo id, when ``source`` is a dataset that does not carry it.
        lowest_agreement: draw the K views of the split whose ensemble probability of the true label is lowest.
        config: deprecated name of ``record``.

    Returns:
        The path of the PNG written.

    Raises:
        OutOfRangeError: ``row`` is not a row of the split.
        ConfigError: bad ``num`` or ``lowest_agreement``, no record, or a record that is not valid.
        StorageError: ``output`` cannot be written.
    """
    check_int(num, "num (augmentations to show)", minimum=1)
    check_int(row, "row")
    if config is not None:
        warn_renamed("show(config=...)", "show(record=...)")
    dataset, record = _load(source, split, revision, record if record is not None else config)
    if lowest_agreement is not None:
        return _save(_lowest_agreement_grid(dataset, record, lowest_agreement, resolution), output)
    if not 0 <= row < len(dataset):
        raise OutOfRangeError(
            f"row {row} out of range: the {split!r} split has {len(dataset)} rows (0 to {len(dataset) - 1})"
        )
    transform = ReinforcedTransform(
        record, dataset=dataset if record.policy.mix is not None else None, resolution=resolution
    )
    example = dataset.with_format(None)[row]
    indices = list(range(min(num, transform.num_augmentations)))  # which stored augmentations to draw
    tiles = [transform.replay(example, j) for j in indices]
    names = record.class_names
    top = [(example[TOPK_IDS][j][:CAPTION_LINES], np.asarray(example[TOPK_PROBS][j], np.float32)) for j in indices]
    captions = [[f"aug {j}", *_caption(ids, probs, names)] for j, (ids, probs) in zip(indices, top)]
    label = example.get(record.label_column) if record.label_column else None
    highlight = [{i + 1 for i, c in enumerate(ids) if label is not None and int(c) == int(label)} for ids, _ in top]
    return _save(render_grid(tiles, captions, title=title(row, example, record), highlight=highlight), output)


def _save(image: PIL.Image.Image, output: str | os.PathLike) -> Path:
    path = Path(output)
    with file_errors(path):
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
    table = read_columns(dataset, [label, TOPK_IDS, TOPK_PROBS])
    labels = table[label].astype(np.int64)[:, None, None]
    ids, probs = table[TOPK_IDS], table[TOPK_PROBS].astype(np.float64)
    residual = topk_residual(probs.sum(-1)) / max(record.num_classes - record.top_k, 1)
    hit = ids == labels
    p_label = np.where(hit.any(-1), (probs * hit).sum(-1), residual)
    p_label[np.broadcast_to(labels[..., 0] < 0, p_label.shape)] = np.inf  # unlabelled rows are never "lowest"
    order = np.argsort(p_label, axis=None, kind="stable")[:count]
    rows, augs = np.unravel_index(order, p_label.shape)
    return [(int(r), int(j), float(p_label[r, j])) for r, j in zip(rows, augs) if np.isfinite(p_label[r, j])]


def _lowest_agreement_grid(
    dataset: datasets.Dataset, record: RunRecord, count: int, resolution: int | None
) -> PIL.Image.Image:
    transform = ReinforcedTransform(
        record, dataset=dataset if record.policy.mix is not None else None, resolution=resolution
    )
    names = record.class_names
    plain = dataset.with_format(None)
    tiles, captions = [], []
    for row, j, p in lowest_agreement_views(dataset, record, count):
        example = plain[row]
        truth = int(example[record.label_column])
        tiles.append(transform.replay(example, j))
        top = _caption(example[TOPK_IDS][j], list(np.asarray(example[TOPK_PROBS][j], np.float32)), names)
        captions.append([f"row {row} aug {j}", f"label {class_label(truth, names)[:10]} ({p:.2f})", *top[:1]])
    if not tiles:
        raise ConfigError("lowest_agreement: no stored view has a label (every label is < 0)")
    heading = f"the {len(tiles)} stored views with the lowest ensemble probability of their label"
    return render_grid(tiles, captions, title=heading)
