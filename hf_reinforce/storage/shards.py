"""Shards: writing one (streamed row groups, atomic, hashed, recorded), checking one against its record, and the
one definition of the reinforcement bytes per stored augmentation."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import embed_table_storage

from .files import file_sha256, write_parquet_atomic
from .format import (
    FINGERPRINT,
    FINGERPRINT_SINCE,
    ROW_INDEX,
    is_reinforcement_column,
    reinforce_features,
    row_group_rows,
)
from .paths import DATA_DIR, outside_folder
from .record import RunRecord, ShardRecord


def write_shard(
    table: pa.Table,
    path: Path,
    *,
    num_augmentations: int,
    rows: range,
    source_sha256: str | None,
    skipped_rows: Iterable[int] = (),
) -> ShardRecord:
    """Write ``table`` to the parquet shard ``path`` (atomically, in row groups of
    :func:`~.format.row_group_rows` rows, external image files embedded so the folder is self-contained) and return
    its record: ``rows`` is the source row range it covers, ``source_sha256`` the hash of those source rows (``None``
    for a shard saved from an in-process dataset, which nothing resumes)."""
    size = write_parquet_atomic(_row_groups(table, row_group_rows(num_augmentations)), table.schema, path)
    return ShardRecord(
        file=path.name,
        rows=(rows.start, rows.stop),
        num_rows=table.num_rows,
        num_bytes=size,
        sha256=file_sha256(path),
        source_sha256=source_sha256,
        skipped_rows=tuple(skipped_rows),
    )


def _row_groups(table: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    """One record batch per row group of ``rows`` rows, external image files embedded; only those rows are held in
    memory."""
    for start in range(0, table.num_rows, rows):
        yield from embed_table_storage(table.slice(start, rows)).combine_chunks().to_batches()


def shard_problem(output_dir: str | os.PathLike, shard: ShardRecord, record: RunRecord) -> str | None:
    """Why the file of ``shard`` is not the one recorded, or ``None``: missing, a link out of the folder, another
    size or sha256, or other rows or reinforcement columns than ``record`` says (N, K, the policy's parameters)."""
    name = f"{DATA_DIR}/{shard.file}"
    path = Path(output_dir) / DATA_DIR / shard.file
    target = outside_folder(output_dir, name)
    if target is not None:
        return f"{name} is a link to {target}, outside the folder (a shard must be the folder's own file)"
    if not path.is_file():
        return f"{name} is missing"
    size = path.stat().st_size
    if size != shard.num_bytes:
        return f"{name} has {size} bytes, {shard.num_bytes} were written (truncated or replaced)"
    if file_sha256(path) != shard.sha256:
        return f"{name} does not match the sha256 recorded when it was written (corrupted or replaced)"
    return _content_problem(path, name, shard, record)


def _content_problem(path: Path, name: str, shard: ShardRecord, record: RunRecord) -> str | None:
    """Whether the parquet file holds the recorded rows and the columns of ``record`` (its footer only)."""
    try:
        metadata = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as error:
        return f"{name} is not a parquet file ({error})"
    if metadata.num_rows != shard.num_rows:
        return f"{name} holds {metadata.num_rows} rows, the record says {shard.num_rows}"
    schema = metadata.schema.to_arrow_schema()
    expected = reinforce_features(record.policy, record.num_augmentations, record.top_k, record.num_classes)
    columns = {ROW_INDEX: pa.int64(), **dict(zip(expected.arrow_schema.names, expected.arrow_schema.types))}
    if record.schema_version < FINGERPRINT_SINCE:
        del columns[FINGERPRINT]
    extra = [column for column in schema.names if is_reinforcement_column(column) and column not in columns]
    columns.update(dict.fromkeys(extra))  # stored, but not by the record's policy
    for column, kind in columns.items():
        found = schema.field(column).type if column in schema.names else None
        if found != kind:
            return (
                f"{name}: column {column!r} is {found or 'missing'}, the record (N={record.num_augmentations}, "
                f"K={record.top_k}, policy {record.policy_name}) says {kind or 'there is none'}"
            )
    return None


BYTES_PER_AUGMENTATION = "reinforcement bytes per stored augmentation"
"""The one name of :func:`bytes_per_stored_augmentation`'s figure, as the CLI, the card and ``estimate`` print it."""


def bytes_per_stored_augmentation(paths: Iterable[str | os.PathLike], num_augmentations: int) -> float:
    """Reinforcement bytes per stored augmentation: the compressed bytes of the reinforcement columns
    (``row_index``, ``aug_*``, ``topk_*``) in the parquet column chunks of ``paths``, over rows × N. Images and other
    source columns, parquet footers and file metadata do not count (total bytes per row, images included, is the
    split's ``num_bytes / num_rows_written``). The one definition behind the run record's ``bytes_per_augmentation``,
    the CLI summary, the card, ``estimate``, the docs and ``scripts/bench_storage.py``."""
    total, rows = 0, 0
    for path in paths:
        meta = pq.read_metadata(path)
        rows += meta.num_rows
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if is_reinforcement_column(chunk.path_in_schema.split(".")[0]):
                    total += chunk.total_compressed_size
    return total / max(rows * num_augmentations, 1)


__all__ = ["BYTES_PER_AUGMENTATION", "bytes_per_stored_augmentation", "shard_problem", "write_shard"]
