"""Out-of-core, resumable, multi-process reinforcement into a Hub-layout folder.

Shard ``s`` holds rows ``[s * rows_per_shard, (s + 1) * rows_per_shard)``; under ``accelerate launch`` process
``r`` of ``P`` takes shards ``r, r + P, ...`` on its own device. Each shard is mapped into a temporary Arrow file
(memory-mapped, so memory stays flat) and streamed into parquet in a work directory of its split; the file is hashed,
recorded in the split's progress record and only then renamed into place. What is finished is decided from those
records (:mod:`hf_reinforce.storage.resume`), never from which files exist: a rerun with the same config keeps exactly the shards a
record lists whose file and source rows still hash the same. The main process writes ``reinforce_config.json``
(every shard with its hashes) and the card once every shard is recorded, then removes the progress record.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq

from ..config import ReinforceConfig
from ..distributed import get_logger, process_state
from ..errors import IncompleteOutputError, OutputConflictError
from ..hub.card import write_record
from ..progress import quiet_datasets, views_bar
from ..storage.files import remove_temp_files
from ..storage.locks import folder_lock, split_busy, split_lock
from ..storage.paths import (
    CARD_FILE,
    CONFIG_FILE,
    DATA_DIR,
    LEGACY_IN_PROGRESS_FILE,
    num_shards,
    resume_path,
    shard_path,
    shard_rows,
    split_shard_files,
    work_dir_prefix,
)
from ..storage.reader import load_record, load_shards, read_record
from ..storage.record import RunRecord, ShardRecord, attach_record
from ..storage.report import REPORT_KEY, ReportSums, SplitReport, read_report_metadata, report_metadata
from ..storage.resume import (
    ResumeState,
    check_library_folder,
    read_resume_state,
    record_shard,
    unfinished_splits,
    write_resume_state,
)
from ..storage.shards import bytes_per_stored_augmentation, shard_problem, write_shard
from ..storage.source_hash import source_rows_sha256
from ..storage.stored_split import StoredSplit
from .reinforce_pass import ReinforcePass, check_some_rows_kept

logger = get_logger(__name__)

SKIPPED_KEY = b"hf_reinforce_skipped_rows"


def process_shards(num_shards: int, process_index: int, num_processes: int) -> range:
    """The shards process ``process_index`` of ``num_processes`` writes: ``r, r + P, ...``."""
    return range(process_index, num_shards, num_processes)


def _source_columns(run: ReinforcePass) -> list[str]:
    """The source columns whose values a shard depends on: the image column, the columns it keeps and the labels
    (its report counts them, and ``attach`` joins a reinforcement-only shard onto rows with these labels)."""
    label = [run.config.label_column] if run.config.label_column else []
    return list(dict.fromkeys([run.config.image_column, *run.keep, *label]))


def _conflicts(output_dir: Path, run: RunRecord, split: str) -> list[str]:
    """What the folder's records say differs from ``run`` writing ``split`` (empty: it may write or resume it).

    ``split`` itself (finished in the config, or in progress) must match everything that determines its bytes
    (``output_differences``); other splits only the reinforcement (``reinforcement_differences``)."""
    found: list[str] = []
    config = read_record(output_dir / CONFIG_FILE)
    records = [(name, config) for name in (config.splits or {})] if config is not None else []
    records += [(name, p.run) for name in unfinished_splits(output_dir) if (p := read_resume_state(output_dir, name))]
    for name, existing in records:
        same_split = name == split
        differing = existing.output_differences(run, split) if same_split else existing.reinforcement_differences(run)
        if differing:
            detail = existing.teacher_differences(run) if "teachers" in differing else []
            where = f"split {name!r}" + ("" if same_split else " (another split of the folder)")
            found.append(f"{where} differs in: {', '.join(differing)}" + "".join(f"; {d}" for d in detail))
    return found


def _replace_folder(output_dir: Path, run: RunRecord, split: str) -> None:
    """``overwrite``: first invalidate (this split's new progress record, then no config, card or other records),
    then delete the shards of every split the records named. A kill at any moment leaves a folder that
    ``load_reinforced`` and ``push_to_hub`` refuse; files the library did not name are left alone."""
    config = read_record(output_dir / CONFIG_FILE)
    others = [s for s in unfinished_splits(output_dir) if s != split]
    busy = [s for s in others if split_busy(output_dir, s)]
    if busy:
        raise OutputConflictError(
            f"cannot overwrite {output_dir}: split(s) {busy} are being written by another process right now"
        )
    splits = {split, *others, *((config.splits or {}) if config is not None else {})}
    write_resume_state(output_dir, ResumeState(split, run))
    for name in (CONFIG_FILE, CARD_FILE, LEGACY_IN_PROGRESS_FILE):
        (output_dir / name).unlink(missing_ok=True)
    for name in others:
        resume_path(output_dir, name).unlink(missing_ok=True)
    for name in sorted(splits):
        for path in split_shard_files(output_dir, name):
            path.unlink()
        remove_temp_files(output_dir, name)


def _claim(
    output_dir: Path, run: RunRecord, split: str, overwrite: bool, source_sha256: Callable[[ShardRecord], str]
) -> None:
    """Decide, from the folder's records, which shards of ``split`` are finished and record this run as in
    progress with them, before any shard is written.

    A shard is kept only when the config or the progress record lists it with its source hash (``save_folder``
    records none), its file matches its size and sha256, and the source rows it was made from hash the same today. A folder of another config, or whose kept shards were
    made from other source rows, is refused unless ``overwrite`` (then :func:`_replace_folder`)."""
    with folder_lock(output_dir):
        conflicts = _conflicts(output_dir, run, split)
        if conflicts and not overwrite:
            raise OutputConflictError(
                f"{output_dir} holds the output of a different reinforcement config or source dataset "
                f"({'; '.join(conflicts)}); use another output_dir or pass overwrite=True (CLI: --overwrite) "
                "to replace it"
            )
        config, progress = read_record(output_dir / CONFIG_FILE), read_resume_state(output_dir, split)
        finished = (config.splits or {}).get(split) if config is not None else None
        candidates = {s.file: s for s in ((finished.shards or ()) if finished is not None else ())}
        candidates.update({s.file: s for s in (progress.shards if progress is not None else ())})
        intact = [s for s in candidates.values() if s.source_sha256 and shard_problem(output_dir, s, run) is None]
        kept = [] if conflicts else intact
        changed = next((s for s in kept if source_sha256(s) != s.source_sha256), None)
        if changed is not None and not overwrite:
            raise OutputConflictError(
                f"source rows {changed.rows[0]}..{changed.rows[1] - 1} of split {split!r} changed since "
                f"{output_dir / DATA_DIR / changed.file} was made from them (their content hash differs); "
                "reinforce the source it was made from, or pass overwrite=True (CLI: --overwrite) to redo the folder"
            )
        if conflicts or changed is not None:
            _replace_folder(output_dir, run, split)
            return
        remove_temp_files(output_dir, split)
        write_resume_state(output_dir, ResumeState(split, run, tuple(sorted(kept, key=lambda s: s.file))))
        (output_dir / LEGACY_IN_PROGRESS_FILE).unlink(missing_ok=True)


def reinforce_to_folder(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    output_dir: Path,
    *,
    split: str,
    overwrite: bool,
    progress: bool,
    source_id: str | None,
    source_revision: str | None,
    stored: StoredSplit | None = None,
    source_is_stored: bool = False,
) -> datasets.Dataset:
    """Write the reinforced ``split`` of ``dataset`` to ``output_dir`` (see module docstring) and load it back.

    With ``stored`` the pass extends that split (:mod:`hf_reinforce.storage.stored_split`): its record keeps the stored split's source
    identity and history, and each shard records the stored shard's source hash, which the rows of ``dataset``
    must match (``source_is_stored``: ``dataset`` was rebuilt from the stored shards, whose skipped rows are
    missing images; their hash is checked where no row was skipped)."""
    state = process_state(config.device)
    device = config.device or (state.device if state.num_processes > 1 else None)
    run = ReinforcePass(dataset, config, device=device, stored=stored)
    record = run.record(split, source_id, source_revision)
    if stored is not None:
        record = stored.extended_record(record)
    columns = _source_columns(run)

    def rows_sha256(rows: range) -> str:
        def compute() -> str:
            return source_rows_sha256(run.prepared, rows, columns)

        if stored is None:
            return compute()
        comparable = not (source_is_stored and stored.shard_record(rows).skipped_rows)
        return stored.source_sha256(rows, compute, comparable=comparable)

    def source_sha256(shard: ShardRecord) -> str:
        return rows_sha256(range(*shard.rows))

    with contextlib.ExitStack() as stack:
        if state.is_main_process:
            check_library_folder(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(split_lock(output_dir, split))
            _claim(output_dir, record, split, overwrite, source_sha256)
            logger.info(run.ensemble.describe())
        state.wait_for_everyone()
        files = _write_shards(run, output_dir, split, state, progress, rows_sha256)
        state.wait_for_everyone()
        if state.is_main_process:
            _finalize(output_dir, record, split, files, config)
        state.wait_for_everyone()
    final = load_record(output_dir)
    shards = (final.splits or {})[split].shards or ()
    with contextlib.nullcontext() if progress else quiet_datasets():
        loaded = load_shards([output_dir / DATA_DIR / s.file for s in shards], shards, split)
    return attach_record(loaded, final)


def _write_shards(
    run: ReinforcePass, output_dir: Path, split: str, state: Any, progress: bool, rows_sha256: Callable[[range], str]
) -> list[str]:
    """Compute this process's shards that the progress record does not list as finished; returns the file names
    of every shard of the split. Each shard is written in a work directory of its split, hashed, recorded in the
    progress record and only then renamed into place (so a shard file with its final name is always recorded)."""
    config, n = run.config, len(run.dataset)
    count = num_shards(n, config.rows_per_shard)
    names = [shard_path(output_dir, split, s, count).name for s in range(count)]
    recorded = read_resume_state(output_dir, split)
    done = {s.file for s in recorded.shards} if recorded is not None else set()
    mine = process_shards(count, state.process_index, state.num_processes)
    todo = [s for s in mine if names[s] not in done]
    if len(todo) < len(mine):
        logger.info(
            "reinforce %s [%d]: resuming, %d of %d shard(s) already done",
            split,
            state.process_index,
            len(mine) - len(todo),
            len(mine),
            main_process_only=False,
        )
    ranges = [shard_rows(s, config.rows_per_shard, n) for s in todo]
    bar = views_bar(
        sum(map(len, ranges)) * (config.num_augmentations - run.geometry.first_index),
        f"reinforce {split} [{state.process_index}]",
        enabled=progress,
        position=state.process_index,
    )
    with bar, quiet_datasets():
        results = run.results(ranges, on_views=bar.update)
        for s, rows in zip(todo, ranges):
            final = shard_path(output_dir, split, s, count)
            with tempfile.TemporaryDirectory(dir=output_dir, prefix=work_dir_prefix(split)) as tmp:
                source_sha256 = rows_sha256(rows)
                mapped = run.map(rows, results, cache_file_name=Path(tmp) / "shard.arrow", fingerprint_suffix=f"-{s}")
                skipped = [r for r in run.skipped if r in rows]
                table = mapped.data.table
                metadata = {**(table.schema.metadata or {}), SKIPPED_KEY: json.dumps(skipped).encode()}
                metadata[REPORT_KEY] = report_metadata(run.report_sums(rows))
                staged = Path(tmp) / final.name
                shard = write_shard(
                    table.replace_schema_metadata(metadata),
                    staged,
                    num_augmentations=config.num_augmentations,
                    rows=rows,
                    source_sha256=source_sha256,
                    skipped_rows=skipped,
                )
                record_shard(output_dir, split, shard)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
                del mapped, table
    return names


def _finalize(output_dir: Path, run: RunRecord, split: str, files: list[str], config: ReinforceConfig) -> None:
    """Check the progress record lists every shard and each file matches it; then, under the folder lock, merge
    the split (with its shard list) into the config, write the card, remove stray shard files of the split and
    finally the progress record."""
    with folder_lock(output_dir):
        progress = read_resume_state(output_dir, split)
        if progress is None or progress.run.output_differences(run, split):
            raise OutputConflictError(
                f"the progress record of split {split!r} in {output_dir} was replaced by another run while this "
                "one was writing; nothing was finalized"
            )
        by_file = {s.file: s for s in progress.shards}
        missing = [f for f in files if f not in by_file]
        if missing:
            raise IncompleteOutputError(
                f"reinforcement of split {split!r} is incomplete, missing shards: {missing}; rerun to resume"
            )
        shards = [by_file[f] for f in files]
        for shard in shards:
            problem = shard_problem(output_dir, shard, run)
            if problem is not None:
                raise IncompleteOutputError(f"split {split!r} of {output_dir}: {problem}; rerun to redo it")
        check_some_rows_kept(sum(s.num_rows for s in shards), [r for s in shards for r in s.skipped_rows])
        paths = [output_dir / DATA_DIR / s.file for s in shards]
        assert run.source is not None  # the record of a run in progress carries its source
        stats = run.source.with_stats(
            shards,
            bytes_per_augmentation=bytes_per_stored_augmentation(paths, config.num_augmentations),
            report=_split_report(paths),
        )
        previous = read_record(output_dir / CONFIG_FILE)
        splits = dict((previous.splits if previous is not None else None) or {})
        splits[split] = stats
        final = run.replace(source=None, splits=splits)
        write_record(output_dir, final)
        for path in split_shard_files(output_dir, split):
            if path.name not in files:
                path.unlink()
        resume_path(output_dir, split).unlink()


def _split_report(paths: list[Path]) -> SplitReport | None:
    """The split's reinforcement report, summed from the report sums each shard carries in its parquet metadata."""
    views, originals = ReportSums(), ReportSums()
    for path in paths:
        shard_views, shard_originals = read_report_metadata(pq.read_schema(path).metadata or {})
        views, originals = views + shard_views, originals + shard_originals
    return SplitReport.from_sums(views, originals) if views.count else None
