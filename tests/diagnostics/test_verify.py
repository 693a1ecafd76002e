"""Replay fingerprints and ``verify_replay``: every row stores a hash of its augmentation 0 as the teachers saw it,
this machine replays to the same hash, a perturbed rendering is caught, and views saved elsewhere give the largest
pixel difference. Earlier folders (schema 1) still load and replay; growing one writes the current schema."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import ROOT

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import PRESETS, RENDER_KERNELS, AugmentationPolicy
from hf_reinforce.cli import main
from hf_reinforce.hub.card import write_record
from hf_reinforce.storage.files import file_sha256
from hf_reinforce.storage.format import FINGERPRINT, FINGERPRINT_AUGMENTATION, replay_fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCHEMA1 = ROOT / "tests" / "data" / "schema1-digits"
"""A folder written by hf_reinforce 0.1 (schema 1): 12 real MNIST digits, crop+ra+re, N=3, two shards."""


def config(**overrides) -> hfr.ReinforceConfig:
    return testing.tiny_config(**{"num_augmentations": 3, "num_workers": 0, "rows_per_block": 8, **overrides})


def stored_fingerprints(dataset: datasets.Dataset) -> list[int]:
    return dataset.select_columns([FINGERPRINT]).with_format("arrow")[:].column(0).to_pylist()


def replayed_fingerprints(dataset: datasets.Dataset, record: hfr.RunRecord) -> list[int]:
    transform = hfr.ReinforcedTransform(record, dataset=dataset if record.policy.mix is not None else None)
    teacher = record.teacher
    rows = dataset.with_format(None)
    return [
        replay_fingerprint(
            transform.replay(rows[i], FINGERPRINT_AUGMENTATION, teacher.resolution, teacher.interpolation)
        )
        for i in range(len(dataset))
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "plus"
    hfr.reinforce(testing.mnist_dataset(16), config(), out, progress=False)
    return out


class Perturbed:
    """Every rendered view gets one pixel changed by one level: a kernel that renders differently."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        render = AugmentationPolicy._render  # what the pass and replay both render through

        def perturbed(policy, *args, **kwargs):
            views = render(policy, *args, **kwargs).clone()
            views[:, 0, 0, 0] = views[:, 0, 0, 0] ^ 1
            return views

        monkeypatch.setattr(AugmentationPolicy, "_render", perturbed)


# -- the fingerprints a pass stores -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_every_row_stores_the_fingerprint_of_its_first_augmentation_as_the_teachers_saw_it(policy):
    source = testing.mnist_dataset(12)
    out = hfr.reinforce(source, config(policy=policy, rows_per_block=16, rows_per_shard=16), progress=False)
    record = hfr.record_from_dataset(out)
    assert out.features[FINGERPRINT] == datasets.Value("int64")
    assert stored_fingerprints(out) == replayed_fingerprints(out, record)
    assert len(set(stored_fingerprints(out))) == len(out)  # different rows, different pixels


def test_photos_of_odd_sizes_at_the_teachers_own_resolution(photos):
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    teacher = hfr.Teacher(module, resolution=56, name="pooled")
    config_ = config(
        teachers=[teacher, *testing.tiny_teachers(2)], num_classes=2, top_k=2, policy="rrc+mix+ra+re", rows_per_block=16
    )
    out = hfr.reinforce(testing.photos_dataset(4), config_, progress=False)
    record = hfr.record_from_dataset(out)
    assert record.teacher.resolution == 56
    assert stored_fingerprints(out) == replayed_fingerprints(out, record)


def test_the_folder_its_extension_and_a_reinforcement_only_split_carry_the_same_fingerprints(folder, tmp_path):
    whole = hfr.load_reinforced(folder)
    grown = hfr.extend(folder, 6, tmp_path / "grown", teachers=testing.tiny_teachers(), split="train", progress=False)
    only = hfr.reinforce(testing.mnist_dataset(16), config(reinforcement_only=True), progress=False)
    assert stored_fingerprints(whole) == stored_fingerprints(grown) == stored_fingerprints(only)


