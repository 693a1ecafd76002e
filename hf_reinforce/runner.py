"""``reinforce()``: run the pass in this process (returns a Dataset) or into a Hub-layout folder."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import datasets

from .config import ReinforceConfig
from .errors import OutputConflictError
from .folder import reinforce_to_folder
from .pipeline import ReinforcePass, check_some_rows_kept
from .progress import quiet_datasets, views_bar
from .record import attach_record


def writable_folder(output_dir: str | os.PathLike) -> Path:
    """``output_dir`` as a Path, refused with :class:`OutputConflictError` when it (or the first of its parents that
    exists) is a file: the folder is created when missing, but never in place of a file."""
    path = Path(output_dir)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputConflictError(
            f"output_dir {output_dir} cannot be a folder: {existing} is a file; give a folder path (created if missing)"
        )
    return path


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
    """
    if output_dir is not None:
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
    if progress:
        print(run.ensemble.describe())
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "hf_reinforce" / f"{run.fingerprint}.arrow"
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows = range(len(dataset))
    bar = views_bar(len(dataset) * config.num_augmentations, "reinforce", enabled=progress)
    with quiet_datasets(), bar:
        out = run.map(rows, run.results([rows], on_views=bar.update), cache_file_name=cache)
    check_some_rows_kept(len(out), run.skipped)
    record = run.record(split, source_id, source_revision)
    source = dataclasses.replace(record.source, skipped_rows=tuple(sorted(run.skipped)), report=run.report.report())
    return attach_record(out, record.replace(source=source))


__all__ = ["reinforce"]
