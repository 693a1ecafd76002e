"""ReinforcedTransform: exact replay of the teachers' inputs, per-epoch cycling, workers, streaming, Trainer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import hf_reinforce as hfr
from hf_reinforce.augment import normalize
from hf_reinforce.distill import augmentation_index
from hf_reinforce.storage.reader import load_reinforced
from hf_reinforce.testing import mnist_dataset

N = 6


class Recorder(nn.Module):
    """A tiny real classifier that also records every normalized batch it is shown."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.net(x)


@pytest.fixture(scope="module")
def mnist_ds() -> Dataset:
    return mnist_dataset(32)


def _reinforce(ds: Dataset, policy: str, teacher: hfr.Teacher | str = "timm:test_resnet", **kwargs) -> Dataset:
    config = hfr.ReinforceConfig(
        teachers=[teacher],
        policy=policy,
        num_augmentations=N,
        top_k=3,
        resolution=32,
        rows_per_block=16,
        augmentations_per_step=3,
        **kwargs,
    )
    return hfr.reinforce(ds, config, progress=False)


@pytest.mark.parametrize("policy", ["rrc+ra+re", "rrc+mix+ra+re"])
def test_transform_replays_exactly_what_the_teacher_saw(mnist_ds, policy):
    module = Recorder()
    teacher = hfr.Teacher(
        module,
        resolution=40,
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
        interpolation="bicubic",
        name="rec",
        num_outputs=10,
    )
    out = _reinforce(mnist_ds, policy, teacher)
    seen = torch.cat(module.seen)  # blocks of 16 rows × 3 augmentations, row-major, in order, then the block's
    # 16 evaluation views for the reinforcement report
    transform = hfr.ReinforcedTransform.from_dataset(out)
    assert transform.resolution == 32 and transform.interpolation == "bicubic" and transform.mean == (0.5, 0.4, 0.3)
    for row_index in (0, 5, 17, 31):
        row = out[row_index]
        for j in (0, 4):
            block, r = divmod(row_index, 16)
            step, t = divmod(j, 3)
            position = block * 16 * (N + 1) + step * 16 * 3 + r * 3 + t
            pixels = transform.replay(row, j, resolution=40, interpolation="bicubic")
            assert torch.equal(normalize(pixels, teacher.mean, teacher.std), seen[position])


def test_every_augmentation_is_used_before_any_repeats():
    for row in range(20):
        for cycle in range(3):
            used = [augmentation_index(7, row, e, N) for e in range(cycle * N, (cycle + 1) * N)]
            assert sorted(used) == list(range(N))
    first = [augmentation_index(7, 3, e, N) for e in range(N)]
    assert first != [augmentation_index(7, 4, e, N) for e in range(N)]  # rows are permuted independently


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), row=st.integers(0, 10**7), n=st.integers(1, 500), epoch=st.integers(0, 5000))
def test_augmentation_choice_is_deterministic_and_in_range(seed, row, n, epoch):
    a = augmentation_index(seed, row, epoch, n)
    assert a == augmentation_index(seed, row, epoch, n) and 0 <= a < n
    cycle = epoch // n
    assert sorted(augmentation_index(seed, row, e, n) for e in range(cycle * n, cycle * n + n)) == list(range(n))


def test_outputs_follow_the_epoch(mnist_ds):
    out = _reinforce(mnist_ds, "rrc+ra+re")
    transform = hfr.ReinforcedTransform.from_dataset(out, resolution=24)
    raw = out[:4]
    views = out.with_transform(transform)
    for epoch in range(2):
        transform.set_epoch(epoch)
        batch = views[:4]
        for k in range(4):
            j = transform.augmentation_index(raw["row_index"][k])
            assert batch["pixel_values"][k].shape == (3, 24, 24) and batch["pixel_values"][k].dtype == torch.float32
            assert batch["labels"][k] == raw["label"][k]
            assert batch["topk_ids"][k].tolist() == raw["topk_ids"][k][j]
            assert torch.allclose(batch["topk_probs"][k], torch.tensor(raw["topk_probs"][k][j]))
            expected = normalize(
                transform.replay(raw and {c: v[k] for c, v in raw.items()}, j), transform.mean, transform.std
            )
            assert torch.equal(batch["pixel_values"][k], expected)


def test_dataloader_workers_and_pickling(mnist_ds):
    out = _reinforce(mnist_ds, "rrc+mix")
    transform = hfr.ReinforcedTransform.from_dataset(out)
    assert pickle.loads(pickle.dumps(transform)).replay(out[2], 1).shape == (3, 32, 32)
    train = out.with_transform(transform)
    collate = hfr.DistillationCollator(pack=False)
    in_process = list(torch.utils.data.DataLoader(train, batch_size=8, collate_fn=collate))
    workers = list(torch.utils.data.DataLoader(train, batch_size=8, collate_fn=collate, num_workers=2))
    assert len(workers) == 4
    for a, b in zip(in_process, workers):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["topk_ids"], b["topk_ids"])


