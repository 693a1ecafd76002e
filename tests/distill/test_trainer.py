"""Collator, DistillationLoss, callback and DistillationTrainer driving real transformers.Trainer runs on CPU."""

from __future__ import annotations

import copy
import logging
import types

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms.v2.functional as TF
from datasets import Dataset, Features, Image, List, Value
from transformers import (
    ResNetConfig,
    ResNetForImageClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from hf_reinforce import testing
from hf_reinforce.distill import (
    DistillationCallback,
    DistillationCollator,
    DistillationLoss,
    DistillationTrainer,
    TimmStudent,
    distillation_loss,
    pack_labels,
    unpack_labels,
)
from hf_reinforce.errors import ConfigError

NUM_CLASSES, NUM_AUGMENTATIONS, TOP_K, RESOLUTION = 10, 3, 3, 32


class StandInTransform:
    """Stand-in for ReinforcedTransform's contract: resize + normalize, stored top-k of augmentation epoch % N."""

    def __init__(self) -> None:
        self.epoch = 0
        self.set_epoch_calls: list[int] = []
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.set_epoch_calls.append(epoch)

    def __call__(self, batch: dict) -> dict:
        aug = self.epoch % NUM_AUGMENTATIONS
        self.epochs_seen.append(self.epoch)
        pixels = [
            TF.normalize(
                TF.to_dtype(
                    TF.resize(TF.pil_to_tensor(image.convert("RGB")), [RESOLUTION] * 2),
                    torch.float32,
                    scale=True,
                ),
                mean=[0.5] * 3,
                std=[0.25] * 3,
            )
            for image in batch["image"]
        ]
        return {
            "pixel_values": pixels,
            "labels": list(batch["label"]),
            "topk_ids": [torch.tensor(ids[aug], dtype=torch.int64) for ids in batch["topk_ids"]],
            "topk_probs": [torch.tensor(probs[aug], dtype=torch.float32) for probs in batch["topk_probs"]],
        }


def eval_transform(batch: dict) -> dict:
    """A plain evaluation transform: pixels and hard labels, no teacher top-k."""
    out = StandInTransform()(batch)
    return {"pixel_values": out["pixel_values"], "labels": out["labels"]}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """16 real 8×8 digits upscaled to 24×24, with stored top-k of 3 synthetic teacher augmentations."""
    rows = 16
    source = testing.digits_dataset(rows, size=24, resample="bicubic")
    images = source["image"]
    labels = np.asarray(source["label"], dtype=np.int64)
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(rows, NUM_AUGMENTATIONS, NUM_CLASSES))
    logits[np.arange(rows), :, labels] += 3.0
    teacher = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    ids = np.argsort(-teacher, axis=-1)[..., :TOP_K]
    probs = np.take_along_axis(teacher, ids, axis=-1)
    features = Features(
        {
            "image": Image(),
            "label": Value("int64"),
            "topk_ids": List(List(Value("int16"))),
            "topk_probs": List(List(Value("float16"))),
        }
    )
    return Dataset.from_dict(
        {
            "image": images,
            "label": labels.tolist(),
            "topk_ids": ids.tolist(),
            "topk_probs": probs.tolist(),
        },
        features=features,
    )


def timm_student(name: str = "test_resnet") -> TimmStudent:
    torch.manual_seed(0)
    kwargs = {"img_size": RESOLUTION} if "vit" in name else {}
    return TimmStudent(timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kwargs))


def hf_resnet() -> ResNetForImageClassification:
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=NUM_CLASSES)
    return ResNetForImageClassification(config)


def training_args(tmp_path, **overrides) -> TrainingArguments:
    base = {
        "output_dir": str(tmp_path / "out"),
        "use_cpu": True,
        "report_to": "none",
        "per_device_train_batch_size": 4,
        "num_train_epochs": 3,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "learning_rate": 1e-3,
    }
    return TrainingArguments(**{**base, **overrides})


