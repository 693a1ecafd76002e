"""Out-of-core, resumable, multi-process reinforcement into a Hub-layout folder.

Shard ``s`` holds rows ``[s * rows_per_shard, (s + 1) * rows_per_shard)``; under ``accelerate launch`` process
``r`` of ``P`` takes shards ``r, r + P, ...`` on its own device. Each shard is mapped into a temporary Arrow file
(memory-mapped, so memory stays flat), streamed into parquet and renamed into place. A rerun with the same config
skips finished shards; the main process writes ``reinforce_config.json`` and the card once every shard exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets.table import embed_table_storage

from .card import write_card
from .config import ReinforceConfig
from .errors import IncompleteOutputError, OutputConflictError
from .layout import (
    CONFIG_FILE,
    IN_PROGRESS_FILE,
    SHARD_TEMP_PREFIX,
    num_shards,
    read_record,
    remove_outputs,
    remove_temp_files,
    shard_path,
    shard_rows,
    write_parquet_atomic,
    write_record,
)
from .pipeline import ReinforcePass
from .progress import quiet_datasets, views_bar
from .record import RunRecord, attach_record
from .report import REPORT_KEY, ReportSums, SplitReport, read_report_metadata, report_metadata

SKIPPED_KEY = b"hf_reinforce_skipped_rows"


def _process_state(device: str | None) -> Any:
    """accelerate's process state (one process unless launched by accelerate/torchrun; gloo when on CPU)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # Without cpu=True, PartialState() joins a torchrun/accelerate launch only on an accelerator: on a CPU-only
    # machine every process would believe it is alone and write every shard.
    accelerator = getattr(torch, "accelerator", None)
    has_accelerator = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    on_cpu = device is not None and torch.device(device).type == "cpu"
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or on_cpu or not has_accelerator)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise RuntimeError(
            f"launched as {launched} processes (WORLD_SIZE) but accelerate set up {state.num_processes}; "
            "to run the processes on CPU set ACCELERATE_USE_CPU=1 (or pass device='cpu')"
        )
    return state


def _claim(output_dir: Path, run: RunRecord, split: str, overwrite: bool) -> None:
    """Refuse a folder holding another reinforcement, or another config or source for ``split`` (unless
    ``overwrite``), clear the temp files of a killed run and record this run as in progress.

    A rerun or resume of ``split`` must match everything that determines its bytes (``same_output``); another split
    in the folder only the reinforcement (``same_reinforcement``: it may be reinforcement-only beside a full one)."""
    for name in (CONFIG_FILE, IN_PROGRESS_FILE):
        existing = read_record(output_dir / name)
        if existing is None:
            continue
        same_split = existing.split(split) is not None
        differing = existing.output_differences(run, split) if same_split else existing.reinforcement_differences(run)
        if differing and not overwrite:
            raise OutputConflictError(
                f"{output_dir} holds the output of a different reinforcement config or source dataset (differs in: "
                f"{', '.join(differing)}); use another output_dir or pass overwrite=True (CLI: --overwrite) to replace it"
            )
        if differing:
            remove_outputs(output_dir)
            break
    remove_temp_files(output_dir)
    write_record(run, output_dir / IN_PROGRESS_FILE)


def _shard_batches(table: pa.Table, rows: int) -> Any:
    """Record batches of ``rows`` rows with external image files embedded (the folder must be self-contained)."""
    for batch in table.to_batches(max_chunksize=rows):
        yield from embed_table_storage(pa.Table.from_batches([batch])).to_batches()


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
) -> datasets.Dataset:
    """Write the reinforced ``split`` of ``dataset`` to ``output_dir`` (see module docstring) and load it back."""
    state = _process_state(config.device)
    device = config.device or (state.device if state.num_processes > 1 else None)
    run = ReinforcePass(dataset, config, device=device)
    record = run.record(split, source_id, source_revision)
    output_dir.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        _claim(output_dir, record, split, overwrite)
    state.wait_for_everyone()

    n, count = len(dataset), num_shards(len(dataset), config.rows_per_shard)
    mine = range(state.process_index, count, state.num_processes)
    todo = [s for s in mine if not shard_path(output_dir, split, s, count).exists()]
    if progress and len(todo) < len(mine):
        print(
            f"reinforce {split} [{state.process_index}]: resuming, {len(mine) - len(todo)} of {len(mine)} shard(s) already done"
        )
    ranges = [shard_rows(s, config.rows_per_shard, n) for s in todo]
    bar = views_bar(
        sum(map(len, ranges)) * config.num_augmentations,
        f"reinforce {split} [{state.process_index}]",
        enabled=progress,
        position=state.process_index,
    )
    with bar, quiet_datasets():
        results = run.results(ranges, on_views=bar.update)
        for s, rows in zip(todo, ranges):
            with tempfile.TemporaryDirectory(dir=output_dir, prefix=SHARD_TEMP_PREFIX) as tmp:
                mapped = run.map(rows, results, cache_file_name=Path(tmp) / "shard.arrow", fingerprint_suffix=f"-{s}")
                skipped = [r for r in run.skipped if r in rows]
                table = mapped.data.table
                metadata = {**(table.schema.metadata or {}), SKIPPED_KEY: json.dumps(skipped).encode()}
                metadata[REPORT_KEY] = report_metadata(run.report.sums(run.geometry.blocks(rows)))
                batches = _shard_batches(table, config.rows_per_block)
                write_parquet_atomic(
                    batches, table.schema.with_metadata(metadata), shard_path(output_dir, split, s, count)
                )
                del mapped, table
    state.wait_for_everyone()
    if state.is_main_process:
        _finalize(output_dir, record, split, count, config)
    state.wait_for_everyone()
    files = [str(shard_path(output_dir, split, s, count)) for s in range(count)]
    with contextlib.nullcontext() if progress else quiet_datasets():
        loaded = datasets.load_dataset("parquet", data_files={split: files}, split=split)
    return attach_record(loaded, read_record(output_dir / CONFIG_FILE))


def _finalize(output_dir: Path, run: RunRecord, split: str, num_shards: int, config: ReinforceConfig) -> None:
    """Check every shard exists, then write the record (with per-split statistics) and the card."""
    paths = [shard_path(output_dir, split, s, num_shards) for s in range(num_shards)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise IncompleteOutputError(
            f"reinforcement of split {split!r} is incomplete, missing shards: {missing}; rerun to resume"
        )
    skipped: list[int] = []
    rows = 0
    views, originals = ReportSums(), ReportSums()
    for path in paths:
        meta = pq.read_metadata(path)
        rows += meta.num_rows
        skipped += json.loads((meta.schema.to_arrow_schema().metadata or {}).get(SKIPPED_KEY, b"[]"))
        shard_views, shard_originals = read_report_metadata(meta.schema.to_arrow_schema().metadata or {})
        views, originals = views + shard_views, originals + shard_originals
    stats = run.source.with_stats(
        num_rows_written=rows,
        num_shards=num_shards,
        skipped_rows=skipped,
        num_bytes=sum(p.stat().st_size for p in paths),
        num_augmentations=config.num_augmentations,
        report=SplitReport.from_sums(views, originals) if views.count else None,
    )
    previous = read_record(output_dir / CONFIG_FILE)
    splits = dict((previous.splits if previous is not None else None) or {})
    splits[split] = stats
    final = run.replace(source=None, splits=splits)
    write_record(final, output_dir / CONFIG_FILE)
    write_card(output_dir, final)
    (output_dir / IN_PROGRESS_FILE).unlink(missing_ok=True)
