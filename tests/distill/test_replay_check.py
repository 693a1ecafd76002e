"""A transform checks on first use that this machine replays a few rows to their stored fingerprints: silent where
replay is exact, one warning (or an error on request) where a kernel renders differently, on every path a student
reads through (``apply``, streams, ``set_transform``); rows without fingerprints (schema 1) are not checked."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from conftest import ROOT

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import AugmentationPolicy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCHEMA1 = ROOT / "tests" / "data" / "schema1-digits"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay-check") / "plus"
    config = testing.tiny_config(num_augmentations=3, num_workers=0, rows_per_block=8)
    hfr.reinforce(testing.mnist_dataset(16), config, out, progress=False)
    return out


@pytest.fixture
def perturbed(monkeypatch):
    """Every rendered view gets one pixel changed by one level: a kernel that renders differently."""
    render = AugmentationPolicy._render

    def changed(policy, *args, **kwargs):
        views = render(policy, *args, **kwargs).clone()
        views[:, 0, 0, 0] = views[:, 0, 0, 0] ^ 1
        return views

    monkeypatch.setattr(AugmentationPolicy, "_render", changed)


def first_batch(dataset) -> dict:
    return next(iter(torch.utils.data.DataLoader(dataset, batch_size=8, collate_fn=hfr.DistillationCollator())))


def mismatch_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, hfr.ReplayMismatchWarning)]


def test_an_exact_machine_trains_without_a_word(folder):
    transform = hfr.ReinforcedTransform.from_pretrained(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first_batch(transform.apply(hfr.load_reinforced(folder)))
    assert mismatch_warnings(caught) == []


def test_a_kernel_that_renders_differently_warns_once_naming_rows_and_the_check(folder, perturbed):
    transform = hfr.ReinforcedTransform.from_pretrained(folder)
    train = transform.apply(hfr.load_reinforced(folder))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first_batch(train)
        transform.set_epoch(1)
        first_batch(train)
    found = mismatch_warnings(caught)
    assert len(found) == 1
    assert "4 of 4 rows" in found[0] and "row_index [" in found[0] and "hf-reinforce verify" in found[0]


def test_check_replay_error_stops_training_on_every_path(folder, perturbed):
    dataset = hfr.load_reinforced(folder)
    with pytest.raises(hfr.ReplayMismatchError, match="does not replay the stored augmentations exactly"):
        first_batch(hfr.ReinforcedTransform.from_pretrained(folder, check_replay="error").apply(dataset))
    stream = dataset.to_iterable_dataset()
    with pytest.raises(hfr.ReplayMismatchError):
        next(iter(hfr.ReinforcedTransform.from_pretrained(folder, check_replay="error").apply(stream)))
    python_rows = dataset.with_transform(hfr.ReinforcedTransform.from_pretrained(folder, check_replay="error"))
    with pytest.raises(hfr.ReplayMismatchError):
        python_rows[:4]


def test_check_replay_off_skips_the_check(folder, perturbed):
    transform = hfr.ReinforcedTransform.from_pretrained(folder, check_replay="off")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = first_batch(transform.apply(hfr.load_reinforced(folder)))
    assert mismatch_warnings(caught) == [] and batch["pixel_values"].shape[0] == 8


def test_rows_without_fingerprints_are_not_checked(tmp_path, perturbed):
    folder = tmp_path / "schema1"
    shutil.copytree(SCHEMA1, folder)
    transform = hfr.ReinforcedTransform.from_pretrained(folder, check_replay="error")
    batch = first_batch(transform.apply(hfr.load_reinforced(folder)))
    assert batch["pixel_values"].shape[0] == 8


def test_check_replay_and_epoch_are_checked_when_given(folder):
    with pytest.raises(hfr.ConfigError, match="check_replay: expected one of"):
        hfr.ReinforcedTransform.from_pretrained(folder, check_replay="loud")
    transform = hfr.ReinforcedTransform.from_pretrained(folder)
    transform.set_epoch(2**63 - 1)
    assert 0 <= transform.augmentation_index(0) < 3
    with pytest.raises(hfr.ConfigError, match="epoch"):
        transform.set_epoch(2**63)
