"""hf_reinforce: Dataset Reinforcement (Faghri et al., ICCV 2023) for HuggingFace datasets.

Reinforce a dataset once with a teacher ensemble (:func:`reinforce`), publish it (:func:`push_to_hub`), and train
students that replay stored augmentations and distill from stored top-k probabilities (:class:`ReinforcedTransform`,
:func:`distillation_loss`, :class:`DistillationTrainer`).

Every name is a plain re-export. Only the ``transformers`` integration (``DistillationTrainer`` and friends) is
imported on first use, since ``transformers.trainer`` takes seconds to import; nothing here imports timm,
transformers or accelerate until a teacher is loaded or a pass starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import distill
from ._version import __version__
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
from .distill import (
    DistillationCollator,
    ReinforcedTransform,
    distillation_loss,
    expand_topk,
)
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
    SchemaVersionError,
)
from .hub.attach import attach
from .hub.push import push_to_hub, save_folder
from .storage.format import SCHEMA_VERSION, reinforce_features
from .storage.reader import load_config, load_record, load_reinforced
from .storage.record import RunRecord, ShardRecord, SplitRecord, TeacherRecord, record_from_dataset
from .teachers import Ensemble, Preprocessing, Teacher, load_teacher, spec_with_options

if TYPE_CHECKING:
    from .distill.trainer import DistillationCallback, DistillationLoss, DistillationTrainer, TimmStudent


def __getattr__(name: str) -> Any:
    """The transformers integration, imported on first use (by ``distill``)."""
    if name in distill.TRAINER_EXPORTS:
        return getattr(distill, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "SCHEMA_VERSION",
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
    "Preprocessing",
    "RandAugment",
    "RandomCrop",
    "RandomErasing",
    "RandomResizedCrop",
    "ReinforceConfig",
    "ReinforceError",
    "ReinforcePass",
    "ReinforcedTransform",
    "RunRecord",
    "SchemaVersionError",
    "ShardRecord",
    "SplitRecord",
    "Teacher",
    "TeacherRecord",
    "TimmStudent",
    "__version__",
    "attach",
    "distillation_loss",
    "estimate",
    "evaluate_teachers",
    "extend",
    "expand_topk",
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
]
