"""The run record: what a reinforcement pass wrote (``reinforce_config.json``), typed, read once and checked once.

*Config* is what the user passes (:class:`hf_reinforce.ReinforceConfig`); the *record* is what a run wrote: the
config's identity, the teachers as loaded, the source rows and, once a split is finished, its statistics. Its JSON
is the on-disk schema (README "Format"): ``RunRecord.from_dict(d).to_dict() == d`` for every record the library
writes, and keys this version does not know (``accuracy`` from ``evaluate_teachers``, keys of a later version of the
same schema) survive a round trip unchanged.

"Same" has two definitions, both here: :meth:`RunRecord.reinforcement_differences` (two splits may live in one
dataset: same policy, N, K, seed, temperature, teachers as loaded, class mapping, columns and schema) and
:meth:`RunRecord.output_differences` (a rerun or resume of one split: everything that determines its bytes, and the
same source rows). Only ``augment``, ``format``, ``report`` and ``errors`` are imported: training code reads records too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..augment import AugmentationPolicy, MixUpCutMix
from ..deprecation import warn_renamed
from ..errors import ConfigError
from ..validation import check_int
from .format import check_schema_version, topk_id_dtype
from .report import SplitReport

REINFORCEMENT_KEYS = (
    "schema_version",
    "policy",
    "num_augmentations",
    "top_k",
    "seed",
    "temperature",
    "teachers",
    "class_mappings",
    "num_classes",
    "image_column",
    "label_column",
)
"""Keys that must match for two splits to live in one dataset (a reinforcement-only split may sit beside a full
one, and block sizes may differ: they do not change what a row's stored augmentations mean)."""

OUTPUT_KEYS = (
    *REINFORCEMENT_KEYS,
    "rows_per_block",
    "augmentations_per_step",
    "rows_per_shard",
    "skip_bad_images",
    "reinforcement_only",
    "key_column",
)
"""Keys that must match for a rerun or resume of one split (``ReinforceConfig.identity`` with the teachers as
loaded): everything that determines the bytes of its shards."""

SOURCE_KEYS = ("num_rows",)
"""Keys of a split's source that a resume of that split must match. The ``datasets`` fingerprint is not one of them
(it is random for some sources): the source rows a shard was made from are checked by their hash
(:attr:`ShardRecord.source_sha256`) instead."""


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(
            f"{where}{key}: missing from the run record (keys: {sorted(data)}); is it reinforce_config.json?"
        )
    return data[key]


def _int(data: Mapping[str, Any], key: str, where: str = "") -> int:
    return check_int(_require(data, key, where), f"{where}{key}")


def _extra(data: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


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

    KEYS: tuple[str, ...] = ("name", "source", "id", "revision", "weights", "resolution", "interpolation", "mean")
    KEYS += ("std", "num_classes", "num_outputs", "class_mapping")
    OPTIONAL = ("weights_sha256",)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int = 0) -> TeacherRecord:
        where = f"teachers[{index}]."
        if not isinstance(data, Mapping):
            raise ConfigError(f"teachers[{index}]: expected an object, got {data!r}")
        values = {k: _require(data, k, where) for k in cls.KEYS}
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        mapping = values["class_mapping"]
        values["class_mapping"] = tuple(mapping) if mapping is not None else None
        values["weights_sha256"] = data.get("weights_sha256")
        return cls(**values, extra=_extra(data, (*cls.KEYS, *cls.OPTIONAL)))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS}
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["class_mapping"] = list(self.class_mapping) if self.class_mapping is not None else None
        if self.weights_sha256 is not None:
            out["weights_sha256"] = self.weights_sha256
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "shards.") -> ShardRecord:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where.rstrip('.')}: expected an object, got {data!r}")
        rows = _require(data, "rows", where)
        if not isinstance(rows, (list, tuple)) or len(rows) != 2:
            raise ConfigError(f"{where}rows: expected [start, stop], got {rows!r}")
        return cls(
            file=str(_require(data, "file", where)),
            rows=(int(rows[0]), int(rows[1])),
            num_rows=_int(data, "num_rows", where),
            num_bytes=_int(data, "num_bytes", where),
            sha256=str(_require(data, "sha256", where)),
            source_sha256=data.get("source_sha256"),
            skipped_rows=tuple(data.get("skipped_rows") or ()),
        )

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


