"""Estimate a reinforcement pass before running it: views, time on this device, output size, memory.

A short calibration runs the real pass (:class:`ReinforcePass` with the configured render workers, then a parquet
write with the folder pass's options) over a few rows × a few augmentations on the configured device, and
extrapolates. The pass records where its time went (teachers and writing in this process, rendering in the
workers), so the estimate predicts the pipelined rate: the slower of the two sides once rendering overlaps the
teachers. The numbers are only as good as that sample: the report prints its size, and the caveats that go with it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..config import ReinforceConfig
from ..errors import BadImageError, ConfigError
from ..progress import quiet_datasets
from ..storage.format import parquet_options
from ..storage.paths import num_shards, shard_rows
from ..storage.report import SplitReport
from ..storage.shards import BYTES_PER_AUGMENTATION, bytes_per_stored_augmentation
from ..validation import check_int, check_split
from .folder_pass import process_shards
from .reinforce_pass import PassStats, ReinforcePass, undecoded
from .render_workers import first_new_index


@dataclass
class Estimate:
    """What a reinforcement pass of a dataset will cost, extrapolated from a calibration run on ``device``."""

    num_rows: int
    num_augmentations: int
    total_views: int
    """Teacher views computed: rows × augmentations, or rows × the new augmentations of an extension (every
    teacher of the ensemble sees each view)."""
    device: str
    num_processes: int
    calibration_rows: int
    calibration_augmentations: int
    calibration_views: int
    calibration_seconds: float
    views_per_second: float
    """Predicted steady-state rate on one device with the configured render workers (decode, sampling, rendering,
    teachers, top-k, Arrow and parquet writing), from the calibration's measured costs (see :func:`pipelined_rate`)."""
    seconds: float
    """Estimated wall time of the whole pass on one such device."""
    seconds_per_process: float
    """Estimated wall time with ``num_processes`` such devices (the busiest process, shards being whole)."""
    bytes_per_augmentation: float
    """Reinforcement bytes per stored augmentation (:func:`~hf_reinforce.storage.shards.bytes_per_stored_augmentation`, images excluded),
    measured on the calibration output."""
    reinforcement_bytes: int
    source_bytes: int
    """Bytes of the source columns the output keeps (images as stored in the source), 0 when reinforcement-only."""
    peak_rss_bytes: int
    notes: list[str] = field(default_factory=list)
    report: SplitReport | None = None
    """The reinforcement report on the calibration rows (stored views vs originals; see :mod:`hf_reinforce.storage.report`)."""

    @property
    def output_bytes(self) -> int:
        """Estimated size of the output folder's shards."""
        return self.reinforcement_bytes + self.source_bytes

    def to_dict(self) -> dict[str, object]:
        """The fields as plain JSON-able values (with ``output_bytes``)."""
        out = {**dataclasses.asdict(self), "output_bytes": self.output_bytes}
        out["report"] = self.report.to_dict() if self.report is not None else None
        return out

    def __str__(self) -> str:
        p = self.num_processes
        rows = [
            ("dataset rows", f"{self.num_rows:,}"),
            ("augmentations per row (N)", f"{self.num_augmentations:,}"),
            ("teacher views computed", f"{self.total_views:,}"),
            (
                "calibration sample",
                (
                    f"{self.calibration_rows} rows × {self.calibration_augmentations} augmentations = "
                    f"{self.calibration_views:,} views in {self.calibration_seconds:.1f} s"
                ),
            ),
            ("device", self.device),
            ("pipelined throughput", f"{self.views_per_second:,.1f} views/s"),
            ("estimated time, 1 device", _duration(self.seconds)),
        ]
        if p > 1:
            rows.append((f"estimated time, {p} devices", f"{_duration(self.seconds_per_process)} per device"))
        rows += [
            (BYTES_PER_AUGMENTATION, f"{self.bytes_per_augmentation:.1f} B"),
            ("reinforcement columns", _size(self.reinforcement_bytes)),
            ("kept source columns", _size(self.source_bytes)),
            ("estimated output size", _size(self.output_bytes)),
            ("peak RSS (this process)", _size(self.peak_rss_bytes)),
        ]
        width = max(len(name) for name, _ in rows)
        lines = ["hf_reinforce estimate", *(f"  {name:<{width}}  {value}" for name, value in rows)]
        lines += [f"  note: {note}" for note in self.notes]
        if self.report is not None:
            lines += [f"reinforcement report on the {self.calibration_rows} calibration rows:", *self.report.lines()]
        return "\n".join(lines)


