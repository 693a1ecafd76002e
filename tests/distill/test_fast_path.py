"""``ReinforcedTransform.apply``: the same training examples as per-row replay, on real reinforced digits, through
every way a careless user reaches them (shuffle, select, skipped rows, workers, epochs, streams), without turning
a row's N stored augmentations into Python objects."""

from __future__ import annotations

import copy
import logging
import pickle
import shutil
from pathlib import Path

import datasets
import pytest
import torch
import transformers
from datasets.formatting.formatting import CustomFormatter, PythonArrowExtractor

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import PRESETS, normalize
from hf_reinforce.distill import formatting
from hf_reinforce.distill.replay import batch_buffer
from hf_reinforce.errors import BadImageError, ConfigError, MissingColumnError
from hf_reinforce.storage.format import FINGERPRINT

N, K = 5, 3
SCHEMA1 = Path(__file__).resolve().parents[1] / "data" / "schema1-digits"
"""A folder written by hf_reinforce 0.1 (schema 1): 12 real MNIST digits, crop+ra+re, N=3."""


def _reinforce(rows: datasets.Dataset, policy: str, n: int = N, k: int = K) -> datasets.Dataset:
    config = testing.tiny_config(
        teachers=testing.tiny_teachers()[:1], policy=policy, num_augmentations=n, top_k=k, num_workers=0
    )
    return hfr.reinforce(rows, config, progress=False)


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return testing.mnist_dataset(32)


@pytest.fixture(scope="module", params=["rrc+ra+re", "rrc+mix+ra+re"])
def plus(request, digits) -> datasets.Dataset:
    return _reinforce(digits, request.param)


def _expected(transform: hfr.ReinforcedTransform, row: dict) -> dict:
    """What per-row replay gives for ``row`` in the transform's current epoch."""
    j = transform.augmentation_index(row["row_index"])
    pixels = normalize(transform.replay(row, j), transform.mean, transform.std)
    return {
        "pixel_values": pixels,
        "labels": row["label"],
        "topk_ids": row["topk_ids"][j],
        "topk_probs": row["topk_probs"][j],
    }


def _assert_example(got: dict, want: dict) -> None:
    assert sorted(got) == ["labels", "pixel_values", "topk_ids", "topk_probs"]  # no replay_fingerprint, no row_index
    assert torch.equal(got["pixel_values"], want["pixel_values"]) and got["labels"] == want["labels"]
    assert got["topk_ids"].tolist() == want["topk_ids"]
    assert torch.equal(got["topk_probs"], torch.tensor(want["topk_probs"], dtype=torch.float32))


