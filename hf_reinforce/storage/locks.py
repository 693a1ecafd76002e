"""Who is writing a folder: the folder's record lock and each split's writer lock (``filelock``, released when the
process dies).

Render workers are forked from the process that holds the locks and inherit their open lock files; they are made to
die with their parent (see ``engine.render_workers``), so a killed pass's folder is free for a rerun at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import OutputConflictError
from .paths import folder_lock_path, split_lock_path


def _lock(path: Path, *, reentrant: bool) -> FileLock:
    """A lock on ``path``: ``reentrant`` locks are one object per path in this process, so taking the lock again
    (a function that takes it, called under it) counts instead of deadlocking; other locks exclude every other
    holder, in this process too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), is_singleton=reentrant)


@contextlib.contextmanager
def folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold the folder's record lock (``.reinforce/lock``) while reading and updating its records; re-entrant in
    one thread, exclusive between threads and processes."""
    with _lock(folder_lock_path(output_dir), reentrant=True):
        yield


@contextlib.contextmanager
def split_lock(output_dir: Path, split: str) -> Iterator[None]:
    """Hold ``split``'s writer lock for the whole pass; another holder (another process, or another pass in this one)
    is an OutputConflictError."""
    lock = _lock(split_lock_path(output_dir, split), reentrant=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise OutputConflictError(
            f"split {split!r} of {output_dir} is being written by another process right now; wait for it to "
            "finish, or write into another folder"
        ) from None
    try:
        yield
    finally:
        lock.release()


def split_busy(output_dir: Path, split: str) -> bool:
    """Whether another process holds ``split``'s writer lock."""
    if not split_lock_path(output_dir, split).exists():
        return False
    try:
        with split_lock(output_dir, split):
            return False
    except OutputConflictError:
        return True


__all__ = ["folder_lock", "split_busy", "split_lock"]