def estimate(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    *,
    calibration_rows: int | None = None,
    calibration_augmentations: int | None = None,
    num_processes: int = 1,
    extend_to: int | None = None,
) -> Estimate:
    """Calibrate the pass of ``config`` over ``dataset`` on this machine and extrapolate time and size.

    The calibration takes ``calibration_rows`` evenly spaced rows (default: one block, ``rows_per_block``) and
    ``calibration_augmentations`` augmentations each (default: one teacher step, ``augmentations_per_step``),
    so the teachers see batches of the real shape; one untimed warm-up run of the same shape goes first.
    Nothing is written outside a temporary folder.

    ``extend_to`` estimates :func:`~hf_reinforce.extend` of the dataset ``config`` writes to ``extend_to``
    augmentations per row: only the views from ``first_new_index(N, augmentations_per_step)`` on are computed,
    and the output holds ``extend_to``.

    Args:
        dataset: the split to reinforce (images and labels).
        config: the pass to estimate, teachers and device included.
        calibration_rows: rows of the calibration run (default: ``config.rows_per_block``).
        calibration_augmentations: augmentations per calibration row (default: ``config.augmentations_per_step``).
        num_processes: devices the pass would run on (``seconds_per_process`` is the busiest one's time).
        extend_to: estimate growing the output of ``config`` to this many augmentations per row instead.

    Returns:
        An :class:`Estimate`: views, views per second, time, bytes, peak memory and the report of the calibration
        rows (``print`` it for a summary).

    Raises:
        ConfigError: an empty dataset, a bad ``num_processes`` or ``extend_to``, or a config the dataset does not fit.
        BadImageError: a calibration row's image cannot be decoded.
    """
    check_split(dataset, "estimate()")
    if not isinstance(num_processes, int) or isinstance(num_processes, bool) or num_processes < 1:
        raise ConfigError(f"num_processes: expected a positive integer, got {num_processes!r}")
    n = len(dataset)
    if n == 0:
        raise ConfigError("the dataset has no rows: there is nothing to estimate")
    rows = _positive("calibration_rows", calibration_rows, config.rows_per_block)
    augs = _positive("calibration_augmentations", calibration_augmentations, config.augmentations_per_step)
    target = config.num_augmentations if extend_to is None else extend_to
    first = 0
    if extend_to is not None:
        if not isinstance(extend_to, int) or isinstance(extend_to, bool) or extend_to <= config.num_augmentations:
            raise ConfigError(
                f"extend_to: expected more augmentations than the {config.num_augmentations} of the config, "
                f"got {extend_to!r}"
            )
        first = first_new_index(config.num_augmentations, config.augmentations_per_step)
    rows, augs = min(rows, n), min(augs, target)
    calibration = dataclasses.replace(config, num_augmentations=augs)
    sample = dataset.select(np.unique(np.linspace(0, n - 1, rows).round().astype(np.int64)).tolist())
    warmup = ReinforcePass(sample, calibration)
    with tempfile.TemporaryDirectory(prefix="hf-reinforce-estimate-") as tmp:
        _calibrate(warmup, Path(tmp), "warmup")
        timed = ReinforcePass(sample, calibration, ensemble=warmup.ensemble)
        start = time.perf_counter()
        path = _calibrate(timed, Path(tmp), "timed")
        elapsed = time.perf_counter() - start
        written = pq.read_metadata(path).num_rows
        per_aug = bytes_per_stored_augmentation([path], augs)
    if written == 0:
        raise BadImageError(
            f"every calibration row failed to decode (skipped rows {timed.skipped}); check the image column"
        )
    stats, workers = timed.stats, config.workers
    rate = pipelined_rate(stats, elapsed, workers)
    total = n * (target - first)
    busiest = _busiest_process_rows(n, config.rows_per_shard, num_processes)
    notes = [
        (
            f"reinforcement bytes come from the calibration output ({written} rows × {augs} augmentations); "
            f"full shards of {config.rows_per_shard} rows × {target} augmentations may compress "
            "differently"
        ),
        (
            f"calibration: {stats.views / elapsed:,.1f} views/s end to end (worker start-up included); per view "
            f"{1e3 * stats.render_cpu_seconds / stats.views:.2f} CPU-ms rendering, "
            f"{1e3 * (elapsed - stats.wait_seconds) / stats.views:.2f} ms teachers and writing; the estimate uses the "
            f"pipelined rate with {workers} render worker(s)"
        ),
    ]
    if augs < target - first:
        notes.append(
            f"per-row work (decode, sampling, Arrow writing) is spread over {augs} augmentations here and over "
            f"{target - first} in the pass, so the time estimate leans high"
        )
    if extend_to is not None:
        notes.append(
            f"extending N={config.num_augmentations} to {target} computes augmentations {first}..{target - 1} of "
            f"every row (from N rounded down to a multiple of augmentations_per_step={config.augmentations_per_step})"
            "; the time and teacher views count those, the size the whole output"
        )
    if timed.skipped:
        notes.append(f"{len(timed.skipped)} calibration row(s) could not be decoded and were skipped")
    if num_processes > 1:
        notes.append(
            f"the {num_processes}-device estimate assumes devices like this one: {_device_name(timed.ensemble.device)}"
        )
    return Estimate(
        num_rows=n,
        num_augmentations=target,
        total_views=total,
        device=_device_name(timed.ensemble.device),
        num_processes=num_processes,
        calibration_rows=written,
        calibration_augmentations=augs,
        calibration_views=stats.views,
        calibration_seconds=elapsed,
        views_per_second=rate,
        seconds=total / rate,
        seconds_per_process=busiest * (target - first) / rate,
        bytes_per_augmentation=per_aug,
        reinforcement_bytes=round(per_aug * n * target),
        source_bytes=_source_bytes(undecoded(dataset, config.image_column)[0], timed.keep, config.image_column),
        peak_rss_bytes=peak_rss_bytes(),
        notes=notes,
        report=timed.report.report(),
    )