def test_apply_gives_per_row_replay_for_every_row_and_epoch(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    fast = transform.apply(plus)
    assert fast.format["type"] == formatting.FORMAT_TYPE and plus.format["type"] is None  # a new dataset
    for epoch in (0, 1, 7):
        transform.set_epoch(epoch)
        batch = fast.__getitems__(list(range(0, 32, 3)))  # what a DataLoader fetches: rendered together
        for k, i in enumerate(range(0, 32, 3)):
            _assert_example(batch[k], _expected(transform, plus[i]))
        _assert_example(fast[5], _expected(transform, plus[5]))
    assert list(fast["label"]) == list(plus["label"]) and fast["row_index"][:3] == [0, 1, 2]  # by name: plain values


def test_apply_survives_shuffle_select_and_skipped_rows(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    transform.set_epoch(3)
    later = transform.apply(plus).shuffle(seed=1).select(range(9))  # the format follows the dataset
    gaps = transform.apply(plus.select([31, 2, 17, 8]))  # rows missing around them (partners stay reachable)
    for data in (later, gaps):
        batch = data.__getitems__(list(range(len(data))))
        for example, row_index in zip(batch, data.with_format(None)["row_index"]):
            _assert_example(example, _expected(transform, plus[row_index]))


def test_apply_never_turns_rows_into_python_lists(plus, monkeypatch):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    fast = transform.apply(plus.shuffle(seed=0))
    expected = [_expected(transform, row) for row in plus.shuffle(seed=0).select(range(8))]

    def refuse(self, table):
        raise AssertionError(f"rows turned into Python objects: {table.column_names}")

    monkeypatch.setattr(PythonArrowExtractor, "extract_batch", refuse)
    monkeypatch.setattr(PythonArrowExtractor, "extract_row", refuse)
    for got, want in zip(fast.__getitems__(list(range(8))), expected):
        _assert_example(got, want)


def test_set_transform_and_with_transform_take_the_fast_path(plus, monkeypatch, caplog):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    transform.set_epoch(2)
    expected = [_expected(transform, plus[i]) for i in range(10)]

    def refuse(self, table):
        raise AssertionError(f"rows turned into Python objects: {table.column_names}")

    monkeypatch.setattr(PythonArrowExtractor, "extract_batch", refuse)
    monkeypatch.setattr(PythonArrowExtractor, "extract_row", refuse)
    kept = plus.with_format(None)
    kept.set_transform(transform)
    with caplog.at_level(logging.WARNING):
        for data in (plus.with_transform(transform), kept):
            assert data.format["type"] == "custom"  # datasets' own format name, as before
            rows = [data[i] for i in range(4)] + data.__getitems__([7, 9])
            for got, i in zip(rows, [0, 1, 2, 3, 7, 9]):
                _assert_example(got, expected[i])
    assert not caplog.records  # neither advice to switch nor datasets' note on replacing its format


def test_the_custom_format_of_other_transforms_is_datasets_own(digits):
    """Any other callable given to set_transform gets what datasets' CustomFormatter gives it: decoded Python rows."""
    seen = []

    def shapes(batch):
        seen.append(sorted(batch))
        return {"size": [image.size for image in batch["image"]], "label": batch["label"]}

    data = digits.with_transform(shapes)
    assert data[0] == {"size": (28, 28), "label": digits[0]["label"]}
    assert data[:3]["size"] == [(28, 28)] * 3 and seen[0] == ["image", "label"]
    assert isinstance(datasets.formatting.get_formatter("custom", transform=shapes), CustomFormatter)
    reinforced = _reinforce(digits.select(range(4)), "rrc")
    evaluation = hfr.ReinforcedTransform.from_dataset(reinforced).evaluation
    assert digits.with_transform(evaluation)[0]["pixel_values"].shape == (3, 32, 32)  # a bound method: a callable

    class Tagged(hfr.ReinforcedTransform):  # a subclass with a __call__ of its own keeps it
        def __call__(self, batch):
            return {**super().__call__(batch), "tag": ["mine"] * len(batch["row_index"])}

    tagged = reinforced.with_transform(Tagged.from_dataset(reinforced))
    assert tagged[0]["tag"] == "mine" and tagged[0]["pixel_values"].shape == (3, 32, 32)


def test_a_stock_trainer_that_drops_the_stored_columns_is_told_why(plus, tmp_path):
    """transformers.Trainer keeps only the columns its model takes (here ``label``): the transform names the missing
    ones and the setting, instead of training on what is left."""
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))
    args = transformers.TrainingArguments(
        str(tmp_path), per_device_train_batch_size=4, max_steps=1, use_cpu=True, report_to=[], save_strategy="no"
    )
    trainer = transformers.Trainer(
        model=hfr.TimmStudent(pool),
        args=args,
        train_dataset=plus.with_transform(transform),
        data_collator=hfr.DistillationCollator(),
        compute_loss_func=hfr.DistillationLoss(),
    )
    with pytest.raises(
        MissingColumnError,
        match=r"\['image', 'row_index', 'topk_ids'\] are missing .*"
        r"remove_unused_columns=False",
    ):
        trainer.train()


def test_python_rows_give_the_same_examples_and_say_once_how_to_switch(plus, caplog):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    rows = plus.with_format(None)
    with caplog.at_level(logging.WARNING, logger="hf_reinforce"):
        out = [transform(rows[i : i + 2]) for i in (0, 4, 8)]
    advice = [r for r in caplog.records if "transform.apply(dataset)" in r.getMessage()]
    assert len(advice) == 1 and f"all {N} stored augmentations" in advice[0].getMessage()
    for batch, i in zip(out, (0, 4, 8)):
        for k in range(2):
            _assert_example({key: values[k] for key, values in batch.items()}, _expected(transform, plus[i + k]))


