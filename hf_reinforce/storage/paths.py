"""Every file and folder name of a reinforced folder, and which paths name a local folder rather than a Hub repo.

This module is the one home of the names; everything else asks it for paths. Layout::

    <output_dir>/data/<split>-00000-of-00008.parquet   one file per shard, renamed into place when complete
    <output_dir>/reinforce_config.json                 the run record, written last, per split: every shard with its sha256
    <output_dir>/README.md                             dataset card (YAML carries the record under hf_reinforce)
    <output_dir>/.reinforce/<split>.progress.json      an unfinished split: the run and its finished shards
    <output_dir>/.reinforce/<split>.lock, lock         held by the process writing a split / updating records
    <output_dir>/.shard-<split>-<random>/              a shard's work directory while it is computed
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import NotFoundError, OutputConflictError
from ..validation import check_split_name

CONFIG_FILE = "reinforce_config.json"
"""The run record's file (its name predates the record/config distinction and is part of the format)."""
CARD_FILE = "README.md"
STATE_DIR = ".reinforce"
LOCK_FILE = "lock"
RESUME_SUFFIX = ".progress.json"
LEGACY_IN_PROGRESS_FILE = ".reinforce_in_progress.json"
"""The in-progress marker of versions before per-split resume records (proves the folder is the library's)."""
DATA_DIR = "data"
SHARD_TEMP_PREFIX = ".shard-"
TEMP_SUFFIX = ".tmp"
IGNORED_FILES = (".DS_Store",)
"""Files that do not make a folder non-empty (the output folder must be empty or the library's)."""


def resume_path(output_dir: str | os.PathLike, split: str) -> Path:
    """``.reinforce/<split>.progress.json``: the resume record (run and finished shards) of an unfinished split."""
    return Path(output_dir) / STATE_DIR / f"{check_split_name(split)}{RESUME_SUFFIX}"


def split_lock_path(output_dir: str | os.PathLike, split: str) -> Path:
    """``.reinforce/<split>.lock``: held by the process writing ``split``."""
    return Path(output_dir) / STATE_DIR / f"{check_split_name(split)}.lock"


def folder_lock_path(output_dir: str | os.PathLike) -> Path:
    """``.reinforce/lock``: held while a process reads and updates the folder's records."""
    return Path(output_dir) / STATE_DIR / LOCK_FILE


def work_dir_prefix(split: str) -> str:
    """Prefix of the work directories of ``split``'s shards (split names have no ``-``, so prefixes never clash)."""
    return f"{SHARD_TEMP_PREFIX}{check_split_name(split)}-"


def split_shard_files(output_dir: str | os.PathLike, split: str) -> list[Path]:
    """Files named like shards of ``split`` under ``data/`` (whoever wrote them; split names have no ``-``, so
    another split's shards never match)."""
    return sorted((Path(output_dir) / DATA_DIR).glob(f"{check_split_name(split)}-[0-9]*-of-[0-9]*.parquet"))


SHARD_FILE_NAME = re.compile(r"(?P<split>.+)-(?P<index>\d{5,})-of-(?P<count>\d{5,})\.parquet")
"""How :func:`shard_file_name` names a shard."""


def is_shard_file_name(name: str, split: str) -> bool:
    """Whether ``name`` is the name of some shard of ``split`` (``<split>-XXXXX-of-YYYYY.parquet``)."""
    match = SHARD_FILE_NAME.fullmatch(name)
    return match is not None and match["split"] == split and int(match["index"]) < int(match["count"])


def shard_file_name(split: str, index: int, count: int) -> str:
    """``<split>-XXXXX-of-YYYYY.parquet``: shard ``index`` of ``count`` (the naming ``datasets`` and the Hub recognise
    as split shards)."""
    return f"{check_split_name(split)}-{index:05d}-of-{count:05d}.parquet"


def shard_path(output_dir: str | os.PathLike, split: str, index: int, count: int) -> Path:
    """``data/<split>-XXXXX-of-YYYYY.parquet`` (:func:`shard_file_name`)."""
    return Path(output_dir) / DATA_DIR / shard_file_name(split, index, count)


def outside_folder(output_dir: str | os.PathLike, relative: str) -> Path | None:
    """Where ``relative`` (``data/<shard>``, ``.reinforce``) of a folder really is when that is outside the folder (a
    symbolic link, or a ``data/`` that links elsewhere), else ``None``: nothing outside a folder is read as its shard,
    uploaded or written as its records. A folder of the Hub cache (``.../snapshots/<commit>``) links its files into
    its repo's ``blobs/``, which count as its own."""
    folder = Path(output_dir).resolve()
    cache = folder.parent.name == "snapshots" and (folder.parent.parent / "blobs").is_dir()
    target = (folder / relative).resolve()
    return None if target.is_relative_to(folder.parent.parent if cache else folder) else target


def num_shards(num_rows: int, rows_per_shard: int) -> int:
    """Shards of a split of ``num_rows`` rows (at least one)."""
    return max(1, -(-num_rows // rows_per_shard))


def shard_rows(index: int, rows_per_shard: int, num_rows: int) -> range:
    """The source rows shard ``index`` holds: ``[index * rows_per_shard, (index + 1) * rows_per_shard)``, clipped."""
    return range(index * rows_per_shard, min(num_rows, (index + 1) * rows_per_shard))


def local_folder(repo_or_folder: str | os.PathLike, *, bare_names: bool = True) -> Path | None:
    """The local path ``repo_or_folder`` names, or ``None`` when it is a Hub repo id; a local path that does not
    exist raises :class:`~hf_reinforce.errors.NotFoundError` ("no such folder") at once, so it is never sent to the Hub.

    Local: a ``Path`` object, anything that exists here, ``.``/``..``/``~``-relative or absolute paths, ``a/b...``
    whose first component is a folder here, and a name without ``/`` (a reinforced repo id always has a namespace;
    ``bare_names=False`` sends such names to the Hub, for source datasets like ``mnist``). Everything else
    (``user/repo``) is a Hub repo id. The one rule for every entry point that takes "a folder or a repo".
    """
    text = os.fspath(repo_or_folder)
    path = Path(text).expanduser()
    first = text.split("/", 1)[0]
    local = (
        isinstance(repo_or_folder, os.PathLike)
        or path.exists()
        or text.startswith((".", "/", "~"))
        or os.path.isabs(text)
        or (bare_names and "/" not in text.strip("/"))
        or Path(first).is_dir()
    )
    if not local:
        return None
    if not path.exists():
        raise NotFoundError(f"no such folder: {text} (a local path; Hub repo ids look like user/name)")
    return path


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


__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "DATA_DIR",
    "IGNORED_FILES",
    "LEGACY_IN_PROGRESS_FILE",
    "STATE_DIR",
    "folder_lock_path",
    "is_shard_file_name",
    "local_folder",
    "num_shards",
    "outside_folder",
    "resume_path",
    "shard_file_name",
    "shard_path",
    "shard_rows",
    "split_lock_path",
    "split_shard_files",
    "work_dir_prefix",
    "writable_folder",
]
