"""What an output folder proves: that it is the library's, and which shards of an unfinished split are finished.

A folder is trusted on evidence, never on absence (DESIGN §4). The evidence is what the library itself wrote: a
``reinforce_config.json`` or the ``.reinforce/`` directory proves a folder is the library's (any other non-empty
folder is refused); a split's resume record (``.reinforce/<split>.progress.json``, written before its first shard)
holds the run and, for each finished shard, its row range, rows written, size and two sha256 hashes: of the file's
bytes and of the source rows it was made from (:mod:`.source_hash`). A shard counts as finished only when a record
lists it and its file matches the record. Records are read and updated under the folder lock (:mod:`.locks`), and
the process writing a split holds that split's lock, so passes over different splits of one folder run side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IncompleteOutputError, OutputConflictError
from ..validation import SPLIT_NAME, check_split_name
from .files import read_json, write_json_atomic
from .locks import folder_lock
from .paths import (
    CONFIG_FILE,
    DATA_DIR,
    IGNORED_FILES,
    LEGACY_IN_PROGRESS_FILE,
    RESUME_SUFFIX,
    STATE_DIR,
    is_shard_file_name,
    outside_folder,
    resume_path,
)
from .record import RunRecord, ShardRecord


@dataclass(frozen=True)
class ResumeState:
    """The resume record of an unfinished split: the run writing it and the shards finished so far."""

    split: str
    run: RunRecord
    shards: tuple[ShardRecord, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResumeState:
        """The resume record in its JSON, checked: the run as a run record, every shard named like the split's."""
        split = check_split_name(data["split"])
        shards = tuple(ShardRecord.from_dict(s, f"shards[{i}].") for i, s in enumerate(data.get("shards", [])))
        strays = [s.file for s in shards if not is_shard_file_name(s.file, split)]
        if strays:
            raise ConfigError(f"shards: {strays[0]!r} is not the name of a shard of split {split!r}")
        return cls(split=split, run=RunRecord.from_dict(data["run"]), shards=shards)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "run": self.run.to_dict(), "shards": [s.to_dict() for s in self.shards]}

    def with_shard(self, shard: ShardRecord) -> ResumeState:
        """This record with ``shard`` finished (replacing an earlier entry of the same file)."""
        kept = tuple(s for s in self.shards if s.file != shard.file)
        return ResumeState(self.split, self.run, tuple(sorted((*kept, shard), key=lambda s: s.file)))


def read_resume_state(output_dir: Path, split: str) -> ResumeState | None:
    """The resume record of ``split``, or ``None`` when it has none or it cannot be read: an unreadable record
    proves nothing, so the split's shards are recomputed (and ``load_reinforced`` still refuses the split)."""
    try:
        data = read_json(resume_path(output_dir, split))
        return None if data is None else ResumeState.from_dict(data)
    except (ConfigError, KeyError, TypeError):
        return None


def write_resume_state(output_dir: Path, state: ResumeState) -> None:
    """Write the resume record of ``state.split`` atomically (call under :func:`~.locks.folder_lock`)."""
    write_json_atomic(state.to_dict(), resume_path(output_dir, state.split))


def unfinished_splits(output_dir: Path) -> list[str]:
    """The splits of ``output_dir`` that have a resume record (unfinished, or being written now); files named like
    no split are not the library's and are left alone."""
    state = output_dir / STATE_DIR
    names = [p.name[: -len(RESUME_SUFFIX)] for p in state.glob(f"*{RESUME_SUFFIX}")] if state.is_dir() else []
    return sorted(name for name in names if SPLIT_NAME.fullmatch(name))


def record_shard(output_dir: Path, split: str, shard: ShardRecord) -> None:
    """Add a finished shard to ``split``'s resume record (under the folder lock: several processes add shards)."""
    with folder_lock(output_dir):
        state = read_resume_state(output_dir, split)
        if state is None:
            raise IncompleteOutputError(
                f"the resume record of split {split!r} in {output_dir} disappeared while the pass was writing it "
                "(was the folder changed by another program?); rerun to resume"
            )
        write_resume_state(output_dir, state.with_shard(shard))


def is_library_folder(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds the library's own evidence (its record, state directory or legacy marker)."""
    return any((output_dir / name).exists() for name in (CONFIG_FILE, STATE_DIR, LEGACY_IN_PROGRESS_FILE))


def check_library_folder(output_dir: Path) -> None:
    """Refuse an output folder that is not empty and holds none of the library's evidence: its files are someone
    else's (a dataset in Hub layout, a source folder), never counted as done, overwritten or deleted."""
    for name in (STATE_DIR, DATA_DIR):
        target = outside_folder(output_dir, name) if output_dir.exists() else None
        if target is not None:
            raise OutputConflictError(
                f"output_dir {output_dir}: {name} is a link to {target}, outside the folder; the library writes a "
                f"folder's shards and records in the folder itself: give a folder without such links"
            )
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


__all__ = [
    "ResumeState",
    "check_library_folder",
    "is_library_folder",
    "read_resume_state",
    "record_shard",
    "unfinished_splits",
    "write_resume_state",
]
