"""Errors a user can act on: one-line CLI errors, local paths never sent to the Hub, checked arguments,
Trainer/loop misuse, rows of another reinforced dataset, bad labels, all rows skipped, array image columns."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import timm
import torch

import hf_reinforce as hfr
from hf_reinforce.cli import main
from hf_reinforce.errors import BadImageError, BadLabelError, ConfigError, HubError, NotFoundError, OutOfRangeError
from hf_reinforce.storage.paths import local_folder
from hf_reinforce.testing import digits_dataset, mnist_dataset

N, K = 4, 2


def _config(**kwargs) -> hfr.ReinforceConfig:
    base = dict(
        teachers=["timm:test_resnet"],
        policy="rrc+ra+re",
        num_augmentations=N,
        top_k=K,
        resolution=32,
        rows_per_block=8,
        augmentations_per_step=2,
        rows_per_shard=8,
        num_workers=0,
    )
    return hfr.ReinforceConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def mnist() -> datasets.Dataset:
    return mnist_dataset(16)


@pytest.fixture(scope="module")
def plus(mnist) -> datasets.Dataset:
    return hfr.reinforce(mnist, _config(), progress=False)


@pytest.fixture(scope="module")
def validation_folder(mnist, tmp_path_factory) -> Path:
    """A finished folder whose only split is ``validation``."""
    out = tmp_path_factory.mktemp("val") / "plus"
    hfr.reinforce(mnist, _config(), out, split="validation", progress=False)
    return out


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]  # after any progress bar the command drew
    assert last.startswith(f"hf-reinforce {command}: error: "), err
    return last


# -- CLI: one line, exit 2 ---------------------------------------------------------------------------------------


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test on any Hub download or repo lookup (a local path must never reach them)."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"a Hub call was made: {args}")

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", refuse)
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", ["./nowhere", "../nowhere", "nowhere", "{tmp}/nowhere", "{tmp}/sub/nowhere"])
def test_local_paths_that_do_not_exist_say_no_such_folder_without_the_hub(name, tmp_path, no_hub, capsys):
    (tmp_path / "sub").mkdir()
    name = name.format(tmp=tmp_path)
    for call in (
        lambda: hfr.ReinforcedTransform.from_pretrained(name),
        lambda: hfr.load_record(name),
        lambda: hfr.load_reinforced(name),
        lambda: hfr.show(name, output=tmp_path / "x.png"),
    ):
        with pytest.raises(NotFoundError, match=f"no such folder: {re.escape(name)}"):
            call()
    assert main(["show", name]) == 2
    assert "no such folder" in _one_line(capsys, "show")


def test_the_local_path_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert local_folder("user/repo") is None and local_folder("user/repo", bare_names=False) is None
    assert local_folder("mine/..") == Path("mine/..") and local_folder(tmp_path / "mine") == tmp_path / "mine"
    for name in ("./x", "../x", "/x/y", "~/definitely-not-here", "x", "mine/x", Path("a/b")):
        with pytest.raises(NotFoundError, match="no such folder"):
            local_folder(name)
    assert local_folder("mnist", bare_names=False) is None  # a source dataset id without a namespace


def test_missing_local_dataset_folder_is_one_line(capsys, no_hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("./nowhere", "data/nowhere"):
        assert main(["estimate", name, "--teachers", "timm:test_resnet"]) == 2
        assert f"no such folder: {name}" in _one_line(capsys, "estimate")


def test_unknown_teachers_are_one_line(mnist, tmp_path, capsys, monkeypatch):
    path = tmp_path / "m"
    mnist.save_to_disk(str(path))
    capsys.readouterr()
    assert main(["estimate", str(path), "--teachers", "timm:resnet_nonexistent"]) == 2
    assert "timm has no architecture 'resnet_nonexistent'" in _one_line(capsys, "estimate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: the Hub cannot be asked
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="timm/resnet_nonexistent"):
        main(["--debug", "estimate", str(path), "--teachers", "timm/resnet_nonexistent"])


def test_output_dir_that_is_a_file_is_one_line(mnist, tmp_path, capsys):
    path = tmp_path / "m"
    mnist.save_to_disk(str(path))
    capsys.readouterr()
    (tmp_path / "afile").write_text("mine")
    for out in ("afile", "afile/sub"):
        args = ["reinforce", str(path), "--teachers", "timm:test_resnet", "--output-dir", str(tmp_path / out)]
        assert main(args) == 2
        assert "is a file" in _one_line(capsys, "reinforce")
    assert (tmp_path / "afile").read_text() == "mine"


def test_show_row_out_of_range_and_a_folder_without_train(validation_folder, tmp_path, capsys):
    assert main(["show", str(validation_folder), "--output", str(tmp_path / "g.png")]) == 2
    assert "its splits are ['validation']" in _one_line(capsys, "show")
    (validation_folder / "data" / "validation-00000-of-00002.parquet").rename(validation_folder / "moved")
    try:  # the shards alone say the same when the config lists no splits
        with pytest.raises(NotFoundError, match=r"its splits are \['validation'\]"):
            hfr.load_reinforced(validation_folder)
    finally:
        (validation_folder / "moved").rename(validation_folder / "data" / "validation-00000-of-00002.parquet")
    for row in ("16", "-1"):
        args = ["show", str(validation_folder), "--split", "validation", "--row", row, "--output", str(tmp_path / "g")]
        assert main(args) == 2
        assert f"row {row} out of range" in _one_line(capsys, "show") and not (tmp_path / "g").exists()
    assert main(["show", str(validation_folder), "--split", "validation", "--num", "0"]) == 2
    assert "num (augmentations to show): expected a positive integer" in _one_line(capsys, "show")


def test_push_refusals_are_one_line(hub_server, validation_folder, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    assert main(["push", str(validation_folder), hub_server.repo_id("refused")]) == 2
    err = _one_line(capsys, "push")
    assert "(401" in err and "HF_TOKEN" in err and "hf_not_a_valid_token" not in err
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    assert main(["push", str(validation_folder), f"{hub_server.other_user}/theirs"]) == 2
    assert "no rights to write" in _one_line(capsys, "push")  # 403
    hub_server.fail("POST", "/commit/", 404, message="Repository not found")  # e.g. deleted while uploading
    assert main(["push", str(validation_folder), hub_server.repo_id("gone")]) == 2
    assert "not found on the Hub (404)" in _one_line(capsys, "push")
    repo_id = hub_server.repo_id("val-only")
    hfr.push_to_hub(validation_folder, repo_id)
    assert main(["show", repo_id]) == 2  # a Hub repo without the split: the same message, from its config
    assert "its splits are ['validation']" in _one_line(capsys, "show")


def test_internal_errors_still_have_tracebacks(mnist, monkeypatch):
    import hf_reinforce.storage.reader

    monkeypatch.setattr(hf_reinforce.storage.reader, "local_folder", lambda *a, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["show", "./x"])


# -- checked arguments ------------------------------------------------------------------------------------------


def test_set_epoch_and_replay_check_their_arguments(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match=r"epoch: expected an integer in \[0, "):
            transform.set_epoch(bad)
    transform.set_epoch(np.int64(3))
    assert transform.epoch == 3
    for bad in (1.5, True, -1):
        with pytest.raises(ConfigError, match=rf"aug_index: expected an integer in \[0, {N}\), got {bad!r}"):
            transform.replay(plus[0], bad)
    with pytest.raises(OutOfRangeError, match=f"aug_index {N} out of range"):
        transform.replay(plus[0], N)
    with pytest.raises(ConfigError, match=r"num_augmentations: expected an integer in \[1, 100000\], got True"):
        _config(num_augmentations=True)


# -- rows of another reinforced dataset ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_augmentations": 3}, r"has 3 stored augmentations \(this transform's N is 4\)"),
        ({"top_k": 3}, r"has top-3 ids \(this transform's K is 2\)"),
        ({"policy": "rrc"}, r"augmentation columns \['aug_flip', 'aug_rrc'\]"),
        ({"policy": "rrc+mix", "rows_per_block": 16, "rows_per_shard": 16}, r"'aug_mix_partner'"),
    ],
)
def test_a_transform_refuses_rows_of_another_reinforced_dataset(mnist, plus, change, message):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    other = hfr.reinforce(mnist, _config(**change), progress=False)
    for call in (lambda: transform.example(other[0]), lambda: transform.replay(other[0], 0)):
        with pytest.raises(ConfigError, match=message):
            call()
    with pytest.raises(ConfigError, match="not from the dataset this transform was built for"):
        other.with_transform(transform)[:2]


def test_set_epoch_reaches_persistent_dataloader_workers(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    for data in (plus.with_transform(transform), transform.apply(plus)):
        loader = torch.utils.data.DataLoader(
            data, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=hfr.DistillationCollator(pack=False)
        )
        seen = []
        for epoch in range(2):
            transform.set_epoch(epoch)
            got = torch.cat([batch["topk_ids"] for batch in loader])
            expected = torch.stack(
                [torch.tensor(plus[i]["topk_ids"][transform.augmentation_index(i)]) for i in range(len(plus))]
            )
            assert torch.equal(got, expected)
            seen.append(got)
        assert not torch.equal(seen[0], seen[1])  # epoch 1 is not a replay of epoch 0
    copy = pickle.loads(pickle.dumps(transform))
    copy.set_epoch(5)
    assert transform.epoch == 1  # a pickled copy is independent


# -- Trainer and plain-loop misuse --------------------------------------------------------------------------------


def _args(tmp_path, **kwargs):
    import transformers

    base = dict(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[], save_strategy="no", max_steps=1)
    return transformers.TrainingArguments(**{**base, **kwargs})


def test_trainer_misuse_is_explained(plus, tmp_path):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    train = plus.with_transform(transform)
    with pytest.raises(ConfigError, match=r"wrap .* in hfr.TimmStudent\(model\)"):
        hfr.DistillationTrainer(model, _args(tmp_path), transform=transform, train_dataset=train)
    with pytest.raises(ConfigError, match=r"train_dataset.set_transform\(transform\)"):
        hfr.DistillationTrainer(hfr.TimmStudent(model), _args(tmp_path), transform=transform, train_dataset=plus)
    with pytest.raises(ConfigError, match=r"ds\['train'\]"):
        hfr.DistillationTrainer(
            hfr.TimmStudent(model), _args(tmp_path), transform=transform, train_dataset=datasets.DatasetDict(train=plus)
        )
    import transformers

    stock = transformers.Trainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=train,
        data_collator=hfr.DistillationCollator(),
        callbacks=[hfr.DistillationCallback(transform)],
    )
    with pytest.raises(ConfigError, match="TimmStudent"):
        stock.train()


def test_distillation_trainer_does_not_warn_about_remove_unused_columns(plus, tmp_path, caplog):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    student = hfr.TimmStudent(timm.create_model("test_resnet", pretrained=False, num_classes=10))
    args = _args(tmp_path, dataloader_num_workers=1, dataloader_persistent_workers=True)
    with caplog.at_level(logging.INFO):
        trainer = hfr.DistillationTrainer(
            student, args, transform=transform, train_dataset=plus.with_transform(transform)
        )
        trainer.train()  # persistent workers are fine: the epoch is shared with them
    assert not [r for r in caplog.records if "remove_unused_columns" in r.getMessage()]
    assert args.remove_unused_columns is False


def test_distillation_trainer_with_persistent_workers_replays_each_epoch(plus, tmp_path):
    """Through the Trainer: with 1 persistent worker, epoch e's batches hold the top-k of epoch e's augmentations."""
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    seen: list[torch.Tensor] = []

    class Recording(hfr.DistillationTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            seen.append(torch.cat([inputs["labels"][:, None], inputs["topk_ids"]], dim=1).detach().cpu())
            return super().training_step(model, inputs, *args, **kwargs)

    student = hfr.TimmStudent(timm.create_model("test_resnet", pretrained=False, num_classes=10))
    args = _args(
        tmp_path,
        max_steps=-1,
        num_train_epochs=2,
        per_device_train_batch_size=8,
        dataloader_num_workers=1,
        dataloader_persistent_workers=True,
    )
    Recording(student, args, transform=transform, train_dataset=plus.with_transform(transform)).train()
    for epoch in range(2):
        got = sorted(map(tuple, torch.cat(seen[2 * epoch : 2 * epoch + 2]).tolist()))
        expected = sorted(
            (row["label"], *row["topk_ids"][transform.augmentation_index(row["row_index"], epoch)]) for row in plus
        )
        assert got == expected, epoch


def test_trainer_and_callback_train_a_set_transform_dataset_on_the_fast_path(plus, tmp_path, caplog, monkeypatch):
    import transformers
    from datasets.formatting.formatting import PythonArrowExtractor

    def refuse(self, table):
        raise AssertionError(f"rows turned into Python objects: {table.column_names}")

    monkeypatch.setattr(PythonArrowExtractor, "extract_batch", refuse)
    monkeypatch.setattr(PythonArrowExtractor, "extract_row", refuse)
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    student = hfr.TimmStudent(timm.create_model("test_resnet", pretrained=False, num_classes=10))
    train = plus.with_transform(transform)
    trainer = hfr.DistillationTrainer(student, _args(tmp_path), transform=transform, train_dataset=train)
    stock = transformers.Trainer(
        model=student,
        args=_args(tmp_path),
        train_dataset=train,
        data_collator=hfr.DistillationCollator(),
        compute_loss_func=hfr.DistillationLoss(),
        callbacks=[hfr.DistillationCallback(transform)],
    )
    with caplog.at_level(logging.WARNING, logger="hf_reinforce"):
        trainer.train()
        stock.train()
    assert train.format["type"] == "custom"  # the user's dataset as it was given
    assert not [r for r in caplog.records if "transform.apply(dataset)" in r.getMessage()]


def test_packed_batches_in_a_plain_loop_say_pack_false(plus):
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    loader = torch.utils.data.DataLoader(
        plus.with_transform(transform), batch_size=4, collate_fn=hfr.DistillationCollator()
    )
    batch = next(iter(loader))
    with pytest.raises(KeyError, match=r"DistillationCollator\(pack=False\)"):
        batch["topk_ids"]
    with pytest.raises(KeyError, match="apply the transform first"):
        hfr.DistillationCollator(pack=False)([plus[0]])


def test_a_checkpoint_with_another_head_mentions_class_mappings_and_they_work(mnist, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    checkpoint = timm.create_model("test_resnet", num_classes=7).eval()
    save_file(checkpoint.state_dict(), str(tmp_path / "c7.safetensors"))
    spec = f"timm:test_resnet@{tmp_path / 'c7.safetensors'}"
    with pytest.raises(ConfigError, match=r"gives 7 classes but the dataset has 10; .*class_mappings=\{"):
        hfr.reinforce(mnist, _config(teachers=[spec]), progress=False)
    mapping = [0, 1, 2, 3, 4, 5, 6, 6, 6, 6]
    teacher = hfr.load_teacher(spec, num_classes=10, class_mapping=mapping)
    images = torch.rand(2, 3, teacher.resolution, teacher.resolution)
    with torch.no_grad():
        assert torch.allclose(teacher.module(images), checkpoint(images))  # the checkpoint's own 7-way head
    assert hfr.reinforce(mnist, _config(teachers=[spec], class_mappings={spec: mapping}), progress=False)


def test_a_dataset_dict_suggests_one_split(mnist, plus, tmp_path):
    both = datasets.DatasetDict(train=mnist, test=mnist)
    reinforced = datasets.DatasetDict(train=plus)
    transform = hfr.ReinforcedTransform.from_dataset(plus)
    for call in (
        lambda: hfr.reinforce(both, _config(), progress=False),
        lambda: hfr.estimate(both, _config()),
        lambda: hfr.evaluate_teachers(both, _config()),
        lambda: hfr.ReinforcedTransform.from_dataset(reinforced),
        lambda: transform.apply(reinforced),
        lambda: hfr.attach(plus, both),
        lambda: hfr.show(reinforced, output=tmp_path / "x.png"),
    ):
        with pytest.raises(ConfigError, match=r"got a DatasetDict with splits \[.*\]: pass ds\['train'\]"):
            call()


def test_evaluate_teachers_records_the_split_it_was_given(mnist):
    test = datasets.Dataset.from_dict(mnist.to_dict(), features=mnist.features, split="test")
    teacher = hfr.Teacher(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10)), resolution=8, name="lin"
    )
    config = _config(teachers=[teacher])
    assert hfr.evaluate_teachers(test, config)["split"] == "test"
    assert hfr.evaluate_teachers(test, config, split="holdout")["split"] == "holdout"
    with pytest.raises(ConfigError, match="pass split="):
        hfr.evaluate_teachers(mnist, config)


# -- bad input through the pass -----------------------------------------------------------------------------------


def test_labels_outside_the_classes_name_the_row(mnist):
    ints = mnist.cast_column("label", datasets.Value("int64"))
    twelve = ints.map(lambda row, i: {"label": 12 if i == 5 else row["label"]}, with_indices=True)
    with pytest.raises(BadLabelError, match=r"row 5, column 'label': label 12 is outside the 10 classes \[0, 9\]"):
        hfr.reinforce(twelve, _config(num_classes=10), progress=False)
    unlabelled = mnist.map(lambda row, i: {"label": -1 if i == 2 else row["label"]}, with_indices=True)
    with pytest.raises(BadLabelError, match="row 2, column 'label': label -1"):
        hfr.reinforce(unlabelled, _config(), progress=False)


def test_all_rows_bad_is_an_error_not_an_empty_dataset(tmp_path):
    broken = datasets.Dataset.from_dict({"image": [b"not an image"] * 4, "label": [0, 1, 2, 3]})
    config = _config(num_classes=10, skip_bad_images=True)
    with pytest.raises(BadImageError, match="every one of the 4 rows was skipped"):
        hfr.reinforce(broken, config, progress=False)
    with pytest.raises(BadImageError, match="every one of the 4 rows was skipped"):
        hfr.reinforce(broken, config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "reinforce_config.json").exists()  # never looks finished
    with pytest.raises(NotFoundError):
        hfr.load_record(tmp_path / "out")


def _array_datasets() -> dict[str, datasets.Dataset]:
    digits = digits_dataset(16, size=24)
    pixels = np.stack([np.asarray(image.convert("RGB")) for image in digits["image"]])
    labels = digits["label"]
    array = datasets.Features({"image": datasets.Array3D(pixels.shape[1:], "uint8"), "label": digits.features["label"]})
    return {
        "image": digits.cast_column("image", datasets.Image()),
        "array3d": datasets.Dataset.from_dict({"image": pixels, "label": labels}, features=array),
        "lists": datasets.Dataset.from_dict({"image": pixels.tolist(), "label": labels}),  # int64 lists
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_array_image_columns_reinforce_like_images(tmp_path, workers):
    sources = _array_datasets()
    config = _config(num_workers=workers, num_classes=10)
    reference = hfr.reinforce(sources["image"], config, progress=False)
    for name in ("array3d", "lists"):
        for out in (None, tmp_path / name):
            result = hfr.reinforce(sources[name], config, out, progress=False)
            assert result["topk_ids"] == reference["topk_ids"] and result["aug_rrc"] == reference["aug_rrc"]
            transform = hfr.ReinforcedTransform.from_dataset(result)
            expected = hfr.ReinforcedTransform.from_dataset(reference)
            for row in (0, 9):
                assert torch.equal(transform.replay(result[row], 1), expected.replay(reference[row], 1))
            batch = result.with_transform(transform)[:2]
            assert batch["pixel_values"][0].shape == (3, 32, 32)
