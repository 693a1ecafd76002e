"""``attach``: join a reinforcement-only dataset (``row_index`` + reinforcement columns) back onto its source rows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import datasets

from ..deprecation import warn_renamed
from ..errors import ConfigError, MissingColumnError
from ..storage.format import ROW_INDEX
from ..storage.reader import load_record
from ..storage.record import RunRecord, SplitRecord, attach_record, record_from_dataset
from ..storage.source_hash import labels_sha256
from ..validation import check_split, check_split_name


def attach(
    reinforcement: datasets.Dataset,
    source: datasets.Dataset,
    *,
    record: RunRecord | Mapping[str, Any] | str | os.PathLike | None = None,
    split: str | None = None,
    verify_fingerprint: bool = True,
    config: RunRecord | Mapping[str, Any] | str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Join a reinforcement-only dataset (``row_index`` + reinforcement columns) back onto its source rows.

    Checks the source's row count and — where recorded — its labels (their sha256, always), fingerprint and key
    column against the reinforcement's run record, with an error naming what differs. ``record`` is the
    reinforcement's run record (a :class:`RunRecord`, its JSON dict, a folder or repo id); by default the one
    carried by ``reinforcement``.

    Args:
        reinforcement: the reinforcement-only split (``row_index`` and the reinforcement columns).
        source: the split of the source dataset it was made from, rows in the same order.
        record: the reinforcement's run record, when ``reinforcement`` does not carry it.
        split: the split's name in the record (default: its first split).
        verify_fingerprint: also compare the source's ``datasets`` fingerprint with the recorded one (set ``False``
            for a source loaded another way, e.g. from a copy; the labels are compared anyway).
        config: deprecated name of ``record``.

    Returns:
        The source's rows with the reinforcement columns beside them, carrying the run record.

    Raises:
        ConfigError: the source differs (rows, labels, fingerprint, key column), or the record is not valid.
        MissingColumnError: ``row_index`` or the label column is missing.
    """
    if config is not None:
        warn_renamed("attach(config=...)", "attach(record=...)")
        record = config if record is None else record
    check_split(reinforcement, "attach (reinforcement)")
    check_split(source, "attach (source)")
    if ROW_INDEX not in reinforcement.column_names:
        raise MissingColumnError(f"reinforcement has no {ROW_INDEX!r} column (columns: {reinforcement.column_names})")
    if split is not None:
        check_split_name(split)
    record = _attach_record(reinforcement, record)
    recorded = record.split(split) or SplitRecord()
    if recorded.num_rows is not None and recorded.num_rows != len(source):
        raise ConfigError(
            f"source has {len(source)} rows but the reinforcement was made from {recorded.num_rows} rows of "
            f"{recorded.id or 'its source'} (split {recorded.split!r}): attach the same split and revision"
        )
    _check_labels(source, record, recorded)
    if verify_fingerprint and recorded.fingerprint and recorded.fingerprint != source._fingerprint:
        raise ConfigError(
            f"source fingerprint {source._fingerprint} differs from the one reinforced ({recorded.fingerprint}, "
            f"revision {recorded.revision}): the source data changed or was loaded differently; "
            "pass verify_fingerprint=False if you are sure the rows are the same"
        )
    indices = list(reinforcement[ROW_INDEX])
    if indices and not 0 <= min(indices) <= max(indices) < len(source):
        raise ConfigError(
            f"reinforcement: its {ROW_INDEX} runs from {min(indices)} to {max(indices)}, outside the source's "
            f"{len(source)} rows: attach the source it was made from"
        )
    rows = source.select(indices)
    key = record.key_column
    if key and key in reinforcement.column_names:
        if list(rows[key]) != list(reinforcement[key]):
            raise ConfigError(f"key column {key!r} of the source does not match the reinforcement's row by row")
        reinforcement = reinforcement.remove_columns(key)
    clash = sorted(set(rows.column_names) & set(reinforcement.column_names))
    if clash:
        raise ConfigError(f"source already has columns {clash} of the reinforcement")
    joined = datasets.concatenate_datasets([rows.flatten_indices(), reinforcement], axis=1)
    joined.info.description = source.info.description  # the user's, not twice over
    return attach_record(joined, record)


def _check_labels(source: datasets.Dataset, record: RunRecord, recorded: SplitRecord) -> None:
    """Refuse a source whose labels are not those the reinforcement was made with (their recorded sha256): the
    stored top-k were scored against them, and a student would learn other labels beside them."""
    label = record.label_column
    if recorded.labels_sha256 is None or label is None:
        return
    if label not in source.column_names:
        raise MissingColumnError(f"source has no label column {label!r} (columns: {source.column_names})")
    if labels_sha256(source, label) != recorded.labels_sha256:
        raise ConfigError(
            f"source: its labels (column {label!r}) differ from those the reinforcement was made with (their sha256 "
            f"differs from the one recorded for split {recorded.split!r}): attach the same split and revision"
        )


def _attach_record(reinforcement: datasets.Dataset, given: Any) -> RunRecord:
    if isinstance(given, RunRecord):
        return given
    if isinstance(given, Mapping):
        return RunRecord.from_dict(given)
    record = load_record(given) if given else record_from_dataset(reinforcement)
    if record is None:
        raise ConfigError("attach needs the reinforcement's run record: pass record=<folder, repo id or dict>")
    return record


__all__ = ["attach"]
