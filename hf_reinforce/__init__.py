"""hf_reinforce: Dataset Reinforcement (Faghri et al., ICCV 2023) for HuggingFace datasets.

Reinforce a dataset once with a teacher ensemble (:func:`reinforce`), publish it (:func:`push_to_hub`), and train
students that replay stored augmentations and distill from stored top-k probabilities (:class:`ReinforcedTransform`,
:func:`distillation_loss`, :class:`DistillationTrainer`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def _version() -> str:
    """The installed distribution's version; in a source tree that is not installed, pyproject.toml's (the only
    place the version is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hf-reinforce")
    except PackageNotFoundError:
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        found = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text()) if pyproject.is_file() else None
        return found.group(1) if found else "0+unknown"


__version__ = _version()

_EXPORTS = {
    "AugmentationPolicy": "augment",
    "PRESETS": "augment",
    "HorizontalFlip": "augment",
    "MixUpCutMix": "augment",
    "RandAugment": "augment",
    "RandomErasing": "augment",
    "RandomResizedCrop": "augment",
    "to_rgb_uint8": "augment",
    "SCHEMA_VERSION": "format",
    "reinforce_features": "format",
    "load_reinforced": "format",
    "Teacher": "teachers",
    "Ensemble": "teachers",
    "load_teacher": "teachers",
    "ReinforceConfig": "reinforce",
    "BadImageError": "reinforce",
    "reinforce": "reinforce",
    "estimate": "estimate",
    "evaluate_teachers": "evaluate",
    "ReinforcedTransform": "distill",
    "DistillationCollator": "distill",
    "DistillationLoss": "distill",
    "DistillationCallback": "distill",
    "DistillationTrainer": "distill",
    "TimmStudent": "distill",
    "distillation_loss": "distill",
    "expand_topk": "distill",
    "push_to_hub": "hub",
    "attach": "hub",
    "load_config": "format",
    "save_folder": "hub",
    "show": "show",
}


class _Package(types.ModuleType):
    """Importing submodule ``reinforce`` (or ``estimate``, ``show``) sets the package attribute of that name to the
    module; this keeps ``hf_reinforce.reinforce`` the function while everything stays lazily imported."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value


_SAME_NAME = {"reinforce", "estimate", "show"}
sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """Import submodules on first use: training code never pays for teacher or Hub imports."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
