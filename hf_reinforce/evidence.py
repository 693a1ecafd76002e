"""What an output folder proves: that it is the library's, which shards of a split are finished, who is writing.

A folder is trusted on evidence, never on absence (DESIGN §4). The evidence is what the library itself wrote: a
``reinforce_config.json`` or the ``.reinforce/`` directory proves a folder is the library's (any other non-empty
folder is refused); a split's progress record (``.reinforce/<split>.progress.json``, written before its first
shard) holds the run and, for each finished shard, its row range, rows written, size and two sha256 hashes: of the
file's bytes and of the source rows it was made from (:func:`source_rows_sha256`). A shard counts as finished only
when a record lists it and its file matches the record. Records are read and updated under a folder lock, and the
process writing a split holds that split's lock, so passes over different splits of one folder run side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import embed_table_storage

from .errors import ConfigError, IncompleteOutputError, OutputConflictError
from .layout import (
    CONFIG_FILE,
    IGNORED_FILES,
    LEGACY_IN_PROGRESS_FILE,
    STATE_DIR,
    folder_lock_path,
    progress_path,
    read_json,
    split_lock_path,
    write_json_atomic,
)
from .record import RunRecord, ShardRecord

PROGRESS_SUFFIX = ".progress.json"


@dataclass(frozen=True)
class Progress:
    """The progress record of an unfinished split: the run writing it and the shards finished so far."""

    split: str
    run: RunRecord
    shards: tuple[ShardRecord, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        shards = tuple(ShardRecord.from_dict(s, f"shards[{i}].") for i, s in enumerate(data.get("shards", [])))
        return cls(split=data["split"], run=RunRecord.from_dict(data["run"]), shards=shards)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "run": self.run.to_dict(), "shards": [s.to_dict() for s in self.shards]}

    def with_shard(self, shard: ShardRecord) -> Progress:
        """This record with ``shard`` finished (replacing an earlier entry of the same file)."""
        kept = tuple(s for s in self.shards if s.file != shard.file)
        return Progress(self.split, self.run, tuple(sorted((*kept, shard), key=lambda s: s.file)))


def read_progress(output_dir: Path, split: str) -> Progress | None:
    """The progress record of ``split``, or ``None`` when it has none or it cannot be read: an unreadable record
    proves nothing, so the split's shards are recomputed (and ``load_reinforced`` still refuses the split)."""
    try:
        data = read_json(progress_path(output_dir, split))
        return None if data is None else Progress.from_dict(data)
    except (ConfigError, KeyError, TypeError):
        return None


def write_progress(output_dir: Path, progress: Progress) -> None:
    """Write the progress record of ``progress.split`` atomically (call under :func:`folder_lock`)."""
    write_json_atomic(progress.to_dict(), progress_path(output_dir, progress.split))


def progress_splits(output_dir: Path) -> list[str]:
    """The splits of ``output_dir`` that have a progress record (unfinished, or being written now)."""
    state = output_dir / STATE_DIR
    return sorted(p.name[: -len(PROGRESS_SUFFIX)] for p in state.glob(f"*{PROGRESS_SUFFIX}")) if state.is_dir() else []


def record_shard(output_dir: Path, split: str, shard: ShardRecord) -> None:
    """Add a finished shard to ``split``'s progress record (under the folder lock: several processes add shards)."""
    with folder_lock(output_dir):
        progress = read_progress(output_dir, split)
        if progress is None:
            raise IncompleteOutputError(
                f"the progress record of split {split!r} in {output_dir} disappeared while the pass was writing it "
                "(was the folder changed by another program?); rerun to resume"
            )
        write_progress(output_dir, progress.with_shard(shard))


# -- whose folder ------------------------------------------------------------------------------------------------


