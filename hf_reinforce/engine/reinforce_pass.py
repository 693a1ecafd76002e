"""The reinforcement pass as one object: prepare → render blocks on CPU workers → teachers → top-k → rows.

:class:`ReinforcePass` is used by the in-process run, the folder run and ``estimate``. Rows are processed in fixed
blocks of ``rows_per_block`` rows aligned to the dataset start; within a block, the teachers see fixed chunks of
``augmentations_per_step`` augmentation indices of every row (see :mod:`.render_workers`). Teacher batches therefore do
not depend on the ``map`` batch size, the shard count, the number of processes or of render workers, and neither
does the output. Rows are written by ``datasets.map`` over Arrow batches: the source columns the output keeps pass
through untouched, the new columns are built from numpy without per-row Python objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets import ClassLabel, Features, Image, Value

from .._version import __version__
from ..augment import Params, rendering_environment, single_thread
from ..config import ReinforceConfig, jsonable
from ..errors import BadImageError, ConfigError, MissingColumnError
from ..storage.format import (
    FINGERPRINT,
    ROW_INDEX,
    TOPK_IDS,
    TOPK_PROBS,
    encode_topk,
    reinforce_features,
    to_arrow,
    topk_id_dtype,
)
from ..storage.record import RunRecord
from ..storage.report import ReportAccumulator, ReportSums, block_sums
from ..storage.source_hash import labels_sha256
from ..teachers import Ensemble, ViewSpec, load_teacher, teacher_key
from ..validation import check_labels, check_split
from .render_workers import BlockGeometry, BlockRenderer, RenderedChunk, first_new_index, render_tasks, task_order

if TYPE_CHECKING:
    from ..storage.stored_split import StoredSplit

# -- setup -------------------------------------------------------------------------------------------------------


def check_columns(dataset: datasets.Dataset, config: ReinforceConfig) -> None:
    """Raise a :class:`MissingColumnError` listing the existing columns when a configured column is missing."""
    roles = (("image_column", config.image_column), ("label_column", config.label_column))
    for role, name in (*roles, ("key_column", config.key_column)):
        if name is not None and name not in dataset.column_names:
            raise MissingColumnError(
                f"{role} {name!r} is not a column of the dataset; its columns are {dataset.column_names}"
            )
    if ROW_INDEX in dataset.column_names or any(c in dataset.column_names for c in reinforce_columns(config)):
        raise ConfigError(
            f"the dataset already has reinforcement columns ({ROW_INDEX}, aug_*, topk_*): is it reinforced already?"
        )


def reinforce_columns(config: ReinforceConfig) -> list[str]:
    """Names of the columns a pass adds."""
    return [ROW_INDEX, *config.policy.columns, TOPK_IDS, TOPK_PROBS, FINGERPRINT]


def dataset_num_classes(dataset: datasets.Dataset, config: ReinforceConfig) -> int | None:
    """Classes from the config, else from a ``ClassLabel`` label column, else ``None`` (taken from the teachers)."""
    if config.num_classes is not None:
        return config.num_classes
    feature = dataset.features.get(config.label_column) if config.label_column else None
    return feature.num_classes if isinstance(feature, ClassLabel) else None


def check_some_rows_kept(rows_written: int, skipped: list[int]) -> None:
    """A pass whose every row was skipped (``skip_bad_images=True``) is an error, not an empty dataset that
    looks complete."""
    if rows_written == 0 and skipped:
        raise BadImageError(
            f"every one of the {len(skipped)} rows was skipped: no image decoded (skip_bad_images=True); check the "
            "image column and its values (rows, paths, bytes)"
        )


def build_ensemble(config: ReinforceConfig, num_classes: int | None, device: str | torch.device | None) -> Ensemble:
    """Load every teacher on ``device`` aligned to the dataset's classes."""
    mappings = config.class_mappings or {}
    teachers = []
    for spec in config.teachers:
        key = teacher_key(spec)
        teacher = load_teacher(
            spec,
            device=device,
            num_classes=num_classes,
            class_mapping=mappings.get(key),
            trust_remote_code=config.trust_remote_code,
            preprocessing=config.preprocessing,
        )
        if config.teacher_batch_size:
            teacher = dataclasses.replace(teacher, batch_size=config.teacher_batch_size)
        teachers.append(teacher)
    ensemble = Ensemble(teachers, temperature=config.temperature)
    if config.top_k > ensemble.num_classes:
        raise ConfigError(f"top_k ({config.top_k}) exceeds the number of classes ({ensemble.num_classes})")
    return ensemble


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (``datasets`` fingerprints of the pass's outputs)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def run_record(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    ensemble: Ensemble,
    split: str,
    source_id: str | None,
    source_revision: str | None,
) -> RunRecord:
    """The record of a run: identity, teachers as loaded, source dataset and library version."""
    info = dataset.info
    feature = dataset.features.get(config.label_column) if config.label_column else None
    teachers = ensemble.to_config()["teachers"]
    public = {teacher_key(spec): t["name"] for spec, t in zip(config.teachers, teachers)}
    data = {
        **config.identity,
        "teacher_batch_size": micro_batch(ensemble),
        "class_mappings": {public.get(k, k): v for k, v in config.class_mappings.items()}
        if config.class_mappings
        else config.class_mappings,
        "library": "hf_reinforce",
        "library_version": __version__,
        "resolution": config.resolution,
        "num_classes": ensemble.num_classes,
        "class_names": list(feature.names) if isinstance(feature, ClassLabel) else None,
        "teachers": teachers,
        "source": {
            "id": _public_source_id(source_id) or info.dataset_name,
            "config": info.config_name,
            "revision": source_revision,
            "split": split,
            "num_rows": len(dataset),
            "fingerprint": dataset._fingerprint,
            "labels_sha256": labels_sha256(dataset, config.label_column),
            "rendering": rendering_environment(),
        },
    }
    return RunRecord.from_dict(jsonable(data))


