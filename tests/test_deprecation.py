"""Names renamed for "one name per concept" (what a pass wrote is the *record*; ``mix`` not ``mixing``; ``policy`` is
the parsed policy) keep working for one release and say what replaces them."""

from __future__ import annotations

import pytest

import hf_reinforce as hfr
from hf_reinforce import testing


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("deprecated") / "plus"
    config = testing.tiny_config(policy="rrc+mix", num_augmentations=2, num_workers=0)
    hfr.reinforce(testing.mnist_dataset(16), config, out, progress=False)
    return out


def test_load_config_is_load_record(folder):
    with pytest.warns(FutureWarning, match=r"load_config is deprecated .* use hf_reinforce.load_record"):
        assert hfr.load_config(folder) == hfr.load_record(folder)


def test_the_transform_takes_its_record_by_the_old_names_too(folder):
    record = hfr.load_record(folder)
    rows = hfr.load_reinforced(folder)
    new = hfr.ReinforcedTransform(record, dataset=rows)
    with pytest.warns(FutureWarning, match=r"ReinforcedTransform\(config=...\)"):
        old = hfr.ReinforcedTransform(config=record, dataset=rows)
    with pytest.warns(FutureWarning, match=r"ReinforcedTransform.from_config"):
        from_config = hfr.ReinforcedTransform.from_config(folder, dataset=rows)
    with pytest.warns(FutureWarning, match=r"ReinforcedTransform.config is deprecated"):
        assert new.config == record.to_dict()
    assert (
        old.record
        == new.record
        == from_config.record
        == hfr.ReinforcedTransform.from_record(folder, dataset=rows).record
    )


def test_mixing_is_mix_and_augmentation_policy_is_policy(folder):
    record = hfr.load_record(folder)
    with pytest.warns(FutureWarning, match=r"AugmentationPolicy.mixing"):
        assert record.policy.mixing is record.policy.mix
    with pytest.warns(FutureWarning, match=r"RunRecord.mixing"):
        assert record.mixing is record.policy.mix
    config = testing.tiny_config(policy="rrc")
    with pytest.warns(FutureWarning, match=r"ReinforceConfig.augmentation_policy"):
        assert config.augmentation_policy is config.policy


def test_attach_takes_its_record_by_the_old_name_too():
    source = testing.mnist_dataset(8)
    config = testing.tiny_config(num_augmentations=2, reinforcement_only=True, num_workers=0)
    reinforcement = hfr.reinforce(source, config, progress=False)
    record = hfr.record_from_dataset(reinforcement)
    with pytest.warns(FutureWarning, match=r"attach\(config=...\)"):
        old = hfr.attach(reinforcement, source, config=record)
    new = hfr.attach(reinforcement, source, record=record)
    assert old.to_dict() == new.to_dict() and set(new.column_names) >= {"image", "label", "topk_ids"}


def test_show_takes_its_record_by_the_old_name_too(folder, tmp_path):
    rows = hfr.load_reinforced(folder)
    with pytest.warns(FutureWarning, match=r"show\(config=...\)"):
        old = hfr.show(rows, output=tmp_path / "old.png", num=2, config=folder)
    new = hfr.show(rows, output=tmp_path / "new.png", num=2, record=folder)
    assert old.read_bytes() == new.read_bytes()
