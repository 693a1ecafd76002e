"""Rules that both sides apply — the teachers (``teachers``, ``evaluate``) and the students (``distill``,
``scripts/``) — with one home each so they cannot drift apart: the evaluation view, logits extraction and
temperature validation.

Imports only ``augment`` and ``errors``, so ``distill`` uses it without importing teacher code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .augment import interpolation_mode
from .augment.functional import center_square
from .errors import ConfigError


def center_view(image: torch.Tensor, resolution: int, interpolation: str) -> torch.Tensor:
    """The centred largest square of ``image`` resized to ``resolution`` (antialiased): the one evaluation view,
    used for the teachers' accuracy, the students' evaluation transform and the scripts' test sets alike."""
    return center_square(image, resolution, interpolation_mode(interpolation))


def as_logits(output: Any, name: str = "the model") -> torch.Tensor:
    """The logits tensor of a model output: a tensor, a ``ModelOutput``/dict or object with ``logits``, or a tuple
    with the logits first (``return_dict=False``); ``name`` says whose output it is in the error."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        logits = output.get("logits")
    elif isinstance(output, (tuple, list)) and output:
        logits = output[0]
    else:
        logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"{name} returned {type(output).__name__}; expected a logits tensor, `.logits` or a tuple (logits, ...)"
        )
    return logits


def check_temperature(value: Any, field: str = "temperature") -> float:
    """A finite positive temperature as a float, else a :class:`~hf_reinforce.errors.ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field}: expected a finite positive number, got {value!r}")
    return float(value)


__all__ = ["as_logits", "center_view", "check_temperature"]