def micro_batch(ensemble: Ensemble) -> int | list[int]:
    """The micro-batch of the teachers' forward passes, as a run's record keeps it: one size, or one per teacher
    where :class:`~hf_reinforce.teachers.Teacher` objects brought different ones."""
    sizes = [teacher.batch_size for teacher in ensemble.teachers]
    return sizes[0] if len(set(sizes)) == 1 else sizes


def _public_source_id(source_id: str | None) -> str | None:
    """A source given as a local folder is recorded by its folder name, never by this machine's path."""
    if source_id and os.path.isdir(source_id):
        return os.path.basename(os.path.normpath(source_id))
    return source_id


# -- the pass ----------------------------------------------------------------------------------------------------


@dataclass
class BlockResult:
    """Everything written for one block: kept rows, their parameters and the ensemble's top-k of every view."""

    block: int
    rows: list[int]
    params: list[Params]
    topk_ids: np.ndarray
    """``(len(rows), N, K)`` class ids."""
    topk_probs: np.ndarray
    """``(len(rows), N, K)`` float16 probabilities."""
    skipped: list[int]
    fingerprints: list[int] = field(default_factory=list)
    """The kept rows' replay fingerprints (:func:`~hf_reinforce.storage.format.replay_fingerprint`)."""


@dataclass
class PassStats:
    """Where the pass's time went, summed over the blocks it ran (``estimate`` extrapolates from these)."""

    views: int = 0
    render_cpu_seconds: float = 0.0
    """CPU time of decoding, sampling and rendering, in the workers (or here with ``num_workers=0``)."""
    teacher_seconds: float = 0.0
    """Wall time of the main process's teacher forward and top-k."""
    wait_seconds: float = 0.0
    """Wall time the main process waited for rendered views."""


@dataclass
class _Pending:
    """A block whose chunks are still arriving: top-k arrays filled chunk by chunk."""

    chunks_left: int
    rows: list[int] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    fingerprints: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    originals: dict[ViewSpec, torch.Tensor] | None = None
    ids: np.ndarray | None = None
    probs: np.ndarray | None = None


