"""Checks of what users hand the library — numbers, splits, model outputs — with one home each, so every entry point
refuses the same input with the same message: the field path, what was expected, what was got.

Imports only ``errors``: every layer uses it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import torch

from .errors import ConfigError, OutOfRangeError


def check_int(value: Any, field: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``[minimum, maximum]`` (each bound optional), else a :class:`ConfigError` naming
    ``field``; booleans and floats are refused (``True`` is not a count)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{field}: expected {_int_kind(minimum, maximum)}, got {value!r}")
    return number


def _int_kind(minimum: int | None, maximum: int | None) -> str:
    if minimum == 1 and maximum is None:
        return "a positive integer"
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_index(value: Any, field: str, size: int | None = None) -> int:
    """``value`` as an int index (``>= 0``, and ``< size`` when given), else an error naming ``field``:
    :class:`ConfigError` for a non-integer or negative value, :class:`OutOfRangeError` past ``size``."""
    try:
        index = check_int(value, field, minimum=0)
    except ConfigError:
        bound = f"in [0, {size})" if size is not None else ">= 0"
        raise ConfigError(f"{field}: expected an integer {bound}, got {value!r}") from None
    if size is not None and index >= size:
        raise OutOfRangeError(f"{field} {value} out of range for {size} stored augmentations: expected [0, {size})")
    return index


def check_temperature(value: Any, field: str = "temperature") -> float:
    """A finite positive temperature as a float, else a :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field}: expected a finite positive number, got {value!r}")
    return float(value)


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


__all__ = ["as_logits", "check_index", "check_int", "check_split", "check_temperature"]
