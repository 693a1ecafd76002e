"""Collate ReinforcedTransform rows into a batch: pixels plus hard labels and teacher top-k.

The stock ``transformers.Trainer`` hands ``compute_loss_func`` only ``inputs["labels"]``, so by default the
top-k travels inside ``labels`` as one (B, 1 + 2K) float32 row per sample: ``[label, ids..., probs...]``.
The Trainer counts ``num_items_in_batch`` as ``labels.ne(-100).sum()`` over the accumulated micro-batches,
which for packed labels is ``samples * (1 + 2K)`` (no packed value can be -100: labels and ids are checked
non-negative, probabilities are in [0, 1]); ``DistillationLoss`` divides by the row width to get samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

FLOAT32_EXACT_INT_LIMIT = 2**24  # every integer below this is exact in float32


def pack_labels(
    labels: torch.Tensor, topk_ids: torch.Tensor, topk_probs: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """(B,) labels, (B, K) ids and probs → (B, 1 + 2K) float32 ``[label, ids..., probs...]`` (written into ``out``,
    float32 ``(B, 1 + 2K)``, where given)."""
    if labels.ndim != 1 or topk_ids.ndim != 2 or topk_ids.shape != topk_probs.shape or len(topk_ids) != len(labels):
        raise ValueError(
            f"expected labels (B,), topk_ids and topk_probs (B, K); got {tuple(labels.shape)}, "
            f"{tuple(topk_ids.shape)}, {tuple(topk_probs.shape)}"
        )
    for name, ids in (("labels", labels), ("topk_ids", topk_ids)):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= FLOAT32_EXACT_INT_LIMIT):
            raise ValueError(
                f"{name} must be class ids in [0, {FLOAT32_EXACT_INT_LIMIT}) to pack into float32 labels, "
                f"got range [{int(ids.min())}, {int(ids.max())}]; use DistillationCollator(pack=False) otherwise"
            )
    return torch.cat([labels[:, None].float(), topk_ids.float(), topk_probs.float()], dim=1, out=out)


def unpack_labels(
    packed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 1 + 2K) packed labels → (labels int64 (B,), topk_ids int64 (B, K), topk_probs float32 (B, K))."""
    if packed.ndim != 2 or packed.shape[1] < 3 or packed.shape[1] % 2 == 0:
        raise ValueError(
            f"packed labels must be (batch, 1 + 2K) as made by DistillationCollator, got shape {tuple(packed.shape)}"
        )
    k = (packed.shape[1] - 1) // 2
    return packed[:, 0].long(), packed[:, 1 : 1 + k].long(), packed[:, 1 + k :].float()


