"""Growing a reinforced dataset: ``hfr.extend`` writes exactly what a pass with the larger N writes.

The two properties that make it exact (parameters and teacher batches do not depend on N, hypothesis), byte-equal
shards against a pass from scratch (aligned and unaligned N, a mixing policy, skipped rows, a reinforcement-only
folder with its source), what the record and card say, every refusal (wrong teachers, wrong source, a smaller N,
the same folder, a corrupt or tampered base), an interrupted extension resumed, the Hub round trip and the CLI.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import WORKER, subprocess_env
from hypothesis import given, settings
from hypothesis import strategies as st

import hf_reinforce as hfr
from hf_reinforce import ConfigError, IncompleteOutputError, OutputConflictError
from hf_reinforce.augment import PRESETS, AugmentationPolicy
from hf_reinforce.cli import main
from hf_reinforce.engine.render_workers import BlockGeometry, first_new_index
from hf_reinforce.storage.paths import CARD_FILE, CONFIG_FILE, DATA_DIR, resume_path
from hf_reinforce.testing import mnist_dataset, tiny_config, tiny_teachers

ROWS = 40  # three shards of 16 rows, the last one short

pytestmark = pytest.mark.usefixtures("one_torch_thread", "datasets_cache")


def config(**overrides) -> hfr.ReinforceConfig:
    return tiny_config(**{"num_workers": 0, "augmentations_per_step": 4, **overrides})


def reinforce(ds, cfg, out, **kwargs):
    return hfr.reinforce(ds, cfg, out, progress=False, **kwargs)


def extend(folder, n, out, **kwargs):
    return hfr.extend(folder, n, out, teachers=tiny_teachers(), num_workers=0, progress=False, **kwargs)


def assert_same_shards(a: Path, b: Path, split: str = "train") -> None:
    """Every shard file of ``a`` equals ``b``'s, values and schema metadata (report sums, skipped rows) alike; the
    records list the same shards (names, rows, sizes, file and source hashes) and the same report."""
    ra, rb = hfr.load_record(a).splits[split], hfr.load_record(b).splits[split]
    assert ra.shards == rb.shards and ra.report == rb.report and ra.num_rows_written == rb.num_rows_written
    for shard in ra.shards:
        ta, tb = pq.read_table(a / DATA_DIR / shard.file), pq.read_table(b / DATA_DIR / shard.file)
        assert ta.equals(tb) and ta.schema.metadata == tb.schema.metadata
        assert (a / DATA_DIR / shard.file).read_bytes() == (b / DATA_DIR / shard.file).read_bytes()


# -- the two properties -------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(step=st.integers(1, 9), n1=st.integers(1, 40), more=st.integers(1, 40))
def test_an_extension_computes_exactly_the_teacher_batches_a_whole_pass_has_beyond_the_stored_ones(step, n1, more):
    n2 = n1 + more
    small, whole = BlockGeometry(16, n1, 8, step), BlockGeometry(16, n2, 8, step)
    grown = BlockGeometry(16, n2, 8, step, first_new_index(n1, step))
    first = grown.first_index
    assert first <= n1 and n1 - first < step  # at most one partial chunk of the stored ones is recomputed
    # the chunks taken from the stored dataset were the same teacher batches (same indices) as in the whole pass
    assert all(small.chunk_indices(c) == whole.chunk_indices(c) for c in range(grown.chunks.start))
    # the chunks computed are the whole pass's remaining ones, indices first..n2-1 once each
    assert [grown.chunk_indices(c) for c in grown.chunks] == [
        whole.chunk_indices(c) for c in whole.chunks[grown.chunks.start :]
    ]
    assert [j for c in grown.chunks for j in grown.chunk_indices(c)] == list(range(first, n2))


@settings(max_examples=60, deadline=None)
@given(
    preset=st.sampled_from(sorted(PRESETS)),
    n1=st.integers(1, 12),
    more=st.integers(1, 20),
    row=st.integers(0, 30),
    seed=st.integers(0, 2**31),
    size=st.tuples(st.integers(1, 300), st.integers(1, 300)),
)
def test_the_parameters_of_augmentation_j_do_not_depend_on_n(preset, n1, more, row, seed, size):
    policy = AugmentationPolicy.parse(preset)
    small = policy.sample(seed, row, n1, *size, num_rows=32)
    large = policy.sample(seed, row, n1 + more, *size, num_rows=32)
    for name in policy.columns:
        np.testing.assert_array_equal(small[name], large[name][:n1])


def test_first_new_index_rounds_down_to_a_whole_teacher_step():
    assert [first_new_index(n, 4) for n in (1, 3, 4, 6, 8, 9)] == [0, 0, 4, 4, 8, 8]
    with pytest.raises(ValueError, match="multiple of augmentations_per_step"):
        BlockGeometry(16, 8, 8, 4, first_index=2)


# -- identical to a pass from scratch -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "n1", "n2", "step"),
    [
        ("rrc+ra+re", 4, 10, 4),  # the stored chunks are whole: augmentations 4..9 are computed
        ("rrc+ra+re", 6, 9, 4),  # the last stored chunk is partial: 4..8 are computed, 4 and 5 again
        ("rrc+mix+ra+re", 2, 5, 2),  # mixing: partners are rendered in the same block in both passes
        ("crop+flip", 3, 4, 8),  # N1 below one step: everything is computed again (the same batches)
    ],
)
def test_extended_shards_are_byte_identical_to_a_pass_with_the_larger_n(tmp_path, policy, n1, n2, step):
    ds = mnist_dataset(ROWS)
    small = config(policy=policy, num_augmentations=n1, augmentations_per_step=step)
    reinforce(ds, small, tmp_path / "small")
    grown = extend(tmp_path / "small", n2, tmp_path / "grown")
    reinforce(ds, dataclasses.replace(small, num_augmentations=n2), tmp_path / "whole")
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
    assert isinstance(grown, datasets.DatasetDict) and len(grown["train"]) == ROWS
    assert np.asarray(grown["train"][0]["topk_ids"]).shape == (n2, 3)
    record, whole = hfr.load_record(tmp_path / "grown"), hfr.load_record(tmp_path / "whole")
    assert record.num_augmentations == n2 and record.splits["train"].extended_from == (n1,)
    assert record.identity == whole.identity and record.teachers == whole.teachers
    assert dataclasses.replace(record.splits["train"], extended_from=None) == whole.splits["train"]


def test_grown_twice_records_its_history_and_still_equals_a_whole_pass(tmp_path):
    ds = mnist_dataset(ROWS)
    reinforce(ds, config(num_augmentations=2), tmp_path / "n2")
    extend(tmp_path / "n2", 4, tmp_path / "n4")
    extend(tmp_path / "n4", 9, tmp_path / "n9", split="train")
    reinforce(ds, config(num_augmentations=9), tmp_path / "whole")
    assert_same_shards(tmp_path / "n9", tmp_path / "whole")
    assert hfr.load_record(tmp_path / "n9").splits["train"].extended_from == (2, 4)
    card = (tmp_path / "n9" / CARD_FILE).read_text()
    assert "extended" in card and "N=2" in card and "N=4" in card


def test_every_split_is_extended_and_students_replay_the_new_views(tmp_path):
    splits = mnist_dataset(48).train_test_split(test_size=16, seed=0)
    small = config(num_augmentations=2)
    for name, ds in splits.items():
        reinforce(ds, small, tmp_path / "small", split=name)
    grown = extend(tmp_path / "small", 6, tmp_path / "grown")
    assert set(grown) == {"train", "test"}
    record = hfr.load_record(tmp_path / "grown")
    assert {s: r.extended_from for s, r in record.splits.items()} == {"train": (2,), "test": (2,)}
    train = hfr.load_reinforced(tmp_path / "grown", split="train")
    transform = hfr.ReinforcedTransform.from_pretrained(tmp_path / "grown")
    assert transform.num_augmentations == 6
    assert transform.replay(train[3], 5).shape == (3, 32, 32)  # a new augmentation replays
    assert {transform.augmentation_index(3, epoch) for epoch in range(40)} == set(range(6))


def test_skipped_rows_are_skipped_again_and_the_shards_still_match(tmp_path):
    ds = mnist_dataset(ROWS)
    rows = ds.cast_column("image", datasets.Image(decode=False)).to_dict()
    rows["image"][5] = {"bytes": b"not an image", "path": None}
    rows["image"][21] = {"bytes": b"\x89PNG broken", "path": None}
    bad = datasets.Dataset.from_dict(rows, features=ds.cast_column("image", datasets.Image(decode=False)).features)
    bad = bad.cast_column("image", datasets.Image())
    small = config(num_augmentations=2, skip_bad_images=True)
    reinforce(bad, small, tmp_path / "small")
    extend(tmp_path / "small", 5, tmp_path / "grown")
    reinforce(bad, dataclasses.replace(small, num_augmentations=5), tmp_path / "whole")
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
    assert hfr.load_record(tmp_path / "grown").splits["train"].skipped_rows == (5, 21)


def test_a_reinforcement_only_folder_is_extended_from_its_source(tmp_path):
    ds = mnist_dataset(ROWS, key_column="id")
    small = config(num_augmentations=2, reinforcement_only=True, key_column="id")
    reinforce(ds, small, tmp_path / "small")
    with pytest.raises(ConfigError, match="reinforcement_only.*source="):
        extend(tmp_path / "small", 5, tmp_path / "grown")
    extend(tmp_path / "small", 5, tmp_path / "grown", source=datasets.DatasetDict(train=ds))
    reinforce(ds, dataclasses.replace(small, num_augmentations=5), tmp_path / "whole")
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
    other = mnist_dataset(ROWS, start=100, key_column="id")
    with pytest.raises(OutputConflictError, match=r"source rows 0\.\.15: their content hash differs"):
        extend(tmp_path / "small", 5, tmp_path / "other", source=other)
    with pytest.raises(ConfigError, match="has 39 rows, but the folder was made from 40"):
        extend(tmp_path / "small", 5, tmp_path / "other", source=ds.select(range(39)))


# -- refusals -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "small"
    reinforce(mnist_dataset(ROWS), config(num_augmentations=3), out)
    return out


def test_other_teachers_are_refused_naming_the_teacher_and_its_weights(small_folder, tmp_path):
    resnet, vit = tiny_teachers()
    with torch.no_grad():
        next(vit.module.parameters()).add_(0.01)
    retrained = [resnet, dataclasses.replace(vit, weights_sha256=None)]  # hashed again when built
    with pytest.raises(OutputConflictError, match=r"teacher 'tiny-vit': weights_sha256"):
        hfr.extend(small_folder, 6, tmp_path / "x", teachers=retrained, num_workers=0, progress=False)
    with pytest.raises(OutputConflictError, match="teachers"):
        hfr.extend(small_folder, 6, tmp_path / "y", teachers=tiny_teachers()[:1], num_workers=0, progress=False)
    assert not (tmp_path / "x" / CONFIG_FILE).exists()


def test_no_growth_the_same_folder_and_unknown_splits_are_refused(small_folder, tmp_path):
    for n in (2, 3):
        with pytest.raises(ConfigError, match="num_augmentations"):
            extend(small_folder, n, tmp_path / "x")
    with pytest.raises(OutputConflictError, match="is the folder being extended"):
        extend(small_folder, 6, small_folder)
    with pytest.raises(hfr.NotFoundError, match="no finished split 'test'"):
        extend(small_folder, 6, tmp_path / "x", split="test")
    with pytest.raises(hfr.NotFoundError, match="no such folder"):
        extend(tmp_path / "missing", 6, tmp_path / "x")


def test_a_dataset_saved_from_an_in_process_run_is_refused_with_the_way_out(tmp_path):
    plus = hfr.reinforce(mnist_dataset(ROWS), config(num_augmentations=2), progress=False)
    hfr.save_folder(plus, tmp_path / "saved")
    with pytest.raises(ConfigError, match=r"saved from an in-process dataset .*reinforce\(\.\.\., output_dir=\.\.\.\)"):
        extend(tmp_path / "saved", 4, tmp_path / "x")


def test_a_corrupt_or_unfinished_base_is_refused_naming_the_file(small_folder, tmp_path):
    base = tmp_path / "base"
    import shutil

    shutil.copytree(small_folder, base)
    shard = sorted((base / DATA_DIR).glob("*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(IncompleteOutputError, match=shard.name):
        extend(base, 6, tmp_path / "x")
    (base / CONFIG_FILE).unlink()
    with pytest.raises(hfr.NotFoundError, match="no reinforce_config.json: is it a finished"):
        extend(base, 6, tmp_path / "y")


def test_a_base_shard_changed_while_it_is_extended_is_refused(small_folder, tmp_path, monkeypatch):
    import shutil

    from hf_reinforce.storage import stored_split as extension

    base = tmp_path / "base"
    shutil.copytree(small_folder, base)
    verify = extension.verified_shards

    def verified_then_replaced(folder, split):
        paths = verify(folder, split)
        paths[1].write_bytes(paths[0].read_bytes())  # another valid parquet file under shard 1's name
        return paths

    monkeypatch.setattr(extension, "verified_shards", verified_then_replaced)
    with pytest.raises(IncompleteOutputError, match=r"being extended: .*train-00001-of-00003"):
        extend(base, 6, tmp_path / "x", source=mnist_dataset(ROWS))
    assert not (tmp_path / "x" / CONFIG_FILE).exists()


def test_parameters_sampled_differently_today_are_refused_naming_row_and_column(small_folder, tmp_path, monkeypatch):
    sample = AugmentationPolicy.sample

    def drifted(self, seed, row, n, height, width, num_rows=None):
        params = sample(self, seed, row, n, height, width, num_rows)
        if row == 20:
            params["aug_flip"] = 1 - params["aug_flip"]
        return params

    monkeypatch.setattr(AugmentationPolicy, "sample", drifted)
    with pytest.raises(OutputConflictError, match=r"row 20, column 'aug_flip': the stored augmentation parameters"):
        extend(small_folder, 6, tmp_path / "x")


# -- interrupted, resumed -----------------------------------------------------------------------------------------


def test_an_interrupted_extension_resumes_to_the_same_bytes(small_folder, tmp_path, monkeypatch):
    from hf_reinforce.storage import shards as folder_module

    write, calls = folder_module.write_parquet_atomic, []

    def dies_on_the_second_shard(batches, schema, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return write(batches, schema, path)

    monkeypatch.setattr(folder_module, "write_parquet_atomic", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        extend(small_folder, 6, tmp_path / "grown")
    assert resume_path(tmp_path / "grown", "train").exists() and not (tmp_path / "grown" / CONFIG_FILE).exists()
    with pytest.raises(IncompleteOutputError, match="unfinished"):
        hfr.load_reinforced(tmp_path / "grown")
    monkeypatch.setattr(folder_module, "write_parquet_atomic", write)
    extend(small_folder, 6, tmp_path / "grown")
    reinforce(mnist_dataset(ROWS), config(num_augmentations=6), tmp_path / "whole")
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
    with pytest.raises(OutputConflictError, match="num_augmentations"):
        extend(small_folder, 7, tmp_path / "grown")  # a finished N=6 folder is not silently replaced


# -- the CLI and the Hub ------------------------------------------------------------------------------------------


def test_cli_extend_writes_the_same_folder_and_estimates_the_extension(tmp_path, capsys):
    source = tmp_path / "mnist"
    mnist_dataset(ROWS, key_column="id").save_to_disk(str(source))
    common = ["--teachers", "timm:test_resnet", "--top-k", "3", "--resolution", "32", "--rows-per-shard", "16"]
    common += ["--rows-per-block", "8", "--augmentations-per-step", "2", "--num-workers", "0", "--no-progress"]
    for n, out in ((3, "small"), (7, "whole")):
        assert (
            main(
                ["reinforce", str(source), *common, "--num-augmentations", str(n), "--output-dir", str(tmp_path / out)]
            )
            == 0
        )
    grow = ["extend", str(tmp_path / "small"), "--teachers", "timm:test_resnet", "--num-workers", "0", "--no-progress"]
    assert main([*grow, "--num-augmentations", "7", "--output-dir", str(tmp_path / "grown")]) == 0
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
    assert "train" in capsys.readouterr().out
    # a wrong teacher is a one-line error naming what differs, and nothing is written
    assert (
        main(
            [*grow[:2], "--teachers", "timm:test_vit", "--num-augmentations", "7", "--output-dir", str(tmp_path / "x")]
        )
        == 2
    )
    assert "teachers" in capsys.readouterr().err and not (tmp_path / "x" / CONFIG_FILE).exists()
    # reinforcement-only: --source gives the images
    only = ["--reinforcement-only", "--key-column", "id"]
    assert (
        main(
            ["reinforce", str(source), *common, *only, "--num-augmentations", "3", "--output-dir", str(tmp_path / "o3")]
        )
        == 0
    )
    assert (
        main(
            ["reinforce", str(source), *common, *only, "--num-augmentations", "7", "--output-dir", str(tmp_path / "o7")]
        )
        == 0
    )
    grow_only = [
        "extend",
        str(tmp_path / "o3"),
        "--teachers",
        "timm:test_resnet",
        "--num-workers",
        "0",
        "--no-progress",
    ]
    assert main([*grow_only, "--num-augmentations", "7", "--output-dir", str(tmp_path / "og")]) == 2
    assert "--source" in capsys.readouterr().err
    assert (
        main([*grow_only, "--source", str(source), "--num-augmentations", "7", "--output-dir", str(tmp_path / "og")])
        == 0
    )
    assert_same_shards(tmp_path / "og", tmp_path / "o7")
    with pytest.raises(SystemExit):
        main(["extend", str(tmp_path / "small"), "--output-dir", str(tmp_path / "y")])  # N and teachers are required
    assert "required" in capsys.readouterr().err
    assert main(["estimate", str(source), *common[:-1], "--num-augmentations", "3", "--extend-to", "9"]) == 0
    printed = capsys.readouterr().out
    assert f"{ROWS * (9 - 2):,}" in printed and "extending N=3 to 9 computes augmentations 2..8" in printed


def test_estimate_extend_to_counts_only_the_new_views():
    ds = mnist_dataset(32)
    small = config(num_augmentations=6)
    grown = hfr.estimate(ds, small, extend_to=20, calibration_rows=16)
    whole = hfr.estimate(ds, dataclasses.replace(small, num_augmentations=20), calibration_rows=16)
    assert grown.num_augmentations == 20 and whole.num_augmentations == 20
    assert grown.total_views == 32 * (20 - 4) and whole.total_views == 32 * 20
    assert grown.reinforcement_bytes == pytest.approx(grown.bytes_per_augmentation * 32 * 20, rel=1e-6)
    assert any("extend" in note and "4..19" in note for note in grown.notes)
    with pytest.raises(ConfigError, match="extend_to"):
        hfr.estimate(ds, small, extend_to=6)


def test_a_pushed_dataset_is_extended_from_its_repo_and_pushed_back_in_one_commit(hub_server, tmp_path):
    ds = mnist_dataset(ROWS)
    repo_id = hub_server.repo_id("grow")
    reinforce(ds, config(num_augmentations=2), tmp_path / "small")
    hfr.push_to_hub(tmp_path / "small", repo_id)
    api = hub_server.api()
    before = len(api.list_repo_commits(repo_id, repo_type="dataset"))
    extend(repo_id, 6, tmp_path / "grown")
    assert hfr.load_record(tmp_path / "grown").splits["train"].extended_from == (2,)
    hfr.push_to_hub(tmp_path / "grown", repo_id)
    assert len(api.list_repo_commits(repo_id, repo_type="dataset")) == before + 1
    files = hub_server.list_files(repo_id, "dataset")
    assert sorted(f for f in files if f.startswith("data/")) == [
        f"data/{s.file}" for s in hfr.load_record(tmp_path / "grown").splits["train"].shards
    ]
    for name in files:
        if name.startswith("data/"):
            assert hub_server.read_file(repo_id, name, "dataset") == (tmp_path / "grown" / name).read_bytes()
    train = datasets.load_dataset(repo_id, split="train")
    assert np.asarray(train[0]["topk_ids"]).shape == (6, 3)
    assert hfr.ReinforcedTransform.from_pretrained(repo_id, dataset=train).num_augmentations == 6
    assert hfr.load_record(repo_id).splits["train"].extended_from == (2,)


def test_pushing_an_extension_of_only_some_of_the_repo_splits_is_refused(hub_server, tmp_path):
    splits = mnist_dataset(48).train_test_split(test_size=16, seed=0)
    repo_id = hub_server.repo_id("grow-some")
    for name, ds in splits.items():
        reinforce(ds, config(num_augmentations=2), tmp_path / "small", split=name)
    hfr.push_to_hub(tmp_path / "small", repo_id)
    extend(tmp_path / "small", 4, tmp_path / "grown", split="train")
    with pytest.raises(OutputConflictError, match=r"extend every split it holds \(\['test', 'train'\]\)"):
        hfr.push_to_hub(tmp_path / "grown", repo_id)
    reinforce(splits["train"], config(num_augmentations=4), tmp_path / "whole")  # not an extension: refused as before
    with pytest.raises(OutputConflictError, match="num_augmentations"):
        hfr.push_to_hub(tmp_path / "whole", repo_id)


@pytest.mark.slow
def test_an_extension_under_torchrun_writes_what_one_process_writes(tmp_path):
    worker = WORKER
    env = subprocess_env(tmp_path, ACCELERATE_USE_CPU="1")
    args = ["--rows", "64", "--rows-per-shard", "16"]
    subprocess.run(
        [sys.executable, str(worker), str(tmp_path / "small"), *args, "--num-augmentations", "2"],
        env=env,
        check=True,
        timeout=300,
    )
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    result = subprocess.run(
        [*launch, str(tmp_path / "grown"), *args, "--num-augmentations", "5", "--extend-from", str(tmp_path / "small")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    subprocess.run(
        [sys.executable, str(worker), str(tmp_path / "whole"), *args, "--num-augmentations", "5"],
        env=env,
        check=True,
        timeout=300,
    )
    assert_same_shards(tmp_path / "grown", tmp_path / "whole")
