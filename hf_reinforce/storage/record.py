"""The run record: what a reinforcement pass wrote (``reinforce_config.json``), typed, read once and checked once.

*Config* is what the user passes (:class:`hf_reinforce.ReinforceConfig`); the *record* is what a run wrote: the
config's identity, the teachers as loaded, the source rows and, once a split is finished, its statistics. Its JSON
is the on-disk schema (docs: "The format"): ``RunRecord.from_dict(d).to_dict() == d`` for every record the library
writes, and keys this version does not know (``accuracy`` from ``evaluate_teachers``, keys of a later version of the
same schema) survive a round trip unchanged.

A record is untrusted input (a folder or repo may be edited, truncated or tampered with): :meth:`RunRecord.from_dict`
reads every key through the table :attr:`RunRecord.KEYS` (the parts' tables in :mod:`.record_parts`), then checks
how the keys relate, so every entry point refuses the same record with the same :class:`ConfigError`, naming the
field path. A new key is one row of a table.

"Same" has two definitions, both here: :meth:`RunRecord.reinforcement_differences` (two splits may live in one
dataset: same policy, N, K, seed, temperature, teachers as loaded, class mapping, columns and schema) and
:meth:`RunRecord.output_differences` (a rerun or resume of one split: everything that determines its bytes, and the
same source rows). Only ``augment``, ``format``, ``report``, ``record_parts``, ``validation`` and ``errors`` are
imported: training code reads records too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..augment import AugmentationPolicy, MixUpCutMix
from ..deprecation import warn_renamed
from ..errors import ConfigError
from ..validation import (
    MAX_AUGMENTATIONS,
    MAX_CLASSES,
    MAX_RESOLUTION,
    check_block_layout,
    check_bool,
    check_int,
    check_mapping,
    check_str,
    check_temperature,
    integer,
    optional,
    sequence_of,
)
from .format import check_schema_version, topk_id_dtype
from .record_parts import (
    Key,
    ShardRecord,
    SplitRecord,
    TeacherRecord,
    read_keys,
    read_splits,
    text,
    unknown_keys,
)

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
    "teacher_batch_size",
)
"""Keys that must match for a rerun or resume of one split (``ReinforceConfig.identity`` with the teachers as
loaded): everything that determines the bytes of its shards. The teachers' micro-batch is one: a forward of a
micro-batch of 7 gives other float32 logits than one of 256 (measured with resnet18 on CPU: 7e-8 apart), so
float16 probabilities and top-k ties may differ, and a teacher whose output depends on its batch (a batch-mean
term, batch statistics) gives other probabilities altogether."""

SOURCE_KEYS = ("num_rows",)
"""Keys of a split's source that a resume of that split must match. The ``datasets`` fingerprint is not one of them
(it is random for some sources): the source rows a shard was made from are checked by their hash
(:attr:`ShardRecord.source_sha256`) instead."""


def _schema_version(value: Any, field: str) -> int:
    version = check_int(value, field, minimum=1)
    check_schema_version(version)  # a newer schema is a SchemaVersionError: upgrade, rather than a wrong field
    return version


def _policy(value: Any, field: str) -> AugmentationPolicy:
    try:
        return AugmentationPolicy.from_dict(check_mapping(value, field))
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise ConfigError(f"{field}: not a valid augmentation policy ({error})") from None


def _batch_size(value: Any, field: str) -> int | tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return sequence_of(integer(minimum=1), nonempty=True)(value, field)
    return check_int(value, field, minimum=1)


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
    teacher_batch_size: int | tuple[int, ...] | None = None
    """The micro-batch of every teacher's forward (one per teacher where they differed; absent in records written
    before it was recorded)."""
    source: SplitRecord | None = None
    splits: Mapping[str, SplitRecord] | None = None
    accuracy: Mapping[str, Any] | None = None
    license: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    KEYS: ClassVar[Mapping[str, Key]] = {
        "schema_version": Key(_schema_version),
        "policy": Key(_policy),
        "num_augmentations": Key(integer(minimum=1, maximum=MAX_AUGMENTATIONS)),
        "top_k": Key(integer(minimum=1)),
        "seed": Key(integer(minimum=0)),
        "temperature": Key(check_temperature),
        "teachers": Key(sequence_of(TeacherRecord.read, nonempty=True)),
        "num_classes": Key(integer(minimum=1, maximum=MAX_CLASSES)),
        "class_names": Key(optional(sequence_of(text))),
        "resolution": Key(integer(minimum=1, maximum=MAX_RESOLUTION)),
        "image_column": Key(check_str),
        "label_column": Key(optional(check_str)),
        "class_mappings": Key(optional(check_mapping)),
        "rows_per_block": Key(integer(minimum=1)),
        "augmentations_per_step": Key(integer(minimum=1)),
        "rows_per_shard": Key(integer(minimum=1)),
        "skip_bad_images": Key(check_bool),
        "reinforcement_only": Key(check_bool),
        "key_column": Key(optional(check_str)),
        "library": Key(check_str),
        "library_version": Key(check_str),
        "teacher_batch_size": Key(optional(_batch_size), required=False),
        "source": Key(optional(SplitRecord.read), required=False),
        "splits": Key(optional(read_splits), required=False),
        "accuracy": Key(optional(check_mapping), required=False),
        "license": Key(optional(check_str), required=False),
    }
    """Every key of the record's JSON with its check: a new key is one row here (and a field above)."""

    # -- JSON -------------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read and check a record: the schema version first, then every key (:attr:`KEYS`), then how they relate
        (top-k within the classes, every teacher's classes, blocks in shards, each split's shards covering its rows
        exactly once); a :class:`ConfigError` names the field path of the first thing wrong."""
        record = cls(**read_keys(data, cls.KEYS, ""), extra=unknown_keys(data, cls.KEYS))
        record._check_relations()
        return record

    def _check_relations(self) -> None:
        if self.top_k > self.num_classes:
            raise ConfigError(f"top_k: {self.top_k} classes stored of a dataset of {self.num_classes} classes")
        for i, teacher in enumerate(self.teachers):
            if teacher.num_classes != self.num_classes:
                raise ConfigError(
                    f"teachers[{i}].num_classes: {teacher.num_classes}, the dataset's is {self.num_classes}"
                )
        if isinstance(self.teacher_batch_size, tuple) and len(self.teacher_batch_size) != len(self.teachers):
            raise ConfigError(
                f"teacher_batch_size: {len(self.teacher_batch_size)} sizes for {len(self.teachers)} teachers"
            )
        mix = self.policy.mix
        check_block_layout(
            mix_block_size=mix.block_size if mix is not None else None,
            rows_per_block=self.rows_per_block,
            rows_per_shard=self.rows_per_shard,
            skip_bad_images=self.skip_bad_images,
        )
        for name, split in {
            "source": self.source,
            **{f"splits.{k}": v for k, v in (self.splits or {}).items()},
        }.items():
            if split is not None and max(split.extended_from or (0,)) >= self.num_augmentations:
                raise ConfigError(
                    f"{name}.extended_from: {list(split.extended_from or ())}, not all below N={self.num_augmentations}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``reinforce_config.json`` (the same keys and values that were read)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self.KEYS}
        out["policy"] = self.policy.to_dict()
        out["teachers"] = [t.to_dict() for t in self.teachers]
        for key in ("class_names", "teacher_batch_size"):
            out[key] = list(out[key]) if isinstance(out[key], tuple) else out[key]
        out["source"] = self.source.to_dict() if self.source is not None else None
        out["splits"] = {s: v.to_dict() for s, v in self.splits.items()} if self.splits is not None else None
        optional = [k for k, key in self.KEYS.items() if not key.required and out[k] is None]
        return {**{k: v for k, v in out.items() if k not in optional}, **self.extra}

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
        return {k: data.get(k) for k in OUTPUT_KEYS}

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
    """The run record that :func:`attach_record` put on a dataset, if any (checked like a file's).

    Args:
        dataset: a dataset returned by ``reinforce`` or ``attach`` (or derived from one with ``select``, ``map``,
            ``save_to_disk``, ...), or any other object.

    Returns:
        The :class:`RunRecord`, or ``None`` when the dataset carries none (one from ``load_dataset``).

    Raises:
        ConfigError: the carried record is not a valid run record.
    """
    description = getattr(getattr(dataset, "info", None), "description", None) or ""
    at = description.rfind(RECORD_MARKER)
    if at < 0:
        return None
    where = "the run record in the dataset's info.description"
    try:
        data, _end = json.JSONDecoder().raw_decode(description, at + len(RECORD_MARKER))
        return RunRecord.from_dict(data)
    except (json.JSONDecodeError, RecursionError, ConfigError) as error:
        raise ConfigError(
            f"{where}: {error}; pass record= (the reinforced folder or repo id) to read the record from its file"
        ) from None


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
