"""Reading a reinforced folder or Hub repo back: its run record, and its finished splits, verified.

A folder is trusted only on evidence (docs "Guarantees"): :func:`verified_shards` checks a finished split against the
shard list of its record before anything reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..deprecation import warn_renamed
from ..errors import ConfigError, IncompleteOutputError, NotFoundError
from .files import read_json
from .format import check_schema_version
from .paths import CONFIG_FILE, DATA_DIR, STATE_DIR, local_folder, resume_path
from .record import RunRecord
from .shards import shard_problem


def load_record_json(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> dict[str, Any]:
    """The raw JSON of ``reinforce_config.json`` (a local folder, a path to the file, or a Hub repo), its schema
    version checked; :func:`load_record` reads it as a :class:`~hf_reinforce.storage.record.RunRecord`."""
    path = local_folder(repo_or_folder)
    if path is not None:
        path = path / CONFIG_FILE if path.is_dir() else path
        if not path.is_file():
            raise NotFoundError(f"{repo_or_folder} has no {CONFIG_FILE}: is it a finished hf_reinforce output folder?")
    else:
        from huggingface_hub import hf_hub_download

        path = Path(
            hf_hub_download(str(repo_or_folder), CONFIG_FILE, repo_type="dataset", revision=revision, token=token)
        )
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "schema_version" in data:
        check_schema_version(data["schema_version"])
    return data


def load_record(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> RunRecord:
    """The run record (``reinforce_config.json``) of a reinforced dataset: a local folder, a path to the file, or
    a Hub repo; read and checked once.

    Args:
        repo_or_folder: a reinforced folder, its ``reinforce_config.json``, or a Hub dataset repo id.
        revision: branch, tag or commit of a Hub repo.
        token: Hub token (default: huggingface_hub's usual sources).

    Returns:
        The :class:`RunRecord`.

    Raises:
        NotFoundError: no such folder, or no record in it.
        ConfigError: the record is not a valid run record (the message names the field).
        SchemaVersionError: the record was written by a newer schema than this library reads.
    """
    return RunRecord.from_dict(load_record_json(repo_or_folder, revision=revision, token=token))


def load_config(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> RunRecord:
    """Deprecated: the run record is read by :func:`load_record` (what a pass wrote is the *record*; the *config*
    is what a user passes)."""
    warn_renamed("hf_reinforce.load_config", "hf_reinforce.load_record")
    return load_record(repo_or_folder, revision=revision, token=token)


def read_record(path: Path) -> RunRecord | None:
    """The run record in the JSON file ``path``, or ``None`` when the file does not exist."""
    data = read_json(path)
    try:
        return None if data is None else RunRecord.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def verified_shards(output_dir: str | os.PathLike, split: str) -> list[Path]:
    """The shard files of the finished ``split`` of a local folder, each checked against the size and sha256 its
    ``reinforce_config.json`` records; an unfinished, incomplete or corrupt split raises
    :class:`~hf_reinforce.errors.IncompleteOutputError` naming the file."""
    folder = Path(output_dir)
    if resume_path(folder, split).exists():
        raise IncompleteOutputError(
            f"split {split!r} of {folder} is unfinished ({STATE_DIR}/{split}.progress.json exists: a pass is running "
            "or was interrupted); rerun the same reinforce command to finish it"
        )
    if not (folder / CONFIG_FILE).is_file():
        raise IncompleteOutputError(
            f"{folder} has no {CONFIG_FILE}: it is not a finished hf_reinforce folder (a pass is unfinished, or the "
            "config was deleted); rerun the reinforce command to finish it"
        )
    record = read_record(folder / CONFIG_FILE)
    assert record is not None
    stats = (record.splits or {}).get(split)
    if stats is None:
        raise NotFoundError(
            f"{folder} has no finished split {split!r}; its splits are {sorted(record.splits or {})}: pass "
            "split=... (CLI: --split)"
        )
    if not stats.shards:
        raise IncompleteOutputError(
            f"{folder / CONFIG_FILE} records no shard hashes for split {split!r} (written by a version before "
            "hf_reinforce recorded them): its shards cannot be verified; rerun reinforce into it with overwrite=True"
        )
    for shard in stats.shards:
        problem = shard_problem(folder, shard)
        if problem is not None:
            raise IncompleteOutputError(
                f"split {split!r} of {folder}: {problem}; rerun the reinforce command to redo it"
            )
    return [folder / DATA_DIR / s.file for s in stats.shards]


def load_reinforced(
    repo_or_folder: str | os.PathLike, *, split: str = "train", revision: str | None = None, **kwargs: Any
) -> Any:
    """``datasets.load_dataset`` of a reinforced folder's shard files (absolute paths) or of a Hub repo.

    A local folder's split is loaded only when finished, from the shard list of its record, every file checked
    against its recorded size and sha256 (:func:`verified_shards`). It is loaded through that explicit shard list:
    ``load_dataset(folder)`` caches by folder name and patterns, so two folders with the same name could share a
    stale cache.

    Args:
        repo_or_folder: a reinforced folder or a Hub dataset repo id.
        split: the split to load.
        revision: branch, tag or commit of a Hub repo.
        **kwargs: passed to ``datasets.load_dataset``.

    Returns:
        The split as a ``datasets.Dataset``.

    Raises:
        NotFoundError: no such folder or split.
        IncompleteOutputError: the split is unfinished, or a shard is missing or differs from its record.
    """
    import datasets

    path = local_folder(repo_or_folder)
    if path is not None:
        files = [str(p.resolve()) for p in verified_shards(path, split)]
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, **kwargs)
    return datasets.load_dataset(str(repo_or_folder), split=split, revision=revision, **kwargs)


__all__ = ["load_config", "load_record", "load_record_json", "load_reinforced", "read_record", "verified_shards"]
