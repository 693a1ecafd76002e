"""A record is input like any other: one that was tampered with, truncated or written by another program never makes
the library read, publish or drop the wrong rows, and every entry point says what is wrong on one line.

Shards named outside the folder or linked out of it, shard lists with a shard dropped or repeated, statistics that
disagree with the shards, values that pass a type check but make no sense, N larger than the shards hold, and a
folder replaced in place under the ``datasets`` cache.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path

import datasets
import pytest

import hf_reinforce as hfr
from hf_reinforce import ConfigError, IncompleteOutputError, reinforce
from hf_reinforce.cli import main
from hf_reinforce.storage.paths import CONFIG_FILE, DATA_DIR, STATE_DIR
from hf_reinforce.storage.resume import read_resume_state
from hf_reinforce.testing import mnist_dataset
from hf_reinforce.testing import tiny_config as base_config

pytestmark = pytest.mark.usefixtures("one_torch_thread", "datasets_cache")


def make_config(**overrides) -> hfr.ReinforceConfig:
    """Two shards of 16 rows for 32 rows, no render workers."""
    return base_config(**{"policy": "rrc", "num_augmentations": 2, "num_workers": 0, **overrides})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "out"
    reinforce(mnist_dataset(32), make_config(), out, progress=False)
    return out


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    out = tmp_path / "folder"
    shutil.copytree(pristine, out)
    return out


def record_json(folder: Path) -> dict:
    return json.loads((folder / CONFIG_FILE).read_text())


def write_record_json(folder: Path, data: dict) -> None:
    (folder / CONFIG_FILE).write_text(json.dumps(data, indent=2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows_of(dataset: datasets.Dataset) -> list[int]:
    return list(dataset["row_index"])


def assert_refused(call, error=hfr.ReinforceError, match: str = "") -> str:
    """``call()`` raises ``error`` with a one-line message matching ``match``; returns the message."""
    with pytest.raises(error, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    return message


# -- 1. nothing outside the folder is read as a shard or uploaded ----------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../reinforce_config.json", "../../outside.parquet", "sub/x.parquet"])
def test_a_shard_named_outside_the_data_folder_is_refused_by_field(folder, hub_server, tmp_path, name):
    outside = tmp_path / "outside.parquet"
    shutil.copy(folder / DATA_DIR / "train-00000-of-00002.parquet", outside)
    target = Path("/etc/passwd") if name == "/etc/passwd" else outside
    data = record_json(folder)
    split = data["splits"]["train"]
    split["shards"][0].update(file=name, num_bytes=target.stat().st_size, sha256=sha256(target))
    split["num_bytes"] = sum(shard["num_bytes"] for shard in split["shards"])  # a consistent forgery
    write_record_json(folder, data)
    for call in (
        lambda: hfr.load_record(folder),
        lambda: hfr.load_reinforced(folder),
        lambda: hfr.ReinforcedTransform.from_pretrained(folder),
    ):
        assert_refused(call, ConfigError, r"splits\.train\.shards\[0\]\.file: expected 'train-00000-of-00002\.parquet'")
    repo = hub_server.repo_id("forged")
    assert_refused(lambda: hfr.push_to_hub(folder, repo), ConfigError, "shards")
    assert not hub_server.api().repo_exists(repo, repo_type="dataset")  # refused before anything reached the Hub


def test_a_shard_linked_out_of_the_folder_is_refused_and_replaced_by_a_rerun(folder, hub_server, tmp_path):
    shard = folder / DATA_DIR / "train-00000-of-00002.parquet"
    outside = tmp_path / "elsewhere" / shard.name
    outside.parent.mkdir()
    shutil.move(shard, outside)
    shard.symlink_to(outside)  # the very same bytes: only where they live is wrong
    before = outside.read_bytes()
    message = assert_refused(lambda: hfr.load_reinforced(folder), IncompleteOutputError, "is a link to")
    assert str(outside) in message and "outside the folder" in message
    repo = hub_server.repo_id("linked")
    assert_refused(lambda: hfr.push_to_hub(folder, repo), IncompleteOutputError, "outside the folder")
    assert not hub_server.api().repo_exists(repo, repo_type="dataset")
    again = reinforce(mnist_dataset(32), make_config(), folder, progress=False)  # the link is never trusted
    assert not shard.is_symlink() and outside.read_bytes() == before  # replaced the link, left the target alone
    assert rows_of(again) == list(range(32))


def test_a_data_folder_linked_elsewhere_is_refused(folder, tmp_path):
    moved = tmp_path / "moved-data"
    shutil.move(folder / DATA_DIR, moved)
    (folder / DATA_DIR).symlink_to(moved, target_is_directory=True)
    assert_refused(lambda: hfr.load_reinforced(folder), IncompleteOutputError, "outside the folder")


def test_a_link_inside_the_folder_is_the_folders_own_file(folder):
    shard = folder / DATA_DIR / "train-00001-of-00002.parquet"
    kept = folder / "kept" / shard.name
    kept.parent.mkdir()
    shutil.move(shard, kept)
    shard.symlink_to(Path("..") / "kept" / shard.name)
    assert rows_of(hfr.load_reinforced(folder)) == list(range(32))


@pytest.mark.parametrize("name", [STATE_DIR, DATA_DIR])
def test_a_pass_never_writes_through_a_link_out_of_its_folder(tmp_path, name):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / name).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(hfr.OutputConflictError, match=rf"{name} is a link to {elsewhere}, outside the folder"):
        reinforce(mnist_dataset(32), make_config(), out, progress=False)
    assert not list(elsewhere.iterdir())


def test_a_resume_record_naming_other_files_proves_nothing(folder, tmp_path):
    victim = tmp_path / "victim.parquet"
    shutil.copy(folder / DATA_DIR / "train-00000-of-00002.parquet", victim)
    before = victim.read_bytes()
    data = record_json(folder)
    (folder / CONFIG_FILE).unlink()
    shard = {**data["splits"]["train"]["shards"][0], "file": f"../../{victim.name}"}
    run = {k: v for k, v in data.items() if k != "splits"} | {"source": data["splits"]["train"]}
    progress = folder / STATE_DIR / "train.progress.json"
    progress.write_text(json.dumps({"split": "train", "run": run, "shards": [shard]}))
    assert read_resume_state(folder, "train") is None
    again = reinforce(mnist_dataset(32), make_config(), folder, progress=False)
    assert rows_of(again) == list(range(32)) and victim.read_bytes() == before


# -- 2. shards cover the rows exactly once, in order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda shards: shards.pop(1), r"splits\.train\.num_shards: 2, but its shards add up to 1"),
        (lambda shards: shards.pop(0), r"splits\.train\.num_shards: 2, but its shards add up to 1"),
        (lambda shards: shards.append(copy.deepcopy(shards[0])), r"num_shards: 2, but its shards add up to 3"),
        (lambda shards: shards.reverse(), r"shards\[0\]\.file: expected 'train-00000-of-00002\.parquet'"),
        (lambda shards: shards[1].update(rows=[0, 16]), r"shards\[1\]\.rows: \[0, 16\] does not start where"),
        (lambda shards: shards[1].update(num_rows=8), r"shards\[1\]: 8 rows written and 0 skipped do not make"),
        (lambda shards: shards[1].update(sha256="f" * 64), r"does not match the sha256"),
    ],
)
def test_a_shard_list_that_drops_repeats_or_reorders_shards_is_refused(folder, tamper, match):
    data = record_json(folder)
    tamper(data["splits"]["train"]["shards"])
    write_record_json(folder, data)
    assert_refused(lambda: hfr.load_reinforced(folder), hfr.ReinforceError, match)


def test_a_consistently_shortened_record_of_renamed_shards_reads_as_what_it_says(folder):
    """Drop the second shard and make everything else agree (stats, file names): a smaller, valid folder."""
    data = record_json(folder)
    split = data["splits"]["train"]
    first = split["shards"][0]
    split["shards"] = [first]
    (folder / DATA_DIR / "train-00001-of-00002.parquet").unlink()
    (folder / DATA_DIR / first["file"]).rename(folder / DATA_DIR / "train-00000-of-00001.parquet")
    first["file"] = "train-00000-of-00001.parquet"
    split.update(num_rows=16, num_rows_written=16, num_shards=1, num_bytes=first["num_bytes"])
    write_record_json(folder, data)
    assert rows_of(hfr.load_reinforced(folder)) == list(range(16))


# -- 10. values that pass a type check but make no sense -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["num_augmentations"], 0, r"num_augmentations: expected an integer in \[1, 100000\], got 0"),
        (["num_augmentations"], 10**12, r"num_augmentations: expected an integer in \[1, 100000\]"),
        (["resolution"], -5, r"resolution: expected an integer in \[1, 16384\], got -5"),
        (["top_k"], 11, r"top_k: 11 classes stored of a dataset of 10 classes"),
        (["num_augmentations"], "2", r"num_augmentations: expected an integer in \[1, 100000\], got '2'"),
        (["temperature"], "hot", r"temperature: expected a finite positive number"),
        (["teachers", 0, "std"], [0, 1, 1], r"teachers\[0\]\.std: expected 3 positive numbers"),
        (["teachers", 0, "num_classes"], 7, r"teachers\[0\]\.num_classes: 7, but its class_mapping/num_outputs"),
        (["teachers"], [], r"teachers: expected a list of at least one element"),
        (["rows_per_shard"], 20, r"rows_per_shard \(20\) must be a multiple of rows_per_block \(16\)"),
        (["policy"], {"ops": [{"op": "blur"}]}, r"policy: not a valid augmentation policy"),
        (["splits", "train", "num_rows"], 33, r"splits\.train\.num_rows_written: 32 rows written and 0 skipped"),
        (["splits", "train", "skipped_rows"], [40], r"splits\.train\.skipped_rows: row 40 of a source of 32 rows"),
        (["splits", "train", "shards", 0, "rows"], [0], r"shards\[0\]\.rows: expected a list of 2 elements"),
        (["splits", "train", "shards", 0, "sha256"], None, r"shards\[0\]\.sha256: expected a sha256"),
        (["splits", "train", "extended_from"], [4], r"splits\.train\.extended_from: \[4\], not all below N=2"),
        (["splits"], {}, r"splits: missing or empty: the record of a reinforced dataset lists its splits"),
    ],
)
def test_values_that_make_no_sense_are_refused_by_field_path(folder, path, value, match):
    data = record_json(folder)
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    write_record_json(folder, data)
    message = assert_refused(lambda: hfr.load_record(folder), ConfigError, match)
    assert message.startswith(str(folder / CONFIG_FILE)) and "restore it" in message


def test_n_larger_than_the_shards_hold_is_refused_where_shards_are_read(folder, hub_server):
    data = record_json(folder)
    data["num_augmentations"] = 4  # the shards hold 2: replay would index past them
    write_record_json(folder, data)
    assert hfr.load_record(folder).num_augmentations == 4  # the record alone is consistent
    match = r"column 'aug_rrc' is fixed_size_list.*\[2\], the record \(N=4, K=3, policy rrc\) says"
    assert_refused(lambda: hfr.load_reinforced(folder), IncompleteOutputError, match)
    repo = hub_server.repo_id("n-too-large")
    assert_refused(lambda: hfr.push_to_hub(folder, repo), IncompleteOutputError, "N=4")
    assert not hub_server.api().repo_exists(repo, repo_type="dataset")


def test_a_policy_other_than_the_shards_is_refused_where_shards_are_read(folder):
    data = record_json(folder)
    data["policy"]["ops"] = [op for op in data["policy"]["ops"] if op["op"] != "flip"]  # the shards hold the flips
    write_record_json(folder, data)
    assert hfr.load_record(folder).policy_name == "rrc-noflip"
    match = r"column 'aug_flip' is fixed_size_list.*\[2\], the record \(.*policy rrc-noflip\) says there is none"
    assert_refused(lambda: hfr.load_reinforced(folder), IncompleteOutputError, match)


@pytest.mark.parametrize("damage", ["truncated", "not an object", "mistyped", "nested too deep"])
def test_a_damaged_record_is_one_line_through_every_entry_point(folder, tmp_path, hub_server, capsys, damage):
    text = (folder / CONFIG_FILE).read_text()
    broken = {
        "truncated": text[: len(text) // 2],
        "not an object": "[1, 2, 3]",
        "mistyped": text.replace('"top_k": 3', '"top_k": [3]'),
        "nested too deep": "[" * 100_000 + "]" * 100_000,
    }[damage]
    (folder / CONFIG_FILE).write_text(broken)
    source = mnist_dataset(32)
    calls = {
        "load_record": lambda: hfr.load_record(folder),
        "load_reinforced": lambda: hfr.load_reinforced(folder),
        "from_pretrained": lambda: hfr.ReinforcedTransform.from_pretrained(folder),
        "extend": lambda: hfr.extend(folder, 4, tmp_path / "grown", teachers=make_config().teachers, progress=False),
        "push_to_hub": lambda: hfr.push_to_hub(folder, hub_server.repo_id("damaged")),
        "show": lambda: hfr.show(folder, output=tmp_path / "grid.png"),
        "attach": lambda: hfr.attach(datasets.Dataset.from_dict({"row_index": [0, 1]}), source, record=folder),
        "evaluate_teachers": lambda: hfr.evaluate_teachers(source, make_config(), output_dir=folder, split="train"),
    }
    for name, call in calls.items():
        message = assert_refused(call, ConfigError, str(folder / CONFIG_FILE))
        assert "Traceback" not in message, name
    assert not (tmp_path / "grown").exists() and not (tmp_path / "grid.png").exists()
    for argv in (["show", str(folder)], ["push", str(folder), hub_server.repo_id("damaged")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(folder / CONFIG_FILE) in err, err


def test_a_damaged_record_in_a_dataset_description_names_it():
    plus = reinforce(mnist_dataset(16), make_config(), progress=False)
    plus.info.description = plus.info.description[:-20]
    with pytest.raises(ConfigError, match=r"run record in the dataset's info\.description.*pass record="):
        hfr.ReinforcedTransform.from_dataset(plus)


# -- 5. a folder replaced in place ----------------------------------------------------------------------------------


def test_a_folder_replaced_in_place_with_equal_times_loads_its_new_rows(folder, tmp_path):
    before = hfr.load_reinforced(folder)  # fills the datasets cache
    other = tmp_path / "other"
    reinforce(mnist_dataset(32), make_config(seed=7), other, progress=False)
    times = {p.name: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (folder / DATA_DIR).iterdir()}
    for path in (other / DATA_DIR).iterdir():
        shutil.copy(path, folder / DATA_DIR / path.name)
        os.utime(folder / DATA_DIR / path.name, ns=times[path.name])
    shutil.copy(other / CONFIG_FILE, folder / CONFIG_FILE)
    after = hfr.load_reinforced(folder)
    expected = hfr.load_reinforced(other)
    assert after["aug_rrc"] == expected["aug_rrc"] and after["aug_rrc"] != before["aug_rrc"]
