"""What an extension reads from the smaller reinforced dataset it grows, and what it checks against it.

Augmentation ``j`` of a row depends only on (seed, row, j, image size) (:meth:`AugmentationPolicy.sample`), and
chunk ``c`` of a block is the same teacher batch in every pass whose N covers it whole
(:class:`hf_reinforce.engine.render_workers.BlockGeometry`). A pass with N2 > N1 therefore stores, for augmentations below
:func:`~.render_workers.first_new_index` (N1 rounded down to a multiple of ``augmentations_per_step``), exactly what the
N1 dataset stores. An extension computes the chunks from there on and takes the rest from the N1 shards, after
checking what can be checked: each shard's file against its recorded size and sha256, the teachers against the
recorded ones (weights included), the decoded rows against the stored ``row_index``, and the parameters the policy
samples today against the stored ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..augment import Params, environment_changes
from ..errors import ConfigError, IncompleteOutputError, OutputConflictError
from .format import (
    FINGERPRINT,
    FINGERPRINT_AUGMENTATION,
    FINGERPRINT_SINCE,
    ROW_INDEX,
    TOPK_IDS,
    TOPK_PROBS,
    table_columns,
)
from .paths import DATA_DIR
from .reader import verified_shards
from .record import OUTPUT_KEYS, RunRecord, ShardRecord, SplitRecord
from .report import ReportSums, read_report_metadata
from .shards import shard_problem


@dataclass
class StoredBlock:
    """The stored rows of one block of the smaller dataset: ``row_index``, parameters and top-k of its N1 views."""

    rows: np.ndarray
    params: dict[str, np.ndarray]
    """Per ``aug_*`` column, ``(rows, N1, ...)``."""
    topk_ids: np.ndarray
    """``(rows, N1, K)``."""
    topk_probs: np.ndarray
    fingerprints: np.ndarray | None = None
    """``(rows,)`` replay fingerprints; ``None`` in a folder of a schema before them."""
    rendering: Mapping[str, str] | None = None
    """The rendering environment that wrote them (:func:`~hf_reinforce.augment.rendering_environment`)."""

    def check(self, rows: Sequence[int], params: Sequence[Params], fingerprints: Sequence[int], where: str) -> None:
        """Refuse when the rows that decoded today, the parameters sampled for them or the pixels this machine
        renders for them (their replay fingerprints) are not those stored."""
        if list(rows) != self.rows.tolist():
            lost = sorted(set(self.rows.tolist()) ^ set(rows))
            raise OutputConflictError(
                f"{where}: rows {lost[:5]} were stored but do not decode today, or the reverse (the source images "
                "changed?); the dataset cannot be extended exactly"
            )
        n = next(iter(self.params.values())).shape[1] if self.params else 0
        for i, (row, sampled) in enumerate(zip(rows, params)):
            for name, stored in self.params.items():
                if not np.array_equal(sampled[name][:n], stored[i]):
                    raise OutputConflictError(
                        f"{where}: row {row}, column {name!r}: the stored augmentation parameters differ from those "
                        "the policy samples today (another library version's sampling?); the dataset cannot be "
                        "extended exactly: reinforce the source again with the new N"
                    )
        if self.fingerprints is None:
            return
        for row, stored_print, rendered in zip(rows, self.fingerprints.tolist(), fingerprints):
            if int(stored_print) != int(rendered):
                changes = ", ".join(environment_changes(self.rendering)) if self.rendering is not None else ""
                raise OutputConflictError(
                    f"{where}: row {row}: this machine renders its stored augmentation {FINGERPRINT_AUGMENTATION} "
                    "differently from the machine that wrote it (the replay fingerprints differ: another torch, "
                    "torchvision or hf_reinforce version, or other render kernels?"
                    + (f" rendering then -> here: {changes}" if changes else "")
                    + "); extending here would mix two renderings: check with `hf-reinforce verify`, and extend where "
                    "replay is exact"
                )


class StoredSplit:
    """A finished split of a reinforced folder as the base of an extension: its record, its verified shards read one
    at a time, and the checks an extension makes against it."""

    def __init__(self, folder: Path, record: RunRecord, split: str) -> None:
        stats = (record.splits or {}).get(split)
        self.paths = verified_shards(folder, split)  # refuses unfinished, incomplete, corrupt or unknown splits
        assert stats is not None and stats.shards is not None
        if any(s.source_sha256 is None for s in stats.shards):
            raise ConfigError(
                f"split {split!r} of {folder} was saved from an in-process dataset (save_folder, or push_to_hub of a "
                "Dataset): its shards follow no pass's layout and record no source hashes, so it cannot be extended "
                "exactly; reinforce the source into a folder (reinforce(..., output_dir=...)) and extend that"
            )
        self.folder, self.record, self.split, self.stats = folder, record, split, stats
        self.shards: tuple[ShardRecord, ...] = stats.shards
        self._loaded: tuple[int, dict[str, np.ndarray]] | None = None

    @property
    def num_augmentations(self) -> int:
        """N of the stored dataset."""
        return self.record.num_augmentations

    def _shard(self, rows: range) -> int:
        found = next((i for i, s in enumerate(self.shards) if s.rows[0] <= rows.start and rows.stop <= s.rows[1]), None)
        if found is None:
            raise OutputConflictError(
                f"split {self.split!r} of {self.folder}: no shard holds rows {rows.start}..{rows.stop - 1}"
            )
        return found

    def block(self, rows: range) -> StoredBlock:
        """The stored rows among ``rows`` (one block), read from the shard that holds them."""
        index = self._shard(rows)
        if self._loaded is None or self._loaded[0] != index:
            # again: it may have changed since the start
            problem = shard_problem(self.folder, self.shards[index], self.record)
            if problem is not None:
                raise IncompleteOutputError(f"split {self.split!r} of {self.folder}, being extended: {problem}")
            columns = [ROW_INDEX, *self.record.policy.columns, TOPK_IDS, TOPK_PROBS]
            if self.record.schema_version >= FINGERPRINT_SINCE:
                columns.append(FINGERPRINT)
            table = pq.read_table(self.folder / DATA_DIR / self.shards[index].file, columns=columns)
            self._loaded = (index, table_columns(table, columns))
        data = self._loaded[1]
        at = np.flatnonzero((data[ROW_INDEX] >= rows.start) & (data[ROW_INDEX] < rows.stop))
        return StoredBlock(
            rows=data[ROW_INDEX][at],
            params={name: data[name][at] for name in self.record.policy.columns},
            topk_ids=data[TOPK_IDS][at],
            topk_probs=data[TOPK_PROBS][at],
            fingerprints=data[FINGERPRINT][at] if FINGERPRINT in data else None,
            rendering=self.stats.rendering,
        )

    def shard_record(self, rows: range) -> ShardRecord:
        """The record of the stored shard of exactly ``rows``."""
        shard = self.shards[self._shard(rows)]
        if tuple(shard.rows) != (rows.start, rows.stop):
            raise OutputConflictError(
                f"split {self.split!r} of {self.folder}: its shard {shard.file} holds rows {shard.rows}, not "
                f"{rows.start}..{rows.stop - 1}"
            )
        return shard

    def originals(self, rows: range) -> ReportSums:
        """The report sums of the stored shard of ``rows`` over the rows' originals (they do not depend on N)."""
        shard = self.shard_record(rows)
        return read_report_metadata(pq.read_schema(self.folder / DATA_DIR / shard.file).metadata or {})[1]

    def source_sha256(self, rows: range, compute: Callable[[], str], *, comparable: bool) -> str:
        """The source hash of the stored shard of ``rows``, which the extended shard records too: ``compute()``
        (the hash of the rows given as the source) must equal it where ``comparable``."""
        shard = self.shard_record(rows)
        if comparable and compute() != shard.source_sha256:
            raise OutputConflictError(
                f"source rows {rows.start}..{rows.stop - 1}: their content hash differs from the one recorded for "
                f"{shard.file} of {self.folder}; give the source dataset the folder was made from"
            )
        assert shard.source_sha256 is not None  # checked when the split was opened
        return shard.source_sha256

    def extended_record(self, new: RunRecord) -> RunRecord:
        """``new`` (the record of the extending pass) with this split's source identity and history, after
        refusing any difference from the stored record other than N (the teachers' weights included)."""
        if new.num_augmentations <= self.num_augmentations:
            raise ConfigError(
                f"num_augmentations: {new.num_augmentations} does not grow split {self.split!r} of {self.folder}, "
                f"which stores {self.num_augmentations} augmentations per row"
            )
        older = self.record.schema_version < new.schema_version  # an extension writes the current schema
        differing = [
            k
            for k in self.record.differs_from(new, OUTPUT_KEYS)
            if k != "num_augmentations" and not (k == "schema_version" and older)
        ]
        if differing:
            detail = self.record.teacher_differences(new) if "teachers" in differing else []
            raise OutputConflictError(
                f"cannot extend split {self.split!r} of {self.folder}: the extending pass differs from the one that "
                f"wrote it in {', '.join(differing)}"
                + "".join(f"; {d}" for d in detail)
                + " (give the same teachers; everything else is taken from the folder's record)"
            )
        source = SplitRecord(**{k: getattr(self.stats, k) for k in SplitRecord.SOURCE})
        history = (*(self.stats.extended_from or ()), self.num_augmentations)
        rendering = new.source.rendering if new.source is not None else None
        return new.replace(source=dataclasses.replace(source, extended_from=history, rendering=rendering))


__all__ = ["StoredBlock", "StoredSplit"]
