"""Teacher and ensemble accuracy on a labelled split (recorded in the config and the card).

Every teacher sees :func:`~hf_reinforce.augment.center_view` of each image, the same view the students are
evaluated on (``ReinforcedTransform.evaluation``), so the card's teacher accuracy and a student's compare."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import datasets
import torch

from ..augment import center_view, to_rgb_uint8
from ..config import ReinforceConfig
from ..engine.reinforce_pass import build_ensemble, check_columns, dataset_num_classes, undecoded
from ..errors import ConfigError
from ..hub.card import write_record
from ..storage.files import file_errors
from ..storage.locks import folder_lock
from ..storage.reader import load_record
from ..teachers import Ensemble
from ..validation import check_split


@torch.inference_mode()
def ensemble_accuracy(
    dataset: datasets.Dataset, ensemble: Ensemble, image_column: str, label_column: str, batch_size: int = 64
) -> dict[str, Any]:
    """Top-1 accuracy of each teacher and of the ensemble's mean probabilities on ``dataset``."""
    correct = {t.name: 0 for t in ensemble.teachers}
    correct_ensemble, total = 0, 0
    rows, _ = undecoded(dataset.select_columns([image_column, label_column]), image_column)
    for batch in rows.iter(batch_size=batch_size):
        images = [to_rgb_uint8(value) for value in batch[image_column]]
        labels = torch.as_tensor(batch[label_column], device=ensemble.device)
        views = {
            spec: torch.stack([center_view(im, spec.resolution, spec.interpolation) for im in images])
            for spec in ensemble.view_specs()
        }
        parts = ensemble.teacher_probs(views)
        for teacher, probs in zip(ensemble.teachers, parts):
            correct[teacher.name] += int((probs.argmax(1) == labels).sum())
        mean = ensemble.average(parts)
        correct_ensemble += int((mean.argmax(1) == labels).sum())
        total += len(labels)
    if total == 0:
        raise ConfigError("the evaluation split is empty: give a split with rows")
    return {
        "num_rows": total,
        "teachers": {name: round(c / total, 4) for name, c in correct.items()},
        "ensemble": round(correct_ensemble / total, 4),
    }


NEAR_CHANCE = 1.5
"""An ensemble accuracy below ``NEAR_CHANCE / num_classes`` is reported as near chance."""


def warn_near_chance(accuracy: float, ensemble: Ensemble) -> None:
    """Warn when the ensemble scores near chance: almost always the wrong preprocessing (resolution,
    interpolation, mean/std) or the wrong classes, and a pass with it would store noise."""
    chance = 1.0 / ensemble.num_classes
    if accuracy < NEAR_CHANCE * chance:
        warnings.warn(
            f"the teacher ensemble scores {accuracy:.1%} on this split, near chance ({chance:.1%} for "
            f"{ensemble.num_classes} classes): check each teacher's preprocessing against how it was trained "
            f"(a timm:<arch> checkpoint sees ReinforceConfig's resolution/interpolation/mean/std, or the options in "
            f"its spec, e.g. 'timm:resnet18@ckpt.safetensors?resolution=32&mean=0.13,0.13,0.13&std=0.31,0.31,0.31') "
            f"and its classes (num_classes, class_mappings).\n{ensemble.describe()}",
            stacklevel=3,
        )


def evaluate_teachers(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    *,
    output_dir: str | os.PathLike | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """Accuracy of the config's teachers and ensemble on a labelled split; with ``output_dir`` (a finished
    reinforced folder) it is recorded under ``accuracy`` in ``reinforce_config.json`` and shown in the card.
    ``split`` names the split in the result (default: the dataset's own ``split``, e.g. ``test``).

    Args:
        dataset: a labelled split the teachers did not train on.
        config: the config whose teachers (and ``class_mappings``, device, columns) to evaluate.
        output_dir: a finished reinforced folder to record the result in.
        split: the split's name in the result.

    Returns:
        ``{"split", "num_rows", "teachers": {name: top-1}, "ensemble": top-1}``, accuracies in [0, 1].

    Raises:
        ConfigError: no split name or labels, or the folder's record is not a valid run record (names the field).
        NotFoundError: ``output_dir`` has no record.
        StorageError: the folder's record cannot be written (names the path and the fix).
    """
    check_split(dataset, "evaluate_teachers")
    split = split or (str(dataset.split) if dataset.split is not None else None)
    if split is None:
        raise ConfigError("split: this dataset does not know its split name; pass split='test' (or its name)")
    if config.label_column is None:
        raise ConfigError("label_column: evaluate_teachers needs labels; set label_column to the label column")
    check_columns(dataset, config)
    if output_dir is not None:
        with file_errors(output_dir):
            load_record(Path(output_dir))  # a folder whose record is not valid is refused before any teacher runs
    ensemble = build_ensemble(config, dataset_num_classes(dataset, config), config.device)
    result = {"split": split, **ensemble_accuracy(dataset, ensemble, config.image_column, config.label_column)}
    warn_near_chance(result["ensemble"], ensemble)
    if output_dir is not None:
        with file_errors(output_dir), folder_lock(Path(output_dir)):
            write_record(Path(output_dir), load_record(Path(output_dir)).replace(accuracy=result))
    return result
