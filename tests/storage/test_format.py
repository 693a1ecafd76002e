"""The stored format: Features, dtypes through parquet, top-k encoding, schema versions, the byte budget."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hf_reinforce.augment import PRESETS, AugmentationPolicy
from hf_reinforce.storage.format import (
    SCHEMA_VERSION,
    check_schema_version,
    decode_params,
    decode_topk,
    encode_topk,
    parquet_options,
    read_columns,
    reinforce_features,
    row_group_rows,
    topk_id_dtype,
)
from hf_reinforce.storage.shards import bytes_per_stored_augmentation
from hf_reinforce.testing import simulated_rows


@pytest.mark.parametrize("preset", PRESETS)
def test_features_round_trip_through_parquet_with_dtypes(tmp_path, preset):
    policy = AugmentationPolicy.parse(preset)
    ds = simulated_rows(policy, 12, 7, 3, 50)
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(ds.data.table, path, **parquet_options(ds.data.table.schema))
    back = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))
    assert back.features == ds.features
    assert back.features["topk_probs"].feature.feature.dtype == "float16"
    assert back.features["topk_ids"].feature.feature.dtype == "int16"
    row = back[3]
    params = decode_params(row, policy)
    for name, (dtype, shape) in policy.columns.items():
        assert params[name].dtype == np.dtype(dtype) and params[name].shape == (7, *shape)
    crop = next(iter(policy.columns))  # aug_rrc or aug_crop
    np.testing.assert_array_equal(params[crop], policy.sample(0, 3, 7, 375, 500, num_rows=12)[crop])
    ids, probs = decode_topk(row)
    assert ids.dtype == torch.int64 and ids.shape == (7, 3) and probs.dtype == torch.float32
    table = back.with_format("arrow")[:2]
    assert str(table.schema.field("topk_probs").type.value_type.value_type) == "halffloat"


def test_topk_is_sorted_descending_with_integer_ids():
    probs = torch.softmax(torch.randn(6, 40, generator=torch.Generator().manual_seed(1)), -1)
    ids, values = encode_topk(probs, 5, 40)
    assert ids.dtype == np.int16 and values.dtype == np.float16
    assert (np.diff(values.astype(np.float32), axis=-1) <= 0).all()
    expected = torch.topk(probs, 5).indices.numpy()
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(values, np.take_along_axis(probs.numpy(), expected, -1), rtol=1e-3)
    assert topk_id_dtype(32767) == "int16" and topk_id_dtype(32768) == "int32"
    big_ids, _ = encode_topk(torch.softmax(torch.randn(2, 40000), -1), 3, 40000)
    assert big_ids.dtype == np.int32
    with pytest.raises(ValueError, match="class probabilities"):
        encode_topk(probs, 5, 41)
    with pytest.raises(ValueError, match="top_k"):
        reinforce_features(AugmentationPolicy.parse("rrc"), 4, 41, 40)


@pytest.mark.parametrize(("rows", "augmentations"), [(60, 400), (512, 16)])
def test_storage_budget_at_k10_rrc_ra_re(tmp_path, rows, augmentations):
    """≤ 40 bytes per stored augmentation at K=10 with rrc+ra+re (1000 classes), at N=400 and at N=16, with the
    per-row columns (row_index, replay fingerprint) and in the row groups shards are written in."""
    policy = AugmentationPolicy.parse("rrc+ra+re")
    ds = simulated_rows(policy, rows, augmentations, 10, 1000)
    ds = ds.add_column("row_index", list(range(rows)))
    path = tmp_path / "shard.parquet"
    options = parquet_options(ds.data.table.schema)
    pq.write_table(ds.data.table, path, row_group_size=row_group_rows(augmentations), **options)
    per_aug = bytes_per_stored_augmentation([path], augmentations)  # the one definition (reinforcement columns only)
    assert per_aug <= 40.0, per_aug
    assert 0 <= os.path.getsize(path) - per_aug * rows * augmentations < 8192  # only the footer is left out


def test_newer_schema_is_refused_naming_both_versions():
    check_schema_version(SCHEMA_VERSION)
    with pytest.raises(ValueError, match=f"version {SCHEMA_VERSION + 1}.*up to version {SCHEMA_VERSION}"):
        check_schema_version(SCHEMA_VERSION + 1)


def test_decode_params_names_missing_column():
    with pytest.raises(KeyError, match="aug_re"):
        decode_params({"aug_rrc": [[0, 0, 1, 1]], "aug_flip": [True]}, AugmentationPolicy.parse("rrc+re"))


def test_parquet_options_compress_topk_hardest_parameters_hard_and_source_columns_fast():
    import pyarrow as pa

    schema = pa.schema(
        [
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("label", pa.int64()),
            ("row_index", pa.int64()),
            ("aug_rrc", pa.list_(pa.list_(pa.uint16(), 4), 8)),
            ("topk_ids", pa.list_(pa.list_(pa.int16(), 3), 8)),
            ("topk_probs", pa.list_(pa.list_(pa.float16(), 3), 8)),
        ]
    )
    levels = parquet_options(schema)["compression_level"]
    assert levels == {
        "row_index": 9,
        "aug_rrc.list.element.list.element": 9,
        "topk_ids.list.element.list.element": 19,
        "topk_probs.list.element.list.element": 19,
    }
    table = pa.Table.from_pylist(
        [
            {
                "image": {"bytes": b"x", "path": None},
                "label": 1,
                "row_index": 0,
                "aug_rrc": [[1, 2, 3, 4]] * 8,
                "topk_ids": [[1, 2, 3]] * 8,
                "topk_probs": [[0.5, 0.25, 0.125]] * 8,
            }
        ],
        schema=schema,
    )
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **parquet_options(schema))  # pyarrow accepts every leaf path
    assert pq.read_table(pa.BufferReader(buffer.getvalue())).equals(table)


def test_read_columns_gives_the_stored_arrays_with_their_dtypes_and_shapes():
    ids = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    probs = np.linspace(0, 1, 24, dtype=np.float16).reshape(2, 3, 4)
    features = datasets.Features(
        {
            "label": datasets.ClassLabel(num_classes=5),
            "topk_ids": datasets.List(datasets.List(datasets.Value("int16"), length=4), length=3),
            "topk_probs": datasets.List(datasets.List(datasets.Value("float16"), length=4), length=3),
            "ragged": datasets.List(datasets.Value("int32")),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"label": [3, 1], "topk_ids": ids.tolist(), "topk_probs": probs.tolist(), "ragged": [[1, 2], [3, 4]]},
        features=features,
    )
    got = read_columns(ds.select([0, 1]), ["label", "topk_ids", "topk_probs", "ragged"])
    assert got["label"].tolist() == [3, 1]
    assert got["topk_ids"].dtype == np.int16 and np.array_equal(got["topk_ids"], ids)
    assert got["topk_probs"].dtype == np.float16 and np.array_equal(got["topk_probs"], probs)
    assert got["ragged"].tolist() == [[1, 2], [3, 4]]
    # a selection that is not a prefix reads the selected rows only
    assert read_columns(ds.select([1]), ["topk_ids"])["topk_ids"].tolist() == ids[1:].tolist()
