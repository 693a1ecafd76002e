"""The Hub-layout output folder: every file and folder name, shard ranges, atomic writes, and reading it back.

This module is the one home of the names; everything else asks it for paths. Layout::

    <output_dir>/data/<split>-00000-of-00008.parquet   one file per shard, renamed into place when complete
    <output_dir>/reinforce_config.json                 written last, when every shard of the split exists
    <output_dir>/README.md                             dataset card (YAML carries the config under hf_reinforce)
    <output_dir>/.reinforce_in_progress.json           the config of an unfinished run (resume check)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import NotFoundError
from .format import check_schema_version, is_reinforcement_column, parquet_options
from .record import RunRecord

CONFIG_FILE = "reinforce_config.json"
CARD_FILE = "README.md"
IN_PROGRESS_FILE = ".reinforce_in_progress.json"
DATA_DIR = "data"
SHARD_TEMP_PREFIX = ".shard-"
TEMP_SUFFIX = ".tmp"


def shard_path(output_dir: str | os.PathLike, split: str, index: int, count: int) -> Path:
    """``data/<split>-XXXXX-of-YYYYY.parquet`` (the naming ``datasets`` and the Hub recognise as split shards)."""
    return Path(output_dir) / DATA_DIR / f"{split}-{index:05d}-of-{count:05d}.parquet"


def split_names(output_dir: str | os.PathLike) -> set[str]:
    """The splits that have shard files under ``data/`` (``<split>-XXXXX-of-YYYYY.parquet``)."""
    return {p.name.rsplit("-", 3)[0] for p in (Path(output_dir) / DATA_DIR).glob("*-*-of-*.parquet")}


def shard_glob(split: str) -> str:
    """Glob of a split's shard files under ``data/``."""
    return f"{split}-*.parquet"


