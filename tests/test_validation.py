"""One of each: the evaluation view, logits extraction, temperature validation, ensemble averaging and row decoding
are each one function, used by the teacher side and the student side alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

import hf_reinforce as hfr
from hf_reinforce.augment import center_view, single_thread
from hf_reinforce.config import ReinforceConfig
from hf_reinforce.distill.loss import check_hyperparameters
from hf_reinforce.errors import ConfigError
from hf_reinforce.storage.format import TOPK_IDS, TOPK_PROBS, decode_params, decode_topk
from hf_reinforce.teachers import Ensemble, Teacher
from hf_reinforce.testing import run_record
from hf_reinforce.validation import as_logits, check_temperature


class Flat(nn.Module):
    def __init__(self, resolution: int, classes: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(3 * resolution * resolution, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _transform(resolution: int = 24) -> hfr.ReinforcedTransform:
    return hfr.ReinforcedTransform(run_record("rrc", resolution=resolution, interpolation="bicubic"))


def test_students_are_evaluated_on_the_teachers_view_of_non_square_photos(photos: list[torch.Tensor]) -> None:
    transform = _transform()
    out = transform.evaluation({"image": photos, "label": [3, 4]})
    assert out["labels"] == [3, 4]
    for photo, pixels in zip(photos, out["pixel_values"]):
        assert photo.shape[-2] != photo.shape[-1]
        expected = hfr.augment.normalize(center_view(photo, 24, "bicubic"), (0.5,) * 3, (0.25,) * 3)
        torch.testing.assert_close(pixels, expected, rtol=0, atol=0)


def test_center_view_keeps_the_middle_square(photos: list[torch.Tensor]) -> None:
    photo = photos[0]  # 427 × 640
    side, left = 427, (640 - 427) // 2
    middle = center_view(photo[:, :, left : left + side], 32, "bilinear")
    torch.testing.assert_close(center_view(photo, 32, "bilinear").float(), middle.float(), rtol=0, atol=1.0)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    resolution=st.integers(1, 240),
    interpolation=st.sampled_from(["bilinear", "bicubic", "nearest"]),
    seed=st.integers(0, 2**16),
)
def test_center_view_is_the_same_for_channels_last_and_contiguous_images(
    height: int, width: int, resolution: int, interpolation: str, seed: int
) -> None:
    """Render workers pass their channels-last decoded images straight to ``center_view`` (the report's originals);
    the students' evaluation transform passes contiguous ones: both must give the same pixels."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    channels_last = pixels.permute(2, 0, 1)
    assert height * width == 1 or not channels_last.is_contiguous()
    expected = center_view(channels_last.contiguous(), resolution, interpolation)
    assert torch.equal(center_view(channels_last, resolution, interpolation), expected)


def test_center_view_of_real_photos_is_the_same_channels_last(photos: list[torch.Tensor]) -> None:
    for photo in photos:
        channels_last = photo.permute(1, 2, 0).contiguous().permute(2, 0, 1)
        for resolution, interpolation in ((224, "bilinear"), (160, "bicubic"), (32, "bilinear")):
            expected = center_view(photo.contiguous(), resolution, interpolation)
            assert torch.equal(center_view(channels_last, resolution, interpolation), expected)


@pytest.mark.parametrize(
    "output",
    [
        "tensor",
        "model_output",
        "dict",
        "tuple",
    ],
)
def test_as_logits_reads_every_output_form(output: str) -> None:
    logits = torch.randn(2, 5)
    value = {
        "tensor": logits,
        "model_output": ImageClassifierOutput(logits=logits),
        "dict": {"logits": logits, "hidden": None},
        "tuple": (logits, torch.zeros(1)),
    }[output]
    assert as_logits(value) is logits
    with pytest.raises(TypeError, match="'student' returned str"):
        as_logits("nope", "'student'")


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, True, "1"])
def test_one_temperature_rule_everywhere(value: object) -> None:
    teacher = Teacher(Flat(8, 4, 0), resolution=8, name="flat")
    for check in (
        lambda: check_temperature(value),
        lambda: Ensemble([teacher], temperature=value),
        lambda: check_hyperparameters(value, 0.0, 0.0),
        lambda: hfr.distillation_loss(torch.randn(2, 4), torch.tensor([[0], [1]]), torch.ones(2, 1), temperature=value),
        lambda: ReinforceConfig(teachers=["timm:test_resnet"], temperature=value),
    ):
        with pytest.raises(ConfigError, match="temperature: expected a finite positive number"):
            check()
    assert check_temperature(2) == 2.0 and Ensemble([teacher], temperature=0.5).temperature == 0.5


def test_ensemble_probs_is_the_average_of_teacher_probs() -> None:
    teachers = [Teacher(Flat(8, 4, seed), resolution=8, name=f"t{seed}") for seed in range(3)]
    ensemble = Ensemble(teachers, temperature=2.0)
    views = {(8, "bilinear"): torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)}
    parts = ensemble.teacher_probs(views)
    assert len(parts) == 3
    for teacher, probs in zip(teachers, parts):
        torch.testing.assert_close(probs, torch.softmax(teacher.logits(views[(8, "bilinear")]) / 2.0, dim=1))
    torch.testing.assert_close(ensemble.probs(views), sum(parts) / 3, rtol=0, atol=1e-7)
    assert torch.equal(ensemble.probs(views), Ensemble.average(parts))


def test_decode_row_whole_or_one_augmentation() -> None:
    policy = hfr.AugmentationPolicy.parse("rrc")
    rng = np.random.default_rng(0)
    row = {name: rng.integers(0, 100, (3, *shape)).tolist() for name, (_dtype, shape) in policy.columns.items()}
    row[TOPK_IDS] = [[2, 0], [1, 3], [0, 1]]
    row[TOPK_PROBS] = [[0.5, 0.25], [0.75, 0.125], [0.5, 0.5]]
    whole = decode_params(row, policy)
    for j in range(3):
        one = decode_params(row, policy, index=j)
        for name, (dtype, _shape) in policy.columns.items():
            assert one[name].dtype == np.dtype(dtype) and one[name].shape[0] == 1
            np.testing.assert_array_equal(one[name][0], whole[name][j])
        ids, probs = decode_topk(row, index=j)
        assert ids.dtype == torch.int64 and probs.dtype == torch.float32
        assert torch.equal(ids, decode_topk(row)[0][j]) and torch.equal(probs, decode_topk(row)[1][j])
    with pytest.raises(KeyError, match="remove_unused_columns"):
        _transform().replay({}, 0)


def test_transform_renders_with_one_thread_and_restores_the_callers_count(monkeypatch):
    """In the main process (Trainer's default dataloader_num_workers=0) the transform's pixel work runs with one
    torch thread, as in the pass (7–15× faster per row on 2 busy cores, scripts/bench_transform.py); training gets
    its own thread count back after each call."""
    from hf_reinforce import testing
    from hf_reinforce.augment import AugmentationPolicy

    plus = hfr.reinforce(
        testing.mnist_dataset(4), testing.tiny_config(num_augmentations=2, num_workers=0), progress=False
    )
    transform = hfr.ReinforcedTransform.from_dataset(plus, check_replay="off")  # one render per read below
    seen: list[int] = []
    render = AugmentationPolicy.replay_views

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return render(self, *args, **kwargs)

    monkeypatch.setattr(AugmentationPolicy, "replay_views", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        transform(plus.with_format(None)[:])  # 4 rows, rendered together
        transform.apply(plus)[1]
        assert seen == [1, 1] and torch.get_num_threads() == 2
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
