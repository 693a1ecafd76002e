"""The hash of the source rows a shard was made from: a rerun keeps a shard only if its rows still hash the same.

Images are read from their files when the dataset holds only paths, so a file rewritten in place is seen, whatever
its mtime or the dataset's fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import embed_table_storage


def source_rows_sha256(dataset: datasets.Dataset, rows: range, columns: Sequence[str]) -> str:
    """sha256 of the values of ``columns`` in ``rows`` of ``dataset``, images read from their files when the
    dataset holds only paths (so a file rewritten in place is seen, whatever its mtime or the fingerprint). An
    image file that cannot be read is hashed by its path: the pass reports or skips its row (``skip_bad_images``),
    and a rerun recomputes the shard once the file can be read."""
    table = _embedded(dataset.select_columns(list(columns)).with_format("arrow")[rows.start : rows.stop])
    digest = hashlib.sha256()
    for name in columns:
        _feed(digest, name)
        _feed_array(digest, table.column(name).combine_chunks())
    return digest.hexdigest()


def labels_sha256(dataset: datasets.Dataset, label_column: str | None) -> str | None:
    """sha256 of the whole label column (``None`` without labels): what ``attach`` checks a source's labels against."""
    if label_column is None:
        return None
    return source_rows_sha256(dataset, range(len(dataset)), [label_column])


def _embedded(table: pa.Table) -> pa.Table:
    """``table`` with the files its image paths name read in; rows whose file cannot be read keep their path."""
    try:
        return embed_table_storage(table)
    except OSError:
        return pa.concat_tables([_embedded_row(table.slice(i, 1)) for i in range(table.num_rows)])


def _embedded_row(row: pa.Table) -> pa.Table:
    try:
        return embed_table_storage(row)
    except OSError:
        return row


def _feed_array(digest: Any, array: pa.Array) -> None:
    """Feed a whole column: lists of numbers (image arrays, embeddings) by their lengths and values' bytes, at
    numpy speed; anything else value by value."""
    if isinstance(array, pa.ExtensionArray):  # datasets' Array2D..Array5D: nested fixed-size lists in storage
        array = array.storage
    kind = array.type
    if array.null_count == 0 and pa.types.is_fixed_size_list(kind):
        digest.update(b"F%d:" % kind.list_size)
        _feed_array(digest, array.flatten())
    elif array.null_count == 0 and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        digest.update(b"A")
        digest.update(pc.list_value_length(array).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
        _feed_array(digest, array.flatten())
    elif array.null_count == 0 and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    ):
        digest.update(b"P%s:" % str(kind).encode())
        digest.update(array.to_numpy(zero_copy_only=False))
    else:
        for value in array.to_pylist():
            _feed(digest, value)


def _feed(digest: Any, value: Any) -> None:
    """Feed one Python value of an Arrow column to ``digest``, type- and length-prefixed (no two values collide)."""
    if value is None:
        digest.update(b"N")
    elif isinstance(value, bytes):
        digest.update(b"B%d:" % len(value))
        digest.update(value)
    elif isinstance(value, str):
        data = value.encode()
        digest.update(b"S%d:" % len(data))
        digest.update(data)
    elif isinstance(value, dict):
        digest.update(b"D%d:" % len(value))
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(b"L%d:" % len(value))
        for item in value:
            _feed(digest, item)
    else:
        digest.update(b"V%s;" % repr(value).encode())


__all__ = ["labels_sha256", "source_rows_sha256"]