class LogRecorder(TrainerCallback):
    """Records every logs dict as its callback sees it."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def training_logs(log_history: list[dict]) -> list[dict]:
    return [entry for entry in log_history if "loss" in entry]


# ---- collator and DistillationLoss -------------------------------------------------------------


def rows(batch: int = 3, k: int = 2) -> list[dict]:
    return [
        {
            "pixel_values": torch.full((3, 4, 4), float(i)),
            "labels": i,
            "topk_ids": torch.tensor([i, i + 1]),
            "topk_probs": torch.tensor([0.6, 0.3]),
            "image": "ignored",
        }
        for i in range(batch)
    ]


def test_collator_packs_labels_for_the_stock_trainer():
    batch = DistillationCollator()(rows())
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["pixel_values"].shape == (3, 3, 4, 4) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (3, 5) and batch["labels"].dtype == torch.float32
    labels, ids, probs = unpack_labels(batch["labels"])
    assert labels.tolist() == [0, 1, 2] and ids.tolist() == [[0, 1], [1, 2], [2, 3]]
    torch.testing.assert_close(probs, torch.tensor([[0.6, 0.3]] * 3))
    assert int(batch["labels"].ne(-100).sum()) == 3 * 5  # the Trainer's num_items_in_batch count


def test_collator_plain_mode_and_rows_without_topk():
    batch = DistillationCollator(pack=False)(rows())
    assert batch["labels"].tolist() == [0, 1, 2] and batch["labels"].dtype == torch.int64
    assert batch["topk_ids"].dtype == torch.int64 and batch["topk_probs"].dtype == torch.float32
    plain = [{"pixel_values": r["pixel_values"], "labels": r["labels"]} for r in rows()]
    assert set(DistillationCollator()(plain)) == {"pixel_values", "labels"}


def test_collator_and_packing_errors():
    with pytest.raises(ValueError, match="some rows"):
        DistillationCollator()(rows()[:2] + [{"pixel_values": torch.zeros(3, 4, 4), "labels": 0}])
    with pytest.raises(KeyError, match="missing \\['labels'\\]"):
        DistillationCollator()([{"pixel_values": torch.zeros(3, 4, 4)}])
    with pytest.raises(ValueError, match=r"labels must be class ids.*\[-100, 1\]"):
        pack_labels(
            torch.tensor([-100, 1]),
            torch.zeros(2, 2, dtype=torch.long),
            torch.zeros(2, 2),
        )
    with pytest.raises(ValueError, match=r"got shape \(2, 4\)"):
        unpack_labels(torch.zeros(2, 4))


def test_distillation_loss_normalizes_by_num_items_in_batch():
    batch = DistillationCollator()(rows(batch=4))
    logits = torch.randn(4, 6)
    labels, ids, probs = unpack_labels(batch["labels"])
    loss_fn = DistillationLoss(temperature=2.0, ce_weight=0.25, label_smoothing=0.1)
    per_sample = distillation_loss(
        logits,
        ids,
        probs,
        temperature=2.0,
        labels=labels,
        ce_weight=0.25,
        label_smoothing=0.1,
        reduction="none",
    )
    torch.testing.assert_close(loss_fn({"logits": logits}, batch["labels"]), per_sample.mean())
    accumulated_items = torch.tensor(12 * batch["labels"].shape[1])  # 12 samples in the accumulated batch
    torch.testing.assert_close(loss_fn((logits,), batch["labels"], accumulated_items), per_sample.sum() / 12)
    parts = loss_fn.pop_parts()
    assert set(parts) == {"kd_loss", "ce_loss"} and loss_fn.pop_parts() == {}
    with torch.no_grad():  # evaluation: no parts recorded; plain labels give cross-entropy
        loss_fn(logits, batch["labels"])
        ce = loss_fn(logits, labels)
    assert loss_fn.pop_parts() == {}
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, labels))


# ---- real Trainer runs -------------------------------------------------------------------------


def test_stock_trainer_with_callback_drives_timm_student(digits, tmp_path):
    transform = StandInTransform()
    loss = DistillationLoss(ce_weight=0.2)
    args = training_args(tmp_path)
    assert args.remove_unused_columns  # the default the callback has to fix
    trainer = Trainer(
        model=timm_student(),
        args=args,
        train_dataset=digits.with_transform(transform),
        data_collator=DistillationCollator(),
        compute_loss_func=loss,
        callbacks=[DistillationCallback(transform, loss)],
    )
    assert args.remove_unused_columns is False
    trainer.train()
    assert transform.set_epoch_calls == [0, 1, 2]
    assert transform.epochs_seen == sorted(transform.epochs_seen) and set(transform.epochs_seen) == {0, 1, 2}
    logs = training_logs(trainer.state.log_history)
    assert len(logs) == 12
    assert all(np.isfinite(entry["kd_loss"]) and np.isfinite(entry["ce_loss"]) for entry in logs)


def test_distillation_trainer_drives_hf_resnet_with_eval(digits, tmp_path):
    transform = StandInTransform()
    recorder = LogRecorder()
    trainer = DistillationTrainer(
        hf_resnet(),
        training_args(
            tmp_path,
            num_train_epochs=2,
            eval_strategy="epoch",
            per_device_eval_batch_size=8,
        ),
        transform=transform,
        temperature=2.0,
        ce_weight=0.5,
        label_smoothing=0.1,
        train_dataset=digits.with_transform(transform),
        eval_dataset=digits.select(range(8)).with_transform(eval_transform),
        callbacks=[recorder],  # runs before DistillationCallback, like report_to integrations
    )
    trainer.train()
    assert transform.set_epoch_calls == [0, 1]
    assert all("kd_loss" in entry and "ce_loss" in entry for entry in training_logs(recorder.logs))
    assert len(training_logs(trainer.state.log_history)) == 8
    eval_logs = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert len(eval_logs) == 2 and all(np.isfinite(entry["eval_loss"]) for entry in eval_logs)
    assert not any("kd_loss" in entry for entry in eval_logs)


def test_without_the_callback_trainer_drops_the_raw_columns(digits, tmp_path):
    transform = StandInTransform()
    trainer = Trainer(
        model=timm_student(),
        args=training_args(tmp_path),
        train_dataset=digits.with_transform(transform),
        data_collator=DistillationCollator(),
        compute_loss_func=DistillationLoss(),
    )
    with pytest.raises(KeyError, match="image"):
        trainer.train()


def test_callback_added_after_init_raises_a_clear_error(digits, tmp_path):
    transform = StandInTransform()
    trainer = Trainer(
        model=timm_student(),
        args=training_args(tmp_path),
        train_dataset=digits.with_transform(transform),
        data_collator=DistillationCollator(),
        compute_loss_func=DistillationLoss(),
    )
    trainer.add_callback(DistillationCallback(transform))
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        trainer.train()
    assert transform.epochs_seen == []


def test_persistent_workers_are_refused(digits, tmp_path):
    transform = StandInTransform()
    args = training_args(tmp_path, dataloader_num_workers=1, dataloader_persistent_workers=True)
    trainer = DistillationTrainer(
        timm_student(),
        args,
        transform=transform,
        train_dataset=digits.with_transform(transform),
    )
    with pytest.raises(ValueError, match="persistent_workers"):
        trainer.train()


@pytest.mark.parametrize("checkpoint_step, resumed_epochs", [(4, [1, 2]), (6, [1, 2]), (10, [2])])
def test_resume_continues_the_epoch_sequence(digits, tmp_path, checkpoint_step, resumed_epochs):
    """16 rows / batch 4 = 4 steps per epoch: step 4 ends epoch 0, steps 6 and 10 are mid-epoch."""
    transform = StandInTransform()
    args = training_args(
        tmp_path,
        save_strategy="steps",
        save_steps=checkpoint_step,
        max_steps=checkpoint_step,
    )
    DistillationTrainer(
        timm_student(),
        args,
        transform=transform,
        train_dataset=digits.with_transform(transform),
    ).train()
    resumed = StandInTransform()
    args = training_args(tmp_path, save_strategy="no", save_steps=checkpoint_step)
    trainer = DistillationTrainer(
        timm_student(),
        args,
        transform=resumed,
        train_dataset=digits.with_transform(resumed),
    )
    trainer.train(resume_from_checkpoint=str(tmp_path / "out" / f"checkpoint-{checkpoint_step}"))
    assert trainer.state.global_step == 12
    assert resumed.set_epoch_calls == resumed_epochs
    assert set(resumed.epochs_seen) <= set(resumed_epochs)


def one_sgd_step(
    digits,
    tmp_path,
    trainer_kind: str,
    model: torch.nn.Module,
    batch: int,
    accumulation: int,
):
    """Parameters after one optimizer step over 8 rows with a given micro-batch/accumulation split."""
    transform = StandInTransform()
    args = training_args(
        tmp_path / f"{trainer_kind}-{batch}x{accumulation}",
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,  # clipping would hide a wrongly scaled gradient
    )
    train = digits.select(range(8)).with_transform(transform)
    hyper = {"temperature": 2.0, "ce_weight": 0.3, "label_smoothing": 0.1}
    if trainer_kind == "subclass":
        trainer = DistillationTrainer(model, args, transform=transform, train_dataset=train, **hyper)
    else:
        loss = DistillationLoss(**hyper)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            data_collator=DistillationCollator(),
            compute_loss_func=loss,
            callbacks=[DistillationCallback(transform, loss)],
        )
    trainer.train()
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()


@pytest.mark.parametrize("trainer_kind", ["stock", "subclass"])
def test_gradient_accumulation_matches_the_large_batch(digits, tmp_path, trainer_kind):
    initial = timm_student("test_vit")  # no batch norm: micro-batches see the same function as the big batch
    start = torch.nn.utils.parameters_to_vector(initial.parameters()).detach().clone()
    big = one_sgd_step(digits, tmp_path, trainer_kind, copy.deepcopy(initial), 8, 1)
    assert (big - start).abs().max() > 1e-3  # the step is large enough for a scaling error to show
    for batch, accumulation in ((4, 2), (2, 4)):
        accumulated = one_sgd_step(digits, tmp_path, trainer_kind, copy.deepcopy(initial), batch, accumulation)
        torch.testing.assert_close(accumulated, big, rtol=1e-5, atol=1e-6)


def test_plain_pytorch_loop(digits):
    transform = StandInTransform()
    loader = torch.utils.data.DataLoader(
        digits.with_transform(transform),
        batch_size=8,
        collate_fn=DistillationCollator(pack=False),
    )
    model = timm_student().model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        transform.set_epoch(epoch)
        for batch in loader:
            loss = distillation_loss(
                model(batch["pixel_values"]),
                batch["topk_ids"],
                batch["topk_probs"],
                labels=batch["labels"],
                ce_weight=0.1,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss)
    assert set(transform.epochs_seen) == {0, 1}


def test_distillation_trainer_trains_on_unpacked_batches_and_metrics_see_real_labels(digits, tmp_path):
    transform = StandInTransform()
    batches, seen = [], []

    class Recording(DistillationTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            batches.append({key: tuple(value.shape) for key, value in inputs.items()})
            return super().training_step(model, inputs, *args, **kwargs)

    def metrics(prediction):
        seen.append(prediction.label_ids)
        return {"top1": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    trainer = Recording(
        timm_student(),
        training_args(tmp_path, num_train_epochs=1, eval_strategy="epoch", per_device_eval_batch_size=8),
        transform=transform,
        train_dataset=digits.with_transform(transform),
        eval_dataset=digits.select(range(8)).with_transform(transform),  # an evaluation split with top-k: distills
        compute_metrics=metrics,
    )
    trainer.train()
    assert batches[0] == {"pixel_values": (4, 3, 32, 32), "labels": (4,), "topk_ids": (4, 3), "topk_probs": (4, 3)}
    assert seen[0].tolist() == digits.select(range(8))["label"]  # real (B,) labels, not packed rows
    assert any("eval_top1" in entry for entry in trainer.state.log_history)


def test_dataloader_num_workers_zero_is_explained_with_a_value_for_this_machine(digits, tmp_path, caplog, monkeypatch):
    def logged(cores: int, workers: int) -> list[str]:
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        transform = StandInTransform()
        args = training_args(tmp_path, max_steps=1, dataloader_num_workers=workers)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_reinforce"):
            DistillationTrainer(
                timm_student(), args, transform=transform, train_dataset=digits.with_transform(transform)
            ).train()
        return [r.getMessage() for r in caplog.records if "dataloader_num_workers" in r.getMessage()]

    (advice,) = logged(cores=8, workers=0)
    assert "TrainingArguments(dataloader_num_workers=7)" in advice and "8 cores" in advice
    assert logged(cores=8, workers=1) == [] and logged(cores=1, workers=0) == []


def test_a_student_with_another_number_of_classes_is_refused(digits, tmp_path):
    logits, ids = torch.randn(3, NUM_CLASSES), torch.tensor([[0, 1]] * 3)
    probs, labels = torch.tensor([[0.6, 0.3]] * 3), torch.tensor([0, 1, 2])
    with pytest.raises(ConfigError, match=f"outputs {NUM_CLASSES} classes but .* labelled {NUM_CLASSES + 2}"):
        DistillationLoss(num_classes=NUM_CLASSES + 2).unpacked(logits, labels, ids, probs)
    assert DistillationLoss(num_classes=NUM_CLASSES).unpacked(logits, labels, ids, probs).isfinite()

    transform = StandInTransform()
    transform.record = types.SimpleNamespace(num_classes=NUM_CLASSES + 2)  # what a run record says
    trainer = DistillationTrainer(
        model=timm_student(),
        args=training_args(tmp_path, num_train_epochs=1),
        train_dataset=digits.with_transform(transform),
        transform=transform,
    )
    assert trainer.distillation_loss.num_classes == NUM_CLASSES + 2
    with pytest.raises(ConfigError, match=f"give the student a head of {NUM_CLASSES + 2} outputs"):
        trainer.train()