def test_the_record_keeps_the_rendering_environment(folder):
    rendering = hfr.load_record(folder).split("train").rendering
    assert set(rendering) == {
        "hf_reinforce",
        "torch",
        "torchvision",
        "pillow",
        "numpy",
        "render_kernels",
        "cpu_capability",
        "machine",
    }
    assert (
        rendering["torch"] == torch.__version__
        and rendering["render_kernels"] == str(RENDER_KERNELS)
        and rendering["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    )


# -- verify_replay and `hf-reinforce verify` ----------------------------------------------------------------------


def test_this_machine_replays_every_row_exactly(folder, capsys):
    check = hfr.verify_replay(folder, rows=16)
    assert check.ok and (check.checked, check.exact, check.mismatched_rows) == (16, 16, ())
    assert "16 of 16 sampled rows replay exactly" in str(check) and "cpu_capability" in str(check)
    assert "differences:  none" in str(check)
    assert main(["verify", str(folder), "--rows", "5"]) == 0
    assert "5 of 5 sampled rows replay exactly" in capsys.readouterr().out


def test_a_perturbed_rendering_is_caught_naming_the_rows(folder, monkeypatch, capsys):
    Perturbed(monkeypatch)
    check = hfr.verify_replay(folder, rows=[0, 3, 7])
    assert not check.ok and check.exact == 0 and check.mismatched_rows == (0, 3, 7)
    assert main(["verify", str(folder), "--rows", "4"]) == 1
    assert "0 of 4 sampled rows replay exactly" in capsys.readouterr().out


def test_views_saved_on_one_machine_give_the_largest_pixel_difference_on_another(folder, tmp_path, monkeypatch):
    saved = tmp_path / "views.npz"
    assert hfr.verify_replay(folder, rows=6, save=saved).ok
    same = hfr.verify_replay(folder, rows=6, reference=saved)
    assert (same.compared_views, same.differing_views, same.max_pixel_difference) == (6, 0, 0) and same.ok
    Perturbed(monkeypatch)
    other = hfr.verify_replay(folder, rows=6, reference=saved)
    assert (other.compared_views, other.differing_views, other.max_pixel_difference) == (6, 6, 1) and not other.ok
    assert "0 of 6 identical, largest pixel difference 1" in str(other)


def test_a_dataset_needs_its_record_and_its_images(folder):
    with pytest.raises(hfr.ConfigError, match="record="):
        hfr.verify_replay(hfr.load_reinforced(folder))
    assert hfr.verify_replay(hfr.load_reinforced(folder), record=folder, rows=2).ok
    source = testing.mnist_dataset(16)
    only = hfr.reinforce(source, config(reinforcement_only=True), progress=False)
    with pytest.raises(hfr.MissingColumnError, match="hfr.attach"):
        hfr.verify_replay(only)
    assert hfr.verify_replay(hfr.attach(only, source), rows=4).ok


# -- earlier formats ---------------------------------------------------------------------------------------------


def test_a_schema_1_folder_loads_replays_and_says_it_has_no_fingerprints(tmp_path):
    folder = shutil.copytree(SCHEMA1, tmp_path / "old")
    record = hfr.load_record(folder)
    assert record.schema_version == 1 and record.split("train").rendering is None
    rows = hfr.load_reinforced(folder)
    assert FINGERPRINT not in rows.column_names and len(rows) == 12
    transform = hfr.ReinforcedTransform(record)
    example = transform.example(rows.with_format(None)[3])
    assert example["pixel_values"].shape == (3, 32, 32) and example["topk_ids"].shape == (2,)
    check = hfr.verify_replay(folder, rows=4, save=tmp_path / "v.npz")
    assert check.checked == 0 and not check.ok and "no replay fingerprint (schema 1)" in str(check)
    assert hfr.verify_replay(folder, rows=4, reference=tmp_path / "v.npz").ok  # views compared instead


def schema_1(folder: Path) -> Path:
    """``folder`` as hf_reinforce 0.1 wrote it: no fingerprint column, schema version 1, no rendering environment."""
    record = hfr.load_record(folder)
    stats, shards = record.split("train"), []
    for shard in stats.shards:
        path = folder / "data" / shard.file
        pq.write_table(pq.read_table(path).drop_columns([FINGERPRINT]), path)
        shards.append(dataclasses.replace(shard, num_bytes=path.stat().st_size, sha256=file_sha256(path)))
    stats = stats.with_stats(shards, bytes_per_augmentation=stats.bytes_per_augmentation, report=stats.report)
    stats = dataclasses.replace(stats, rendering=None)
    write_record(folder, record.replace(schema_version=1, splits={"train": stats}))
    return folder


def test_growing_a_schema_1_folder_writes_the_current_schema_with_fingerprints(folder, tmp_path):
    old = schema_1(shutil.copytree(folder, tmp_path / "old"))
    grown = hfr.extend(old, 6, tmp_path / "grown", teachers=testing.tiny_teachers(), split="train", progress=False)
    whole = hfr.reinforce(testing.mnist_dataset(16), config(num_augmentations=6), tmp_path / "whole", progress=False)
    assert hfr.load_record(tmp_path / "grown").schema_version == hfr.SCHEMA_VERSION
    assert stored_fingerprints(grown) == stored_fingerprints(whole)
    np.testing.assert_array_equal(np.asarray(grown["topk_ids"]), np.asarray(whole["topk_ids"]))


def test_extending_where_the_rendering_differs_from_the_stored_fingerprints_is_refused(folder, tmp_path, monkeypatch):
    Perturbed(monkeypatch)
    with pytest.raises(hfr.OutputConflictError, match=r"renders its stored augmentation 0 differently"):
        hfr.extend(folder, 6, tmp_path / "grown", teachers=testing.tiny_teachers(), progress=False)


def test_a_record_from_before_versioned_render_kernels_names_them_among_the_differences(folder, tmp_path, monkeypatch):
    old = shutil.copytree(folder, tmp_path / "old")
    record = hfr.load_record(old)
    stats = record.split("train")
    rendering = {name: value for name, value in stats.rendering.items() if name != "render_kernels"}
    write_record(old, record.replace(splits={"train": dataclasses.replace(stats, rendering=rendering)}))
    check = hfr.verify_replay(old, rows=4)
    assert check.ok and f"differences:  render_kernels 1 -> {RENDER_KERNELS}" in str(check)
    Perturbed(monkeypatch)
    with pytest.raises(
        hfr.OutputConflictError, match=rf"rendering then -> here: render_kernels 1 -> {RENDER_KERNELS}\)"
    ):
        hfr.extend(old, 6, tmp_path / "grown", teachers=testing.tiny_teachers(), progress=False)
