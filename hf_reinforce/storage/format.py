"""The reinforced-data format: column Features, schema version, top-k and parameter encoding, parquet options.

New columns per row (N = augmentations, K = top-k), all fixed-shape typed lists:

* one or more ``aug_*`` parameter columns per op of the policy (see ``AugmentationPolicy.columns``), ``N × ...``
* ``topk_ids``  — ``N × K`` class ids, ``int16`` when the dataset has ≤ 32767 classes, else ``int32``
* ``topk_probs`` — ``N × K`` ensemble probabilities, ``float16``, sorted descending within each augmentation
* ``replay_fingerprint`` — ``int64``, a hash of the pixels of stored augmentation :data:`FINGERPRINT_AUGMENTATION`
  as the teachers saw it (the first teacher's resolution and interpolation): replaying it elsewhere and comparing
  tells whether replay is exact there (schema 2 on; :func:`replay_fingerprint`)

Schema versions: 1 (hf_reinforce 0.1) has no ``replay_fingerprint``; 2 adds it. Every earlier version is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from datasets import Features, List, Value

from ..augment import AugmentationPolicy, Params
from ..errors import ConfigError, SchemaVersionError

SCHEMA_VERSION = 2
ROW_INDEX = "row_index"
TOPK_IDS = "topk_ids"
TOPK_PROBS = "topk_probs"
FINGERPRINT = "replay_fingerprint"
FINGERPRINT_SINCE = 2
"""The first schema version whose rows carry a :data:`FINGERPRINT`."""
FINGERPRINT_AUGMENTATION = 0
"""The stored augmentation a row's fingerprint hashes: the first, which every N holds (so growing a dataset with
``extend`` keeps each row's fingerprint)."""

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": False, "write_statistics": False}
"""Options for ``pyarrow.parquet.ParquetWriter``, chosen by measurement (docs "Format"): zstd without dictionaries.
The byte-stream-split columns and the levels depend on the columns: use :func:`parquet_options`."""

BYTE_STREAM_SPLIT = (TOPK_PROBS, TOPK_IDS, "aug_re")
"""Columns stored byte-stream-split (the k-th bytes of all values side by side, which zstd compresses better): the
float16 probabilities (their exponents), the class ids and the erasing boxes (stored as 32-bit integers, whose high
bytes are zeros). Measured at K=10, ``rrc+ra+re``, 1000 classes (``scripts/bench_storage.py``'s rows), bytes per
stored augmentation at N=16 / 400: ids 13.96 → 12.96 / 11.35 → 10.72, erasing 2.68 → 2.57 / 2.89 → 2.58, writing
CPU 14 → 8 µs per augmentation; the crop boxes grow (7.74 → 8.09), so they are not split."""

TOPK_LEVEL, PARAMS_LEVEL = 19, 9
"""zstd levels of the top-k columns and of ``row_index`` + the ``aug_*`` columns. Measured at K=10, ``rrc+ra+re``,
N=400, 1000 classes (``scripts/bench_storage.py``'s rows), bytes and writing CPU per stored augmentation: top-k at
level 19 25.4 B in 20 µs (level 9: 26.6 B in 2 µs); the parameters at level 19 10.8 B in 28 µs, at level 9 12.1 B in
1.5 µs. The parameters' 1.3 B are not worth 26 µs of the main process's CPU per view (an eighth of the 32-px pass)."""


PARQUET_ROW_GROUP_ROWS = 128
"""The fewest rows per parquet row group of a shard. Row groups of one 16-row block stored the reinforcement columns in
37.1 B per augmentation, 128 rows in 35.8 B (K=10, ``rrc+ra+re``, N=400, all at zstd-19; writing time the same); a
row group of 128 rows of 224-px JPEGs is about 15 MB, which a reader holds at once."""

PARQUET_ROW_GROUP_AUGMENTATIONS = 8192
"""Stored augmentations per row group at the least: at small N a row group holds more rows (512 at N=16), because
zstd compresses the top-k better over more values (N=16: 40.9 B per augmentation in 128-row groups, 39.9 B in
512-row groups; measured as :data:`BYTE_STREAM_SPLIT`)."""