def num_shards(num_rows: int, rows_per_shard: int) -> int:
    """Shards of a split of ``num_rows`` rows (at least one)."""
    return max(1, -(-num_rows // rows_per_shard))


def shard_rows(index: int, rows_per_shard: int, num_rows: int) -> range:
    """The source rows shard ``index`` holds: ``[index * rows_per_shard, (index + 1) * rows_per_shard)``, clipped."""
    return range(index * rows_per_shard, min(num_rows, (index + 1) * rows_per_shard))


BYTES_PER_AUGMENTATION = "reinforcement bytes per stored augmentation"
"""The one name of :func:`bytes_per_stored_augmentation`'s figure, as the CLI, the card and ``estimate`` print it."""


def bytes_per_stored_augmentation(paths: Iterable[str | os.PathLike], num_augmentations: int) -> float:
    """Reinforcement bytes per stored augmentation: the compressed bytes of the reinforcement columns
    (``row_index``, ``aug_*``, ``topk_*``) in the parquet column chunks of ``paths``, over rows × N. Images and other
    source columns, parquet footers and file metadata do not count (total bytes per row, images included, is the
    split's ``num_bytes / num_rows_written``). The one definition behind the run record's ``bytes_per_augmentation``,
    the CLI summary, the card, ``estimate``, README and ``scripts/bench_storage.py``."""
    total, rows = 0, 0
    for path in paths:
        meta = pq.read_metadata(path)
        rows += meta.num_rows
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if is_reinforcement_column(chunk.path_in_schema.split(".")[0]):
                    total += chunk.total_compressed_size
    return total / max(rows * num_augmentations, 1)


def write_parquet_atomic(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path) -> int:
    """Stream record batches to ``path`` through a temp file renamed into place; returns the file size.

    A crash leaves at most a hidden ``.tmp`` file (removed by :func:`remove_temp_files`), never a shard with a final
    name that is incomplete. The writer creates the temp file, so the shard gets the usual umask permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"))
    try:
        with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
            for batch in batches:
                writer.write_batch(batch)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path.stat().st_size


def write_json_atomic(data: Mapping[str, Any], path: Path) -> None:
    """Write JSON to ``path`` via a temp file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else None


def remove_outputs(output_dir: Path) -> None:
    """Delete what a reinforcement pass writes (shards, config, card, in-progress file); other files stay."""
    for path in (output_dir / DATA_DIR).glob("*.parquet"):
        path.unlink()
    for name in (CONFIG_FILE, IN_PROGRESS_FILE, CARD_FILE):
        if (output_dir / name).exists():
            (output_dir / name).unlink()


def remove_temp_files(output_dir: Path) -> None:
    """Delete what a killed pass leaves behind: shard work directories and hidden ``.tmp`` files."""
    for path in output_dir.glob(f"{SHARD_TEMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)
    for folder in (output_dir, output_dir / DATA_DIR):
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)


def local_folder(repo_or_folder: str | os.PathLike, *, bare_names: bool = True) -> Path | None:
    """The local path ``repo_or_folder`` names, or ``None`` when it is a Hub repo id; a local path that does not
    exist raises :class:`~hf_reinforce.errors.NotFoundError` ("no such folder") at once, so it is never sent to the Hub.

    Local: a ``Path`` object, anything that exists here, ``.``/``..``/``~``-relative or absolute paths, ``a/b...``
    whose first component is a folder here, and a name without ``/`` (a reinforced repo id always has a namespace;
    ``bare_names=False`` sends such names to the Hub, for source datasets like ``mnist``). Everything else
    (``user/repo``) is a Hub repo id. The one rule for every entry point that takes "a folder or a repo".
    """
    text = os.fspath(repo_or_folder)
    path = Path(text).expanduser()
    first = text.split("/", 1)[0]
    local = (
        isinstance(repo_or_folder, os.PathLike)
        or path.exists()
        or text.startswith((".", "/", "~"))
        or os.path.isabs(text)
        or (bare_names and "/" not in text.strip("/"))
        or Path(first).is_dir()
    )
    if not local:
        return None
    if not path.exists():
        raise NotFoundError(f"no such folder: {text} (a local path; Hub repo ids look like user/name)")
    return path


def load_config_json(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> dict[str, Any]:
    """The raw JSON of ``reinforce_config.json`` (a local folder, a path to the file, or a Hub repo), its schema
    version checked; :func:`load_config` reads it as a :class:`~hf_reinforce.record.RunRecord`."""
    path = local_folder(repo_or_folder)
    if path is not None:
        path = path / CONFIG_FILE if path.is_dir() else path
        if not path.is_file():
            raise NotFoundError(f"{repo_or_folder} has no {CONFIG_FILE}: is it a finished hf_reinforce output folder?")
    else:
        from huggingface_hub import hf_hub_download

        path = Path(
            hf_hub_download(str(repo_or_folder), CONFIG_FILE, repo_type="dataset", revision=revision, token=token)
        )
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "schema_version" in data:
        check_schema_version(data["schema_version"])
    return data


def load_config(
    repo_or_folder: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None
) -> RunRecord:
    """The run record (``reinforce_config.json``) of a reinforced dataset: a local folder, a path to the file, or
    a Hub repo; read and checked once."""
    return RunRecord.from_dict(load_config_json(repo_or_folder, revision=revision, token=token))


def read_record(path: Path) -> RunRecord | None:
    """The run record in the JSON file ``path``, or ``None`` when the file does not exist."""
    data = read_json(path)
    return None if data is None else RunRecord.from_dict(data)


def write_record(record: RunRecord, path: Path) -> None:
    """Write ``record`` as JSON to ``path`` atomically."""
    write_json_atomic(record.to_dict(), path)


def load_reinforced(
    repo_or_folder: str | os.PathLike, *, split: str = "train", revision: str | None = None, **kwargs: Any
) -> Any:
    """``datasets.load_dataset`` of a reinforced folder's shard files (absolute paths) or of a Hub repo.

    A local folder is loaded through its explicit shard list: ``load_dataset(folder)`` caches by folder name and
    patterns, so two folders with the same name could share a stale cache.
    """
    import datasets

    path = local_folder(repo_or_folder)
    if path is not None:
        files = sorted(str(p.resolve()) for p in (path / DATA_DIR).glob(shard_glob(split)))
        if not files:
            present = sorted(split_names(path))
            raise NotFoundError(
                f"{path} has no shards of split {split!r} under {DATA_DIR}/; "
                + (
                    f"its splits are {present}: pass split=... (CLI: --split)"
                    if present
                    else "it holds no reinforced split"
                )
            )
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, **kwargs)
    return datasets.load_dataset(str(repo_or_folder), split=split, revision=revision, **kwargs)
