"""Batched replay: the chosen stored augmentation of every row of a batch, read, decoded and rendered together.

Reading: from an Arrow table (``ReinforcedTransform.apply``, the fast path) only the chosen augmentation's
parameters and top-k become numpy values (:func:`~hf_reinforce.storage.format.select_elements`), whatever N; from Python
rows (``set_transform``) ``datasets`` has turned all N into lists already and one is picked per row. Rendering:
:meth:`AugmentationPolicy.replay_views` renders the batch's views and their MixUp/CutMix partners in one pass, bit for
bit what replaying each view on its own gives. Images decode as the pass decoded them (``to_rgb_uint8`` with
``channels_last``, the same pixels without a layout copy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..augment import AugmentationPolicy, Params, to_rgb_uint8
from ..errors import BadImageError, ConfigError
from ..storage.format import ROW_INDEX, TOPK_IDS, TOPK_PROBS, decode_params, select_elements, to_arrow
from .collate import block_storage, view

AUGMENTATION = "augmentation"
"""Column of a selected table (:meth:`Chosen.to_arrow`) with each row's chosen stored augmentation."""


@dataclass
class Chosen:
    """One stored augmentation per row of a batch: what replay reads from the rows.

    ``params`` has the policy's columns with leading dimension ``len(rows)``; ``images`` the image values as stored
    (encoded bytes, a path, an array: a list, or the Arrow column they are in); ``topk_*`` are ``(rows, K)`` (None
    when the rows have none)."""

    rows: np.ndarray
    augmentations: np.ndarray
    params: Params
    images: Sequence[Any] | pa.ChunkedArray
    topk_ids: torch.Tensor | None
    topk_probs: torch.Tensor | None
    labels: list[int] | None

    def to_arrow(self, image_column: str, label_column: str | None) -> pa.Table:
        """The selection as a small Arrow table (the streaming path's first step): the image as stored, label,
        ``row_index``, :data:`AUGMENTATION`, and one augmentation's parameters and top-k per row."""
        columns: dict[str, Any] = {image_column: self.images, ROW_INDEX: self.rows, AUGMENTATION: self.augmentations}
        if self.labels is not None and label_column:
            columns[label_column] = pa.array(self.labels, type=pa.int64())
        columns.update({name: to_arrow(values) for name, values in self.params.items()})
        if self.topk_ids is not None and self.topk_probs is not None:
            columns[TOPK_IDS], columns[TOPK_PROBS] = to_arrow(self.topk_ids.numpy()), to_arrow(self.topk_probs.numpy())
        return pa.table(columns)

    @classmethod
    def from_selected(
        cls, batch: Mapping[str, Sequence[Any]], policy: AugmentationPolicy, image_column: str, label_column: str | None
    ) -> Chosen:
        """Inverse of :meth:`to_arrow` for the table's rows as ``datasets`` formats them (Python lists)."""
        ids = probs = None
        if TOPK_IDS in batch:
            ids = torch.as_tensor(np.asarray(batch[TOPK_IDS]), dtype=torch.int64)
            probs = torch.as_tensor(np.asarray(batch[TOPK_PROBS], dtype=np.float32))
        return cls(
            np.asarray(batch[ROW_INDEX], dtype=np.int64),
            np.asarray(batch[AUGMENTATION], dtype=np.int64),
            {name: np.asarray(batch[name], dtype=dtype) for name, (dtype, _) in policy.columns.items()},
            list(batch[image_column]),
            ids,
            probs,
            list(batch[label_column]) if label_column and label_column in batch else None,
        )


def from_table(
    table: pa.Table,
    policy: AugmentationPolicy,
    image_column: str,
    label_column: str | None,
    choose: Callable[[np.ndarray], np.ndarray],
) -> Chosen:
    """The augmentation ``choose(row_indices)`` of each row of an Arrow table of reinforced rows."""
    rows = table.column(ROW_INDEX).to_numpy()
    augmentations = choose(rows)
    topk = [TOPK_IDS, TOPK_PROBS] if TOPK_IDS in table.column_names else []
    lists = table.select([*policy.columns, *topk]).combine_chunks()  # one call: half the cost of one per column
    params = {name: select_elements(lists.column(name), augmentations, name) for name in policy.columns}
    ids = probs = None
    if topk:
        ids = torch.from_numpy(select_elements(lists.column(TOPK_IDS), augmentations, TOPK_IDS).astype(np.int64))
        probs = torch.from_numpy(
            select_elements(lists.column(TOPK_PROBS), augmentations, TOPK_PROBS).astype(np.float32)
        )
    has_labels = label_column is not None and label_column in table.column_names
    labels = table.column(label_column).to_pylist() if has_labels else None
    return Chosen(rows, augmentations, params, table.column(image_column), ids, probs, labels)


