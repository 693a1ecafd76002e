"""Reinforcement bytes per stored augmentation, per column, at K=10 with rrc+ra+re (docs/concepts/format.md).

The figure is ``hf_reinforce.storage.shards.bytes_per_stored_augmentation``, the one the run record, CLI, card and
``estimate`` report: compressed parquet bytes of the reinforcement columns over rows × N.

The top-k come from a simulated ImageNet-like ensemble (1000 classes, a few dominant classes per image, noise per
augmentation): no ImageNet teachers are available offline. Run: python scripts/bench_storage.py [--rows 200]

With ``--layouts``: the format's layout (one typed ``N × ...`` list per column and row) against two others a schema
could use (one flat list per row; one binary value per row, the byte-stream-split columns byte-planar inside it): bytes
per stored augmentation and CPU-ms per row to read every reinforcement column of a file, which is what a stream pays
whatever augmentation it then keeps (parquet decodes a row group's columns whole).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hf_reinforce.augment import AugmentationPolicy
from hf_reinforce.storage.format import (
    BYTE_STREAM_SPLIT,
    is_reinforcement_column,
    parquet_options,
    row_group_rows,
    table_columns,
)
from hf_reinforce.storage.shards import BYTES_PER_AUGMENTATION, bytes_per_stored_augmentation
from hf_reinforce.testing import simulated_rows  # the same generator the budget test uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--augmentations", type=int, default=400)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--policy", nargs="+", default=["rrc+ra+re"], help="one table per policy")
    parser.add_argument("--layouts", action="store_true", help="instead, compare storage layouts (see above)")
    parser.add_argument("--repeats", type=int, default=5, help="reads per layout with --layouts (the least counts)")
    common.add_markdown_argument(parser)
    args = parser.parse_args()
    with common.markdown_output(args.markdown):
        for policy in args.policy:
            (layouts if args.layouts else table)(args, policy)


def table(args: argparse.Namespace, policy: str) -> None:
    """Bytes per stored augmentation of each column of ``args.rows`` simulated rows reinforced with ``policy``."""
    ds = simulated_rows(AugmentationPolicy.parse(policy), args.rows, args.augmentations, args.top_k, 1000)
    views = args.rows * args.augmentations
    with tempfile.TemporaryDirectory() as tmp:
        ours, defaults = Path(tmp) / "ours.parquet", Path(tmp) / "defaults.parquet"
        pq.write_table(ds.data.table, ours, **parquet_options(ds.data.table.schema))
        pq.write_table(ds.data.table, defaults)
        print(f"\n{policy}, N={args.augmentations}, K={args.top_k}, 1000 classes, {args.rows} rows:\n")
        print("| column | bytes per augmentation |\n|---|---|")
        group = pq.ParquetFile(ours).metadata.row_group(0)
        for c in range(group.num_columns):
            column = group.column(c)
            print(f"| {column.path_in_schema.split('.')[0]} | {column.total_compressed_size / views:.2f} |")
        ours_b, defaults_b = (bytes_per_stored_augmentation([p], args.augmentations) for p in (ours, defaults))
        print(f"| **{BYTES_PER_AUGMENTATION} (hf_reinforce options)** | **{ours_b:.2f}** |")
        print(f"| {BYTES_PER_AUGMENTATION} (parquet defaults) | {defaults_b:.2f} |")
        print(
            f"| file size / augmentation, footer included (hf_reinforce options) | {os.path.getsize(ours) / views:.2f} |"
        )


def layouts(args: argparse.Namespace, policy: str) -> None:
    """Bytes per stored augmentation and CPU-ms per row to read every reinforcement column, per layout."""
    data = simulated_rows(AugmentationPolicy.parse(policy), args.rows, args.augmentations, args.top_k, 1000)
    schema = data.data.schema
    table = data.data.table.select(
        [f.name for f in schema if is_reinforcement_column(f.name) and pa.types.is_fixed_size_list(f.type)]
    )
    tables = {
        "typed N × ... lists (the format)": table,
        "one flat list per row": _flat(table),
        "one binary value per row": _binary(table),
    }
    print(f"\n{policy}, N={args.augmentations}, K={args.top_k}, 1000 classes, {args.rows} rows:\n")
    print("| layout | bytes per augmentation | CPU-ms per row to read |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, layout in tables.items():
            path = Path(tmp) / "layout.parquet"
            options = parquet_options(layout.schema)
            if label.startswith("one binary"):
                options["use_byte_stream_split"] = []  # the values are byte-planar already
            pq.write_table(layout, path, row_group_size=row_group_rows(args.augmentations), **options)
            _check_values(table, pq.read_table(path))
            seconds = min(_read_seconds(path) for _ in range(args.repeats))
            stored = bytes_per_stored_augmentation([path], args.augmentations)
            print(f"| {label} | {stored:.2f} | {1e3 * seconds / args.rows:.3f} |")
    print(f"\nreading: pyarrow.parquet iter_batches over the file, least of {args.repeats}; {common.machine_info()}")


def _leaves(table: pa.Table, name: str) -> np.ndarray:
    """A column of nested fixed-size lists as ``(rows, values per row)``."""
    values = table_columns(table, [name])[name]
    return values.reshape(len(values), -1)


def _flat(table: pa.Table) -> pa.Table:
    columns = {}
    for name in table.column_names:
        values = _leaves(table, name)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    return pa.table(columns)


def _binary(table: pa.Table) -> pa.Table:
    columns = {}
    for name in table.column_names:
        values = _leaves(table, name)
        raw = np.ascontiguousarray(values).view(np.uint8).reshape(*values.shape, values.itemsize)
        if name in BYTE_STREAM_SPLIT:  # byte-planar: the k-th bytes of a row's values side by side
            raw = raw.transpose(0, 2, 1)
        raw = np.ascontiguousarray(raw).reshape(len(values), -1)
        columns[name] = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(raw.shape[1]), len(raw), [None, pa.py_buffer(raw)]
        )
    return pa.table(columns)


def _check_values(table: pa.Table, stored: pa.Table) -> None:
    """Every layout stores the same values: a layout that lost some would be measured for nothing."""
    for name in table.column_names:
        values = _leaves(table, name)
        column = stored.column(name).combine_chunks()
        if pa.types.is_fixed_size_binary(column.type):  # the inverse of _binary
            raw = np.frombuffer(column.buffers()[1], np.uint8, len(column) * column.type.byte_width)
            if name in BYTE_STREAM_SPLIT:
                raw = raw.reshape(len(values), values.itemsize, -1).transpose(0, 2, 1)
            back = np.ascontiguousarray(raw).reshape(-1).view(values.dtype).reshape(values.shape)
        else:
            back = _leaves(stored, name)
        if not np.array_equal(back, values):
            raise AssertionError(f"column {name!r}: the layout does not store the same values")


def _read_seconds(path: Path) -> float:
    start = time.process_time()
    for _ in pq.ParquetFile(path).iter_batches(batch_size=1024):
        pass
    return time.process_time() - start


if __name__ == "__main__":
    main()
