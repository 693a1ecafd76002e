"""The parts of a run record — a teacher as loaded, a split's source rows and statistics, one shard — and the table
that reads every key of a record's JSON.

A record is input like any other (a folder or a Hub repo may be damaged, tampered with or written by another
version), so each part is read through a table of :class:`Key` s, one per JSON key, each with its check from
:mod:`hf_reinforce.validation`, then checked as a whole: a shard's rows and counts agree, a split's shards are named
like its shards, cover its rows exactly once in order and add up to its statistics. Every refusal is a
:class:`~hf_reinforce.errors.ConfigError` naming the field path (``splits.train.shards[1].rows``). A new key is one
row of a table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ..validation import (
    MAX_CLASSES,
    Check,
    check_mapping,
    check_number,
    check_preprocessing,
    check_sha256,
    check_split_name,
    check_str,
    integer,
    optional,
    sequence_of,
)
from .paths import shard_file_name
from .report import SplitReport


@dataclass(frozen=True)
class Key:
    """One key of a record's JSON: the check of its value and whether it may be absent (then read as ``None``)."""

    check: Check
    required: bool = True


def read_keys(data: Any, keys: Mapping[str, Key], where: str) -> dict[str, Any]:
    """The values of ``keys`` in the JSON object ``data``, each checked (``where`` prefixes the field paths)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where.rstrip('.') or 'the run record'}: expected an object, got {data!r}"[:300])
    out: dict[str, Any] = {}
    for name, key in keys.items():
        if name in data:
            out[name] = key.check(data[name], f"{where}{name}")
        elif key.required:
            raise ConfigError(
                f"{where}{name}: missing from the run record (keys: {sorted(data)}); is it reinforce_config.json?"
            )
        else:
            out[name] = None
    return out


def unknown_keys(data: Mapping[str, Any], keys: Mapping[str, Key]) -> dict[str, Any]:
    """The keys of ``data`` this version does not read (kept as they are through a round trip)."""
    return {k: v for k, v in data.items() if k not in keys}


def text(value: Any, field: str) -> str:
    """Any string (class names may be anything a ``ClassLabel`` holds)."""
    if not isinstance(value, str):
        raise ConfigError(f"{field}: expected a string, got {value!r}")
    return value


def _preprocessing(key: str) -> Check:
    return lambda value, where: check_preprocessing(key, value, where)


def _increasing(values: Sequence[int], where: str) -> None:
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"{where}: expected strictly increasing row indices, got {list(values)[:20]}")


@dataclass(frozen=True)
class TeacherRecord:
    """One teacher as it was loaded: where from, which weights, its own preprocessing and class counts."""

    name: str
    source: str
    id: str
    revision: str | None
    weights: str | None
    resolution: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    num_outputs: int
    class_mapping: tuple[int, ...] | None
    weights_sha256: str | None = None
    """sha256 of the teacher's state dict as loaded (absent in records written before it was recorded)."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    KEYS: ClassVar[Mapping[str, Key]] = {
        "name": Key(check_str),
        "source": Key(check_str),
        "id": Key(check_str),
        "revision": Key(optional(check_str)),
        "weights": Key(optional(check_str)),
        "resolution": Key(_preprocessing("resolution")),
        "interpolation": Key(_preprocessing("interpolation")),
        "mean": Key(_preprocessing("mean")),
        "std": Key(_preprocessing("std")),
        "num_classes": Key(integer(minimum=1, maximum=MAX_CLASSES)),
        "num_outputs": Key(integer(minimum=1)),
        "class_mapping": Key(optional(sequence_of(integer(minimum=0)))),
        "weights_sha256": Key(optional(check_sha256), required=False),
    }

    @classmethod
    def read(cls, data: Any, where: str) -> TeacherRecord:
        """The teacher record at field path ``where`` (``teachers[0]``), checked."""
        record = cls(**read_keys(data, cls.KEYS, f"{where}."), extra=unknown_keys(data, cls.KEYS))
        counted = len(record.class_mapping) if record.class_mapping is not None else record.num_outputs
        if counted != record.num_classes:
            raise ConfigError(
                f"{where}.num_classes: {record.num_classes}, but its class_mapping/num_outputs give {counted} classes"
            )
        if record.class_mapping is not None and max(record.class_mapping) >= record.num_outputs:
            raise ConfigError(
                f"{where}.class_mapping: logit {max(record.class_mapping)} of a teacher with {record.num_outputs} outputs"
            )
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int = 0) -> TeacherRecord:
        """The record of teacher ``index`` from its JSON object."""
        return cls.read(data, f"teachers[{index}]")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS}
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["class_mapping"] = list(self.class_mapping) if self.class_mapping is not None else None
        if self.weights_sha256 is None:
            del out["weights_sha256"]
        return {**out, **self.extra}


