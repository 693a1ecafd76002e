"""hf_reinforce: Dataset Reinforcement (Faghri et al., ICCV 2023) for HuggingFace datasets.

Reinforce a dataset once with a teacher ensemble (:func:`reinforce`), publish it (:func:`push_to_hub`), and train
students that replay stored augmentations and distill from stored top-k probabilities (:class:`ReinforcedTransform`,
:func:`distillation_loss`, :class:`DistillationTrainer`).

Every name is a plain re-export of the object in its module, imported on first use (PEP 562): ``import hf_reinforce``
imports neither torch, torchvision nor datasets, so the command line answers ``--help`` and argument errors at once
(``import torchvision`` alone takes seconds: it imports its models). :data:`EXPORTS` says where each name lives;
type checkers read the same imports below. Nothing imports timm, transformers or accelerate until a teacher is
loaded or a pass starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "PRESETS",
            "AugmentationPolicy",
            "HorizontalFlip",
            "MixUpCutMix",
            "RandAugment",
            "RandomCrop",
            "RandomErasing",
            "RandomResizedCrop",
            "to_rgb_uint8",
        ],
        "augment",
    ),
    "ReinforceConfig": "config",
    "show": "diagnostics.show",
    "evaluate_teachers": "diagnostics.teacher_eval",
    **dict.fromkeys(["ReplayCheck", "verify_replay"], "diagnostics.verify"),
    **dict.fromkeys(
        [
            "DistillationCallback",
            "DistillationCollator",
            "DistillationLoss",
            "DistillationTrainer",
            "ReinforcedTransform",
            "TimmStudent",
            "distillation_loss",
            "expand_topk",
        ],
        "distill",
    ),
    "Estimate": "engine.estimation",
    "estimate": "engine.estimation",
    "extend": "engine.extension",
    "ReinforcePass": "engine.reinforce_pass",
    "reinforce": "engine.run",
    **dict.fromkeys(
        [
            "BadImageError",
            "BadLabelError",
            "ConfigError",
            "HubError",
            "IncompleteOutputError",
            "MissingColumnError",
            "NotFoundError",
            "OutOfRangeError",
            "OutputConflictError",
            "ReinforceError",
            "SchemaVersionError",
            "StorageError",
            "ReplayMismatchError",
            "ReplayMismatchWarning",
        ],
        "errors",
    ),
    "attach": "hub.attach",
    "push_to_hub": "hub.push",
    "save_folder": "hub.push",
    "SCHEMA_VERSION": "storage.format",
    "reinforce_features": "storage.format",
    **dict.fromkeys(["load_config", "load_record", "load_reinforced"], "storage.reader"),
    **dict.fromkeys(
        ["RunRecord", "ShardRecord", "SplitRecord", "TeacherRecord", "record_from_dataset"], "storage.record"
    ),
    **dict.fromkeys(["Ensemble", "Preprocessing", "Teacher", "load_teacher", "spec_with_options"], "teachers"),
}
"""Each public name → the module (relative to ``hf_reinforce``) that defines or re-exports it."""

if TYPE_CHECKING:
    from .augment import (
        PRESETS,
        AugmentationPolicy,
        HorizontalFlip,
        MixUpCutMix,
        RandAugment,
        RandomCrop,
        RandomErasing,
        RandomResizedCrop,
        to_rgb_uint8,
    )
    from .config import ReinforceConfig
    from .diagnostics.show import show
    from .diagnostics.teacher_eval import evaluate_teachers
    from .diagnostics.verify import ReplayCheck, verify_replay
    from .distill import DistillationCollator, ReinforcedTransform, distillation_loss, expand_topk
    from .distill.trainer import DistillationCallback, DistillationLoss, DistillationTrainer, TimmStudent
    from .engine.estimation import Estimate, estimate
    from .engine.extension import extend
    from .engine.reinforce_pass import ReinforcePass
    from .engine.run import reinforce
    from .errors import (
        BadImageError,
        BadLabelError,
        ConfigError,
        HubError,
        IncompleteOutputError,
        MissingColumnError,
        NotFoundError,
        OutOfRangeError,
        OutputConflictError,
        ReinforceError,
        ReplayMismatchError,
        ReplayMismatchWarning,
        SchemaVersionError,
        StorageError,
    )
    from .hub.attach import attach
    from .hub.push import push_to_hub, save_folder
    from .storage.format import SCHEMA_VERSION, reinforce_features
    from .storage.reader import load_config, load_record, load_reinforced
    from .storage.record import RunRecord, ShardRecord, SplitRecord, TeacherRecord, record_from_dataset
    from .teachers import Ensemble, Preprocessing, Teacher, load_teacher, spec_with_options


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept (the same object as in that module)."""
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


__all__ = [
    "__version__",
    "AugmentationPolicy",
    "BadImageError",
    "BadLabelError",
    "ConfigError",
    "DistillationCallback",
    "DistillationCollator",
    "DistillationLoss",
    "DistillationTrainer",
    "Ensemble",
    "Estimate",
    "HorizontalFlip",
    "HubError",
    "IncompleteOutputError",
    "MissingColumnError",
    "MixUpCutMix",
    "NotFoundError",
    "OutOfRangeError",
    "OutputConflictError",
    "PRESETS",
    "Preprocessing",
    "RandAugment",
    "RandomCrop",
    "RandomErasing",
    "RandomResizedCrop",
    "ReinforceConfig",
    "ReinforceError",
    "ReinforcePass",
    "ReinforcedTransform",
    "ReplayCheck",
    "ReplayMismatchError",
    "ReplayMismatchWarning",
    "RunRecord",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "ShardRecord",
    "SplitRecord",
    "StorageError",
    "Teacher",
    "TeacherRecord",
    "TimmStudent",
    "attach",
    "distillation_loss",
    "estimate",
    "evaluate_teachers",
    "expand_topk",
    "extend",
    "load_config",
    "load_record",
    "load_reinforced",
    "load_teacher",
    "push_to_hub",
    "record_from_dataset",
    "reinforce",
    "reinforce_features",
    "save_folder",
    "show",
    "spec_with_options",
    "to_rgb_uint8",
    "verify_replay",
]