class ReinforcePass:
    """One reinforcement pass of ``config`` over ``dataset``: the teachers, the output schema, and the pipelined
    block loop. Build it once per process; run any row ranges of the dataset through :meth:`results` or
    :meth:`map`.

    With ``stored`` (the same dataset reinforced with fewer augmentations) the pass is an extension: it computes
    the teacher chunks from :func:`~.render_workers.first_new_index` on and takes the stored top-k below it, so its
    output is that of a whole pass (see :mod:`hf_reinforce.storage.stored_split`).

    Args:
        dataset: the split to reinforce.
        config: the pass.
        device: the teachers' device (default: ``config.device``).
        ensemble: teachers already loaded (default: loaded from ``config``).
        stored: the same split reinforced with fewer augmentations, to extend.

    Raises:
        ConfigError: an empty dataset, or a ``stored`` split with as many augmentations as the config.
        MissingColumnError: the config's image or label column is missing.
        BadLabelError: a row without a label, or a label outside the classes.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        config: ReinforceConfig,
        *,
        device: str | torch.device | None = None,
        ensemble: Ensemble | None = None,
        stored: StoredSplit | None = None,
    ) -> None:
        check_split(dataset, "reinforce")
        if len(dataset) == 0:
            raise ConfigError("the dataset has no rows: there is nothing to reinforce")
        check_columns(dataset, config)
        self.dataset, self.config = dataset, config
        self.ensemble = ensemble or build_ensemble(
            config, dataset_num_classes(dataset, config), device or config.device
        )
        check_labels(dataset, config.label_column, self.ensemble.num_classes)
        self.prepared, self.image_feature = undecoded(dataset, config.image_column)
        label = config.label_column
        self._labels = self.prepared.select_columns([label]).with_format("arrow") if label else None
        """The label column alone, selected once (a ``select_columns`` per block cost ~20 µs per 32-px view); Arrow
        format, as datasets 4.0's numpy formatter fails with torchvision ≥ 0.23 (it imports ``VideoReader``)."""
        self.keep = (
            ([config.key_column] if config.key_column else []) if config.reinforcement_only else dataset.column_names
        )
        new = reinforce_features(config.policy, config.num_augmentations, config.top_k, self.num_classes)
        self.features = Features(
            {**{c: self.prepared.features[c] for c in self.keep}, ROW_INDEX: Value("int64"), **new}
        )
        if stored is not None and stored.num_augmentations >= config.num_augmentations:
            raise ConfigError(
                f"num_augmentations: an extension needs more than the {stored.num_augmentations} stored, "
                f"got {config.num_augmentations}"
            )
        self.stored = stored
        step = config.augmentations_per_step
        self.geometry = BlockGeometry(
            len(dataset),
            config.num_augmentations,
            config.rows_per_block,
            step,
            first_new_index(stored.num_augmentations, step) if stored is not None else 0,
        )
        identity = {**config.identity, "teacher_batch_size": micro_batch(self.ensemble)}  # as the record has it
        self.fingerprint = fingerprint(dataset._fingerprint, identity, self.ensemble.to_config())
        self.stats = PassStats()
        self.skipped: list[int] = []
        self.report = ReportAccumulator()
        """The reinforcement report's sums per finished block (views and originals; see :mod:`hf_reinforce.storage.report`)."""

    @property
    def num_classes(self) -> int:
        """Classes of the stored top-k ids."""
        return self.ensemble.num_classes

    def record(self, split: str, source_id: str | None = None, source_revision: str | None = None) -> RunRecord:
        """The run record of this pass for ``split`` (see :func:`run_record`)."""
        return run_record(self.dataset, self.config, self.ensemble, split, source_id, source_revision)

    # -- the block loop ------------------------------------------------------------------------------------------

    def renderer(self) -> BlockRenderer:
        """The render-worker dataset of this pass: task ``(block, chunk)`` → the teachers' uint8 views."""
        return BlockRenderer(
            self.prepared.select_columns([self.config.image_column]),
            self.config.image_column,
            self.config.policy,
            self.config.seed,
            self.geometry,
            self.ensemble.view_specs(),
            self.config.skip_bad_images,
            originals=self.stored is None,
        )

    def results(
        self, ranges: Sequence[range], *, on_views: Callable[[float], None] | None = None
    ) -> Iterator[BlockResult]:
        """Block results of the rows in ``ranges`` (block-aligned), in order. Workers render ahead while the
        teachers run here; ``on_views`` is called with the number of teacher views as they are computed."""
        blocks = [b for rows in ranges for b in self.geometry.blocks(rows)]
        workers = self.config.workers
        tasks = task_order(blocks, self.geometry.chunks, workers)
        pin = self.ensemble.device.type == "cuda"
        chunks = render_tasks(self.renderer(), tasks, num_workers=workers, pin_memory=pin)
        pending: dict[int, _Pending] = {}
        order = iter(blocks)
        expected = next(order, None)
        while expected is not None:
            waited = time.perf_counter()
            chunk = next(chunks)
            self.stats.wait_seconds += time.perf_counter() - waited
            entry = pending.setdefault(chunk.block, _Pending(len(self.geometry.chunks)))
            self._run_teachers(chunk, entry, on_views)
            while expected is not None and expected in pending and pending[expected].chunks_left == 0:
                yield self._finish(expected, pending.pop(expected))
                expected = next(order, None)

    def _run_teachers(self, chunk: RenderedChunk, entry: _Pending, on_views: Callable[[float], None] | None) -> None:
        if chunk.errors:
            row, message = chunk.errors[0]
            raise BadImageError(
                f"row {row}, column {self.config.image_column!r}: cannot decode the image ({message}); "
                "fix or remove it, or pass skip_bad_images=True to record and skip such rows"
            )
        if chunk.chunk == self.geometry.chunks.start:
            entry.rows, entry.params, entry.skipped = chunk.rows, chunk.params or [], chunk.skipped
            entry.fingerprints = chunk.fingerprints or []
            entry.originals = chunk.originals
            shape = (len(chunk.rows), self.config.num_augmentations, self.config.top_k)
            entry.ids = np.empty(shape, dtype=topk_id_dtype(self.num_classes))
            entry.probs = np.empty(shape, dtype=np.float16)
            if self.stored is not None:
                self._take_stored(chunk, entry)
        entry.chunks_left -= 1
        self.stats.render_cpu_seconds += chunk.cpu_seconds
        if not chunk.rows:
            return
        start = time.perf_counter()
        probs = self.ensemble.probs(chunk.views, on_views)
        with single_thread():  # a few small ops: across threads they only spin (workers share the cores)
            ids, values = encode_topk(probs, self.config.top_k, self.num_classes)
        shape = (len(chunk.rows), len(chunk.indices), -1)
        js = slice(chunk.indices.start, chunk.indices.stop)
        assert entry.ids is not None and entry.probs is not None  # a block's first chunk arrives first (same worker)
        entry.ids[:, js] = ids.reshape(shape)
        entry.probs[:, js] = values.reshape(shape)
        self.stats.teacher_seconds += time.perf_counter() - start
        self.stats.views += chunk.num_views

    def _take_stored(self, chunk: RenderedChunk, entry: _Pending) -> None:
        """An extension's block: check its rows and parameters against the stored ones, take the stored top-k of
        the augmentations it does not compute."""
        assert self.stored is not None and entry.ids is not None and entry.probs is not None
        rows = self.geometry.block_rows(chunk.block)
        stored = self.stored.block(rows)
        where = f"rows {rows.start}..{rows.stop - 1} of split {self.stored.split!r}"
        stored.check(entry.rows, entry.params, entry.fingerprints, where)
        first = self.geometry.first_index
        entry.ids[:, :first] = stored.topk_ids[:, :first]
        entry.probs[:, :first] = stored.topk_probs[:, :first]

    def _finish(self, block: int, entry: _Pending) -> BlockResult:
        assert entry.ids is not None and entry.probs is not None  # set by the block's first chunk
        self.skipped += entry.skipped
        self._add_report(block, entry)
        return BlockResult(
            block=block,
            rows=entry.rows,
            params=entry.params,
            topk_ids=entry.ids,
            topk_probs=entry.probs,
            skipped=entry.skipped,
            fingerprints=entry.fingerprints,
        )

    # -- the reinforcement report ---------------------------------------------------------------------------------

    def _add_report(self, block: int, entry: _Pending) -> None:
        """The report's sums of one finished block: its stored views' top-k and its rows' evaluation views."""
        if not entry.rows:
            self.report.add(block, ReportSums(), ReportSums())
            return
        assert entry.ids is not None and entry.probs is not None  # set by the block's first chunk
        labels = None if self._labels is None else self._labels[entry.rows].column(0).to_numpy()
        views = block_sums(labels, entry.ids, entry.probs, self.num_classes)
        originals = self.original_sums(entry.originals, labels) if entry.originals is not None else ReportSums()
        self.report.add(block, views, originals)

    def report_sums(self, rows: range) -> tuple[ReportSums, ReportSums]:
        """The report's (views, originals) sums over the finished blocks of ``rows``; an extension takes the
        originals' sums from the stored shard of ``rows`` (they do not depend on N)."""
        views, originals = self.report.sums(self.geometry.blocks(rows))
        return views, (self.stored.originals(rows) if self.stored is not None else originals)

    def original_sums(self, views: dict[ViewSpec, torch.Tensor], labels: np.ndarray | None) -> ReportSums:
        """The report's sums over the rows' evaluation views (:func:`~hf_reinforce.augment.center_view`, rendered by the render
        workers with the block): one teacher view per row, through the ensemble like the stored views (1/N of the
        pass's teacher work)."""
        start = time.perf_counter()
        ids, probs = encode_topk(self.ensemble.probs(views), self.config.top_k, self.num_classes)
        self.stats.teacher_seconds += time.perf_counter() - start
        return block_sums(labels, ids, probs, self.num_classes)

    # -- rows through datasets.map -------------------------------------------------------------------------------

    def map(
        self,
        rows: range,
        results: Iterator[BlockResult],
        *,
        cache_file_name: str | Path,
        fingerprint_suffix: str = "",
    ) -> datasets.Dataset:
        """``datasets.map`` over ``rows`` of the dataset, one block per batch, taking each block's result from
        ``results`` (an iterator from :meth:`results` that covers these rows next). The output keeps the configured
        source columns (images cast back to their original feature) and adds the reinforcement columns."""
        subset = self.prepared.select(rows).with_format("arrow")
        writer = _BlockWriter(self, results, rows.start)
        out = subset.map(
            writer,
            batched=True,
            batch_size=self.config.rows_per_block,
            with_indices=True,
            remove_columns=subset.column_names,
            features=self.features,
            new_fingerprint=f"{self.fingerprint}{fingerprint_suffix}",
            load_from_cache_file=False,
            cache_file_name=str(cache_file_name),
        ).with_format(None)
        if self.image_feature is not None and self.config.image_column in self.keep:
            out = out.cast_column(self.config.image_column, self.image_feature)
        return out

    def block_table(self, batch: pa.Table, result: BlockResult, first_row: int) -> pa.Table:
        """The output rows of one block: kept source columns of the rows that decoded, then the new columns."""
        positions = [row - first_row for row in result.rows]
        kept = batch.select(self.keep)
        if len(positions) != batch.num_rows:
            kept = kept.take(pa.array(positions, pa.int64()))
        columns = {name: kept.column(name) for name in self.keep}
        columns[ROW_INDEX] = pa.array(result.rows, pa.int64())
        for name, (dtype, shape) in self.config.policy.columns.items():
            empty = np.zeros((0, self.config.num_augmentations, *shape), dtype=dtype)
            columns[name] = to_arrow(np.stack([p[name] for p in result.params]) if result.params else empty)
        columns[TOPK_IDS] = to_arrow(result.topk_ids)
        columns[TOPK_PROBS] = to_arrow(result.topk_probs)
        columns[FINGERPRINT] = pa.array(result.fingerprints, pa.int64())
        return pa.table(columns)


