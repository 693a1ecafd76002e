"""Checks of what users hand the library — numbers, names, splits, labels, model outputs — with one home each, so
every entry point refuses the same input with the same message: the field path, what was expected, what was got.

A check takes ``(value, field)`` and returns the value as the library keeps it (an int, a tuple, ...), or raises a
:class:`ConfigError` naming ``field``; :func:`optional` and :func:`check_sequence` build checks from checks, so a
record's fields are a table of them (:mod:`hf_reinforce.storage.record`).

Imports only ``errors`` (torch, datasets and pyarrow where a check needs them): every layer uses it, the command
line's parser included.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import BadLabelError, ConfigError, OutOfRangeError

if TYPE_CHECKING:
    import torch

Check = Callable[[Any, str], Any]
"""A check: ``(value, field path)`` → the value as kept, or a :class:`ConfigError` naming the field."""

MAX_AUGMENTATIONS = 100_000
"""The most augmentations per row a config or a record may ask for (250× the paper's 400): a larger N is a typo
or a damaged record, and would reach numpy or torch as an allocation error."""
MAX_RESOLUTION = 16_384
"""The largest square view a config or a record may ask for, in pixels."""
MAX_CLASSES = 2**31 - 1
"""The most classes stored top-k ids can name (``int32``)."""
SPLIT_NAME = re.compile(r"\w+(?:\.\w+)*")
"""A split name as ``datasets`` accepts it: letters, digits and ``_``, in parts joined by ``.``. Never a ``-`` (shard
files are ``<split>-XXXXX-of-YYYYY.parquet``, so one split's names never match another's) nor a path."""
SHA256 = re.compile(r"[0-9a-f]{64}")


# -- scalars -----------------------------------------------------------------------------------------------------


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


def check_number(value: Any, field: str, *, minimum: float | None = None) -> float:
    """A finite number (``>= minimum`` when given) as a float, else a :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{field}: expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{field}: expected a number >= {minimum}, got {value!r}")
    return float(value)


def check_temperature(value: Any, field: str = "temperature") -> float:
    """A finite positive temperature as a float, else a :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field}: expected a finite positive number, got {value!r}")
    return float(value)


def check_bool(value: Any, field: str) -> bool:
    """``True`` or ``False`` (not ``0``/``1`` or a string), else a :class:`ConfigError` naming ``field``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{field}: expected true or false, got {value!r}")
    return value


def check_str(value: Any, field: str) -> str:
    """A non-empty string, else a :class:`ConfigError` naming ``field``."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    """``value``, one of ``choices``, else a :class:`ConfigError` naming ``field`` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{field}: expected one of {list(choices)}, got {value!r}")
    return value


def check_sha256(value: Any, field: str) -> str:
    """A sha256 in hex (64 lowercase hex digits), else a :class:`ConfigError` naming ``field``."""
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise ConfigError(f"{field}: expected a sha256 (64 hex digits), got {value!r}")
    return value


def check_split_name(value: Any, field: str = "split") -> str:
    """A split name (:data:`SPLIT_NAME`), else a :class:`ConfigError` naming ``field``: every file and lock of a split
    is named after it, so a name is never a path and never looks like another split's files."""
    if not isinstance(value, str) or not SPLIT_NAME.fullmatch(value):
        raise ConfigError(
            f"{field}: expected a split name of letters, digits and _ (parts may be joined by .), got {value!r}; "
            "e.g. train, validation, test_2"
        )
    return value


def check_preprocessing(key: str, value: Any, where: str) -> Any:
    """``value`` of a teacher's preprocessing ``key`` normalized — a resolution in ``[1, MAX_RESOLUTION]``, an
    interpolation name, or 3 finite numbers (positive for ``std``) — or a :class:`ConfigError` starting with
    ``where``."""
    if key == "resolution":
        return check_int(value, where, minimum=1, maximum=MAX_RESOLUTION)
    if key == "interpolation":
        from .augment.functional import interpolation_mode

        try:
            return interpolation_mode(value, where).value
        except ValueError as error:
            raise ConfigError(str(error)) from None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(map(math.isfinite, values)) or (key == "std" and any(v <= 0 for v in values)):
        kind = "3 positive numbers" if key == "std" else "3 numbers"
        raise ConfigError(f"{where}: expected {kind} (one per RGB channel, of x/255), got {value!r}")
    return values


# -- checks built from checks --------------------------------------------------------------------------------------


def optional(check: Check) -> Check:
    """``check``, with ``None`` allowed (kept as ``None``)."""

    def checked(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return checked


def check_sequence(
    value: Any, field: str, item: Check, *, length: int | None = None, nonempty: bool = False
) -> tuple[Any, ...]:
    """A JSON list as a tuple of ``item(element, "field[i]")`` (``length`` elements when given; at least one with
    ``nonempty``), else a :class:`ConfigError` naming the field or the element."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field}: expected a list, got {value!r}")
    if (length is not None and len(value) != length) or (nonempty and not value):
        expected = f"{length} elements" if length is not None else "at least one element"
        raise ConfigError(f"{field}: expected a list of {expected}, got {len(value)}: {value!r}"[:300])
    return tuple(item(element, f"{field}[{i}]") for i, element in enumerate(value))


def sequence_of(item: Check, *, length: int | None = None, nonempty: bool = False) -> Check:
    """The check of a list whose elements pass ``item`` (see :func:`check_sequence`)."""

    def checked(value: Any, field: str) -> tuple[Any, ...]:
        return check_sequence(value, field, item, length=length, nonempty=nonempty)

    return checked


def check_mapping(value: Any, field: str) -> Mapping[str, Any]:
    """A JSON object, else a :class:`ConfigError` naming ``field``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{field}: expected an object, got {type(value).__name__}: {value!r}"[:300])
    return value


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Check:
    """The check of an int within ``[minimum, maximum]`` (see :func:`check_int`)."""

    def checked(value: Any, field: str) -> int:
        return check_int(value, field, minimum=minimum, maximum=maximum)

    return checked


# -- relations -----------------------------------------------------------------------------------------------------


def check_block_layout(
    *, mix_block_size: int | None, rows_per_block: int, rows_per_shard: int, skip_bad_images: bool
) -> None:
    """How rows are cut into blocks and shards, for a config and for a record alike: a shard is whole blocks, a
    mixing policy's partners are in one block, and mixing never meets skipped rows."""
    if mix_block_size is not None and rows_per_block % mix_block_size:
        raise ConfigError(
            f"rows_per_block ({rows_per_block}) must be a multiple of the policy's mix.block_size "
            f"({mix_block_size}) so that every partner is rendered in the same block"
        )
    if mix_block_size is not None and skip_bad_images:
        raise ConfigError("skip_bad_images cannot be combined with a mixing policy: a skipped row may be a partner")
    if rows_per_shard % rows_per_block:
        raise ConfigError(f"rows_per_shard ({rows_per_shard}) must be a multiple of rows_per_block ({rows_per_block})")


# -- datasets ------------------------------------------------------------------------------------------------------


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


def check_labels(dataset: Any, label_column: str | None, num_classes: int) -> None:
    """Refuse missing labels (``None``) in ``label_column``, and integer labels outside ``[0, num_classes)`` — a
    ``ClassLabel``'s ``-1`` ("no label") included —, naming the first such row with a :class:`BadLabelError`;
    labels of other types are not range-checked."""
    import numpy as np
    import pyarrow as pa

    if label_column is None:
        return
    column = dataset.with_format("arrow", columns=[label_column])[:].column(label_column).combine_chunks()
    missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        raise BadLabelError(
            f"row {int(missing[0])}, column {label_column!r}: the label is missing (None) ({len(missing)} such "
            "row(s)); filter them out, or set label_column=None (CLI: --no-label-column) to take classes from the "
            "teachers alone"
        )
    if not pa.types.is_integer(column.type):
        return
    labels = column.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        row = int(bad[0])
        raise BadLabelError(
            f"row {row}, column {label_column!r}: label {int(labels[row])} is outside the {num_classes} classes "
            f"[0, {num_classes - 1}] ({len(bad)} such row(s)); filter them out (a ClassLabel's -1 means no label), "
            "or set num_classes / class_mappings to the classes the labels use"
        )


def as_logits(output: Any, name: str = "the model") -> torch.Tensor:
    """The logits tensor of a model output: a tensor, a ``ModelOutput``/dict or object with ``logits``, or a tuple
    with the logits first (``return_dict=False``); ``name`` says whose output it is in the error."""
    import torch

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


__all__ = [
    "MAX_AUGMENTATIONS",
    "MAX_CLASSES",
    "MAX_RESOLUTION",
    "as_logits",
    "check_block_layout",
    "check_bool",
    "check_index",
    "check_int",
    "check_labels",
    "check_mapping",
    "check_number",
    "check_preprocessing",
    "check_sequence",
    "check_sha256",
    "check_split",
    "check_split_name",
    "check_str",
    "check_temperature",
    "integer",
    "optional",
    "sequence_of",
]