@dataclass(frozen=True)
class SplitRecord:
    """The source rows of one split (id, revision, row count, fingerprint) and, once written, its statistics."""

    id: str | None = None
    config: str | None = None
    revision: str | None = None
    split: str | None = None
    num_rows: int | None = None
    fingerprint: str | None = None
    num_rows_written: int | None = None
    num_shards: int | None = None
    skipped_rows: tuple[int, ...] | None = None
    num_bytes: int | None = None
    bytes_per_augmentation: float | None = None
    shards: tuple[ShardRecord, ...] | None = None
    """Every shard of the finished split, in order (absent in folders written before shards were recorded)."""
    report: SplitReport | None = None
    """The reinforcement report (:mod:`hf_reinforce.report`): the ensemble on stored views and on originals."""
    extended_from: tuple[int, ...] | None = None
    """The N of each smaller dataset this split was grown from by ``hfr.extend``, oldest first (``None``: computed
    in one pass). The data is the same as a pass with this record's N would write."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    SOURCE = ("id", "config", "revision", "split", "num_rows", "fingerprint")
    STATS = (
        "num_rows_written",
        "num_shards",
        "skipped_rows",
        "num_bytes",
        "bytes_per_augmentation",
        "shards",
        "report",
        "extended_from",
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "source.") -> SplitRecord:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where.rstrip('.')}: expected an object, got {data!r}")
        values: dict[str, Any] = {k: data.get(k) for k in (*cls.SOURCE, *cls.STATS)}
        for key in ("skipped_rows", "extended_from"):
            if values[key] is not None:
                values[key] = tuple(values[key])
        if values["shards"] is not None:
            shards = values["shards"]
            if not isinstance(shards, list):
                raise ConfigError(f"{where}shards: expected a list of shard records, got {shards!r}")
            values["shards"] = tuple(ShardRecord.from_dict(v, f"{where}shards[{i}].") for i, v in enumerate(shards))
        if values["report"] is not None:
            try:
                values["report"] = SplitReport.from_dict(values["report"])
            except (TypeError, KeyError, ValueError) as error:
                raise ConfigError(f"{where}report: not a reinforcement report ({error!r})") from None
        return cls(**values, extra=_extra(data, (*cls.SOURCE, *cls.STATS)))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.SOURCE}
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
        per_augmentation = round(bytes_per_augmentation, 2)
        return dataclasses.replace(
            self,
            num_rows_written=num_rows_written,
            num_shards=len(shards),
            skipped_rows=tuple(sorted(r for s in shards for r in s.skipped_rows)),
            num_bytes=num_bytes,
            bytes_per_augmentation=per_augmentation,
            shards=tuple(shards),
            report=report,
        )


@dataclass(frozen=True)
class RunRecord:
    """What a reinforcement pass wrote: the JSON of ``reinforce_config.json``, typed (see module docstring).

    A run in progress (or an in-process result) carries ``source``; a finished folder carries ``splits``.
    """

    schema_version: int
    policy: AugmentationPolicy
    num_augmentations: int
    top_k: int
    seed: int
    temperature: float
    teachers: tuple[TeacherRecord, ...]
    num_classes: int
    class_names: tuple[str, ...] | None
    resolution: int
    image_column: str
    label_column: str | None
    class_mappings: Mapping[str, Any] | None
    rows_per_block: int
    augmentations_per_step: int
    rows_per_shard: int
    skip_bad_images: bool
    reinforcement_only: bool
    key_column: str | None
    library: str
    library_version: str
    source: SplitRecord | None = None
    splits: Mapping[str, SplitRecord] | None = None
    accuracy: Mapping[str, Any] | None = None
    license: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    _PLAIN = (
        "schema_version",
        "num_augmentations",
        "top_k",
        "seed",
        "temperature",
        "num_classes",
        "resolution",
        "image_column",
        "label_column",
        "class_mappings",
        "rows_per_block",
        "augmentations_per_step",
        "rows_per_shard",
        "skip_bad_images",
        "reinforcement_only",
        "key_column",
        "library",
        "library_version",
    )
    _OPTIONAL = ("source", "splits", "accuracy", "license")
    _KEYS = (*_PLAIN, "policy", "teachers", "class_names", *_OPTIONAL)

    # -- JSON -------------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read and check a record (the schema version first, then every field, naming the one that is wrong)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a run record must be a JSON object, got {type(data).__name__}")
        check_schema_version(_int(data, "schema_version"))
        for key in ("num_augmentations", "top_k", "seed", "num_classes", "resolution"):
            _int(data, key)
        values = {k: _require(data, k, "") for k in cls._PLAIN}
        try:
            values["policy"] = AugmentationPolicy.from_dict(_require(data, "policy", ""))
        except (TypeError, KeyError, ValueError) as error:
            raise ConfigError(f"policy: not a valid augmentation policy ({error})") from None
        teachers = _require(data, "teachers", "")
        if not isinstance(teachers, list) or not teachers:
            raise ConfigError(f"teachers: expected a non-empty list of teacher records, got {teachers!r}")
        values["teachers"] = tuple(TeacherRecord.from_dict(t, i) for i, t in enumerate(teachers))
        names = _require(data, "class_names", "")
        values["class_names"] = tuple(names) if names is not None else None
        if data.get("source") is not None:
            values["source"] = SplitRecord.from_dict(data["source"])
        if data.get("splits") is not None:
            values["splits"] = {s: SplitRecord.from_dict(v, f"splits.{s}.") for s, v in data["splits"].items()}
        values["accuracy"], values["license"] = data.get("accuracy"), data.get("license")
        return cls(**values, extra=_extra(data, cls._KEYS))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``reinforce_config.json`` (the same keys and values that were read)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self._PLAIN}
        out["policy"] = self.policy.to_dict()
        out["teachers"] = [t.to_dict() for t in self.teachers]
        out["class_names"] = list(self.class_names) if self.class_names is not None else None
        if self.source is not None:
            out["source"] = self.source.to_dict()
        if self.splits is not None:
            out["splits"] = {s: v.to_dict() for s, v in self.splits.items()}
        out.update({k: getattr(self, k) for k in ("accuracy", "license") if getattr(self, k) is not None})
        return {**out, **self.extra}

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with ``changes`` (``dataclasses.replace``; unknown keys are kept)."""
        return dataclasses.replace(self, **changes)

    # -- derived facts ----------------------------------------------------------------------------------------

    @property
    def mixing(self) -> MixUpCutMix | None:
        """Deprecated: ``record.policy.mix``."""
        warn_renamed("RunRecord.mixing", "RunRecord.policy.mix")
        return self.policy.mix

    @property
    def topk_id_dtype(self) -> str:
        """The dtype of the stored ``topk_ids`` (``int16`` or ``int32``)."""
        return topk_id_dtype(self.num_classes)

    @property
    def identity(self) -> dict[str, Any]:
        """The JSON of the keys that determine a split's bytes (:data:`OUTPUT_KEYS`)."""
        data = self.to_dict()
        return {k: data[k] for k in OUTPUT_KEYS}

    @property
    def policy_name(self) -> str:
        """The policy's ops joined by ``+`` as a preset spells them (``rrc+ra+re`` includes the flip, ``rrc-noflip``
        and ``crop+flip`` say so); constants other than the defaults are not shown."""
        ops = [op["op"] for op in self.policy.to_dict()["ops"]]
        if "rrc" in ops:
            ops = [name for name in ops if name != "flip"] if "flip" in ops else ["rrc-noflip", *ops[1:]]
        return "+".join(ops) or "none"

    @property
    def teacher(self) -> TeacherRecord:
        """The first teacher (the transform's defaults for interpolation and normalization come from it)."""
        return self.teachers[0]

    def split(self, name: str | None = None) -> SplitRecord | None:
        """The record of split ``name`` (default: the first), falling back on the run's ``source``."""
        splits = dict(self.splits or {})
        if name is None:
            return next(iter(splits.values()), self.source)
        if name in splits:
            return splits[name]
        return self.source if self.source is not None and self.source.split == name else None

    # -- sameness ---------------------------------------------------------------------------------------------

    def differs_from(self, other: RunRecord, keys: tuple[str, ...] = REINFORCEMENT_KEYS) -> list[str]:
        """The ``keys`` whose JSON values differ between this record and ``other``, sorted."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in keys if mine.get(k) != theirs.get(k))

    def teacher_differences(self, other: RunRecord) -> list[str]:
        """Per teacher, what differs between the teachers of this record and ``other``'s (``name: keys``)."""
        if len(self.teachers) != len(other.teachers):
            return [f"{len(self.teachers)} teacher(s) vs {len(other.teachers)}"]
        out = []
        for mine, theirs in zip(self.teachers, other.teachers):
            a, b = mine.to_dict(), theirs.to_dict()
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            if keys:
                out.append(f"teacher {theirs.name!r}: {', '.join(keys)}")
        return out

    def reinforcement_differences(self, other: RunRecord) -> list[str]:
        """What differs for two splits to live in one dataset (empty: they may)."""
        return self.differs_from(other, REINFORCEMENT_KEYS)

    def output_differences(self, other: RunRecord, split: str) -> list[str]:
        """What differs for ``other`` to resume or rerun ``split`` of this record (empty: it may); the source rows
        are compared where both records know ``split``."""
        differing = self.differs_from(other, OUTPUT_KEYS)
        mine, theirs = self.split(split), other.split(split)
        if mine is not None and theirs is not None:
            differing += [f"source.{k}" for k in SOURCE_KEYS if getattr(mine, k) != getattr(theirs, k)]
        return differing

    def same_reinforcement(self, other: RunRecord) -> bool:
        """Whether a split of ``other`` may live beside the splits of this record."""
        return not self.reinforcement_differences(other)

    def same_output(self, other: RunRecord, split: str) -> bool:
        """Whether ``other`` may resume or rerun ``split`` of this record."""
        return not self.output_differences(other, split)