class _BlockWriter:
    """The ``map`` function: checks each batch is the next block, returns its output table."""

    def __init__(self, owner: ReinforcePass, results: Iterator[BlockResult], offset: int) -> None:
        self.owner, self.results, self.offset = owner, results, offset

    def __call__(self, batch: pa.Table, indices: list[int]) -> pa.Table:
        first = self.offset + indices[0]
        result = next(self.results)
        rows = self.owner.geometry.block_rows(result.block)
        if rows.start != first or len(rows) != batch.num_rows:
            raise RuntimeError(
                f"internal error: map batch of rows {first}..{first + batch.num_rows - 1} met block {result.block} "
                f"(rows {rows.start}..{rows.stop - 1})"
            )
        return self.owner.block_table(batch, result, first)


def undecoded(dataset: datasets.Dataset, image_column: str) -> tuple[datasets.Dataset, Image | None]:
    """Cast the image column to undecoded bytes so the pass decodes each image itself, once, with row context;
    also returns the original ``Image`` feature to cast the output back to (``None`` when nothing was cast)."""
    feature = dataset.features[image_column]
    if isinstance(feature, Image) and feature.decode:
        return dataset.cast_column(image_column, Image(decode=False)), feature
    return dataset, None


__all__ = [
    "BlockResult",
    "PassStats",
    "ReinforcePass",
    "build_ensemble",
    "check_columns",
    "check_some_rows_kept",
    "dataset_num_classes",
    "fingerprint",
    "micro_batch",
    "reinforce_columns",
    "run_record",
    "undecoded",
]