def pipelined_rate(stats: PassStats, elapsed: float, workers: int) -> float:
    """Views/s of the pass in steady state: the main process's busy time per view (teachers, top-k, writing) and
    the rendering CPU time per view; with workers the two overlap and the slower side sets the pace."""
    main = max(elapsed - stats.wait_seconds, 1e-9) / stats.views
    render = stats.render_cpu_seconds / stats.views
    return 1.0 / (main + render if workers == 0 else max(main, render / workers))


def _calibrate(run: ReinforcePass, tmp: Path, name: str) -> Path:
    """The folder pass's inner loop over the whole (sample) dataset: map into an Arrow file, then write parquet."""
    rows = range(len(run.dataset))
    with quiet_datasets():
        mapped = run.map(rows, run.results([rows]), cache_file_name=tmp / f"{name}.arrow")
    path = tmp / f"{name}.parquet"
    pq.write_table(mapped.data.table, path, **parquet_options(mapped.data.table.schema))
    return path


def _positive(name: str, value: int | None, default: int) -> int:
    return default if value is None else check_int(value, name, minimum=1)


def _source_bytes(dataset: datasets.Dataset, keep: list[str], image_column: str) -> int:
    """Bytes of the kept source columns: encoded image bytes (or file sizes) as stored, Arrow sizes for the rest."""
    if not keep:
        return 0
    total = 0
    for table in dataset.select_columns(keep).with_format("arrow").iter(batch_size=10_000):
        for name in table.column_names:
            column = table.column(name)
            if name == image_column and pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
                total += _encoded_image_bytes(column)
            else:
                total += column.nbytes
    return total


def _encoded_image_bytes(column: pa.ChunkedArray) -> int:
    """Sum of embedded image bytes, plus file sizes of images stored by path only (the output embeds them)."""
    import pyarrow.compute as pc

    data = pc.struct_field(column, "bytes")
    total = int(pc.sum(pc.binary_length(data)).as_py() or 0)
    if column.type.get_field_index("path") >= 0:
        paths = pc.struct_field(column, "path").to_pylist()
        total += sum(
            os.path.getsize(p) for p, b in zip(paths, data.is_null().to_pylist()) if b and p and os.path.isfile(p)
        )
    return total


def _busiest_process_rows(num_rows: int, rows_per_shard: int, num_processes: int) -> int:
    """Rows of the process with the most work when shards ``r, r + P, ...`` go to process ``r``."""
    count = num_shards(num_rows, rows_per_shard)
    return max(
        sum(len(shard_rows(s, rows_per_shard, num_rows)) for s in process_shards(count, r, num_processes))
        for r in range(min(num_processes, count))
    )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h {minutes} min"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _size(num_bytes: float) -> str:
    if num_bytes < 1000:
        return f"{num_bytes:.0f} B"
    power = min(int(math.log10(num_bytes) // 3), 4)
    return f"{num_bytes / 1000**power:.2f} {' KMGT'[power]}B"


__all__ = ["Estimate", "estimate", "peak_rss_bytes"]
