"""The typed run record: exact JSON round trips of real records, one definition of "same", the record on a Dataset."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import datasets
import PIL.Image
import pytest
from conftest import ROOT
from datasets import ClassLabel, Dataset, Features, Image, Value

import hf_reinforce as hfr
from hf_reinforce.config import identity_fields
from hf_reinforce.errors import ConfigError, OutputConflictError, SchemaVersionError
from hf_reinforce.storage.paths import CONFIG_FILE, resume_path
from hf_reinforce.storage.reader import load_record_json
from hf_reinforce.storage.record import (
    OUTPUT_KEYS,
    REINFORCEMENT_KEYS,
    RunRecord,
    record_from_dataset,
    user_description,
)
from hf_reinforce.testing import mnist_arrays


@pytest.fixture(scope="module")
def source() -> datasets.DatasetDict:
    x, y = mnist_arrays()
    ds = Dataset.from_dict(
        {
            "image": [PIL.Image.fromarray(x[i]) for i in range(24)],
            "label": [int(y[i]) for i in range(24)],
            "id": [f"mnist-{i}" for i in range(24)],
        },
        features=Features({"image": Image(), "label": ClassLabel(num_classes=10), "id": Value("string")}),
    )
    ds.info.description = "MNIST digits, my own words."
    return ds.train_test_split(test_size=8, seed=0, shuffle=False)


def _config(**kwargs) -> hfr.ReinforceConfig:
    base = dict(
        teachers=["timm:test_resnet"],
        policy="rrc+ra+re",
        num_augmentations=2,
        top_k=3,
        resolution=32,
        rows_per_block=8,
        augmentations_per_step=2,
        rows_per_shard=8,
        num_workers=0,
    )
    return hfr.ReinforceConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def folder(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plus")
    hfr.reinforce(source["train"], _config(), out, split="train", progress=False, source_id="local/mnist")
    return out


def _canonical(data) -> str:
    return json.dumps(data, sort_keys=True)


def test_real_records_round_trip_byte_equal(folder, source, tmp_path):
    mixed = tmp_path / "mixed"
    hfr.reinforce(
        source["train"],
        _config(policy="rrc+mix+ra+re", rows_per_block=16, rows_per_shard=16, reinforcement_only=True, key_column="id"),
        mixed,
        progress=False,
    )
    in_process = hfr.reinforce(source["test"], _config(), progress=False)
    records = [json.loads((f / CONFIG_FILE).read_text()) for f in (folder, mixed)]
    records.append(record_from_dataset(in_process).to_dict())
    for data in records:
        assert _canonical(RunRecord.from_dict(data).to_dict()) == _canonical(data)
    assert (folder / CONFIG_FILE).read_text() == json.dumps(records[0], indent=2, sort_keys=True) + "\n"


def test_unknown_and_optional_keys_survive_a_round_trip(folder):
    data = load_record_json(folder)
    data.update(accuracy={"split": "validation", "ensemble": 0.5}, license="mit", future_key={"a": [1, 2]})
    data["teachers"][0]["weights_sha256"] = "ab" * 32
    data["splits"]["train"]["note"] = "kept"
    record = RunRecord.from_dict(data)
    assert record.accuracy["ensemble"] == 0.5 and record.license == "mit"
    assert _canonical(record.to_dict()) == _canonical(data)


def test_derived_facts_come_from_the_record(folder):
    record = hfr.load_record(folder)
    assert record.policy == hfr.AugmentationPolicy.parse("rrc+ra+re") and record.policy.mix is None
    assert record.policy_name == "rrc+ra+re" and record.topk_id_dtype == "int16"
    assert record.class_names == tuple(str(c) for c in range(10)) and record.teacher.id == "test_resnet"
    assert record.split("train").num_rows_written == 16 and record.split("train").id == "local/mnist"
    assert set(record.identity) == set(OUTPUT_KEYS)
    many = record.replace(num_classes=40_000)
    assert many.topk_id_dtype == "int32"


def test_bad_records_name_the_field(folder):
    data = load_record_json(folder)
    with pytest.raises(ConfigError, match="top_k: missing"):
        RunRecord.from_dict({k: v for k, v in data.items() if k != "top_k"})
    with pytest.raises(ConfigError, match="num_augmentations: expected an integer"):
        RunRecord.from_dict({**data, "num_augmentations": "400"})
    broken = json.loads(json.dumps(data))
    del broken["teachers"][0]["mean"]
    with pytest.raises(ConfigError, match=r"teachers\[0\]\.mean"):
        RunRecord.from_dict(broken)
    with pytest.raises(SchemaVersionError, match="version 99"):
        RunRecord.from_dict({**data, "schema_version": 99})


def test_output_keys_are_the_config_identity_with_the_teachers_as_loaded():
    assert set(OUTPUT_KEYS) == {"schema_version", "num_classes", *identity_fields()}
    assert set(REINFORCEMENT_KEYS) < set(OUTPUT_KEYS)
    assert {"reinforcement_only", "key_column", "rows_per_block", "rows_per_shard"}.isdisjoint(REINFORCEMENT_KEYS)


def test_same_reinforcement_allows_a_reinforcement_only_split_but_same_output_does_not(folder):
    full = hfr.load_record(folder)
    only = full.replace(reinforcement_only=True, key_column="id", rows_per_shard=16)
    assert full.same_reinforcement(only) and not full.same_output(only, "train")
    assert full.output_differences(only, "train") == ["key_column", "reinforcement_only", "rows_per_shard"]
    reseeded = full.replace(seed=1)
    assert full.reinforcement_differences(reseeded) == ["seed"]
    other_teacher = full.replace(teachers=(dataclasses.replace(full.teacher, revision="abc"),))
    assert full.reinforcement_differences(other_teacher) == ["teachers"]
    # a fingerprint alone (random for some sources) is no difference: the source rows are checked by their hashes
    moved = full.replace(splits={"train": dataclasses.replace(full.split("train"), fingerprint="other")})
    assert full.output_differences(moved, "train") == [] and full.same_reinforcement(moved)
    shorter = full.replace(splits={"train": dataclasses.replace(full.split("train"), num_rows=3)})
    assert full.output_differences(shorter, "train") == ["source.num_rows"]


def test_folder_takes_a_reinforcement_only_split_beside_a_full_one(folder, source, tmp_path):
    out = tmp_path / "both"
    shutil.copytree(folder, out)
    hfr.reinforce(
        source["test"], _config(reinforcement_only=True, key_column="id"), out, split="validation", progress=False
    )
    record = hfr.load_record(out)
    assert set(record.splits) == {"train", "validation"} and not resume_path(out, "validation").exists()
    with pytest.raises(OutputConflictError, match="reinforcement_only"):
        hfr.reinforce(source["test"], _config(), out, split="validation", progress=False)
    with pytest.raises(OutputConflictError, match="seed"):
        hfr.reinforce(source["test"], _config(seed=5), out, split="test", progress=False)


def test_hub_takes_a_reinforcement_only_split_beside_a_full_one(hub_server, folder, source, tmp_path):
    repo_id = hub_server.repo_id("full-and-only")
    hfr.push_to_hub(folder, repo_id)
    only = tmp_path / "only"
    hfr.reinforce(
        source["test"], _config(reinforcement_only=True, key_column="id"), only, split="validation", progress=False
    )
    hfr.push_to_hub(only, repo_id)
    remote = json.loads(hub_server.read_file(repo_id, CONFIG_FILE, "dataset"))
    assert set(remote["splits"]) == {"train", "validation"}
    other = tmp_path / "other"
    hfr.reinforce(source["test"], _config(top_k=2), other, split="test", progress=False)
    with pytest.raises(OutputConflictError, match="top_k"):
        hfr.push_to_hub(other, repo_id)


def test_the_users_description_survives_and_the_record_travels(source, tmp_path):
    plus = hfr.reinforce(source["train"], _config(), progress=False)
    assert user_description(plus.info.description) == "MNIST digits, my own words."
    expected = record_from_dataset(plus)
    assert expected is not None and expected.source.num_rows == 16
    plus.save_to_disk(str(tmp_path / "saved"))
    derived = {
        "select": plus.select([3, 1]),
        "shuffle": plus.shuffle(seed=0),
        "map": plus.map(lambda row: {"label": 0}),
        "filter": plus.filter(lambda row: row["label"] != 1),
        "load_from_disk": datasets.load_from_disk(str(tmp_path / "saved")),
    }
    for how, dataset in derived.items():
        assert record_from_dataset(dataset) == expected, how
        assert user_description(dataset.info.description) == "MNIST digits, my own words.", how


def test_attach_keeps_the_sources_description(source, tmp_path):
    out = tmp_path / "only"
    hfr.reinforce(source["train"], _config(reinforcement_only=True, key_column="id"), out, progress=False)
    joined = hfr.attach(hfr.load_reinforced(out), source["train"], record=out)
    assert user_description(joined.info.description) == "MNIST digits, my own words."
    assert record_from_dataset(joined).reinforcement_only


def test_card_template_is_packaged_and_dataset_cards_is_a_link_to_it():
    packaged = resources.files("hf_reinforce") / "hub" / "templates" / "reinforced_dataset_card.md"
    link = ROOT / "dataset_cards" / "reinforced_dataset_card.md"
    assert packaged.is_file() and link.is_symlink()
    assert link.resolve() == Path(str(packaged)).resolve()


def test_card_renders_from_a_source_checkout_without_install(folder, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "hf_reinforce", checkout / "hf_reinforce", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sys, hf_reinforce.hub.card as card, hf_reinforce.storage.reader as reader\n"
        "assert card.__file__.startswith(sys.argv[2]), card.__file__\n"
        "print(card.build_card(reader.load_record(sys.argv[1])).text.strip().splitlines()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(checkout)],
        cwd=checkout,
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("# local/mnist (reinforced)")
