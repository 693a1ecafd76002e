"""Files written atomically, read back checked: parquet and JSON through a temp file and a rename, sha256 of a file.

A crash leaves at most a hidden ``.tmp`` file (removed by :func:`remove_temp_files`), never a file with its final
name that is incomplete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, NotFoundError, ReinforceError, StorageError
from .format import parquet_options
from .paths import DATA_DIR, TEMP_SUFFIX, work_dir_prefix

_FIXES = {
    errno.ENOSPC: "free some space or write to another disk, then rerun the same command (finished work is kept)",
    errno.EROFS: "the file system is read-only: give a folder on a writable disk",
    errno.EACCES: "no permission: give a folder you can write to, or fix its permissions",
    errno.EPERM: "no permission: give a folder you can write to, or fix its permissions",
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _FIXES[errno.EDQUOT] = "free some of your disk quota or write to another disk, then rerun the same command"


@contextlib.contextmanager
def file_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn the file system's refusals while working on ``path`` (no space, read-only, no permission, a missing
    file) into :class:`~hf_reinforce.errors.StorageError` / :class:`~hf_reinforce.errors.NotFoundError` naming the
    file and the fix. Errors of other libraries that merely derive from ``OSError`` (HTTP errors) pass unchanged."""
    try:
        yield
    except ReinforceError:
        raise
    except OSError as error:
        if type(error).__module__ != "builtins" or isinstance(error, ConnectionError):
            raise
        where = error.filename or path
        reason = error.strerror or str(error)
        if isinstance(error, FileNotFoundError):
            raise NotFoundError(f"{where}: no such file or folder ({reason}), working on {path}") from error
        fix = _FIXES.get(error.errno or 0, "check the path and the disk")
        raise StorageError(f"{where}: {reason}, working on {path}: {fix}") from error


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet_atomic(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path) -> int:
    """Stream record batches to ``path`` through a temp file renamed into place; returns the file size.

    The writer creates the temp file, so the shard gets the usual umask permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"))
    try:
        with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
            for batch in batches:
                writer.write_batch(batch)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path.stat().st_size


def write_json_atomic(data: Mapping[str, Any], path: Path) -> None:
    """Write JSON to ``path`` via a temp file and rename."""
    write_text_atomic(json.dumps(data, indent=2, sort_keys=True) + "\n", path)


def write_text_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` via a temp file and rename (records and cards are written under the folder lock,
    so one temp name per file suffices)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when the file does not exist; a file that is not a JSON object is
    a :class:`~hf_reinforce.errors.ConfigError` naming it."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ConfigError(
            f"{path} is not valid JSON ({error}): restore it, or delete it to redo what it recorded"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {type(data).__name__}, not a JSON object: restore it or delete it")
    return data


def remove_temp_files(output_dir: Path, split: str) -> None:
    """Delete what a killed pass over ``split`` left behind: its shard work directories and hidden ``.tmp`` shard
    files (those of other splits, maybe being written by another process, stay)."""
    for path in output_dir.glob(f"{work_dir_prefix(split)}*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (output_dir / DATA_DIR).glob(f".{split}-*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)


__all__ = [
    "file_errors",
    "file_sha256",
    "read_json",
    "remove_temp_files",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]