# -- the record on a Dataset ---------------------------------------------------------------------------------------

RECORD_MARKER = "hf_reinforce config: "
"""Marks the record's JSON at the end of ``dataset.info.description``, after the user's own description.

``datasets`` 5.2 keeps ``DatasetInfo.description`` through ``select``, ``shuffle``, ``map``, ``filter``,
``save_to_disk``/``load_from_disk`` and ``concatenate_datasets``, but drops any attribute it does not know and
writes no other free-text field of ``DatasetInfo`` it would keep; the description is therefore shared: the user's
text first, then this marker and the JSON (tests/test_record.py)."""
_LEGACY_PREFIX = "Reinforced with hf_reinforce. "


def user_description(description: str | None) -> str:
    """``description`` without the record that :func:`attach_record` appended (the user's own text)."""
    text = description or ""
    at = text.find(RECORD_MARKER)
    if at < 0:
        return text
    head = text[:at]
    return head[: -len(_LEGACY_PREFIX)] if head.endswith(_LEGACY_PREFIX) else head.rstrip("\n")


def attach_record(dataset: Any, record: RunRecord) -> Any:
    """Record ``record`` in ``dataset.info`` after the user's description (kept as it was); returns ``dataset``."""
    user = user_description(dataset.info.description)
    marked = f"{RECORD_MARKER}{json.dumps(record.to_dict(), sort_keys=True)}"
    dataset.info.description = f"{user}\n\n{marked}" if user else marked
    return dataset


def record_from_dataset(dataset: Any) -> RunRecord | None:
    """The run record that :func:`attach_record` put on a dataset, if any (checked like a file's)."""
    description = getattr(getattr(dataset, "info", None), "description", None) or ""
    at = description.rfind(RECORD_MARKER)
    if at < 0:
        return None
    data, _end = json.JSONDecoder().raw_decode(description, at + len(RECORD_MARKER))
    return RunRecord.from_dict(data)


__all__ = [
    "OUTPUT_KEYS",
    "RECORD_MARKER",
    "attach_record",
    "record_from_dataset",
    "user_description",
    "REINFORCEMENT_KEYS",
    "RunRecord",
    "ShardRecord",
    "SplitRecord",
    "TeacherRecord",
]
