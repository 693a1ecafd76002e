"""A folder is trusted on evidence, never on absence: every way found to get wrong data silently out of an output
folder, each as a regression test.

Foreign folders, deleted or copied records, interrupted overwrites, bit flips and truncation, retrained teachers,
sources rewritten in place, fingerprints that change, incomplete splits, two splits written at once, folders of the
previous version, and the user's source folder left untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pyarrow.parquet as pq
import pytest
from conftest import WORKER, subprocess_env

import hf_reinforce as hfr
from hf_reinforce import IncompleteOutputError, OutputConflictError, reinforce
from hf_reinforce.engine import folder_pass as folder
from hf_reinforce.engine.reinforce_pass import ReinforcePass
from hf_reinforce.storage.locks import split_lock
from hf_reinforce.storage.paths import CONFIG_FILE, DATA_DIR, LEGACY_IN_PROGRESS_FILE, STATE_DIR, resume_path
from hf_reinforce.storage.reader import load_reinforced
from hf_reinforce.storage.source_hash import source_rows_sha256
from hf_reinforce.testing import mnist_dataset, tiny_timm
from hf_reinforce.testing import tiny_config as base_config

pytestmark = pytest.mark.usefixtures("one_torch_thread", "datasets_cache")


def make_config(**overrides) -> hfr.ReinforceConfig:
    """Two shards of 16 rows for 32 rows, no render workers (fast and the same output)."""
    return base_config(**{"policy": "rrc", "num_augmentations": 2, "num_workers": 0, **overrides})


def assert_same_rows(a: datasets.Dataset, b: datasets.Dataset) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a.data.table.column(name).equals(b.data.table.column(name)), f"column {name!r} differs"


def listing(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def shard_file(out: Path, index: int, count: int = 2) -> Path:
    return out / DATA_DIR / f"train-{index:05d}-of-{count:05d}.parquet"


class Interrupted(Exception):
    """Stands for a kill at a chosen moment."""


def interrupted_run(monkeypatch, source, config, out: Path, shards: int = 1) -> None:
    """Run a pass that stops (as if killed) once ``shards`` shards were recorded."""
    record = folder.record_shard
    calls = []

    def counted(*args, **kwargs):
        if len(calls) == shards:
            raise Interrupted
        calls.append(args)
        return record(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(folder, "record_shard", counted)
        with pytest.raises(Interrupted):
            reinforce(source, config, out, progress=False)


def count_maps(monkeypatch) -> list[range]:
    """Spy on the shards a pass computes (one ``map`` per shard)."""
    computed: list[range] = []
    original = ReinforcePass.map

    def spy(self, rows, *args, **kwargs):
        computed.append(rows)
        return original(self, rows, *args, **kwargs)

    monkeypatch.setattr(ReinforcePass, "map", spy)
    return computed


@pytest.fixture(scope="module")
def source() -> datasets.Dataset:
    return mnist_dataset(32)


@pytest.fixture(scope="module")
def reference(source) -> datasets.Dataset:
    return reinforce(source, make_config(), progress=False)


@pytest.fixture
def finished(source, tmp_path) -> Path:
    out = tmp_path / "out"
    reinforce(source, make_config(), out, progress=False)
    return out


# -- folders the library did not write ------------------------------------------------------------------------------


def test_a_folder_in_hub_layout_is_refused_and_its_files_kept(source, tmp_path):
    hub = tmp_path / "hub-layout"
    (hub / DATA_DIR).mkdir(parents=True)
    source.to_parquet(str(hub / DATA_DIR / "train-00000-of-00001.parquet"))
    (hub / "README.md").write_text("# my dataset\n")
    before = listing(hub)
    for overwrite in (False, True):
        with pytest.raises(OutputConflictError, match=r"not empty \(README.md, data\).*not written by hf_reinforce"):
            reinforce(source, make_config(rows_per_shard=32), hub, overwrite=overwrite, progress=False)
        assert listing(hub) == before  # nothing counted as done, written, overwritten or deleted
    with pytest.raises(IncompleteOutputError, match=f"no {CONFIG_FILE}"):
        load_reinforced(hub)


def test_an_unrelated_non_empty_folder_is_refused_and_an_empty_one_taken(source, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputConflictError, match="notes.txt"):
        reinforce(source, make_config(), other, progress=False)
    assert listing(other) == {"notes.txt": b"mine"}
    with pytest.raises(OutputConflictError, match="not empty"):
        hfr.save_folder(reinforce(source.select(range(4)), make_config(), progress=False), other)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(reinforce(source, make_config(), empty, progress=False)) == 32


# -- deleted or copied records ----------------------------------------------------------------------------------------


def test_config_deleted_then_rerun_with_another_config_recomputes_every_shard(finished, source, monkeypatch):
    (finished / CONFIG_FILE).unlink()
    computed = count_maps(monkeypatch)
    again = reinforce(source, make_config(seed=1), finished, progress=False)
    assert computed == [range(0, 16), range(16, 32)]  # no record lists the old shards: none is trusted
    assert_same_rows(again, reinforce(source, make_config(seed=1), progress=False))
    assert_same_rows(load_reinforced(finished), again)


def test_a_copy_without_hidden_files_keeps_its_evidence_in_the_config(finished, source, reference, tmp_path):
    copy = tmp_path / "copy"  # cp -r out/* copy/ : no .reinforce/
    copy.mkdir()
    for path in finished.iterdir():
        if not path.name.startswith("."):
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, copy / path.name)
    with pytest.raises(OutputConflictError, match="seed"):
        reinforce(source, make_config(seed=1), copy, progress=False)
    assert_same_rows(load_reinforced(copy), reference)  # the copied shards match their recorded hashes
    replaced = reinforce(source, make_config(seed=1), copy, overwrite=True, progress=False)
    assert_same_rows(replaced, reinforce(source, make_config(seed=1), progress=False))

    bare = tmp_path / "bare"  # the shards and card without the config: nothing proves they are the library's
    bare.mkdir()
    shutil.copytree(finished / DATA_DIR, bare / DATA_DIR)
    shutil.copy2(finished / "README.md", bare / "README.md")
    with pytest.raises(OutputConflictError, match="not written by hf_reinforce"):
        reinforce(source, make_config(), bare, progress=False)


# -- interrupted overwrite -------------------------------------------------------------------------------------------


def overwrite_interrupted_at(monkeypatch, source, out: Path, delete: int) -> bool:
    """Overwrite ``out`` with another seed, stopping (as if killed) at its ``delete``-th file deletion; returns
    whether it stopped (False: the overwrite deletes fewer files and finished)."""
    original, calls = Path.unlink, []

    def failing(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == delete:
            raise Interrupted
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "unlink", failing)
        try:
            reinforce(source, make_config(seed=1), out, overwrite=True, progress=False)
        except Interrupted:
            return True
    return False


def test_an_overwrite_interrupted_at_any_delete_leaves_a_refused_folder(source, tmp_path, monkeypatch):
    delete = 1
    while True:
        out = tmp_path / f"out-{delete}"
        reinforce(source, make_config(), out, progress=False)
        if not overwrite_interrupted_at(monkeypatch, source, out, delete):
            break
        with pytest.raises(IncompleteOutputError, match=r"split 'train' .* unfinished|progress"):
            load_reinforced(out)
        with pytest.raises(IncompleteOutputError):
            hfr.push_to_hub(out, "user/never-pushed")  # refused before any request
        replaced = reinforce(source, make_config(seed=1), out, overwrite=True, progress=False)
        assert json.loads((out / CONFIG_FILE).read_text())["seed"] == 1
        assert_same_rows(load_reinforced(out), replaced)
        delete += 1
    assert delete > 5  # config, card, legacy marker, two shards, the progress record: each delete was interrupted


# -- damaged shards ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_shard_is_refused_by_name_and_recomputed_on_rerun(finished, source, reference, damage, monkeypatch):
    shard = shard_file(finished, 1)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    else:
        shard.unlink()
    with pytest.raises(IncompleteOutputError, match=shard.name):
        load_reinforced(finished)
    with pytest.raises(IncompleteOutputError, match=shard.name):
        hfr.push_to_hub(finished, "user/never-pushed")
    computed = count_maps(monkeypatch)
    again = reinforce(source, make_config(), finished, progress=False)
    assert computed == [range(16, 32)]  # only the damaged shard
    assert_same_rows(again, reference)
    assert_same_rows(load_reinforced(finished), reference)


def test_a_shard_file_no_record_lists_is_never_trusted(source, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_run(monkeypatch, source, make_config(), out)
    other = reinforce(source, make_config(seed=5), progress=False)  # a plausible shard of another run
    other.select(range(16, 32)).to_parquet(str(shard_file(out, 1)))
    computed = count_maps(monkeypatch)
    resumed = reinforce(source, make_config(), out, progress=False)
    assert computed == [range(16, 32)]
    assert_same_rows(resumed, reference)


def test_a_corrupt_progress_record_proves_nothing_and_a_corrupt_config_is_named(
    source, reference, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    interrupted_run(monkeypatch, source, make_config(), out)
    resume_path(out, "train").write_text('{"split": "train", "run": {"trunc')
    with pytest.raises(IncompleteOutputError, match="unfinished"):
        load_reinforced(out)
    computed = count_maps(monkeypatch)
    assert_same_rows(reinforce(source, make_config(), out, progress=False), reference)
    assert computed == [range(0, 16), range(16, 32)]

    (out / CONFIG_FILE).write_text('{"schema_version": 1, "top')
    with pytest.raises(hfr.ConfigError, match=f"{CONFIG_FILE} is not valid JSON"):
        reinforce(source, make_config(), out, progress=False)


# -- changed inputs ------------------------------------------------------------------------------------------------------


def checkpoint_teacher(path: Path, seed: int) -> str:
    from safetensors.torch import save_file

    save_file(tiny_timm("test_resnet", 1000, seed=seed).state_dict(), str(path))
    return f"timm:test_resnet@{path}"


def test_a_retrained_checkpoint_is_a_conflict_naming_the_teacher(source, tmp_path, monkeypatch):
    ckpt = tmp_path / "home" / "me" / "teacher.safetensors"
    ckpt.parent.mkdir(parents=True)
    spec = checkpoint_teacher(ckpt, seed=0)
    config = make_config(teachers=[spec], num_augmentations=1, class_mappings={spec: list(range(10))})
    out = tmp_path / "out"
    interrupted_run(monkeypatch, source, config, out)
    checkpoint_teacher(ckpt, seed=1)  # retrained in place, same path
    with pytest.raises(OutputConflictError, match=r"teacher 'timm:test_resnet@teacher.safetensors': weights_sha256"):
        reinforce(source, config, out, progress=False)

    checkpoint_teacher(ckpt, seed=0)
    reinforce(source, config, out, progress=False)
    teacher = json.loads((out / CONFIG_FILE).read_text())["teachers"][0]
    assert teacher["weights"] == "teacher.safetensors" and len(teacher["weights_sha256"]) == 64
    assert teacher["name"] == "timm:test_resnet@teacher.safetensors"
    assert list(json.loads((out / CONFIG_FILE).read_text())["class_mappings"]) == [teacher["name"]]
    for name, data in listing(out).items():  # record, card, shards: no path of this machine
        assert str(tmp_path).encode() not in data, name


def test_a_local_source_folder_is_recorded_by_its_name(source, tmp_path):
    local = tmp_path / "home" / "me" / "mnist-source"
    local.mkdir(parents=True)
    out = tmp_path / "out"
    reinforce(source, make_config(), out, progress=False, source_id=str(local))
    assert hfr.load_record(out).split("train").id == "mnist-source"
    for name, data in listing(out).items():
        assert str(tmp_path).encode() not in data, name


def imagefolder(root: Path, rows: int) -> None:
    digits = mnist_dataset(rows).cast_column("image", datasets.Image(decode=False))
    for i, row in enumerate(digits):
        (root / str(row["label"])).mkdir(parents=True, exist_ok=True)
        (root / str(row["label"]) / f"{i:03d}.png").write_bytes(row["image"]["bytes"])


def test_an_image_rewritten_in_place_with_its_mtime_kept_is_seen(tmp_path):
    images = tmp_path / "images"
    imagefolder(images, 32)

    def load():
        return datasets.load_dataset("imagefolder", data_dir=str(images), split="train")

    out, config = tmp_path / "out", make_config(num_classes=10)  # 32 digits need not hold all 10 classes
    reinforce(load(), config, out, progress=False)
    target = sorted(images.rglob("*.png"))[-1]
    stat = target.stat()
    PIL.Image.fromarray(np.full((28, 28), 255, np.uint8)).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(OutputConflictError, match=r"source rows \d+\.\.\d+ of split 'train' changed"):
        reinforce(load(), config, out, progress=False)
    redone = reinforce(load(), config, out, overwrite=True, progress=False)
    expected = reinforce(load(), config, progress=False)  # its images are paths; the folder's are embedded
    assert_same_rows(redone.remove_columns("image"), expected.remove_columns("image"))


def test_a_source_whose_fingerprint_changes_still_resumes(source, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_run(monkeypatch, source, make_config(), out)
    raw = source.cast_column("image", datasets.Image(decode=False)).to_dict()
    renamed = datasets.Dataset.from_dict(raw, features=source.features)
    renamed._fingerprint = "a-fingerprint-drawn-at-random"
    computed = count_maps(monkeypatch)
    resumed = reinforce(renamed, make_config(), out, progress=False)
    assert computed == [range(16, 32)]
    assert_same_rows(resumed, reference)

    changed = source.map(lambda row, i: {"label": (row["label"] + (i == 3)) % 10}, with_indices=True)
    with pytest.raises(OutputConflictError, match=r"source rows 0\.\.15"):
        reinforce(changed, make_config(), out, progress=False)


def test_the_source_rows_hash_sees_one_bit_and_not_the_chunking():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 6, 5, 3), dtype=np.uint8)
    features = datasets.Features(
        {
            "image": datasets.Array3D((6, 5, 3), "uint8"),
            "label": datasets.Value("int64"),
            "emb": datasets.List(datasets.Value("float32")),
            "note": datasets.Value("string"),
        }
    )

    def build(pixels, notes=None):
        data = {"image": pixels, "label": list(range(24)), "emb": [[0.5] * (i % 3) for i in range(24)]}
        return datasets.Dataset.from_dict({**data, "note": notes or ["a"] * 24}, features=features)

    columns = ["image", "label", "emb", "note"]
    ds = build(pixels)
    digest = source_rows_sha256(ds, range(4, 20), columns)
    rechunked = datasets.concatenate_datasets([ds.select(range(9)), ds.select(range(9, 24))])
    assert source_rows_sha256(rechunked, range(4, 20), columns) == digest
    assert source_rows_sha256(ds.select(range(24)), range(4, 20), columns) == digest  # an indices mapping
    flipped = pixels.copy()
    flipped[19, 5, 4, 2] ^= 1
    assert source_rows_sha256(build(flipped), range(4, 20), columns) != digest
    assert source_rows_sha256(build(flipped), range(0, 19), columns) == source_rows_sha256(ds, range(0, 19), columns)
    assert source_rows_sha256(build(pixels, ["a"] * 23 + [None]), range(4, 24), columns) != source_rows_sha256(
        ds, range(4, 24), columns
    )
    assert source_rows_sha256(ds, range(4, 20), ["image"]) != source_rows_sha256(ds, range(4, 20), ["label"])


# -- incomplete splits and two passes at once --------------------------------------------------------------------------


def test_an_unfinished_split_is_refused(source, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_run(monkeypatch, source, make_config(), out)
    assert shard_file(out, 0).exists() and resume_path(out, "train").exists()
    with pytest.raises(IncompleteOutputError, match=r"split 'train' .* is unfinished"):
        load_reinforced(out)
    with pytest.raises(IncompleteOutputError, match="a run is unfinished"):
        hfr.push_to_hub(out, "user/never-pushed")


def test_a_split_being_written_is_not_written_twice(source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with split_lock(out, "train"):
        with pytest.raises(OutputConflictError, match="being written by another process"):
            reinforce(source, make_config(), out, progress=False)


def test_an_overwrite_never_deletes_a_split_another_process_is_writing(finished, source, monkeypatch):
    record = folder.record_shard
    with monkeypatch.context() as patched:
        patched.setattr(folder, "record_shard", lambda *a: (_ for _ in ()).throw(Interrupted))
        with pytest.raises(Interrupted):
            reinforce(source.select(range(16)), make_config(), finished, split="test", progress=False)
    assert folder.record_shard is record and resume_path(finished, "test").exists()
    before = listing(finished / DATA_DIR)
    with split_lock(finished, "test"):  # stands for the other process
        with pytest.raises(OutputConflictError, match=r"split\(s\) \['test'\] are being written"):
            reinforce(source, make_config(seed=1), finished, overwrite=True, progress=False)
    assert listing(finished / DATA_DIR) == before


@pytest.mark.slow
def test_two_splits_written_at_once_into_one_folder(tmp_path):
    out = tmp_path / "out"
    env = subprocess_env(tmp_path)
    args = ["--policy", "rrc", "--num-augmentations", "2", "--rows-per-shard", "16", "--throttle", "0.2"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out), "--rows", str(rows), "--split", split, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for split, rows in (("train", 64), ("test", 48))
    ]
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    record = hfr.load_record(out)
    assert set(record.splits) == {"train", "test"}
    assert len(load_reinforced(out, split="train")) == 64 and len(load_reinforced(out, split="test")) == 48
    assert not list(out.glob(".shard-*")) and not list((out / STATE_DIR).glob("*.json"))


# -- folders of the previous version ------------------------------------------------------------------------------------


def test_a_folder_without_shard_hashes_is_refused_until_redone(finished, source, reference):
    config = json.loads((finished / CONFIG_FILE).read_text())
    del config["splits"]["train"]["shards"]
    for teacher in config["teachers"]:
        del teacher["weights_sha256"]
    (finished / CONFIG_FILE).write_text(json.dumps(config))
    shutil.rmtree(finished / STATE_DIR)
    with pytest.raises(IncompleteOutputError, match="no shard hashes.*overwrite=True"):
        load_reinforced(finished)
    with pytest.raises(OutputConflictError, match="weights_sha256"):
        reinforce(source, make_config(), finished, progress=False)
    redone = reinforce(source, make_config(), finished, overwrite=True, progress=False)
    assert_same_rows(redone, reference)
    assert_same_rows(load_reinforced(finished), reference)


def test_an_unfinished_folder_of_the_previous_version_is_recomputed(finished, source, reference, monkeypatch):
    (finished / CONFIG_FILE).unlink()
    (finished / "README.md").unlink()
    shutil.rmtree(finished / STATE_DIR)
    (finished / LEGACY_IN_PROGRESS_FILE).write_text("{}")
    pq.write_table(pq.read_table(shard_file(finished, 0)).slice(0, 3), shard_file(finished, 0))  # not trusted
    computed = count_maps(monkeypatch)
    again = reinforce(source, make_config(), finished, progress=False)
    assert computed == [range(0, 16), range(16, 32)]
    assert_same_rows(again, reference)
    assert not (finished / LEGACY_IN_PROGRESS_FILE).exists()


# -- the user's source folder --------------------------------------------------------------------------------------------


def _load_dataset_outcome(path: Path):
    try:
        loaded = datasets.load_dataset(str(path), split="train")
    except Exception as error:  # noqa: BLE001 - the outcome is compared, whatever it is
        return type(error).__name__
    return (len(loaded), loaded.column_names)


def test_nothing_is_written_into_a_load_from_disk_source_folder(tmp_path):
    saved = tmp_path / "saved"
    mnist_dataset(32).save_to_disk(str(saved))
    before, outcome = listing(saved), _load_dataset_outcome(saved)
    source = datasets.load_from_disk(str(saved))
    reinforce(source, make_config(), progress=False)
    reinforce(source, make_config(), tmp_path / "out", progress=False)
    assert listing(saved) == before
    assert _load_dataset_outcome(saved) == outcome
    assert len(datasets.load_from_disk(str(saved))) == 32