def is_library_folder(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds the library's own evidence (its config, state directory or legacy marker)."""
    return any((output_dir / name).exists() for name in (CONFIG_FILE, STATE_DIR, LEGACY_IN_PROGRESS_FILE))


def check_library_folder(output_dir: Path) -> None:
    """Refuse an output folder that is not empty and holds none of the library's evidence: its files are someone
    else's (a dataset in Hub layout, a source folder), never counted as done, overwritten or deleted."""
    if not output_dir.exists() or is_library_folder(output_dir):
        return
    if not output_dir.is_dir():
        raise OutputConflictError(f"output_dir {output_dir} is a file, not a folder; give a new or empty folder")
    entries = sorted(p.name for p in output_dir.iterdir() if p.name not in IGNORED_FILES)
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputConflictError(
            f"output_dir {output_dir} is not empty ({shown}) and was not written by hf_reinforce (no {CONFIG_FILE}, "
            f"no {STATE_DIR}/); its files are left alone, even with overwrite=True: give a new or empty folder"
        )


# -- locks -------------------------------------------------------------------------------------------------------


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _flock(fd: int, *, wait: bool) -> None:
    import fcntl  # POSIX; imported here so that reading and training code imports on any platform

    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold the folder's record lock (``.reinforce/lock``, ``flock``: released when the process dies)."""
    fd = _open_lock(folder_lock_path(output_dir))
    try:
        _flock(fd, wait=True)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def split_lock(output_dir: Path, split: str) -> Iterator[None]:
    """Hold ``split``'s writer lock for the whole pass; another process holding it is an OutputConflictError."""
    fd = _open_lock(split_lock_path(output_dir, split))
    try:
        try:
            _flock(fd, wait=False)
        except BlockingIOError:
            raise OutputConflictError(
                f"split {split!r} of {output_dir} is being written by another process right now; wait for it to "
                "finish, or write into another folder"
            ) from None
        yield
    finally:
        os.close(fd)


def split_busy(output_dir: Path, split: str) -> bool:
    """Whether another process holds ``split``'s writer lock."""
    if not split_lock_path(output_dir, split).exists():
        return False
    try:
        with split_lock(output_dir, split):
            return False
    except OutputConflictError:
        return True


# -- the source rows ---------------------------------------------------------------------------------------------


def source_rows_sha256(dataset: datasets.Dataset, rows: range, columns: Sequence[str]) -> str:
    """sha256 of the values of ``columns`` in ``rows`` of ``dataset``, images read from their files when the
    dataset holds only paths (so a file rewritten in place is seen, whatever its mtime or the fingerprint)."""
    table = embed_table_storage(dataset.select_columns(list(columns)).with_format("arrow")[rows.start : rows.stop])
    digest = hashlib.sha256()
    for name in columns:
        _feed(digest, name)
        _feed_array(digest, table.column(name).combine_chunks())
    return digest.hexdigest()


def _feed_array(digest: Any, array: pa.Array) -> None:
    """Feed a whole column: lists of numbers (image arrays, embeddings) by their lengths and values' bytes, at
    numpy speed; anything else value by value."""
    if isinstance(array, pa.ExtensionArray):  # datasets' Array2D..Array5D: nested fixed-size lists in storage
        array = array.storage
    kind = array.type
    if array.null_count == 0 and pa.types.is_fixed_size_list(kind):
        digest.update(b"F%d:" % kind.list_size)
        _feed_array(digest, array.flatten())
    elif array.null_count == 0 and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        digest.update(b"A")
        digest.update(pc.list_value_length(array).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
        _feed_array(digest, array.flatten())
    elif array.null_count == 0 and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    ):
        digest.update(b"P%s:" % str(kind).encode())
        digest.update(array.to_numpy(zero_copy_only=False))
    else:
        for value in array.to_pylist():
            _feed(digest, value)


def _feed(digest: Any, value: Any) -> None:
    """Feed one Python value of an Arrow column to ``digest``, type- and length-prefixed (no two values collide)."""
    if value is None:
        digest.update(b"N")
    elif isinstance(value, bytes):
        digest.update(b"B%d:" % len(value))
        digest.update(value)
    elif isinstance(value, str):
        data = value.encode()
        digest.update(b"S%d:" % len(data))
        digest.update(data)
    elif isinstance(value, dict):
        digest.update(b"D%d:" % len(value))
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(b"L%d:" % len(value))
        for item in value:
            _feed(digest, item)
    else:
        digest.update(b"V%s;" % repr(value).encode())


__all__ = [
    "Progress",
    "check_library_folder",
    "folder_lock",
    "is_library_folder",
    "progress_splits",
    "read_progress",
    "record_shard",
    "source_rows_sha256",
    "split_busy",
    "split_lock",
    "write_progress",
]
