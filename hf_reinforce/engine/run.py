"""``reinforce()``: run the pass in this process (returns a Dataset) or into a Hub-layout folder."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import datasets

from ..config import ReinforceConfig
from ..distributed import get_logger
from ..progress import quiet_datasets, views_bar
from ..storage.files import file_errors
from ..storage.paths import writable_folder
from ..storage.record import attach_record
from ..validation import check_split_name
from .folder_pass import reinforce_to_folder
from .reinforce_pass import ReinforcePass, check_some_rows_kept

logger = get_logger(__name__)


def reinforce(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    output_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
    source_id: str | None = None,
    source_revision: str | None = None,
) -> datasets.Dataset:
    """Add augmentation-parameter and teacher top-k columns to ``dataset``.

    Without ``output_dir`` the result is computed in this process and returned (its Arrow file lives in the
    ``datasets`` cache, never beside the source). With ``output_dir`` it is written as a Hub-layout folder shard by
    shard (atomic, resumable; under ``accelerate launch`` shards are spread over the processes) and loaded back.
    Pick the folder for anything you will keep or publish, and the in-process run to try a config on a few rows.

    Args:
        dataset: one split of images (and labels).
        config: the reinforcement (:class:`~hf_reinforce.ReinforceConfig`).
        output_dir: the Hub-layout folder to write (created if missing; resumed if a pass of the same config wrote
            part of it).
        split: the split's name (letters, digits, ``_`` and ``.``), in file names and the record.
        overwrite: replace a folder of another config or source.
        progress: show a progress bar.
        source_id: the source dataset's Hub id, recorded.
        source_revision: its revision, recorded.

    Returns:
        The reinforced split, its run record in ``info.description`` (:func:`~hf_reinforce.record_from_dataset`).

    Raises:
        ConfigError: a bad split name, or a dataset the config cannot reinforce (names the field).
        OutputConflictError: ``output_dir`` holds something else, or another process is writing the split.
        StorageError: the folder cannot be written (no space, read-only): names the path and the fix.
    """
    check_split_name(split)
    if output_dir is not None:
        with file_errors(output_dir):
            return reinforce_to_folder(
                dataset,
                config,
                writable_folder(output_dir),
                split=split,
                overwrite=overwrite,
                progress=progress,
                source_id=source_id,
                source_revision=source_revision,
            )
    run = ReinforcePass(dataset, config)
    logger.info(run.ensemble.describe())
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "hf_reinforce" / f"{run.fingerprint}.arrow"
    rows = range(len(dataset))
    bar = views_bar(len(dataset) * config.num_augmentations, "reinforce", enabled=progress)
    with quiet_datasets(), bar, file_errors(cache.parent):
        cache.parent.mkdir(parents=True, exist_ok=True)
        out = run.map(rows, run.results([rows], on_views=bar.update), cache_file_name=cache)
    check_some_rows_kept(len(out), run.skipped)
    record = run.record(split, source_id, source_revision)
    assert record.source is not None  # the record of a run carries its source
    source = dataclasses.replace(record.source, skipped_rows=tuple(sorted(run.skipped)), report=run.report.report())
    return attach_record(out, record.replace(source=source))


__all__ = ["reinforce"]
