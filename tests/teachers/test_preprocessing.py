"""What teachers see: config-level preprocessing for `timm:<arch>` teachers, per-teacher spec options, the head
size of random and checkpoint teachers when labels are plain ints, the printed preprocessing, the near-chance warning."""

from __future__ import annotations

import logging
import warnings

import datasets
import numpy as np
import pytest
import safetensors.torch
import torch

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.cli import build_parser, config_from_args
from hf_reinforce.diagnostics.teacher_eval import warn_near_chance
from hf_reinforce.errors import ConfigError
from hf_reinforce.storage.format import TOPK_IDS
from hf_reinforce.teachers import Preprocessing, load_teacher, split_spec_options
from hf_reinforce.teachers.teacher import PREPROCESSING_KEYS

SMALL = {"policy": "rrc", "num_augmentations": 2, "top_k": 3, "rows_per_block": 8, "rows_per_shard": 8}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A 10-class test_resnet checkpoint, as a user trained it at 32 px (hf_reinforce.testing's tiny teacher)."""
    path = tmp_path_factory.mktemp("ckpt") / "resnet32.safetensors"
    safetensors.torch.save_file(testing.tiny_timm("test_resnet", 10, seed=0).state_dict(), str(path))
    return str(path)


def int_labels(rows: int) -> datasets.Dataset:
    """Real MNIST digits whose label column is a plain int64 column (no ClassLabel), as from_pandas/CSV give."""
    return testing.mnist_dataset(rows).cast_column("label", datasets.Value("int64"))


# -- 1. the head size with plain int labels ------------------------------------------------------------------------


def test_random_timm_teacher_with_plain_int_labels_and_no_num_classes_is_an_error():
    config = hfr.ReinforceConfig(teachers=["timm:test_resnet"], resolution=32, num_workers=0, **SMALL)
    with pytest.raises(ConfigError, match=r"'timm:test_resnet'.*num_classes=<count> \(CLI --num-classes\)"):
        hfr.reinforce(int_labels(8), config, progress=False)  # before: 1000 classes, top-k ids up to 999


def test_plain_int_labels_with_num_classes_store_ids_of_those_classes():
    config = hfr.ReinforceConfig(teachers=["timm:test_resnet"], resolution=32, num_classes=10, num_workers=0, **SMALL)
    out = hfr.reinforce(int_labels(8), config, progress=False)
    ids = np.asarray(out[TOPK_IDS])
    assert hfr.record_from_dataset(out).num_classes == 10 and ids.max() < 10


def test_a_checkpoint_fixes_the_head_size_when_the_dataset_does_not(checkpoint):
    config = hfr.ReinforceConfig(teachers=[f"timm:test_resnet@{checkpoint}"], resolution=32, num_workers=0, **SMALL)
    out = hfr.reinforce(int_labels(8), config, progress=False)
    assert hfr.record_from_dataset(out).num_classes == 10 and np.asarray(out[TOPK_IDS]).max() < 10
    rng = torch.random.get_rng_state()
    assert load_teacher(f"timm:test_resnet@{checkpoint}").num_classes == 10
    assert torch.equal(rng, torch.random.get_rng_state())  # resizing the head does not draw from the global RNG


# -- 2. preprocessing of timm:<arch> teachers ----------------------------------------------------------------------


def test_checkpoint_teacher_runs_at_the_config_preprocessing_not_timms(checkpoint):
    mean, std = (0.13, 0.13, 0.13), (0.31, 0.31, 0.31)
    config = hfr.ReinforceConfig(
        teachers=[f"timm:test_resnet@{checkpoint}"], resolution=32, interpolation="bicubic", mean=mean, std=std, **SMALL
    )
    ds = testing.mnist_dataset(8)
    out = hfr.reinforce(ds, config, progress=False)
    (teacher,) = hfr.record_from_dataset(out).teachers
    assert (teacher.resolution, teacher.interpolation, teacher.mean, teacher.std) == (32, "bicubic", mean, std)
    # the stored top-1 is what the checkpoint gives for the replayed 32 px view normalized with the config's stats
    model = testing.tiny_timm("test_resnet", 10, seed=0)
    transform = hfr.ReinforcedTransform.from_dataset(out)
    row = out[3]
    views = torch.stack([transform.replay(row, j) for j in range(2)])
    assert views.shape[-1] == 32
    with torch.no_grad():
        logits = model(((views.float() / 255) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    assert logits.argmax(1).tolist() == [ids[0] for ids in row[TOPK_IDS]]


def test_spec_options_override_the_config_per_teacher(checkpoint):
    spec = f"timm:test_resnet@{checkpoint}?resolution=24&interpolation=nearest&mean=0.5,0.5,0.5&std=0.25,0.25,0.25"
    config = hfr.ReinforceConfig(teachers=[spec, f"timm:test_resnet@{checkpoint}"], resolution=32, **SMALL)
    first, second = hfr.ReinforcePass(testing.mnist_dataset(8), config).ensemble.teachers
    assert (first.resolution, first.interpolation, first.mean, first.std) == (24, "nearest", (0.5,) * 3, (0.25,) * 3)
    assert (second.resolution, second.interpolation, second.mean) == (32, "bilinear", hfr.Preprocessing().mean)
    assert first.name == spec  # the options are part of the teacher's name, hence of the run's identity
    options = {key: getattr(first, key) for key in PREPROCESSING_KEYS}
    assert hfr.spec_with_options(f"timm:test_resnet@{checkpoint}", **options) == spec


@pytest.mark.parametrize(
    "options, message",
    [
        ("resolution=0", "option 'resolution': expected an integer in [1, 16384], got 0"),
        ("resolution=3x", "option 'resolution': expected an integer in [1, 16384], got '3x'"),
        ("size=32", "option 'size': expected key=value options"),
        ("resolution", "option 'resolution': expected key=value"),
        ("interpolation=lanczos", "option 'interpolation': unsupported interpolation 'lanczos'"),
        ("mean=0.5,0.5", "option 'mean': expected 3 numbers"),
        ("std=0.5,0,0.5", "option 'std': expected 3 positive numbers"),
        ("mean=a,b,c", "option 'mean': expected 3 numbers"),
        ("resolution=32&resolution=64", "option 'resolution': given twice"),
    ],
)
def test_bad_spec_options_name_the_teacher_and_the_key(options, message):
    spec = f"timm:resnet18@w.safetensors?{options}"
    with pytest.raises(ConfigError) as error:
        split_spec_options(spec)
    assert f"teacher {spec!r}: {message}" in str(error.value)


def test_spec_with_options_refuses_unknown_keys():
    with pytest.raises(ConfigError, match=r"teacher 'timm:a': unknown option 'size'; options are \['resolution'"):
        hfr.spec_with_options("timm:a", size=32)


def test_config_preprocessing_fields_are_validated_and_on_the_command_line():
    with pytest.raises(ConfigError, match="std: expected 3 positive numbers"):
        hfr.ReinforceConfig(teachers=["timm:a"], std=(0.2, 0.0, 0.2))
    with pytest.raises(ConfigError, match="interpolation: unsupported interpolation 'cubic'"):
        hfr.ReinforceConfig(teachers=["timm:a"], interpolation="cubic")
    argv = ["data", "--teachers", "timm:a@w.pt?resolution=32", "--resolution", "64", "--interpolation", "bicubic"]
    args = build_parser().parse_args(["reinforce", *argv, "--mean", "0.1", "0.2", "0.3", "--output-dir", "o"])
    config = config_from_args(args)
    assert config.teachers == ("timm:a@w.pt?resolution=32",)
    assert config.preprocessing == Preprocessing(64, "bicubic", (0.1, 0.2, 0.3), Preprocessing().std)
    assert "interpolation" not in config.identity  # carried by the teachers' recorded preprocessing instead


def test_a_config_with_other_preprocessing_does_not_resume_a_folder(tmp_path, checkpoint):
    spec = f"timm:test_resnet@{checkpoint}"
    config = hfr.ReinforceConfig(teachers=[spec], resolution=32, **SMALL)
    ds = testing.mnist_dataset(8)
    hfr.reinforce(ds, config, tmp_path / "out", progress=False)
    other = hfr.ReinforceConfig(teachers=[spec], resolution=32, mean=(0.5,) * 3, **SMALL)
    with pytest.raises(hfr.OutputConflictError, match="teachers"):
        hfr.reinforce(ds, other, tmp_path / "out", progress=False)


# -- printed preprocessing and the near-chance warning -------------------------------------------------------------


def test_the_pass_logs_each_teachers_preprocessing_and_prints_nothing(capsys, caplog, checkpoint):
    config = hfr.ReinforceConfig(teachers=[f"timm:test_resnet@{checkpoint}", *testing.tiny_teachers()[1:]], **SMALL)
    ds = testing.mnist_dataset(8)
    with caplog.at_level(logging.INFO, logger="hf_reinforce"):
        hfr.reinforce(ds, config, progress=False)
    assert capsys.readouterr().out == ""  # a library logs; only the CLI prints
    out = caplog.text
    assert (
        f"timm:test_resnet@{checkpoint}: 224 px bilinear, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)" in out
    )
    assert "tiny-vit: 48 px bicubic, mean (0.4, 0.45, 0.5), std (0.25, 0.25, 0.3)" in out and "parameters" in out


def test_near_chance_accuracy_warns_with_a_preprocessing_hint():
    ensemble = hfr.Ensemble(testing.tiny_teachers())
    with pytest.warns(UserWarning, match=r"scores 12.0%.*near chance \(10.0% for 10 classes\).*preprocessing"):
        warn_near_chance(0.12, ensemble)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_near_chance(0.16, ensemble)  # 1.6× chance: not near it
