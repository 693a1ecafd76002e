"""Publish and join reinforced datasets: ``push_to_hub``, ``save_folder``, ``attach``.

A reinforced folder goes up in one commit (``data/`` shards, ``reinforce_config.json``, the card): the Hub shows
either the previous state or the whole new one. Shards are uploaded before the commit and a rerun after an
interruption re-sends only the files the Hub does not have yet. Pushing a second split into an existing repo
keeps the other splits, merges their statistics into the config and re-renders the card.
Tokens come from huggingface_hub's usual sources and are never printed or written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec

import datasets
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from .card import build_card, write_card
from .errors import (
    ConfigError,
    HubError,
    IncompleteOutputError,
    MissingColumnError,
    NotFoundError,
    OutputConflictError,
)
from .evidence import check_library_folder
from .format import PARQUET_ROW_GROUP_ROWS, ROW_INDEX
from .layout import (
    CARD_FILE,
    CONFIG_FILE,
    DATA_DIR,
    bytes_per_stored_augmentation,
    file_sha256,
    load_config,
    num_shards,
    shard_path,
    verified_shards,
    write_parquet_atomic,
    write_record,
)
from .record import RunRecord, ShardRecord, SplitRecord, attach_record, record_from_dataset
from .shared import check_split

P = ParamSpec("P")


def save_folder(
    dataset: datasets.Dataset, folder: str | os.PathLike, *, split: str = "train", rows_per_shard: int = 2048
) -> Path:
    """Write a dataset returned by :func:`hf_reinforce.reinforce` as a Hub-layout folder (shards, record, card)."""
    record = record_from_dataset(dataset)
    if record is None:
        raise ConfigError(
            "this dataset does not carry an hf_reinforce config: pass the dataset returned by reinforce()"
        )
    folder = Path(folder)
    check_library_folder(folder)
    count = num_shards(len(dataset), rows_per_shard)
    table = dataset.with_format("arrow")
    from datasets.table import embed_table_storage

    source = dataclasses.replace(record.source, split=split) if record.source else SplitRecord(split=split)
    skipped = sorted(source.skipped_rows or [])
    shards = []
    for s in range(count):
        part = embed_table_storage(table[s * rows_per_shard : (s + 1) * rows_per_shard])
        path = shard_path(folder, split, s, count)
        size = write_parquet_atomic(
            part.combine_chunks().to_batches(max_chunksize=PARQUET_ROW_GROUP_ROWS), part.schema, path
        )
        rows = (s * rows_per_shard, min(len(dataset), (s + 1) * rows_per_shard))
        # rows of the returned dataset (its source is not at hand): no source hash, as nothing resumes it
        shards.append(ShardRecord(path.name, rows, part.num_rows, size, file_sha256(path), None))
    paths = [folder / DATA_DIR / shard.file for shard in shards]
    per_augmentation = bytes_per_stored_augmentation(paths, record.num_augmentations)
    stats = dataclasses.replace(
        source.with_stats(shards, bytes_per_augmentation=per_augmentation), skipped_rows=tuple(skipped)
    )
    final = record.replace(source=None, splits={split: stats})
    write_record(final, folder / CONFIG_FILE)
    write_card(folder, final)
    return folder


def _remote_record(api: HfApi, repo_id: str, revision: str | None) -> RunRecord | None:
    try:
        return load_config(repo_id, revision=revision, token=api.token)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return None


def _merge(remote: RunRecord | None, local: RunRecord, repo_id: str) -> RunRecord:
    """The local record with the remote repo's other splits kept; refuse a repo reinforced differently
    (:meth:`RunRecord.reinforcement_differences`: a reinforcement-only split may join a full one), unless the local
    splits are the remote ones extended (:func:`~hf_reinforce.extend`), all of them: they replace the remote."""
    if remote is None:
        return local
    differing = remote.reinforcement_differences(local)
    replaced = differing == ["num_augmentations"] and _extends(local, remote)  # every remote split, grown
    if differing and not replaced:
        hint = ""
        if differing == ["num_augmentations"]:
            hint = (
                f"; to publish an extension of it, extend every split it holds ({sorted(remote.splits or {})}) "
                f"from N={remote.num_augmentations} with hfr.extend and push them together"
            )
        raise OutputConflictError(
            f"{repo_id} already holds a dataset reinforced with a different config (differs in: {', '.join(differing)})"
            f"{hint}; push to another repo or branch (revision=...)"
        )
    return local.replace(
        splits=local.splits if replaced else {**(remote.splits or {}), **(local.splits or {})},
        accuracy=local.accuracy if local.accuracy is not None else remote.accuracy,
        license=local.license if local.license is not None else remote.license,
    )


def _extends(local: RunRecord, remote: RunRecord) -> bool:
    """Whether every split of ``remote`` is in ``local``, grown from ``remote``'s N."""
    ours = local.splits or {}
    return all(
        name in ours and remote.num_augmentations in (ours[name].extended_from or ()) for name in remote.splits or {}
    )


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn the Hub's refusals into errors a user can act on: 401/403 → :class:`HubError`, 404 →
    :class:`NotFoundError`, each naming the repo and the fix; other HTTP errors pass through unchanged."""
    try:
        yield
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        server = str(error).splitlines()[0]
        if status == 401:
            raise HubError(
                f"the Hub refused the token for {repo_id} (401: missing, invalid or expired): log in with "
                f"`hf auth login` or set HF_TOKEN to a token with write access ({server})"
            ) from error
        if status == 403:
            raise HubError(
                f"no rights to write to {repo_id} (403): push to your own namespace or an organization you can write "
                f"to, with a token that has write permission ({server})"
            ) from error
        if status == 404:
            raise NotFoundError(
                f"{repo_id} or its branch was not found on the Hub (404): check the repo id and --revision ({server})"
            ) from error
        raise


def _with_hub_errors(push: Callable[P, str]) -> Callable[P, str]:
    """``push(dataset_or_folder, repo_id, ...)`` with the Hub's refusals turned into actionable errors
    (:func:`hub_errors`); the signature is kept for type checkers."""

    @functools.wraps(push)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        with hub_errors(str(args[1] if len(args) > 1 else kwargs["repo_id"])):
            return push(*args, **kwargs)

    return wrapper


@_with_hub_errors
def push_to_hub(
    dataset_or_folder: datasets.Dataset | str | os.PathLike,
    repo_id: str,
    *,
    split: str = "train",
    private: bool | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    license: str | None = None,
) -> str:
    """Upload a reinforced folder (or a dataset returned by ``reinforce``) to the Hub dataset repo ``repo_id``.

    Creates the repo (``private`` as asked) and the branch ``revision`` when missing; keeps other splits already
    in the repo and updates the card. Returns the URL of the commit. Rerun after an interruption to resume.
    """
    if isinstance(dataset_or_folder, datasets.Dataset):
        with tempfile.TemporaryDirectory(prefix="hf-reinforce-push-") as tmp:
            folder = save_folder(dataset_or_folder, tmp, split=split)
            return push_to_hub(
                folder,
                repo_id,
                private=private,
                revision=revision,
                token=token,
                commit_message=commit_message,
                license=license,
            )
    folder = Path(dataset_or_folder)
    if not (folder / CONFIG_FILE).exists():
        raise IncompleteOutputError(
            f"{folder} is not a finished reinforcement (no {CONFIG_FILE}: a run is unfinished, or it is not an "
            "hf_reinforce folder): finish it first"
        )
    local = load_config(folder)
    shards = [path for split_name in local.splits or {} for path in verified_shards(folder, split_name)]
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    if revision is not None:
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    merged = _merge(_remote_record(api, repo_id, revision), local, repo_id)
    if license:
        merged = merged.replace(license=license)
    uploads = {f"{DATA_DIR}/{p.name}" for p in shards}
    pushed_splits = tuple(f"{DATA_DIR}/{s}-" for s in local.splits or {})
    stale = [
        f
        for f in api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
        if f.startswith(pushed_splits) and f not in uploads
    ]
    card = build_card(merged, repo_id=repo_id)
    operations = [
        *(CommitOperationAdd(path_in_repo=f"{DATA_DIR}/{p.name}", path_or_fileobj=str(p)) for p in shards),
        *(CommitOperationDelete(path_in_repo=f) for f in stale),
        CommitOperationAdd(
            path_in_repo=CONFIG_FILE,
            path_or_fileobj=(json.dumps(merged.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
        ),
        CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(card).encode()),
    ]
    info = api.create_commit(
        repo_id,
        operations,
        repo_type="dataset",
        revision=revision,
        commit_message=commit_message
        or f"Upload reinforced split(s) {', '.join(local.splits or {})} with hf_reinforce",
    )
    return str(info.commit_url)


def attach(
    reinforcement: datasets.Dataset,
    source: datasets.Dataset,
    *,
    config: RunRecord | Mapping[str, Any] | str | os.PathLike | None = None,
    split: str | None = None,
    verify_fingerprint: bool = True,
) -> datasets.Dataset:
    """Join a reinforcement-only dataset (``row_index`` + reinforcement columns) back onto its source rows.

    Checks the source's row count and — where recorded — its fingerprint and key column against the
    reinforcement's run record, with an error naming what differs. ``config`` is the reinforcement's record
    (a :class:`RunRecord`, its JSON dict, a folder or repo id); by default the one carried by ``reinforcement``.
    """
    check_split(reinforcement, "attach (reinforcement)")
    check_split(source, "attach (source)")
    if ROW_INDEX not in reinforcement.column_names:
        raise MissingColumnError(f"reinforcement has no {ROW_INDEX!r} column (columns: {reinforcement.column_names})")
    record = _attach_record(reinforcement, config)
    recorded = record.split(split) or SplitRecord()
    if recorded.num_rows is not None and recorded.num_rows != len(source):
        raise ConfigError(
            f"source has {len(source)} rows but the reinforcement was made from {recorded.num_rows} rows of "
            f"{recorded.id or 'its source'} (split {recorded.split!r}): attach the same split and revision"
        )
    if verify_fingerprint and recorded.fingerprint and recorded.fingerprint != source._fingerprint:
        raise ConfigError(
            f"source fingerprint {source._fingerprint} differs from the one reinforced ({recorded.fingerprint}, "
            f"revision {recorded.revision}): the source data changed or was loaded differently; "
            "pass verify_fingerprint=False if you are sure the rows are the same"
        )
    rows = source.select(list(reinforcement[ROW_INDEX]))
    key = record.key_column
    if key and key in reinforcement.column_names:
        if list(rows[key]) != list(reinforcement[key]):
            raise ConfigError(f"key column {key!r} of the source does not match the reinforcement's row by row")
        reinforcement = reinforcement.remove_columns(key)
    clash = sorted(set(rows.column_names) & set(reinforcement.column_names))
    if clash:
        raise ConfigError(f"source already has columns {clash} of the reinforcement")
    joined = datasets.concatenate_datasets([rows.flatten_indices(), reinforcement], axis=1)
    joined.info.description = source.info.description  # the user's, not twice over
    return attach_record(joined, record)


def _attach_record(reinforcement: datasets.Dataset, config: Any) -> RunRecord:
    if isinstance(config, RunRecord):
        return config
    if isinstance(config, Mapping):
        return RunRecord.from_dict(config)
    record = load_config(config) if config else record_from_dataset(reinforcement)
    if record is None:
        raise ConfigError("attach needs the reinforcement's config: pass config=<folder, repo id or dict>")
    return record
