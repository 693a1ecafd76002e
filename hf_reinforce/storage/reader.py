"""Reading a reinforced folder or Hub repo back: its run record, and its finished splits, verified.

A folder is trusted only on evidence (docs "Guarantees"): :func:`verified_shards` checks a finished split against the
shard list of its record before anything reads it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..deprecation import warn_renamed
from ..errors import ConfigError, IncompleteOutputError, NotFoundError
from ..validation import check_split_name
from .files import read_json
from .format import check_schema_version
from .paths import CONFIG_FILE, DATA_DIR, STATE_DIR, local_folder, resume_path
from .record import RunRecord, ShardRecord
from .remote import check_reachable, download, hub_errors
from .shards import shard_problem

RECORD_FIXES = (
    "a record the library wrote passes this check: restore it, or delete it and rerun the reinforce command",
    "a record the library wrote passes this check: push the dataset again from its folder",
)
"""How to fix a record that fails the check: one in a local file, one in a Hub repo."""


def record_file(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> Path:
    """The ``reinforce_config.json`` of a local folder (or that file itself), or of a Hub repo (downloaded, or from
    the local Hub cache when the Hub cannot be asked)."""
    path = local_folder(repo_or_folder)
    if path is None:
        return download(str(repo_or_folder), CONFIG_FILE, revision=revision, token=token)
    path = path / CONFIG_FILE if path.is_dir() else path
    if not path.is_file():
        raise NotFoundError(f"{repo_or_folder} has no {CONFIG_FILE}: is it a finished hf_reinforce output folder?")
    return path


def load_record_json(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> dict[str, Any]:
    """The raw JSON of ``reinforce_config.json`` (a local folder, a path to the file, or a Hub repo), its schema
    version checked; :func:`load_record` reads it as a :class:`~hf_reinforce.storage.record.RunRecord`."""
    path = record_file(repo_or_folder, revision=revision, token=token)
    data = read_json(path)
    if data is None:
        raise NotFoundError(f"{path} disappeared while it was read")
    if isinstance(data.get("schema_version"), int):
        check_schema_version(data["schema_version"])
    return data


def parse_record(data: Mapping[str, Any], source: str | os.PathLike) -> RunRecord:
    """``data`` read as the run record of a reinforced folder or repo, which lists the splits it holds; a
    :class:`ConfigError` names ``source`` (the file or repo) and the field."""
    try:
        record = RunRecord.from_dict(data)
        if not record.splits:
            raise ConfigError("splits: missing or empty: the record of a reinforced dataset lists its splits")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}; {RECORD_FIXES[not isinstance(source, Path)]}") from None
    return record


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
        NotFoundError: no such folder, repo or record.
        ConfigError: the record is not a valid run record (the message names the file or repo and the field).
        SchemaVersionError: the record was written by a newer schema than this library reads.
        HubError: the Hub cannot be asked (offline mode, no network) and the record is not in the local cache.
    """
    source = str(repo_or_folder) if local_folder(repo_or_folder) is None else record_file(repo_or_folder)
    return parse_record(load_record_json(repo_or_folder, revision=revision, token=token), source)


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
    return None if data is None else parse_record(data, path)


def verified_shards(output_dir: str | os.PathLike, split: str) -> list[Path]:
    """The shard files of the finished ``split`` of a local folder, each checked against what its
    ``reinforce_config.json`` records (:func:`~.shards.shard_problem`: the folder's own file, its size, sha256, rows
    and columns); an unfinished, incomplete or corrupt split raises
    :class:`~hf_reinforce.errors.IncompleteOutputError` naming the file."""
    return [Path(output_dir) / DATA_DIR / s.file for s in _verified(Path(output_dir), split)]


def _verified(folder: Path, split: str) -> tuple[ShardRecord, ...]:
    record = finished_record(folder, split)
    shards = _recorded_shards(folder, record, split)
    for shard in shards:
        problem = shard_problem(folder, shard, record)
        if problem is not None:
            raise IncompleteOutputError(
                f"split {split!r} of {folder}: {problem}; rerun the reinforce command to redo it"
            )
    return shards


def finished_record(output_dir: str | os.PathLike, split: str) -> RunRecord:
    """The record of a local folder whose ``split`` is finished (no resume record, a ``reinforce_config.json``)."""
    folder = Path(output_dir)
    if resume_path(folder, check_split_name(split)).exists():
        raise IncompleteOutputError(
            f"split {split!r} of {folder} is unfinished ({STATE_DIR}/{split}.progress.json exists: a pass is running "
            "or was interrupted); rerun the same reinforce command to finish it"
        )
    record = read_record(folder / CONFIG_FILE)
    if record is None:
        raise IncompleteOutputError(
            f"{folder} has no {CONFIG_FILE}: it is not a finished hf_reinforce folder (a pass is unfinished, or the "
            "config was deleted); rerun the reinforce command to finish it"
        )
    return record


def _recorded_shards(folder: Path, record: RunRecord, split: str) -> tuple[ShardRecord, ...]:
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
    return stats.shards


def load_shards(paths: Sequence[Path], shards: Sequence[ShardRecord], split: str, **kwargs: Any) -> Any:
    """``datasets.load_dataset`` of the parquet ``paths`` (verified against ``shards``), cached under a name made
    of their sha256s: ``datasets`` keys its cache on paths and modification times, so a folder rewritten in place
    with equal times would otherwise return the rows it held before."""
    import datasets

    content = hashlib.sha256("".join(s.sha256 for s in shards).encode()).hexdigest()[:32]
    cache = Path(kwargs.pop("cache_dir", None) or datasets.config.HF_DATASETS_CACHE) / "hf_reinforce" / content
    files = [str(p.resolve()) for p in paths]
    return datasets.load_dataset("parquet", data_files={split: files}, split=split, cache_dir=str(cache), **kwargs)


def load_reinforced(
    repo_or_folder: str | os.PathLike, *, split: str = "train", revision: str | None = None, **kwargs: Any
) -> Any:
    """``datasets.load_dataset`` of a reinforced folder's shard files or of a Hub repo.

    A local folder's split is loaded only when finished, from the shard list of its record, every file checked
    against its record (:func:`verified_shards`), and cached by the shards' sha256s (:func:`load_shards`).

    Args:
        repo_or_folder: a reinforced folder or a Hub dataset repo id.
        split: the split to load.
        revision: branch, tag or commit of a Hub repo.
        **kwargs: passed to ``datasets.load_dataset``.

    Returns:
        The split as a ``datasets.Dataset``.

    Raises:
        NotFoundError: no such folder, repo or split.
        IncompleteOutputError: the split is unfinished, or a shard is missing or differs from its record.
        ConfigError: the folder's record is not a valid run record, or ``split`` is not a split name.
        HubError: the Hub cannot be asked (offline mode, no network).
    """
    import datasets

    check_split_name(split)
    path = local_folder(repo_or_folder)
    if path is not None:
        shards = _verified(path, split)
        return load_shards([path / DATA_DIR / s.file for s in shards], shards, split, **kwargs)
    repo_id = str(repo_or_folder)
    with hub_errors(repo_id):
        check_reachable(repo_id, "read")
        return datasets.load_dataset(repo_id, split=split, revision=revision, **kwargs)


__all__ = [
    "finished_record",
    "load_config",
    "load_record",
    "load_record_json",
    "load_reinforced",
    "load_shards",
    "parse_record",
    "read_record",
    "record_file",
    "verified_shards",
]
