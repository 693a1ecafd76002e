"""Passes over input that is not what it seems end in a clear error or the right data: a teacher whose output
depends on its batch, missing image files, missing labels, split names that are paths or look like another split's
files, labels changed under a reinforcement-only folder, and a pass killed with ``kill -9`` rerun at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import psutil
import pytest
import torch
from conftest import WORKER, subprocess_env
from torch import nn

import hf_reinforce as hfr
from hf_reinforce import BadImageError, BadLabelError, ConfigError, OutputConflictError, reinforce
from hf_reinforce.cli import main
from hf_reinforce.engine import folder_pass
from hf_reinforce.storage.paths import CONFIG_FILE, DATA_DIR, STATE_DIR
from hf_reinforce.testing import DIGIT_FEATURES, mnist_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread", "datasets_cache")


def make_config(**overrides) -> hfr.ReinforceConfig:
    return tiny_config(**{"policy": "rrc", "num_augmentations": 2, "num_workers": 0, **overrides})


class Interrupted(Exception):
    """Stands for a kill once the first shard is recorded."""


def interrupted_run(monkeypatch, source, config, out: Path) -> None:
    record = folder_pass.record_shard

    def once(*args, **kwargs):
        record(*args, **kwargs)
        raise Interrupted

    with monkeypatch.context() as patched:
        patched.setattr(folder_pass, "record_shard", once)
        with pytest.raises(Interrupted):
            reinforce(source, config, out, progress=False)


def assert_same_rows(a: datasets.Dataset, b: datasets.Dataset) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a.data.table.column(name).equals(b.data.table.column(name)), f"column {name!r} differs"


# -- 3. the teachers' micro-batch is part of what a run wrote --------------------------------------------------------


class BatchMean(nn.Module):
    """Logits less their mean over the batch: what one image gets depends on the others in its forward, as with
    BatchNorm in train mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(x.flatten(1))
        return logits - logits.mean(0, keepdim=True)


@pytest.fixture(scope="module")
def batch_dependent() -> hfr.Teacher:
    return hfr.Teacher(BatchMean(), resolution=32, name="batch-mean")


def batch_config(teacher: hfr.Teacher, micro_batch: int | None) -> hfr.ReinforceConfig:
    return make_config(
        teachers=[teacher], num_augmentations=4, augmentations_per_step=4, teacher_batch_size=micro_batch
    )


def test_the_micro_batch_changes_what_a_batch_dependent_teacher_stores(batch_dependent):
    source = mnist_dataset(16)
    whole = reinforce(source, batch_config(batch_dependent, 64), progress=False)
    split = reinforce(source, batch_config(batch_dependent, 8), progress=False)
    ids = [np.asarray(ds["topk_ids"]) for ds in (whole, split)]
    assert (ids[0] != ids[1]).mean() > 0.05  # a resume that mixed them would mix two behaviours
    assert hfr.record_from_dataset(whole).teacher_batch_size == 64


def test_a_resume_with_another_micro_batch_is_refused_and_the_same_one_resumes(batch_dependent, tmp_path, monkeypatch):
    source, out = mnist_dataset(32), tmp_path / "out"
    interrupted_run(monkeypatch, source, batch_config(batch_dependent, 64), out)
    with pytest.raises(OutputConflictError, match=r"split 'train' differs in: teacher_batch_size"):
        reinforce(source, batch_config(batch_dependent, 8), out, progress=False)
    resumed = reinforce(source, batch_config(batch_dependent, 64), out, progress=False)
    assert_same_rows(resumed, reinforce(source, batch_config(batch_dependent, 64), tmp_path / "whole", progress=False))


def test_the_default_micro_batch_is_recorded_and_an_extension_keeps_it(tmp_path):
    out = tmp_path / "out"
    reinforce(mnist_dataset(16), make_config(teacher_batch_size=16), out, progress=False)
    assert hfr.load_record(out).teacher_batch_size == 16
    grown = hfr.extend(out, 4, tmp_path / "grown", teachers=make_config().teachers, split="train", progress=False)
    assert hfr.record_from_dataset(grown).teacher_batch_size == 16
    with pytest.raises(OutputConflictError, match="teacher_batch_size"):
        hfr.extend(out, 4, tmp_path / "other", teachers=make_config().teachers, teacher_batch_size=8, progress=False)


def test_a_teacher_returning_other_logits_than_it_declares_is_named():
    class Seven(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :7]

    teacher = hfr.Teacher(Seven(), resolution=32, name="seven", num_outputs=10)
    with pytest.raises(ConfigError, match=r"teacher 'seven' returned 7 logits per image but declares num_outputs=10"):
        reinforce(mnist_dataset(16), make_config(teachers=[teacher]), progress=False)


# -- 4. a missing image file is a bad image like any other -----------------------------------------------------------


@pytest.fixture
def image_files(tmp_path) -> datasets.Dataset:
    """16 digits as PNG files, the dataset holding their paths; the file of row 5 is then deleted."""
    digits = mnist_dataset(16).cast_column("image", datasets.Image(decode=False))
    paths = []
    for i, row in enumerate(digits):
        path = tmp_path / "images" / f"{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(row["image"]["bytes"])
        paths.append(str(path))
    dataset = datasets.Dataset.from_dict({"image": paths, "label": digits["label"]}, features=DIGIT_FEATURES)
    Path(paths[5]).unlink()
    return dataset


