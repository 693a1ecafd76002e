"""Rules that both sides apply — the teachers (``teachers``, ``evaluate``) and the students (``distill``,
``scripts/``) — with one home each so they cannot drift apart: the evaluation view, logits extraction and
temperature validation, and the thread count of pixel work.

Imports only ``augment`` and ``errors``, so ``distill`` uses it without importing teacher code.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
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


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run pixel work (decoding, rendering, normalizing small images) with one torch thread, then restore the count:
    small-image ops cost several times more CPU across threads (measured: 2.6 vs 14.9 CPU-ms per rrc+ra+re view in
    the pass; README "Training step time" for the transform); pixels are identical either way. The pass renders in
    it when ``num_workers`` is 0 and the transform in the main process (workers run with one thread already); the
    thread count is process-wide, so code training in another Python thread at the same time would see it too."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_split(dataset: Any, what: str, *, streaming: bool = False) -> None:
    """Refuse anything but one split where ``what`` needs one: a ``DatasetDict`` gets a :class:`ConfigError`
    suggesting ``ds["<split>"]``; any other type but ``datasets.Dataset`` (or ``IterableDataset`` with
    ``streaming``) a ``TypeError``."""
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(dataset)
        first = splits[0] if splits else "train"
        raise ConfigError(
            f"{what} takes one split, got a {type(dataset).__name__} with splits {splits}: pass ds[{first!r}]"
        )
    kinds = (datasets.Dataset, datasets.IterableDataset) if streaming else (datasets.Dataset,)
    if not isinstance(dataset, kinds):
        names = " or ".join(f"datasets.{kind.__name__}" for kind in kinds)
        raise TypeError(f"{what} takes a {names}, got {type(dataset).__name__}")


__all__ = ["as_logits", "center_view", "check_split", "check_temperature", "single_thread"]