@dataclass(frozen=True)
class ShardRecord:
    """One finished shard as written: file name, source row range, rows written, size, and two sha256 hashes, of
    the file's bytes and of the source rows it was made from (the columns the pass reads and keeps)."""

    file: str
    rows: tuple[int, int]
    """``(start, stop)`` of the source rows the shard covers."""
    num_rows: int
    num_bytes: int
    sha256: str
    source_sha256: str | None
    """``None`` for a folder written by ``save_folder`` from a dataset (never resumed, so never compared)."""
    skipped_rows: tuple[int, ...] = ()

    KEYS: ClassVar[Mapping[str, Key]] = {
        "file": Key(check_str),
        "rows": Key(sequence_of(integer(minimum=0), length=2)),
        "num_rows": Key(integer(minimum=0)),
        "num_bytes": Key(integer(minimum=0)),
        "sha256": Key(check_sha256),
        "source_sha256": Key(optional(check_sha256), required=False),
        "skipped_rows": Key(optional(sequence_of(integer(minimum=0))), required=False),
    }

    @classmethod
    def read(cls, data: Any, where: str) -> ShardRecord:
        """The shard record at field path ``where`` (``splits.train.shards[0]``), its rows and counts checked."""
        values = read_keys(data, cls.KEYS, f"{where}.")
        shard = cls(**{**values, "skipped_rows": values["skipped_rows"] or ()})
        start, stop = shard.rows
        if stop <= start:
            raise ConfigError(f"{where}.rows: expected [start, stop] with start < stop, got {list(shard.rows)}")
        if shard.num_rows + len(shard.skipped_rows) != stop - start:
            raise ConfigError(
                f"{where}: {shard.num_rows} rows written and {len(shard.skipped_rows)} skipped do not make its "
                f"{stop - start} rows {list(shard.rows)}"
            )
        _increasing(shard.skipped_rows, f"{where}.skipped_rows")
        if shard.skipped_rows and not start <= shard.skipped_rows[0] <= shard.skipped_rows[-1] < stop:
            raise ConfigError(f"{where}.skipped_rows: rows outside its rows {list(shard.rows)}")
        return shard

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "shards.") -> ShardRecord:
        """The shard record from its JSON object (``where``: the field path prefix, ending in ``.``)."""
        return cls.read(data, where.rstrip("."))

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": list(self.rows),
            "num_rows": self.num_rows,
            "num_bytes": self.num_bytes,
            "sha256": self.sha256,
            "source_sha256": self.source_sha256,
            "skipped_rows": list(self.skipped_rows),
        }


def _environment(value: Any, field: str) -> dict[str, str]:
    """A rendering environment: names of libraries or facts → their versions or values, all strings."""
    return {str(key): check_str(item, f"{field}.{key}") for key, item in check_mapping(value, field).items()}