def row_group_rows(num_augmentations: int) -> int:
    """Rows per parquet row group of a shard of rows with ``num_augmentations`` stored augmentations each."""
    return max(PARQUET_ROW_GROUP_ROWS, -(-PARQUET_ROW_GROUP_AUGMENTATIONS // max(1, num_augmentations)))


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """:data:`PARQUET_OPTIONS` for ``schema``, the :data:`BYTE_STREAM_SPLIT` columns it has, and a zstd level per
    leaf column: :data:`TOPK_LEVEL` for ``topk_*``, :data:`PARAMS_LEVEL` for the other reinforcement columns, zstd's
    default level for the source columns kept beside them. Images are compressed already: on real JPEG rows level 19
    cost 22 CPU-ms per row (1.4 ms per stored view at N=16) to save 5 % (measured)."""
    levels = {
        leaf: TOPK_LEVEL if field.name in (TOPK_IDS, TOPK_PROBS) else PARAMS_LEVEL
        for field in schema
        if is_reinforcement_column(field.name)
        for leaf in _parquet_leaves(field.name, field.type)
    }
    split = [leaf for f in schema if f.name in BYTE_STREAM_SPLIT for leaf in _parquet_leaves(f.name, f.type)]
    return {**PARQUET_OPTIONS, "use_byte_stream_split": split, "compression_level": levels}


def is_reinforcement_column(name: str) -> bool:
    """Whether a column is one a pass adds (``row_index``, ``aug_*``, ``topk_ids``, ``topk_probs``,
    ``replay_fingerprint``)."""
    return name in (ROW_INDEX, TOPK_IDS, TOPK_PROBS, FINGERPRINT) or name.startswith("aug_")


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
    """``datasets.Features`` of the columns added by a reinforcement pass (parameters, top-k, fingerprint).

    Args:
        policy: the augmentation policy (its ops give the ``aug_*`` columns).
        num_augmentations: N, stored augmentations per row.
        top_k: K, classes stored per augmentation.
        num_classes: the dataset's class count (it picks ``int16`` or ``int32`` ids).

    Returns:
        The features of the ``aug_*``, ``topk_ids``, ``topk_probs`` and ``replay_fingerprint`` columns
        (``row_index`` is the pass's own).

    Raises:
        ValueError: ``top_k`` outside ``[1, num_classes]`` or ``num_augmentations`` below 1.
    """
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
    features[FINGERPRINT] = Value("int64")
    return Features(features)


def replay_fingerprint(view: torch.Tensor) -> int:
    """The 64-bit fingerprint of a rendered ``uint8 (3, r, r)`` view: the 8-byte BLAKE2b hash of its shape and its
    pixels in channel-first order, read as a little-endian signed integer (an ``int64`` column: Python, pandas and
    JSON hold it without overflow). The same pixels give the same number on every machine; one differing pixel gives
    another (but for a 2**-64 chance)."""
    if view.dtype != torch.uint8 or view.ndim != 3:
        raise ValueError(f"a fingerprint is taken of one uint8 (3, r, r) view, got {view.dtype} {tuple(view.shape)}")
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.asarray(view.shape, dtype="<i8").tobytes())
    digest.update(view.detach().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little", signed=True)


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
        size = values.type.list_size
        shape.append(size)  # the child array sliced to this one (flatten() costs 4 µs a call, slicing 1 µs)
        values = values.values.slice(values.offset * size, len(values) * size)
    if pa.types.is_nested(values.type):  # variable-length lists, structs: the slow, general way
        return np.asarray(array.to_pylist())
    return values.to_numpy(zero_copy_only=False).reshape(shape)


def select_elements(column: pa.ChunkedArray | pa.Array, positions: np.ndarray, name: str) -> np.ndarray:
    """Element ``positions[r]`` of row ``r``'s stored list (``N × ...`` per row) for every row of an Arrow column, as
    one numpy array ``(rows, ...)``, without a Python object per stored value.

    The column is made one contiguous array first: a shuffled ``datasets`` batch arrives as one chunk per row, and
    one copy in C (12 µs per row at N=1000, K=10, ``rrc+ra+re``, measured) costs less than reading each row's
    element with its own Arrow calls (17–105 µs per row) or the Python lists ``datasets`` formatting makes (10 ms).

    Raises:
        ConfigError: a row's list is shorter than its position (naming ``name``).
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    array = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    rows = np.arange(len(array))
    if pa.types.is_fixed_size_list(array.type) and array.null_count == 0:
        if len(positions) and int(np.max(positions)) >= array.type.list_size:
            raise ConfigError(_short(name, array.type.list_size, int(np.max(positions))))
        return _to_numpy(array)[rows, positions]
    starts = array.offsets.to_numpy()
    lengths = np.diff(starts)
    short = np.flatnonzero(positions >= lengths)
    if len(short):
        raise ConfigError(_short(name, int(lengths[short[0]]), int(positions[short[0]])))
    return _to_numpy(array.flatten().take(pa.array(starts[:-1] - starts[0] + positions)))


def _short(name: str, length: int, position: int) -> str:
    return f"column {name!r}: a row stores {length} augmentations, augmentation {position} was asked for"


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