def test_a_missing_image_file_is_skipped_by_a_folder_pass_as_in_process(image_files, tmp_path, monkeypatch):
    config = make_config(skip_bad_images=True)
    out = tmp_path / "out"
    folder = reinforce(image_files, config, out, progress=False)
    assert 5 not in folder["row_index"] and len(folder) == 15
    assert hfr.load_record(out).splits["train"].skipped_rows == (5,)
    in_process = reinforce(image_files, config, progress=False)
    assert_same_rows(folder.remove_columns("image"), in_process.remove_columns("image"))
    computed: list[range] = []
    original = hfr.ReinforcePass.map

    def spy(self, rows, *args, **kwargs):
        computed.append(rows)
        return original(self, rows, *args, **kwargs)

    monkeypatch.setattr(hfr.ReinforcePass, "map", spy)
    reinforce(image_files, config, out, progress=False)
    assert computed == []  # the row is missing both times: the shard is kept


def test_a_missing_image_file_without_skipping_names_its_row(image_files, tmp_path):
    with pytest.raises(BadImageError, match=r"row 5, column 'image': cannot decode the image"):
        reinforce(image_files, make_config(), tmp_path / "out", progress=False)


# -- 6. a missing label ---------------------------------------------------------------------------------------------


def test_a_missing_label_is_refused_naming_its_row(tmp_path):
    digits = mnist_dataset(16)
    labels = list(digits["label"])
    labels[3] = None
    unlabelled = digits.remove_columns("label").add_column("label", labels, feature=DIGIT_FEATURES["label"])
    for out in (None, tmp_path / "out"):
        with pytest.raises(BadLabelError, match=r"row 3, column 'label': the label is missing \(None\) \(1 such row"):
            reinforce(unlabelled, make_config(), out, progress=False)
    assert not (tmp_path / "out").exists()


# -- 7. split names ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train-2", "../../escaped", "a/b", "", "train[:10]", ".hidden"])
def test_a_split_name_that_is_a_path_or_looks_like_another_splits_files_is_refused(split, tmp_path):
    out = tmp_path / "deep" / "er" / "out"
    for target in (out, None):
        with pytest.raises(ConfigError, match=r"split: expected a split name of letters, digits and _"):
            reinforce(mnist_dataset(16), make_config(), target, split=split, progress=False)
    assert not (tmp_path / "deep").exists()  # nothing written, inside the folder or outside it
    with pytest.raises(ConfigError, match="split: expected a split name"):
        hfr.load_reinforced(tmp_path, split=split)


def test_a_dotted_split_and_its_prefix_keep_each_others_shards(tmp_path):
    out = tmp_path / "out"
    reinforce(mnist_dataset(16), make_config(), out, split="train.v2", progress=False)
    reinforce(mnist_dataset(32), make_config(), out, split="train", progress=False)
    reinforce(mnist_dataset(32), make_config(), out, split="train", progress=False)  # a rerun cleans its own split
    assert len(hfr.load_reinforced(out, split="train.v2")) == 16 and len(hfr.load_reinforced(out, split="train")) == 32


def test_the_cli_refuses_a_bad_split_before_loading_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the dataset was loaded"))
    argv = ["reinforce", "mnist", "--teachers", "timm:test_resnet", "--output-dir", str(tmp_path / "out")]
    assert main([*argv, "--split", "train-2"]) == 2
    assert capsys.readouterr().err == (
        "hf-reinforce reinforce: error: --split: expected a split name of letters, digits and _ (parts may be "
        "joined by .), got 'train-2'; e.g. train, validation, test_2\n"
    )


# -- 8. the labels of a reinforcement-only source --------------------------------------------------------------------


def test_labels_changed_under_a_reinforcement_only_folder_are_seen(tmp_path):
    source = mnist_dataset(32, key_column="id")
    config = make_config(reinforcement_only=True, key_column="id")
    out = tmp_path / "out"
    reinforce(source, config, out, progress=False)
    relabelled = source.map(lambda row: {"label": (row["label"] + 1) % 10})
    only = hfr.load_reinforced(out)
    assert len(hfr.attach(only, source, record=out, verify_fingerprint=False)) == 32
    for verify in (True, False):
        with pytest.raises(ConfigError, match=r"source: its labels \(column 'label'\) differ"):
            hfr.attach(only, relabelled, record=out, verify_fingerprint=verify)
    with pytest.raises(OutputConflictError, match=r"source rows 0\.\.15 of split 'train' changed"):
        reinforce(relabelled, config, out, progress=False)


# -- 9. kill -9, then an immediate rerun -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="render workers die with their parent on Linux")
def test_render_workers_die_with_a_killed_pass_so_a_rerun_can_start_at_once(tmp_path):
    """The workers are stopped (SIGSTOP) before the pass is killed, so they cannot notice on their own that their
    parent is gone: only the kernel, asked by each worker when it started, ends them and frees the folder's lock."""
    out, rows = tmp_path / "killed", 64
    args = ["--rows", str(rows), "--policy", "rrc", "--num-augmentations", "2", "--rows-per-block", "8"]
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(out), *args, "--rows-per-shard", "8", "--throttle", "0.3"],
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180  # a guard against a hang, not a measurement
        while not list((out / DATA_DIR).glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = psutil.Process(proc.pid).children(recursive=True)
        for worker in workers:
            worker.suspend()
        proc.send_signal(signal.SIGKILL)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
        assert proc.returncode == -signal.SIGKILL, f"the pass ended before it was killed:\n{output}"
        assert workers, "the pass ran without render workers"
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, f"stopped render workers outlived the killed pass: {alive}"
    finally:
        for worker in workers:
            if worker.is_running():
                worker.kill()
    assert (out / STATE_DIR).is_dir() and not (out / CONFIG_FILE).exists()
    config = tiny_config(policy="rrc", num_augmentations=2, rows_per_block=8, rows_per_shard=8)
    resumed = reinforce(mnist_dataset(rows), config, out, progress=False)  # at once: no lock is left
    assert list(resumed["row_index"]) == list(range(rows))