def from_rows(
    rows: Sequence[Mapping[str, Any]],
    policy: AugmentationPolicy,
    image_column: str,
    label_column: str | None,
    augmentations: Sequence[int] | np.ndarray,
) -> Chosen:
    """Augmentation ``augmentations[b]`` of each Python row (as ``datasets`` formats them: N-element lists)."""
    chosen = [decode_params(row, policy, index=j) for row, j in zip(rows, augmentations)]
    params = {name: np.concatenate([p[name] for p in chosen]) for name in policy.columns}
    ids = probs = None
    if rows and TOPK_IDS in rows[0]:
        ids = torch.as_tensor(np.array([row[TOPK_IDS][j] for row, j in zip(rows, augmentations)]), dtype=torch.int64)
        probs = torch.as_tensor(np.array([row[TOPK_PROBS][j] for row, j in zip(rows, augmentations)], dtype=np.float32))
    labels = [int(row[label_column]) for row in rows] if label_column and rows and label_column in rows[0] else None
    return Chosen(
        np.array([int(row.get(ROW_INDEX, -1)) for row in rows], dtype=np.int64),
        np.asarray(augmentations, dtype=np.int64),
        params,
        [row[image_column] for row in rows],
        ids,
        probs,
        labels,
    )


class Partners:
    """Random access to MixUp/CutMix partner rows by ``row_index``: their image and the parameters of one stored
    augmentation each, read from Arrow like the rows themselves."""

    def __init__(self, dataset: Any, policy: AugmentationPolicy, image_column: str) -> None:
        self.policy, self.image_column = policy, image_column
        self.rows = dataset.select_columns([image_column, ROW_INDEX, *policy.columns]).with_format("arrow")
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions in the dataset of ``row_index`` values ``rows``; a missing one raises ``KeyError`` naming it."""
        if self._sorted is None:  # built on first use, in the process that uses it (a DataLoader worker)
            stored = self.rows[ROW_INDEX].to_numpy()
            order = np.argsort(stored, kind="stable")
            self._sorted = stored[order], order
        stored, order = self._sorted
        at = np.minimum(np.searchsorted(stored, rows), max(len(stored) - 1, 0))
        missing = rows[(stored[at] != rows) if len(stored) else slice(None)]
        if len(missing):
            raise KeyError(
                f"MixUp/CutMix partner row_index {int(missing[0])} is not in the dataset given to the transform"
            )
        return order[at]

    def fetch(self, rows: np.ndarray, augmentations: np.ndarray) -> tuple[pa.ChunkedArray, Params]:
        """Image values and the parameters of augmentation ``augmentations[b]`` of partner row ``rows[b]``."""
        table = self.rows[self.positions(rows).tolist()]
        params = {name: select_elements(table.column(name), augmentations, name) for name in self.policy.columns}
        return table.column(self.image_column), params


def decode(values: Sequence[Any] | pa.ChunkedArray, rows: np.ndarray, column: str) -> list[torch.Tensor]:
    """``uint8 (3, H, W)`` pixels of each image value as the pass decoded them; a bad one raises
    :class:`~hf_reinforce.errors.BadImageError` naming its row and column."""
    values = values.to_pylist() if isinstance(values, pa.ChunkedArray) else values
    images = []
    for value, row in zip(values, rows.tolist()):
        try:
            images.append(to_rgb_uint8(value, channels_last=True))
        except Exception as error:  # noqa: BLE001 — any decoder failure is reported with its row
            raise BadImageError(f"row {row}, column {column!r}: cannot decode the image ({error})") from error
    return images


def render(
    chosen: Chosen,
    policy: AugmentationPolicy,
    partners: Partners | None,
    image_column: str,
    resolution: int,
    interpolation: str,
) -> torch.Tensor:
    """``uint8 (rows, 3, r, r)``: the chosen stored augmentation of every row, mixed with its partner's where the
    policy mixes."""
    images = decode(chosen.images, chosen.rows, image_column)
    if policy.mix is None:
        return policy.replay_views(images, chosen.params, resolution, interpolation)
    mixed = np.flatnonzero(chosen.params["aug_mix_partner"] >= 0)
    if not len(mixed):
        return policy.replay_views(images, chosen.params, resolution, interpolation)
    if partners is None:
        raise ConfigError("this policy mixes rows (MixUp/CutMix): pass dataset= so partner rows can be fetched")
    rows = chosen.params["aug_mix_partner"][mixed].astype(np.int64)
    values, partner_params = partners.fetch(rows, chosen.augmentations[mixed])
    partner_images = decode(values, rows, image_column)
    return policy.replay_views(images, chosen.params, resolution, interpolation, partner_images, partner_params)


def batch_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialized float32 tensor for a batch's normalized pixels, in a DataLoader worker in shared memory
    (:func:`~.collate.block_storage`): sending it then copies nothing, 0.1–0.25 worker CPU-ms a 224-px row less
    (measured), and the collator keeps it as the batch's ``pixel_values``."""
    return view(block_storage(4 * math.prod(shape)), 0, shape, torch.float32)
