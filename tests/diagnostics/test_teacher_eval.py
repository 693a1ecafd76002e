"""Teacher/ensemble accuracy on a validation split, recorded in the config and the card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from huggingface_hub import DatasetCard
from torch import nn

import hf_reinforce as hfr
from hf_reinforce.diagnostics.teacher_eval import center_view, evaluate_teachers
from hf_reinforce.testing import mnist_dataset


class Constant(nn.Module):
    """Always predicts ``cls`` (a teacher whose accuracy is the frequency of ``cls``)."""

    def __init__(self, cls: int, num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("logits", torch.nn.functional.one_hot(torch.tensor(cls), num_classes).float() * 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


@pytest.fixture(scope="module")
def digits_ds() -> Dataset:
    return mnist_dataset(60, seed=2)


def test_accuracy_of_teachers_and_ensemble(digits_ds, tmp_path):
    labels = np.asarray(digits_ds["label"])
    teachers = [
        hfr.Teacher(Constant(3), resolution=16, name="always-3", num_outputs=10),
        hfr.Teacher(Constant(7), resolution=16, name="always-7", num_outputs=10),
        "timm:test_resnet",
    ]
    config = hfr.ReinforceConfig(teachers=teachers, policy="rrc", num_augmentations=2, top_k=2, resolution=32)
    hfr.reinforce(digits_ds, config, tmp_path / "plus", progress=False)
    with pytest.warns(UserWarning, match="near chance"):  # constant and random-init teachers
        result = evaluate_teachers(digits_ds, config, output_dir=tmp_path / "plus", split="validation")
    assert result["num_rows"] == 60 and result["split"] == "validation"
    assert result["teachers"]["always-3"] == round(float((labels == 3).mean()), 4)
    assert result["teachers"]["always-7"] == round(float((labels == 7).mean()), 4)

    teacher = hfr.load_teacher("timm:test_resnet", num_classes=10, preprocessing=config.preprocessing)
    views = torch.stack(
        [center_view(hfr.to_rgb_uint8(r["image"]), teacher.resolution, teacher.interpolation) for r in digits_ds]
    )
    expected = float((teacher.logits(views).argmax(1).numpy() == labels).mean())
    assert result["teachers"]["timm:test_resnet"] == round(expected, 4)

    stored = json.loads((tmp_path / "plus" / "reinforce_config.json").read_text())
    assert stored["accuracy"] == result
    card = DatasetCard.load(tmp_path / "plus" / "README.md")
    assert "validation top-1" in card.text and f"{result['ensemble']}" in card.text


def test_center_view_crops_the_middle_square():
    image = torch.zeros(3, 40, 100, dtype=torch.uint8)
    image[:, :, 30:70] = 255
    view = center_view(image, 20, "bilinear")
    assert view.shape == (3, 20, 20) and int(view.min()) == 255
