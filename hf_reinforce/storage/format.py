"""The reinforced-data format: column Features, schema version, top-k and parameter encoding, parquet options.

New columns per row (N = augmentations, K = top-k), all fixed-shape typed lists:

* one or more ``aug_*`` parameter columns per op of the policy (see ``AugmentationPolicy.columns``), ``N × ...``
* ``topk_ids``  — ``N × K`` class ids, ``int16`` when the dataset has ≤ 32767 classes, else ``int32``
* ``topk_probs`` — ``N × K`` ensemble probabilities, ``float16``, sorted descending within each augmentation
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from datasets import Features, List, Value

from ..augment import AugmentationPolicy, Params
from ..errors import SchemaVersionError

SCHEMA_VERSION = 1
ROW_INDEX = "row_index"
TOPK_IDS = "topk_ids"
TOPK_PROBS = "topk_probs"

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": False,
    "use_byte_stream_split": [f"{TOPK_PROBS}.list.element.list.element"],
    "write_statistics": False,
}
"""Options for ``pyarrow.parquet.ParquetWriter``, chosen by measurement (README "Format"): zstd without
dictionaries, and byte-stream-split float16 probabilities, which puts their exponents side by side. The levels
depend on the columns: use :func:`parquet_options`."""

TOPK_LEVEL, PARAMS_LEVEL = 19, 9
"""zstd levels of the top-k columns and of ``row_index`` + the ``aug_*`` columns. Measured at K=10, ``rrc+ra+re``,
N=400, 1000 classes (``scripts/bench_storage.py``'s rows), bytes and writing CPU per stored augmentation: top-k at
level 19 25.4 B in 20 µs (level 9: 26.6 B in 2 µs); the parameters at level 19 10.8 B in 28 µs, at level 9 12.1 B in
1.5 µs. The parameters' 1.3 B are not worth 26 µs of the main process's CPU per view (an eighth of the 32-px pass)."""


PARQUET_ROW_GROUP_ROWS = 128
"""Rows per parquet row group of a shard. Row groups of one 16-row block stored the reinforcement columns in 37.1 B
per augmentation, 128 rows in 35.8 B (K=10, ``rrc+ra+re``, N=400, all at zstd-19; writing time the same); a row
group of 128 rows of 224-px JPEGs is about 15 MB, which a reader holds at once."""


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """:data:`PARQUET_OPTIONS` for ``schema``, with a zstd level per leaf column: :data:`TOPK_LEVEL` for
    ``topk_*``, :data:`PARAMS_LEVEL` for ``row_index`` and ``aug_*``, zstd's default level for the source columns
    kept beside them. Images are compressed already: on real JPEG rows level 19 cost 22 CPU-ms per row (1.4 ms per
    stored view at N=16) to save 5 % (measured)."""
    levels = {
        leaf: TOPK_LEVEL if field.name in (TOPK_IDS, TOPK_PROBS) else PARAMS_LEVEL
        for field in schema
        if is_reinforcement_column(field.name)
        for leaf in _parquet_leaves(field.name, field.type)
    }
    return {**PARQUET_OPTIONS, "compression_level": levels}


def is_reinforcement_column(name: str) -> bool:
    """Whether a column is one a pass adds (``row_index``, ``aug_*``, ``topk_ids``, ``topk_probs``)."""
    return name in (ROW_INDEX, TOPK_IDS, TOPK_PROBS) or name.startswith("aug_")


def _parquet_leaves(path: str, type_: pa.DataType) -> list[str]:
    """Parquet column paths of the leaves of an Arrow field (lists become ``<path>.list.element``)."""
    if pa.types.is_struct(type_):
        return [leaf for f in type_ for leaf in _parquet_leaves(f"{path}.{f.name}", f.type)]
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return _parquet_leaves(f"{path}.list.element", type_.value_type)
    return [path]


def topk_id_dtype(num_classes: int) -> str:
    """``"int16"`` when class ids fit (≤ 32767 classes), else ``"int32"``; never a float."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return "int16" if num_classes <= 32767 else "int32"


def _list(inner: Any, length: int) -> List:
    return List(inner, length=length)


def reinforce_features(policy: AugmentationPolicy, num_augmentations: int, top_k: int, num_classes: int) -> Features:
    """``datasets.Features`` of the columns added by a reinforcement pass (parameters, then top-k)."""
    if top_k < 1 or top_k > num_classes:
        raise ValueError(f"top_k must be in [1, num_classes={num_classes}], got {top_k}")
    if num_augmentations < 1:
        raise ValueError(f"num_augmentations must be >= 1, got {num_augmentations}")
    features: dict[str, Any] = {}
    for name, (dtype, shape) in policy.columns.items():
        inner = Value(dtype) if not shape else _list(Value(dtype), shape[0])
        features[name] = _list(inner, num_augmentations)
    features[TOPK_IDS] = _list(_list(Value(topk_id_dtype(num_classes)), top_k), num_augmentations)
    features[TOPK_PROBS] = _list(_list(Value("float16"), top_k), num_augmentations)
    return Features(features)


def encode_topk(probs: torch.Tensor, k: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of probabilities ``(..., C)``: ids (``int16``/``int32``) and float16 probabilities, sorted descending."""
    if probs.shape[-1] != num_classes:
        raise ValueError(f"expected {num_classes} class probabilities, got {probs.shape[-1]}")
    values, ids = torch.topk(probs.float(), k, dim=-1, largest=True, sorted=True)
    return (
        ids.cpu().numpy().astype(topk_id_dtype(num_classes)),
        values.cpu().numpy().astype(np.float16),
    )


def topk_residual(topk_sum: Any) -> Any:
    """The probability mass a stored top-k leaves for the other ``C - K`` classes, ``1 - sum(top-k)`` clipped at 0
    (float16 sums can exceed 1 slightly), for a numpy array or torch tensor of top-k sums. Expanding a top-k to a full
    distribution spreads it evenly over those classes (the loss, the report's entropy and ``show`` alike); never a
    softmax of probabilities."""
    return (1.0 - topk_sum).clip(0.0, None)


def to_arrow(values: np.ndarray) -> pa.Array:
    """A numpy array ``(rows, d1, d2, ...)`` as an Arrow array of nested fixed-size lists (one element per row),
    the storage of ``datasets`` ``List(..., length=d)`` features, without a per-row Python conversion."""
    array: pa.Array = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def read_columns(dataset: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """Whole columns of a ``datasets.Dataset`` as numpy arrays, read through Arrow: fixed-size lists become extra
    dimensions without a per-row Python conversion. (Not the numpy formatter: datasets 4.0's imports
    ``torchvision.io.VideoReader``, which torchvision 0.29 no longer has.)"""
    return table_columns(dataset.with_format("arrow", columns=columns)[:], columns)


def table_columns(table: pa.Table, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns of an Arrow table as numpy arrays (fixed-size lists become extra dimensions)."""
    return {name: _to_numpy(table.column(name).combine_chunks()) for name in columns}


def _to_numpy(array: pa.Array) -> np.ndarray:
    values, shape = array, [len(array)]
    while pa.types.is_fixed_size_list(values.type) and values.null_count == 0:
        shape.append(values.type.list_size)
        values = values.flatten()
    if pa.types.is_nested(values.type):  # variable-length lists, structs: the slow, general way
        return np.asarray(array.to_pylist())
    return values.to_numpy(zero_copy_only=False).reshape(shape)


def decode_params(row: Mapping[str, Any], policy: AugmentationPolicy, index: int | None = None) -> Params:
    """The stored parameters of one row as typed numpy arrays: all N augmentations (leading dimension N), or with
    ``index`` only augmentation ``index`` (leading dimension 1, reading just that element of each stored list)."""
    params: Params = {}
    for name, (dtype, _shape) in policy.columns.items():
        if name not in row:
            raise KeyError(f"column {name!r} of policy is missing from the row (columns: {sorted(row)})")
        value = row[name]
        value = value.numpy() if isinstance(value, torch.Tensor) else value
        value = value if index is None else [value[index]]
        params[name] = np.asarray(value).astype(dtype, copy=False)
    return params


def decode_topk(row: Mapping[str, Any], index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(topk_ids int64, topk_probs float32)`` of one row: ``(N, K)``, or ``(K,)`` of augmentation ``index``."""
    ids, probs = (row[TOPK_IDS], row[TOPK_PROBS]) if index is None else (row[TOPK_IDS][index], row[TOPK_PROBS][index])
    return torch.as_tensor(np.asarray(ids), dtype=torch.int64), torch.as_tensor(np.asarray(probs, dtype=np.float32))


def check_schema_version(version: int) -> None:
    """Refuse data written by a newer schema than this library reads, naming both versions."""
    if int(version) > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"this data uses hf_reinforce schema version {version}, but the installed hf_reinforce reads up to "
            f"version {SCHEMA_VERSION}: upgrade hf_reinforce (pip install -U hf-reinforce)"
        )
