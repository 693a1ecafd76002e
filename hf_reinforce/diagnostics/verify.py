"""``verify_replay``: does this machine replay a reinforced dataset's stored augmentations exactly?

From schema 2 on, every row carries a replay fingerprint: a 64-bit hash of the pixels of its stored augmentation
:data:`~hf_reinforce.storage.format.FINGERPRINT_AUGMENTATION` as the teachers saw it (the first teacher's resolution
and interpolation). Replaying sampled rows here and comparing fingerprints says whether replay is exact on this
machine. A hash says *whether* pixels differ, not by how much: views saved on one machine (``save=``) and compared on
another (``reference=``) give the largest pixel difference, for datasets of any schema.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ..augment import environment_changes, rendering_environment
from ..distill import ReinforcedTransform
from ..errors import ConfigError, MissingColumnError
from ..storage.format import FINGERPRINT, FINGERPRINT_AUGMENTATION, ROW_INDEX, replay_fingerprint
from ..storage.reader import load_record, load_reinforced
from ..storage.record import RunRecord, record_from_dataset
from ..validation import check_index, check_int, check_split


@dataclasses.dataclass(frozen=True)
class ReplayCheck:
    """What :func:`verify_replay` found: how many sampled rows replay to their stored fingerprint on this machine,
    which do not, both rendering environments, and (with reference views) the largest pixel difference."""

    split: str
    local: Mapping[str, str]
    """This machine's rendering environment."""
    recorded: Mapping[str, str] | None
    """The rendering environment of the machine that wrote the split (``None`` for schema 1)."""
    checked: int
    """Rows whose replay was compared with their stored fingerprint (0 for a dataset of schema 1)."""
    exact: int
    mismatched_rows: tuple[int, ...]
    """``row_index`` of every checked row whose replay differs from its fingerprint."""
    compared_views: int = 0
    """Views compared pixel by pixel with reference views saved on another machine."""
    differing_views: int = 0
    max_pixel_difference: int | None = None
    """The largest absolute difference of a pixel value against the reference views (``None`` without them)."""

    @property
    def ok(self) -> bool:
        """Every checked row and every compared view replays exactly (and something was checked)."""
        return (self.checked or self.compared_views) > 0 and self.exact == self.checked and not self.differing_views

    def __str__(self) -> str:
        lines = [f"replay check of split {self.split!r} on this machine:"]
        if self.checked:
            lines.append(f"  {self.exact} of {self.checked} sampled rows replay exactly (stored fingerprints)")
            if self.mismatched_rows:
                shown = ", ".join(map(str, self.mismatched_rows[:10]))
                more = ", ..." if len(self.mismatched_rows) > 10 else ""
                lines.append(f"  rows that differ (row_index): {shown}{more}")
        else:
            lines.append("  the rows carry no replay fingerprint (schema 1): compare views saved on the machine that")
            lines.append("  wrote the data instead (save= there, reference= here; CLI --save / --reference)")
        if self.compared_views:
            lines.append(
                f"  against the reference views: {self.compared_views - self.differing_views} of "
                f"{self.compared_views} identical, largest pixel difference {self.max_pixel_difference}"
            )
        lines.append(f"  written with: {_environment(self.recorded)}")
        lines.append(f"  this machine: {_environment(self.local)}")
        if self.recorded is not None:
            changes = environment_changes(self.recorded, self.local)
            lines.append(f"  differences:  {', '.join(changes) if changes else 'none'}")
        return "\n".join(lines)


def _environment(environment: Mapping[str, str] | None) -> str:
    if environment is None:
        return "not recorded (schema 1)"
    return ", ".join(f"{key} {value}" for key, value in environment.items())