def test_dataloader_workers_follow_set_epoch_and_copies_of_the_format_too(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    fast = transform.apply(plus)
    renamed = copy.deepcopy(
        fast
    )  # datasets deep-copies datasets (with_format, cast, remove_columns): follows set_epoch
    assert copy.deepcopy(transform)._shared is transform._shared
    assert pickle.loads(pickle.dumps(transform))._shared is not transform._shared
    loader = torch.utils.data.DataLoader(
        fast, batch_size=8, num_workers=2, persistent_workers=True, collate_fn=hfr.DistillationCollator(pack=False)
    )
    for epoch in (0, 1):
        transform.set_epoch(epoch)
        batches = list(loader)
        want = [_expected(transform, row) for row in plus]
        assert torch.equal(
            torch.cat([batch["pixel_values"] for batch in batches]), torch.stack([w["pixel_values"] for w in want])
        )
        assert torch.cat([batch["topk_ids"] for batch in batches]).tolist() == [w["topk_ids"] for w in want]
        assert torch.cat([batch["labels"] for batch in batches]).tolist() == [w["labels"] for w in want]
        assert renamed[4]["topk_ids"].tolist() == want[4]["topk_ids"]


def test_batches_reach_the_collator_as_one_tensor(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    rows = transform.apply(plus).__getitems__([3, 1, 4, 1, 5])
    batch = hfr.DistillationCollator(pack=False)(rows)
    assert batch["pixel_values"].data_ptr() == rows[0]["pixel_values"].data_ptr()  # no copy
    assert torch.equal(batch["pixel_values"], torch.stack([row["pixel_values"] for row in rows]))
    assert batch["labels"].tolist() == [row["labels"] for row in rows]
    reordered = hfr.DistillationCollator(pack=False)(rows[::-1])  # not consecutive: stacked
    assert torch.equal(reordered["pixel_values"], batch["pixel_values"].flip(0))


@pytest.mark.parametrize("pack", [False, True])
def test_a_worker_sends_a_batch_in_two_blocks_of_shared_memory(plus, pack):
    """Pixels in the rendered batch's buffer, everything else the collator stacks in one block: each tensor sent in
    shared memory of its own would cost the worker a segment and a send each."""
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    fast = transform.apply(plus)
    collate = hfr.DistillationCollator(pack=pack)
    batch = next(iter(torch.utils.data.DataLoader(fast, batch_size=4, num_workers=1, collate_fn=collate)))
    want = collate([fast[i] for i in range(4)])
    assert set(batch) == set(want)
    for key in want:
        assert batch[key].dtype == want[key].dtype and torch.equal(batch[key], want[key]), key
    storages = {tensor.untyped_storage().data_ptr() for tensor in batch.values()}
    assert len(storages) == 2 and all(tensor.is_shared() for tensor in batch.values())


def test_the_collator_converts_and_checks_what_rows_hold():
    rows = [{"pixel_values": torch.full((3, 2, 2), i, dtype=torch.uint8), "labels": float(i)} for i in range(3)]
    batch = hfr.DistillationCollator()(rows)
    assert batch["pixel_values"].dtype == torch.float32 and batch["pixel_values"][2].eq(2).all()
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [0, 1, 2]
    rows[1]["pixel_values"] = torch.zeros((3, 2, 3), dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        hfr.DistillationCollator()(rows)


def test_streams_get_the_same_examples(plus, tmp_path):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    transform.set_epoch(2)
    plus.to_parquet(str(tmp_path / "plus.parquet"))
    stream = datasets.load_dataset("parquet", data_files=str(tmp_path / "plus.parquet"), split="train", streaming=True)
    examples = list(transform.apply(stream))
    assert len(examples) == len(plus)
    for got, row in zip(examples, plus):
        _assert_example(got, _expected(transform, row))
    loader = torch.utils.data.DataLoader(transform.apply(stream), batch_size=8, num_workers=1)
    assert sum(len(batch["labels"]) for batch in loader) == len(plus)


@pytest.mark.parametrize("policy", [p for p in PRESETS if p not in ("rrc+ra+re", "rrc+mix+ra+re")])
def test_apply_gives_per_row_replay_for_the_other_presets(digits, policy):
    """The presets the ``plus`` fixture leaves out, through a shuffled DataLoader batch."""
    plus = _reinforce(digits.select(range(16)), policy, n=3)
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    transform.set_epoch(4)
    fast = transform.apply(plus).shuffle(seed=2)
    order = fast.with_format(None)["row_index"]
    for example, row_index in zip(fast.__getitems__(list(range(16))), order):
        _assert_example(example, _expected(transform, plus[row_index]))


def test_a_schema_1_folder_written_by_0_1_takes_the_fast_path(tmp_path):
    """A folder without the ``replay_fingerprint`` column reads as one with it: the column is never a training input."""
    folder = shutil.copytree(SCHEMA1, tmp_path / "old")
    rows = hfr.load_reinforced(folder)
    assert FINGERPRINT not in rows.column_names
    transform = hfr.ReinforcedTransform.from_pretrained(folder)
    fast = transform.apply(rows)
    for epoch in (0, 2):
        transform.set_epoch(epoch)
        batch = fast.__getitems__(list(range(len(rows))))
        for example, row in zip(batch, rows.with_format(None)):
            _assert_example(example, _expected(transform, row))


def test_n_of_one(digits):
    plus = _reinforce(digits.select(range(16)), "rrc+ra+re", n=1)
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    for epoch in (0, 5):
        transform.set_epoch(epoch)
        _assert_example(transform.apply(plus)[3], _expected(transform, plus[3]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 3}, r"these rows are not from the dataset this transform was built for: it has 3 stored augmentations"),
        ({"k": 2}, r"has top-2 ids \(this transform's K is 3\)"),
        ({"policy": "rrc"}, r"augmentation columns \['aug_flip', 'aug_rrc'\]"),
    ],
)
def test_apply_refuses_another_reinforced_dataset_naming_what_differs(digits, change, message):
    mine = _reinforce(digits.select(range(16)), "rrc+ra+re")
    other = _reinforce(
        digits.select(range(16)), change.get("policy", "rrc+ra+re"), change.get("n", N), change.get("k", K)
    )
    transform = hfr.ReinforcedTransform.from_dataset(mine)
    with pytest.raises(ConfigError, match=message):
        transform.apply(other)
    other.set_format(formatting.FORMAT_TYPE, transform=transform)  # past apply's check: refused when read
    with pytest.raises(ConfigError, match="not from the dataset this transform was built for"):
        other[0]


def test_apply_names_missing_columns_and_bad_images(digits):
    plus = _reinforce(digits.select(range(16)), "rrc+ra+re")
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    with pytest.raises(MissingColumnError, match=r"columns \['topk_ids'\] are missing") as error:
        transform.apply(plus.remove_columns("topk_ids").add_column("topk_x", [0] * 16))
    assert "select_columns" in str(error.value)
    with pytest.raises(MissingColumnError, match=r"\['row_index'\]"):
        transform.apply(plus.remove_columns("row_index"))
    broken = plus.cast_column("image", datasets.Image(decode=False))
    broken = broken.map(
        lambda row, i: {"image": {"bytes": b"not a picture" if i == 3 else row["image"]["bytes"], "path": None}},
        with_indices=True,
    )
    with pytest.raises(BadImageError, match=r"row 3, column 'image': cannot decode the image"):
        transform.apply(broken)[3]


def test_the_format_is_registered_through_datasets_private_registry():
    """If this fails, datasets moved ``datasets.formatting._register_formatter`` (or ``get_formatter``): the fast
    path's format registration in ``hf_reinforce/distill/formatting.py`` needs an update for that datasets version."""
    from datasets.formatting import _register_formatter, get_formatter  # noqa: F401

    transform = hfr.ReinforcedTransform(testing.run_record())
    assert isinstance(get_formatter(formatting.FORMAT_TYPE, transform=transform), formatting.ReplayFormatter)


class _SharedProbe(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> bool:
        return batch_buffer((2, 3)).is_shared()


def test_a_dataloader_worker_normalizes_into_shared_memory():
    """The batch is sent to the training process from shared memory without a copy; the main process keeps its own."""
    assert not batch_buffer((2, 3)).is_shared()
    assert next(iter(torch.utils.data.DataLoader(_SharedProbe(), batch_size=None, num_workers=1)))
