"""One definition of "reinforcement bytes per stored augmentation" (storage.shards.bytes_per_stored_augmentation): the run
record, the card, the CLI summary and ``estimate`` report the same figure, and images never count in it."""

from __future__ import annotations

import pytest
from huggingface_hub import DatasetCard

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.hub.card import build_card
from hf_reinforce.storage.shards import BYTES_PER_AUGMENTATION, bytes_per_stored_augmentation


def test_bytes_per_stored_augmentation_count_the_reinforcement_columns_only(tmp_path):
    ds = testing.mnist_dataset(16, key_column="key")
    config = testing.tiny_config(num_augmentations=2, augmentations_per_step=2, num_workers=0)
    hfr.reinforce(ds, config, tmp_path / "full", progress=False)
    only = testing.tiny_config(num_augmentations=2, augmentations_per_step=2, num_workers=0, reinforcement_only=True)
    hfr.reinforce(ds, only, tmp_path / "only", progress=False)
    full, bare = (hfr.load_record(tmp_path / name).split("train") for name in ("full", "only"))
    # the same reinforcement columns: the same figure, with or without the images beside them (before: 3× apart)
    assert full.bytes_per_augmentation == bare.bytes_per_augmentation
    assert full.num_bytes > 1.5 * bare.num_bytes
    shards = sorted((tmp_path / "full" / "data").glob("*.parquet"))
    assert full.bytes_per_augmentation == round(bytes_per_stored_augmentation(shards, 2), 2)

    card = DatasetCard.load(tmp_path / "full" / "README.md").text
    assert f"| {BYTES_PER_AUGMENTATION} |" in card and f"| {full.bytes_per_augmentation} |" in card
    assert f"| {round(full.num_bytes / 16, 1)} |" in card  # bytes per row, images included, named apart

    # estimate calibrates on the same 16 rows × 2 augmentations: the same definition gives the same figure
    estimate = hfr.estimate(ds, config, calibration_rows=16, calibration_augmentations=2)
    assert estimate.bytes_per_augmentation == pytest.approx(full.bytes_per_augmentation, rel=0.05)
    assert f"{BYTES_PER_AUGMENTATION}  {estimate.bytes_per_augmentation:.1f} B" in str(estimate)


def test_a_split_whose_rows_were_all_skipped_has_a_card():
    """No rows written: bytes per row is shown as a dash, not a division by zero."""
    shard = hfr.ShardRecord("train-00000-of-00001.parquet", (0, 1), 0, 100, "0" * 64, "0" * 64, skipped_rows=(0,))
    stats = hfr.SplitRecord(split="train", num_rows=1).with_stats([shard], bytes_per_augmentation=0.0)
    assert (
        "| train | 0 | 1 | 100 | – | 0.0 | 1 |"
        in build_card(testing.run_record(splits={"train": stats.to_dict()})).text
    )