def _whole(values: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The tensor whose consecutive rows ``values`` are, or None: each value is contiguous, shaped like the first,
    and starts where the previous one ends inside the first's storage (memory two storages never share)."""
    first = values[0]
    storage, size = first.untyped_storage(), first.element_size() * first.numel()
    start = first.data_ptr()
    if not first.is_contiguous() or start + size * len(values) > storage.data_ptr() + storage.nbytes():
        return None
    for i, value in enumerate(values):
        if value.data_ptr() != start + i * size or value.shape != first.shape or not value.is_contiguous():
            return None
    shape, strides = (len(values), *first.shape), (first.numel(), *first.stride())
    return first.new_empty(0).set_(storage, first.storage_offset(), shape, strides)


def _stack_into(values: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """``torch.stack(values)`` written into ``out`` (converted to its dtype)."""
    if values[0].dtype == out.dtype:
        return torch.stack(values, out=out)
    return out.copy_(torch.stack(values))


def _block(fields: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
    """Tensors of the given ``(shape, dtype)`` in one block of memory: in a DataLoader worker shared memory, where the
    batch travels to the training process anyway. Each tensor in shared memory of its own would cost the worker a
    segment and a send of its own: about 0.13 CPU-ms per tensor and batch (measured); one block is one."""
    offsets, end = {}, 0
    for key, (shape, dtype) in fields.items():
        offsets[key] = -(-end // _ALIGN) * _ALIGN
        end = offsets[key] + math.prod(shape) * dtype.itemsize
    storage = block_storage(end)
    return {key: view(storage, offsets[key] // dtype.itemsize, shape, dtype) for key, (shape, dtype) in fields.items()}


_ALIGN = 64
"""Byte alignment of each tensor in a batch's block (a cache line: vectorized loops read it whole)."""


def view(storage: torch.UntypedStorage, offset: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous ``dtype`` tensor of ``shape`` over ``storage``, starting ``offset`` elements in."""
    strides = torch.empty(shape, device="meta").stride()
    return torch.empty(0, dtype=dtype).set_(storage, offset, shape, strides)


def in_worker() -> bool:
    """Whether this process is a DataLoader worker (its batches are sent to the training process)."""
    return torch.utils.data.get_worker_info() is not None


def block_storage(nbytes: int) -> torch.UntypedStorage:
    """``nbytes`` of memory for a batch: shared memory in a DataLoader worker (sending it then copies nothing), else
    ordinary memory. torch has no public call that makes shared memory without copying into it; if its
    ``_new_shared`` goes, the block is ordinary memory and the send copies it, as it would anyway."""
    if in_worker() and hasattr(torch.UntypedStorage, "_new_shared"):
        return torch.UntypedStorage._new_shared(nbytes)
    return torch.UntypedStorage(nbytes)


class PackedBatch(dict):
    """A packed batch (``pixel_values``, ``labels`` = ``[label, ids..., probs...]``): asking it for ``topk_ids`` or
    ``topk_probs`` — what a plain training loop does — says to use ``DistillationCollator(pack=False)``."""

    def __missing__(self, key: str) -> Any:
        if key in ("topk_ids", "topk_probs"):
            raise KeyError(
                f"{key!r}: DistillationCollator() packs the teacher top-k into 'labels' (B, 1 + 2K) for "
                "transformers.Trainer; in a plain training loop use DistillationCollator(pack=False), whose batches "
                "have 'labels' (B,), 'topk_ids' and 'topk_probs' (or unpack_labels(batch['labels']))"
            )
        raise KeyError(key)


@dataclass
class DistillationCollator:
    """Batch rows of ``pixel_values``, ``labels`` and optional ``topk_ids``/``topk_probs``; other keys are ignored.

    ``pack=True`` (for the stock Trainer): ``{"pixel_values", "labels": (B, 1 + 2K) packed}``.
    ``pack=False`` (any training loop): ``{"pixel_values", "labels": (B,), "topk_ids": (B, K), "topk_probs": (B, K)}``.
    Rows without top-k (e.g. an evaluation split) give ``{"pixel_values", "labels": (B,)}`` in both modes.
    """

    pack: bool = True

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate a list of transformed rows."""
        if not rows:
            raise ValueError("cannot collate an empty batch")
        missing = {"pixel_values", "labels"} - set(rows[0])
        if missing:
            raw = "; these are raw reinforced rows: apply the transform first (dataset = transform.apply(dataset))"
            raise KeyError(
                f"rows need 'pixel_values' and 'labels' (as ReinforcedTransform returns); missing {sorted(missing)} "
                f"in keys {sorted(rows[0])}" + (raw if "topk_ids" in rows[0] and "pixel_values" not in rows[0] else "")
            )
        with_topk = ["topk_ids" in row for row in rows]
        if any(with_topk) and not all(with_topk):
            raise ValueError("some rows in the batch have teacher top-k ('topk_ids') and some do not")
        fields = _FIELDS if all(with_topk) else _FIELDS[:2]
        values = {key: [torch.as_tensor(row[key]) for row in rows] for key, _ in fields}
        batch: dict[str, torch.Tensor] = {}
        for key, dtype in fields:  # rows that are consecutive views of one tensor (a rendered batch): no copy
            whole = _whole(values[key])
            if whole is not None and whole.dtype == dtype and (whole.is_shared() or not in_worker()):
                batch[key] = whole
        packed = self.pack and all(with_topk)
        small = {key: torch.stack(values[key]) for key, _ in fields[1:]} if packed else {}
        shapes = {
            key: ((len(rows), *values[key][0].shape), dtype)
            for key, dtype in fields
            if key not in batch and key not in small
        }
        if packed:
            k = small["topk_ids"].shape[-1] if small["topk_ids"].ndim == 2 else 0
            shapes["labels"] = ((len(rows), 1 + 2 * k), torch.float32)
        for key, out in (_block(shapes) if shapes else {}).items():
            if key == "labels" and packed:
                batch[key] = pack_labels(small["labels"], small["topk_ids"], small["topk_probs"], out=out)
            else:
                batch[key] = _stack_into(values[key], out)
        if packed:
            return PackedBatch(pixel_values=batch["pixel_values"], labels=batch["labels"])
        return {key: batch[key] for key, _ in fields}


_FIELDS = (
    ("pixel_values", torch.float32),
    ("labels", torch.int64),
    ("topk_ids", torch.int64),
    ("topk_probs", torch.float32),
)
"""What a batch holds and as which dtype: ``pixel_values`` and ``labels``, and the teacher top-k where rows have it."""
