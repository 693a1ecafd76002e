"""``extend()``: grow a reinforced dataset to more augmentations per row, computing only the new ones.

The result is the dataset a pass with the larger N writes, byte for byte (:mod:`hf_reinforce.storage.stored_split` says why and what is
checked); it is written to a new folder by the folder pass (atomic, resumable, spread over ``accelerate launch``
processes), and the folder it grows is only read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..config import ReinforceConfig, identity_fields
from ..errors import ConfigError, MissingColumnError, OutputConflictError
from ..progress import quiet_datasets
from ..storage.files import file_errors
from ..storage.format import ROW_INDEX, is_reinforcement_column, read_columns
from ..storage.paths import CONFIG_FILE, DATA_DIR, local_folder, writable_folder
from ..storage.reader import load_record, load_shards
from ..storage.record import RunRecord
from ..storage.remote import check_reachable, hub_errors
from ..storage.stored_split import StoredSplit
from ..teachers import Teacher, teacher_key
from ..validation import check_split_name
from .folder_pass import reinforce_to_folder


def extend(
    reinforced: str | os.PathLike,
    num_augmentations: int,
    output_dir: str | os.PathLike,
    *,
    teachers: Sequence[str | Teacher] | str | Teacher,
    source: datasets.Dataset | datasets.DatasetDict | None = None,
    split: str | None = None,
    class_mappings: Mapping[str, Any] | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    device: str | None = None,
    num_workers: int | None = None,
    teacher_batch_size: int | None = None,
    trust_remote_code: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> datasets.Dataset | datasets.DatasetDict:
    """Grow the reinforced dataset ``reinforced`` (a folder or a Hub repo) to ``num_augmentations`` per row, writing
    the result to ``output_dir``: only augmentations from the stored N (rounded down to a multiple of
    ``augmentations_per_step``) on are computed, and the output is identical to a pass with the new N.

    ``teachers`` are the teachers the dataset was made with (the record cannot reload local weights); they are
    checked against the record, weights included, like everything else, which is taken from the record. The
    images are read from the folder itself, unless it was written ``reinforcement_only``: then pass ``source``,
    the dataset it was made from (its rows are checked against the recorded hashes). Every split is extended,
    or only ``split``, which then returns a ``Dataset`` rather than a ``DatasetDict``. Push the result back with
    :func:`push_to_hub` (one commit that replaces the old shards).

    Args:
        reinforced: the reinforced folder or Hub repo id to grow.
        num_augmentations: the new N per row, larger than the stored one.
        output_dir: the folder to write the grown dataset to (empty, or an earlier extension's to resume it).
        teachers: the teachers the dataset was made with (specs or :class:`Teacher` objects).
        source: the source dataset of a ``reinforcement_only`` folder.
        split: extend only this split.
        class_mappings: the class mappings the pass used, per teacher spec.
        revision: branch, tag or commit of a Hub repo.
        token: Hub token (default: ``huggingface_hub``'s usual sources).
        device: device of the teachers (default: CUDA when present).
        num_workers: render worker processes (default: ``ReinforceConfig``'s).
        teacher_batch_size: the teachers' micro-batch (default: the recorded one).
        trust_remote_code: allow ``hf:`` teachers that need their repo's code.
        overwrite: redo an ``output_dir`` that holds another run of this library (as ``reinforce`` does).
        progress: show the views progress bar.

    Returns:
        The grown split as a ``Dataset`` when ``split`` is given, else every split as a ``DatasetDict``.

    Raises:
        ConfigError: a bad split name or N, or a record that is not a valid run record (names the field).
        OutputConflictError: the teachers or anything else differs from the record, or ``output_dir`` is taken.
        IncompleteOutputError: a stored shard differs from its record.
        StorageError, HubError: a folder cannot be read or written, or the Hub cannot be asked.
    """
    if split is not None:
        check_split_name(split)
    with file_errors(output_dir):
        folder = _local_copy(reinforced, revision, token)
        record = load_record(folder)
        config = extension_config(
            record,
            teachers,
            num_augmentations,
            class_mappings=class_mappings,
            device=device,
            num_workers=num_workers,
            teacher_batch_size=teacher_batch_size,
            trust_remote_code=trust_remote_code,
        )
        return _extend_splits(
            folder, record, config, output_dir, split=split, source=source, overwrite=overwrite, progress=progress
        )


def _extend_splits(
    folder: Path,
    record: RunRecord,
    config: ReinforceConfig,
    output_dir: str | os.PathLike,
    *,
    split: str | None,
    source: datasets.Dataset | datasets.DatasetDict | None,
    overwrite: bool,
    progress: bool,
) -> datasets.Dataset | datasets.DatasetDict:
    out = writable_folder(output_dir)
    if out.exists() and out.resolve() == folder.resolve():
        raise OutputConflictError(
            f"output_dir {output_dir} is the folder being extended: write the extended dataset to another folder "
            "(the one it grows is read until the end)"
        )
    results = {}
    for name in [split] if split is not None else list(record.splits or {}):
        stored = StoredSplit(folder, record, name)
        rows, is_stored = _source_rows(stored, source)
        results[name] = reinforce_to_folder(
            rows,
            config,
            out,
            split=name,
            overwrite=overwrite,
            progress=progress,
            source_id=None,
            source_revision=None,
            stored=stored,
            source_is_stored=is_stored,
        )
    return results[split] if split is not None else datasets.DatasetDict(results)


def extension_config(
    record: RunRecord,
    teachers: Sequence[str | Teacher] | str | Teacher,
    num_augmentations: int,
    *,
    class_mappings: Mapping[str, Any] | None = None,
    **execution: Any,
) -> ReinforceConfig:
    """The config of a pass with ``num_augmentations`` that writes what the pass of ``record`` wrote: every field
    that determines the output from the record, the teachers given (``timm:<arch>`` teachers get the recorded
    preprocessing of the first teacher, and class mappings by position unless given), ``execution`` as given (the
    teachers' micro-batch by default the recorded one)."""
    given = [teachers] if isinstance(teachers, (str, Teacher)) else list(teachers)
    if class_mappings is None and record.class_mappings:
        names = [t.name for t in record.teachers]
        keys = [teacher_key(t) for t in given]
        class_mappings = {k: record.class_mappings[n] for k, n in zip(keys, names) if n in record.class_mappings}
    first = record.teacher
    recorded = {name: getattr(record, name) for name in identity_fields() if name not in _GIVEN}
    if execution.get("teacher_batch_size") is None and isinstance(record.teacher_batch_size, int):
        execution["teacher_batch_size"] = record.teacher_batch_size  # the stored chunks' micro-batch
    return ReinforceConfig(
        **recorded,
        teachers=given,
        num_augmentations=num_augmentations,
        class_mappings=class_mappings or None,
        resolution=record.resolution,
        interpolation=first.interpolation,
        mean=first.mean,
        std=first.std,
        num_classes=record.num_classes,
        **execution,
    )


_GIVEN = ("teachers", "num_augmentations", "class_mappings", "teacher_batch_size")
"""Identity fields an extension does not copy from the record: the teachers are given (the record holds what was
loaded, not how), N is the new one, class mappings are keyed by the given teachers, and the micro-batch is an
execution option (by default the recorded one; another one is refused as a difference from the stored split)."""


def _local_copy(reinforced: str | os.PathLike, revision: str | None, token: str | bool | None) -> Path:
    """The folder itself, or the config and shards of a Hub repo downloaded to the Hub cache."""
    path = local_folder(reinforced)
    if path is not None:
        return path
    from huggingface_hub import snapshot_download

    with hub_errors(str(reinforced)):
        check_reachable(str(reinforced), "read")
        return Path(
            snapshot_download(
                str(reinforced),
                repo_type="dataset",
                revision=revision,
                token=token,
                allow_patterns=[CONFIG_FILE, f"{DATA_DIR}/*"],
            )
        )


def _source_rows(
    stored: StoredSplit, source: datasets.Dataset | datasets.DatasetDict | None
) -> tuple[datasets.Dataset, bool]:
    """The source rows of the stored split: ``source`` (its split, checked for length), or rebuilt from the stored
    shards (``True``); refused for a reinforcement-only folder, which stores no images."""
    record, expected = stored.record, stored.stats.num_rows
    if source is not None:
        if isinstance(source, datasets.DatasetDict):
            if stored.split not in source:
                raise ConfigError(f"source: has no split {stored.split!r}; its splits are {list(source)}")
            source = source[stored.split]
        if len(source) != expected:
            raise ConfigError(
                f"source: split {stored.split!r} has {len(source)} rows, but the folder was made from {expected}"
            )
        return source, False
    if record.reinforcement_only:
        raise ConfigError(
            f"{stored.folder} stores no images (reinforcement_only): pass source=, the dataset it was made from "
            "(CLI: --source)"
        )
    with quiet_datasets():
        loaded = load_shards(stored.paths, stored.shards, stored.split)
    if record.image_column not in loaded.column_names:
        raise MissingColumnError(f"{stored.folder}: split {stored.split!r} has no image column {record.image_column!r}")
    rows = read_columns(loaded, [ROW_INDEX])[ROW_INDEX]
    kept = loaded.remove_columns([c for c in loaded.column_names if is_reinforcement_column(c)])
    assert expected is not None
    if len(rows) == expected:
        return kept, True
    # skipped rows (skip_bad_images): missing images at their positions, which the pass skips again
    missing = np.setdiff1d(np.arange(expected), rows)
    blank = {c: [None] * len(missing) for c in kept.column_names}
    if record.label_column in blank:  # a label the check accepts; never read, as these rows are skipped again
        blank[record.label_column] = [kept.select_columns([record.label_column])[0][record.label_column]] * len(missing)
    blanks = datasets.Dataset.from_dict(blank, features=kept.features)
    position = np.empty(expected, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    position[missing] = len(rows) + np.arange(len(missing))
    return datasets.concatenate_datasets([kept, blanks]).select(position), True


__all__ = ["extend", "extension_config"]
