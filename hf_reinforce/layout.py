"""The Hub-layout output folder: every file and folder name, shard ranges, atomic writes, and reading it back.

This module is the one home of the names; everything else asks it for paths. Layout::

    <output_dir>/data/<split>-00000-of-00008.parquet   one file per shard, renamed into place when complete
    <output_dir>/reinforce_config.json                 written last, per split: every shard with its sha256
    <output_dir>/README.md                             dataset card (YAML carries the config under hf_reinforce)
    <output_dir>/.reinforce/<split>.progress.json      an unfinished split: the run and its finished shards
    <output_dir>/.reinforce/<split>.lock, lock         held by the process writing a split / updating records
    <output_dir>/.shard-<split>-<random>/              a shard's work directory while it is computed

A folder is trusted only on this evidence (README "Guarantees"): :func:`verified_shards` checks a finished split
against the shard list in its config before anything reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ConfigError, IncompleteOutputError, NotFoundError
from .format import check_schema_version, is_reinforcement_column, parquet_options
from .record import RunRecord, ShardRecord

CONFIG_FILE = "reinforce_config.json"
CARD_FILE = "README.md"
STATE_DIR = ".reinforce"
LOCK_FILE = "lock"
LEGACY_IN_PROGRESS_FILE = ".reinforce_in_progress.json"
"""The in-progress marker of versions before per-split progress records (proves the folder is the library's)."""
DATA_DIR = "data"
SHARD_TEMP_PREFIX = ".shard-"
TEMP_SUFFIX = ".tmp"
IGNORED_FILES = (".DS_Store",)
"""Files that do not make a folder non-empty (the output folder must be empty or the library's)."""


def progress_path(output_dir: str | os.PathLike, split: str) -> Path:
    """``.reinforce/<split>.progress.json``: the run and finished shards of an unfinished split."""
    return Path(output_dir) / STATE_DIR / f"{split}.progress.json"


def split_lock_path(output_dir: str | os.PathLike, split: str) -> Path:
    """``.reinforce/<split>.lock``: held by the process writing ``split``."""
    return Path(output_dir) / STATE_DIR / f"{split}.lock"


def folder_lock_path(output_dir: str | os.PathLike) -> Path:
    """``.reinforce/lock``: held while a process reads and updates the folder's records."""
    return Path(output_dir) / STATE_DIR / LOCK_FILE


def work_dir_prefix(split: str) -> str:
    """Prefix of the work directories of ``split``'s shards (split names have no ``-``, so prefixes never clash)."""
    return f"{SHARD_TEMP_PREFIX}{split}-"


def split_shard_files(output_dir: str | os.PathLike, split: str) -> list[Path]:
    """Files named like shards of ``split`` under ``data/`` (whoever wrote them)."""
    return sorted((Path(output_dir) / DATA_DIR).glob(f"{split}-[0-9]*-of-[0-9]*.parquet"))


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shard_problem(output_dir: str | os.PathLike, shard: ShardRecord) -> str | None:
    """Why the file of ``shard`` is not the one recorded (missing, other size, other sha256), or ``None``."""
    path = Path(output_dir) / DATA_DIR / shard.file
    if not path.is_file():
        return f"{DATA_DIR}/{shard.file} is missing"
    size = path.stat().st_size
    if size != shard.num_bytes:
        return f"{DATA_DIR}/{shard.file} has {size} bytes, {shard.num_bytes} were written (truncated or replaced)"
    if file_sha256(path) != shard.sha256:
        return f"{DATA_DIR}/{shard.file} does not match the sha256 recorded when it was written (corrupted or replaced)"
    return None


def shard_path(output_dir: str | os.PathLike, split: str, index: int, count: int) -> Path:
    """``data/<split>-XXXXX-of-YYYYY.parquet`` (the naming ``datasets`` and the Hub recognise as split shards)."""
    return Path(output_dir) / DATA_DIR / f"{split}-{index:05d}-of-{count:05d}.parquet"


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
    """The JSON object in ``path``, or ``None`` when the file does not exist; a file that is not a JSON object is
    a :class:`~hf_reinforce.errors.ConfigError` naming it."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"{path} is not valid JSON ({error}): restore it, or delete it to redo what it recorded"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {type(data).__name__}, not a JSON object: restore it or delete it")
    return data


def remove_temp_files(output_dir: Path, split: str) -> None:
    """Delete what a killed pass over ``split`` left behind: its shard work directories and hidden ``.tmp`` shard
    files (those of other splits, maybe being written by another process, stay)."""
    for path in output_dir.glob(f"{work_dir_prefix(split)}*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (output_dir / DATA_DIR).glob(f".{split}-*{TEMP_SUFFIX}"):
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
    try:
        return None if data is None else RunRecord.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def write_record(record: RunRecord, path: Path) -> None:
    """Write ``record`` as JSON to ``path`` atomically."""
    write_json_atomic(record.to_dict(), path)


def verified_shards(output_dir: str | os.PathLike, split: str) -> list[Path]:
    """The shard files of the finished ``split`` of a local folder, each checked against the size and sha256 its
    ``reinforce_config.json`` records; an unfinished, incomplete or corrupt split raises
    :class:`~hf_reinforce.errors.IncompleteOutputError` naming the file."""
    folder = Path(output_dir)
    if progress_path(folder, split).exists():
        raise IncompleteOutputError(
            f"split {split!r} of {folder} is unfinished ({STATE_DIR}/{split}.progress.json exists: a pass is running "
            "or was interrupted); rerun the same reinforce command to finish it"
        )
    if not (folder / CONFIG_FILE).is_file():
        raise IncompleteOutputError(
            f"{folder} has no {CONFIG_FILE}: it is not a finished hf_reinforce folder (a pass is unfinished, or the "
            "config was deleted); rerun the reinforce command to finish it"
        )
    record = read_record(folder / CONFIG_FILE)
    assert record is not None
    stats = (record.splits or {}).get(split)
    if stats is None:
        raise NotFoundError(
            f"{folder} has no finished split {split!r}; its splits are {sorted(record.splits or {})}: pass "
            "split=... (CLI: --split)"
        )
    if not stats.shards:
        raise IncompleteOutputError(
            f"{folder / CONFIG_FILE} records no shard hashes for split {split!r} (written by a version before "
            "hf_reinforce recorded them): its shards cannot be verified; rerun reinforce into it with overwrite=True"
        )
    for shard in stats.shards:
        problem = shard_problem(folder, shard)
        if problem is not None:
            raise IncompleteOutputError(
                f"split {split!r} of {folder}: {problem}; rerun the reinforce command to redo it"
            )
    return [folder / DATA_DIR / s.file for s in stats.shards]


def load_reinforced(
    repo_or_folder: str | os.PathLike, *, split: str = "train", revision: str | None = None, **kwargs: Any
) -> Any:
    """``datasets.load_dataset`` of a reinforced folder's shard files (absolute paths) or of a Hub repo.

    A local folder's split is loaded only when finished, from the shard list of its config, every file checked
    against its recorded size and sha256 (:func:`verified_shards`).

    A local folder is loaded through its explicit shard list: ``load_dataset(folder)`` caches by folder name and
    patterns, so two folders with the same name could share a stale cache.
    """
    import datasets

    path = local_folder(repo_or_folder)
    if path is not None:
        files = [str(p.resolve()) for p in verified_shards(path, split)]
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, **kwargs)
    return datasets.load_dataset(str(repo_or_folder), split=split, revision=revision, **kwargs)
