"""Publish reinforced datasets: ``push_to_hub`` (a folder or an in-process result) and ``save_folder``.

A reinforced folder goes up in one commit (``data/`` shards, ``reinforce_config.json``, the card): the Hub shows
either the previous state or the whole new one. Shards are uploaded before the commit and a rerun after an
interruption re-sends only the files the Hub does not have yet. Pushing a second split into an existing repo
keeps the other splits, merges their statistics into the config and re-renders the card.
Tokens come from huggingface_hub's usual sources and are never printed or written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import datasets
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from ..errors import ConfigError, IncompleteOutputError, NotFoundError, OutputConflictError
from ..storage.files import file_errors
from ..storage.paths import CARD_FILE, CONFIG_FILE, DATA_DIR, num_shards, shard_path
from ..storage.reader import load_record, verified_shards
from ..storage.record import RunRecord, SplitRecord, record_from_dataset
from ..storage.remote import check_reachable, hub_errors
from ..storage.resume import check_library_folder
from ..storage.shards import bytes_per_stored_augmentation, write_shard
from ..validation import check_int, check_split_name
from .card import build_card, write_record

P = ParamSpec("P")


def save_folder(
    dataset: datasets.Dataset, folder: str | os.PathLike, *, split: str = "train", rows_per_shard: int = 2048
) -> Path:
    """Write a dataset returned by :func:`hf_reinforce.reinforce` as a Hub-layout folder (shards, record, card).

    Args:
        dataset: a dataset returned by ``reinforce`` (it carries its run record).
        folder: the folder to write: empty, or one this library wrote.
        split: the split's name in the folder.
        rows_per_shard: rows per parquet shard.

    Returns:
        The folder's path.

    Raises:
        ConfigError: the dataset carries no run record, or a bad split name or shard size.
        OutputConflictError: ``folder`` holds files the library did not write.
        StorageError: the folder cannot be written (names the path and the fix).
    """
    check_split_name(split)
    check_int(rows_per_shard, "rows_per_shard", minimum=1)
    with file_errors(folder):
        return _save_folder(dataset, Path(folder), split, rows_per_shard)


def _save_folder(dataset: datasets.Dataset, folder: Path, split: str, rows_per_shard: int) -> Path:
    record = record_from_dataset(dataset)
    if record is None:
        raise ConfigError(
            "this dataset does not carry an hf_reinforce config: pass the dataset returned by reinforce()"
        )
    check_library_folder(folder)
    count = num_shards(len(dataset), rows_per_shard)
    table = dataset.with_format("arrow")
    source = (
        dataclasses.replace(record.source, split=split)
        if record.source
        else SplitRecord(split=split, num_rows=len(dataset))
    )
    skipped = sorted(source.skipped_rows or [])
    shards = []
    for s in range(count):
        rows = range(s * rows_per_shard, min(len(dataset), (s + 1) * rows_per_shard))
        # rows of the returned dataset (its source is not at hand): no source hash, as nothing resumes it
        shards.append(
            write_shard(
                table[rows.start : rows.stop],
                shard_path(folder, split, s, count),
                num_augmentations=record.num_augmentations,
                rows=rows,
                source_sha256=None,
            )
        )
    paths = [folder / DATA_DIR / shard.file for shard in shards]
    per_augmentation = bytes_per_stored_augmentation(paths, record.num_augmentations)
    stats = dataclasses.replace(
        source.with_stats(shards, bytes_per_augmentation=per_augmentation), skipped_rows=tuple(skipped)
    )
    write_record(folder, record.replace(source=None, splits={split: stats}))
    return folder


def _remote_record(api: HfApi, repo_id: str, revision: str | None) -> RunRecord | None:
    """The record already in the repo, or ``None`` when it holds none (a new repo or branch)."""
    try:
        return load_record(repo_id, revision=revision, token=api.token)
    except NotFoundError:
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
    in the repo and updates the card. Returns the URL of the commit. Rerun after an interruption to resume. Only
    the folder's own verified shards, its record and its card are uploaded.

    Args:
        dataset_or_folder: a finished reinforced folder, or a ``Dataset`` returned by :func:`~hf_reinforce.reinforce`
            (written to a temporary folder first).
        repo_id: the Hub dataset repo, ``user/name``.
        split: the split of a ``Dataset`` (a folder pushes all its finished splits).
        private: whether a repo created here is private (``None``: the Hub's default).
        revision: the branch to commit to.
        token: Hub token (default: ``huggingface_hub``'s usual sources; never printed or written).
        commit_message: the commit's message (default: one naming the splits).
        license: the card's license.

    Returns:
        The URL of the commit.

    Raises:
        IncompleteOutputError: the folder is unfinished, or a shard differs from its record (names the file).
        ConfigError: the folder's record is not a valid run record (names the field).
        OutputConflictError: the repo holds a dataset reinforced differently.
        HubError: offline mode, the Hub cannot be reached, or it refuses the token or the rights (names the repo).
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
    with file_errors(folder):
        local = load_record(folder)
        shards = [path for split_name in local.splits or {} for path in verified_shards(folder, split_name)]
    check_reachable(repo_id, "push to")
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
    operations: list[CommitOperationAdd | CommitOperationDelete] = [
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


__all__ = ["push_to_hub", "save_folder"]