def test_streaming_without_mixing_and_clear_error_with_mixing(mnist_ds, tmp_path):
    config = hfr.ReinforceConfig(
        teachers=["timm:test_resnet"],
        policy="rrc+ra+re",
        num_augmentations=N,
        top_k=3,
        resolution=32,
        rows_per_block=16,
        rows_per_shard=16,
    )
    hfr.reinforce(mnist_ds, config, tmp_path / "plus", progress=False)
    transform = hfr.ReinforcedTransform.from_pretrained(tmp_path / "plus")
    stream = load_reinforced(tmp_path / "plus", split="train", streaming=True)
    mapped = stream.map(transform, batched=True, batch_size=8, remove_columns=list(stream.column_names))
    rows = list(mapped.take(10))
    assert len(rows) == 10 and rows[0]["pixel_values"].shape == (3, 32, 32)
    full = load_reinforced(tmp_path / "plus", split="train")
    j = transform.augmentation_index(full[9]["row_index"])
    assert torch.equal(rows[9]["pixel_values"], normalize(transform.replay(full[9], j), transform.mean, transform.std))

    mixing = dict(transform.record.to_dict(), policy=hfr.AugmentationPolicy.parse("rrc+mix").to_dict())
    with pytest.raises(ValueError, match="streaming"):
        hfr.ReinforcedTransform(mixing, dataset=stream)
    with pytest.raises(ValueError, match="dataset="):
        hfr.ReinforcedTransform(mixing)


def test_clear_errors(mnist_ds):
    out = _reinforce(mnist_ds, "rrc")
    transform = hfr.ReinforcedTransform.from_dataset(out)
    with pytest.raises(KeyError, match="remove_unused_columns"):
        transform({"pixel_values": [1]})
    with pytest.raises(IndexError, match="out of range"):
        transform.replay(out[0], N)
    loaded = Dataset.from_dict(out[:2])
    with pytest.raises(ValueError, match="from_pretrained"):
        hfr.ReinforcedTransform.from_dataset(loaded)
    newer = dict(transform.record.to_dict(), schema_version=99)
    with pytest.raises(ValueError, match="version 99"):
        hfr.ReinforcedTransform(newer)


def test_trainer_runs_on_the_real_transform(mnist_ds, tmp_path):
    import timm
    import transformers

    out = _reinforce(mnist_ds, "rrc+ra+re")
    transform = hfr.ReinforcedTransform.from_dataset(out)
    out.set_transform(transform)
    student = hfr.TimmStudent(timm.create_model("test_resnet", pretrained=False, num_classes=10))
    args = transformers.TrainingArguments(
        str(tmp_path / "run"),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = hfr.DistillationTrainer(model=student, args=args, train_dataset=out, transform=transform, ce_weight=0.2)
    trainer.train()
    assert transform.epoch == 1
    logs = [entry for entry in trainer.state.log_history if "kd_loss" in entry]
    assert logs and all(np.isfinite(entry["kd_loss"]) for entry in logs)


@pytest.mark.parametrize("policy", ["rrc+ra+re", "rrc+mix"])
def test_apply_matches_set_transform_and_torch_dataset_is_its_deprecated_name(mnist_ds, policy):
    out = _reinforce(mnist_ds, policy)
    transform = hfr.ReinforcedTransform.from_dataset(out)
    transform.set_epoch(3)
    replay = transform.apply(out.shuffle(seed=0))
    formatted = out.shuffle(seed=0).with_transform(transform)
    assert len(replay) == len(out)
    for i in (0, 7, 31):
        a, b = replay[i], formatted[i]
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and a["labels"] == b["labels"]
        assert torch.equal(a["topk_ids"], b["topk_ids"]) and torch.equal(a["topk_probs"], b["topk_probs"])
    loader = torch.utils.data.DataLoader(
        replay, batch_size=8, num_workers=2, collate_fn=hfr.DistillationCollator(pack=False)
    )
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (8, 3, 32, 32) and batch["topk_ids"].shape == (8, 3)
    with pytest.warns(FutureWarning, match=r"torch_dataset is deprecated .* use ReinforcedTransform.apply"):
        old = transform.torch_dataset(out)
    assert torch.equal(old[2]["pixel_values"], transform.apply(out)[2]["pixel_values"])