@dataclass(frozen=True)
class SplitRecord:
    """The source rows of one split (id, revision, row count, fingerprint, labels) and, once written, its
    statistics."""

    id: str | None = None
    config: str | None = None
    revision: str | None = None
    split: str | None = None
    num_rows: int | None = None
    fingerprint: str | None = None
    labels_sha256: str | None = None
    """sha256 of the source's label column (``attach`` checks a source against it; absent without labels)."""
    num_rows_written: int | None = None
    num_shards: int | None = None
    skipped_rows: tuple[int, ...] | None = None
    num_bytes: int | None = None
    bytes_per_augmentation: float | None = None
    shards: tuple[ShardRecord, ...] | None = None
    """Every shard of the finished split, in order (absent in folders written before shards were recorded)."""
    report: SplitReport | None = None
    """The reinforcement report (:mod:`hf_reinforce.storage.report`): the ensemble on stored views and on originals."""
    extended_from: tuple[int, ...] | None = None
    """The N of each smaller dataset this split was grown from by ``hfr.extend``, oldest first (``None``: computed
    in one pass). The data is the same as a pass with this record's N would write."""
    rendering: Mapping[str, str] | None = None
    """The rendering environment of the process that wrote the split
    (:func:`~hf_reinforce.augment.rendering_environment`: library versions, CPU capability, machine); absent in
    records of schema 1."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    SOURCE: ClassVar[tuple[str, ...]] = (
        "id",
        "config",
        "revision",
        "split",
        "num_rows",
        "fingerprint",
        "labels_sha256",
    )
    STATS: ClassVar[tuple[str, ...]] = (
        "num_rows_written",
        "num_shards",
        "skipped_rows",
        "num_bytes",
        "bytes_per_augmentation",
        "shards",
        "report",
        "extended_from",
        "rendering",
    )
    KEYS: ClassVar[Mapping[str, Key]] = {
        name: Key(check, required=False)
        for name, check in {
            "id": optional(check_str),
            "config": optional(check_str),
            "revision": optional(check_str),
            "split": optional(check_split_name),
            "num_rows": optional(integer(minimum=1)),
            "fingerprint": optional(check_str),
            "labels_sha256": optional(check_sha256),
            "num_rows_written": optional(integer(minimum=0)),
            "num_shards": optional(integer(minimum=1)),
            "skipped_rows": optional(sequence_of(integer(minimum=0))),
            "num_bytes": optional(integer(minimum=0)),
            "bytes_per_augmentation": optional(lambda value, where: check_number(value, where, minimum=0)),
            "shards": optional(sequence_of(ShardRecord.read, nonempty=True)),
            "report": optional(SplitReport.from_dict),
            "extended_from": optional(sequence_of(integer(minimum=1), nonempty=True)),
            "rendering": optional(_environment),
        }.items()
    }

    FINISHED: ClassVar[tuple[str, ...]] = (
        "num_rows",
        "num_rows_written",
        "num_shards",
        "skipped_rows",
        "num_bytes",
        "bytes_per_augmentation",
    )
    """What every finished split records (shards may be absent in folders written before they were recorded)."""

    @classmethod
    def read(cls, data: Any, where: str, name: str | None = None) -> SplitRecord:
        """The split record at field path ``where`` (``splits.train``, ``source``); with ``name``, the finished split
        of that name: its statistics are all there, and its shards are named after it."""
        record = cls(**read_keys(data, cls.KEYS, f"{where}."), extra=unknown_keys(data, cls.KEYS))
        record.check(where, name)
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "source.") -> SplitRecord:
        """The split record from its JSON object (``where``: the field path prefix, ending in ``.``)."""
        return cls.read(data, where.rstrip("."))

    def check(self, where: str, name: str | None) -> None:
        """Refuse statistics that disagree with each other or with the shards: rows written and skipped make the
        source's rows, and the shards (named like ``name``'s, in order) cover them exactly once and add up."""
        missing = [key for key in self.FINISHED if name is not None and getattr(self, key) is None]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: missing from the record of a finished split")
        for key in ("skipped_rows", "extended_from"):
            _increasing(getattr(self, key) or (), f"{where}.{key}")
        skipped = self.skipped_rows or ()
        if self.num_rows is not None and skipped and skipped[-1] >= self.num_rows:
            raise ConfigError(f"{where}.skipped_rows: row {skipped[-1]} of a source of {self.num_rows} rows")
        written = self.num_rows_written
        if self.num_rows is not None and written is not None and written + len(skipped) != self.num_rows:
            raise ConfigError(
                f"{where}.num_rows_written: {written} rows written and {len(skipped)} skipped do not "
                f"make the source's {self.num_rows} rows"
            )
        if self.shards is not None:
            self._check_shards(where, name, self.shards)

    def _check_shards(self, where: str, name: str | None, shards: Sequence[ShardRecord]) -> None:
        hashed = {shard.source_sha256 is not None for shard in shards}
        if len(hashed) > 1:
            raise ConfigError(f"{where}.shards: some shards record the hash of their source rows and some do not")
        totals: dict[str, int | tuple[int, ...]] = {
            "num_shards": len(shards),
            "num_rows_written": sum(s.num_rows for s in shards),
            "num_bytes": sum(s.num_bytes for s in shards),
        }
        if hashed == {True}:
            totals["skipped_rows"] = tuple(r for s in shards for r in s.skipped_rows)
        for key, total in totals.items():
            if getattr(self, key) is not None and getattr(self, key) != total:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)!r}, but its shards add up to {total!r}")
        # a pass's shards cover source rows; a dataset saved by save_folder covers the rows it holds
        end = self.num_rows if hashed == {True} else self.num_rows_written
        if end is None:
            raise ConfigError(f"{where}: lists shards but not the rows they cover (num_rows, num_rows_written)")
        stop = 0
        for i, shard in enumerate(shards):
            at, expected = f"{where}.shards[{i}]", shard_file_name(name, i, len(shards)) if name else shard.file
            if shard.file != expected:
                raise ConfigError(f"{at}.file: expected {expected!r} (shard {i} of {len(shards)}), got {shard.file!r}")
            if shard.rows[0] != stop:
                raise ConfigError(
                    f"{at}.rows: {list(shard.rows)} does not start where the shards before it stop (row {stop}): "
                    "the shards must cover the rows exactly once, in order"
                )
            stop = shard.rows[1]
        if stop != end:
            raise ConfigError(f"{where}.shards: cover rows [0, {stop}), expected [0, {end})")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.SOURCE if k != "labels_sha256" or self.labels_sha256 is not None}
        out.update({k: getattr(self, k) for k in self.STATS if getattr(self, k) is not None})
        for key in ("skipped_rows", "extended_from"):
            if getattr(self, key) is not None:
                out[key] = list(getattr(self, key))
        if self.shards is not None:
            out["shards"] = [s.to_dict() for s in self.shards]
        if self.report is not None:
            out["report"] = self.report.to_dict()
        return {**out, **self.extra}

    def with_stats(
        self, shards: list[ShardRecord], *, bytes_per_augmentation: float, report: SplitReport | None = None
    ) -> SplitRecord:
        """This split once written as ``shards``: rows, shards, skipped rows, bytes of its files, reinforcement
        bytes per stored augmentation (:func:`~.shards.bytes_per_stored_augmentation`, the one definition), the report."""
        num_rows_written, num_bytes = sum(s.num_rows for s in shards), sum(s.num_bytes for s in shards)
        return dataclasses.replace(
            self,
            num_rows_written=num_rows_written,
            num_shards=len(shards),
            skipped_rows=tuple(sorted(r for s in shards for r in s.skipped_rows)),
            num_bytes=num_bytes,
            bytes_per_augmentation=round(bytes_per_augmentation, 2),
            shards=tuple(shards),
            report=report,
        )


def read_splits(value: Any, where: str) -> dict[str, SplitRecord]:
    """The ``splits`` object: each key a split name, each value that split's record."""
    check_mapping(value, where)
    return {
        check_split_name(name, f"{where}: split name"): SplitRecord.read(split, f"{where}.{name}", name)
        for name, split in value.items()
    }


__all__ = ["Key", "ShardRecord", "SplitRecord", "TeacherRecord", "read_keys", "read_splits", "unknown_keys"]