def verify_replay(
    source: datasets.Dataset | str | os.PathLike,
    *,
    rows: int | Sequence[int] = 64,
    split: str = "train",
    record: RunRecord | str | os.PathLike | None = None,
    revision: str | None = None,
    seed: int = 0,
    save: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
) -> ReplayCheck:
    """Replay sampled rows of a reinforced dataset on this machine and compare them with what was stored.

    Args:
        source: a reinforced folder, a Hub dataset repo id, or a ``datasets.Dataset`` of a reinforced split (one
            returned by ``reinforce`` carries its record; one from ``load_dataset`` needs ``record=``).
        rows: how many rows to sample (deterministically, from ``seed``), or the positions of the rows to check.
        split: the split of a folder or repo.
        record: the run record, its folder or repo id, when ``source`` is a dataset that does not carry it.
        revision: branch, tag or commit of a Hub repo.
        seed: the seed of the row sample.
        save: write the replayed views (uint8, with their ``row_index``) to this ``.npz`` file, to compare on
            another machine with ``reference=``.
        reference: an ``.npz`` file written with ``save=`` on another machine: views of the same rows are compared
            pixel by pixel, which gives the largest pixel difference.

    Returns:
        A :class:`ReplayCheck` (``print`` it for a report; ``check.ok`` says whether everything replayed exactly).

    Raises:
        ConfigError: the dataset carries no record and none was given, or ``rows`` is out of range.
        MissingColumnError: the dataset holds no images (a reinforcement-only split: join it to its source with
            ``hfr.attach`` first).

    Example:
        >>> check = hfr.verify_replay("cifar10-plus", rows=32)  # doctest: +SKIP
        >>> print(check)  # doctest: +SKIP
    """
    dataset, record = _load(source, split, revision, record)
    if record.image_column not in dataset.column_names:
        raise MissingColumnError(
            f"the split has no image column {record.image_column!r} (a reinforcement-only dataset?): join it to its "
            "source rows with hfr.attach(...) and verify that"
        )
    positions = _positions(rows, len(dataset), seed)
    views, indices = _replay(dataset, record, positions)
    stats = record.split(split)
    found: dict[str, Any] = {"split": split, "recorded": stats.rendering if stats is not None else None}
    found.update(_fingerprints(dataset, positions, views, indices))
    if save is not None:
        np.savez_compressed(Path(save), row_index=np.asarray(indices, np.int64), views=torch.stack(views).numpy())
    if reference is not None:
        found.update(_compare(views, indices, Path(reference)))
    return ReplayCheck(local=rendering_environment(), **found)


def _load(
    source: datasets.Dataset | str | os.PathLike, split: str, revision: str | None, given: Any
) -> tuple[datasets.Dataset, RunRecord]:
    """The split to check and its run record (from the dataset, ``given``, or the folder or repo)."""
    if isinstance(given, (str, os.PathLike)):
        given = load_record(given, revision=revision)
    if isinstance(source, (str, os.PathLike)):
        record = given or load_record(source, revision=revision)
        return load_reinforced(source, split=split, revision=revision), record
    check_split(source, "verify_replay")
    record = given or record_from_dataset(source)
    if record is None:
        raise ConfigError(
            "this dataset does not carry its run record (load_dataset drops it): pass record=<its folder or repo id>, "
            "or give the folder or repo id instead of the dataset"
        )
    return source, record


def _positions(rows: int | Sequence[int], size: int, seed: int) -> list[int]:
    """The positions to check: ``rows`` of them drawn without replacement (sorted), or the positions given."""
    if isinstance(rows, int):
        count = min(check_int(rows, "rows", minimum=1), size)
        return sorted(np.random.default_rng(seed).choice(size, size=count, replace=False).tolist())
    return [check_index(r, "rows[]", size) for r in rows]


def _replay(dataset: datasets.Dataset, record: RunRecord, positions: list[int]) -> tuple[list[torch.Tensor], list[int]]:
    """The fingerprinted augmentation of each row at ``positions``, replayed at the first teacher's view."""
    teacher = record.teacher
    transform = ReinforcedTransform(record, dataset=dataset if record.policy.mix is not None else None)
    rows = dataset.with_format(None)
    views, indices = [], []
    for position in positions:
        row = rows[position]
        views.append(transform.replay(row, FINGERPRINT_AUGMENTATION, teacher.resolution, teacher.interpolation))
        indices.append(int(row[ROW_INDEX]))
    return views, indices


def _fingerprints(
    dataset: datasets.Dataset, positions: list[int], views: list[torch.Tensor], indices: list[int]
) -> dict[str, Any]:
    """How many of the replayed ``views`` match their rows' stored fingerprints (none checked in schema 1)."""
    if FINGERPRINT not in dataset.column_names:
        return {"checked": 0, "exact": 0, "mismatched_rows": ()}
    stored = dataset.select_columns([FINGERPRINT]).with_format("arrow")[positions].column(0).to_pylist()
    mismatched = tuple(r for r, view, fp in zip(indices, views, stored) if replay_fingerprint(view) != int(fp))
    return {"checked": len(positions), "exact": len(positions) - len(mismatched), "mismatched_rows": mismatched}


def _compare(views: list[torch.Tensor], indices: list[int], reference: Path) -> dict[str, Any]:
    """Pixel differences of ``views`` against the views of the same rows in ``reference`` (``save=`` elsewhere)."""
    with np.load(reference) as data:
        theirs = dict(zip(data["row_index"].tolist(), data["views"]))
    common = [(view, theirs[r]) for view, r in zip(views, indices) if r in theirs]
    if not common:
        raise ConfigError(f"reference={reference}: it holds none of the checked rows; check the same rows (rows=...)")
    differences = [int(np.abs(view.numpy().astype(np.int16) - other.astype(np.int16)).max()) for view, other in common]
    return {
        "compared_views": len(common),
        "differing_views": sum(d > 0 for d in differences),
        "max_pixel_difference": max(differences),
    }


__all__ = ["ReplayCheck", "verify_replay"]
