"""Reinforcement bytes per stored augmentation, per column, at K=10 with rrc+ra+re (docs/concepts/format.md).

The figure is ``hf_reinforce.storage.shards.bytes_per_stored_augmentation``, the one the run record, CLI, card and
``estimate`` report: compressed parquet bytes of the reinforcement columns over rows × N.

The top-k come from a simulated ImageNet-like ensemble (1000 classes, a few dominant classes per image, noise per
augmentation): no ImageNet teachers are available offline. Run: python scripts/bench_storage.py [--rows 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hf_reinforce.augment import AugmentationPolicy
from hf_reinforce.storage.format import parquet_options
from hf_reinforce.storage.shards import BYTES_PER_AUGMENTATION, bytes_per_stored_augmentation
from hf_reinforce.testing import simulated_rows  # the same generator the budget test uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--augmentations", type=int, default=400)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--policy", nargs="+", default=["rrc+ra+re"], help="one table per policy")
    common.add_markdown_argument(parser)
    args = parser.parse_args()
    with common.markdown_output(args.markdown):
        for policy in args.policy:
            table(args, policy)


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


if __name__ == "__main__":
    main()
