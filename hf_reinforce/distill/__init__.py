"""Training side: the replaying transform, distillation loss, collator and the transformers integration."""

from .collate import DistillationCollator, pack_labels, unpack_labels
from .loss import LossParts, distillation_loss, distillation_loss_parts, expand_topk
from .transform import ReinforcedTransform, augmentation_index

# transformers.trainer takes seconds to import; plain-PyTorch training should not pay for it.
TRAINER_EXPORTS = (
    "DistillationCallback",
    "DistillationLoss",
    "DistillationTrainer",
    "TimmStudent",
)


def __getattr__(name: str):
    """Import the transformers integration on first use."""
    if name in TRAINER_EXPORTS:
        from ..extras import require

        require("transformers", f"hf_reinforce.{name}")
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DistillationCallback",
    "DistillationCollator",
    "DistillationLoss",
    "DistillationTrainer",
    "LossParts",
    "ReinforcedTransform",
    "TimmStudent",
    "distillation_loss",
    "distillation_loss_parts",
    "expand_topk",
    "augmentation_index",
    "pack_labels",
    "unpack_labels",
]
