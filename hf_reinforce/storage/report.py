"""The reinforcement report: how the teacher ensemble sees the stored views, beside the un-augmented images.

Per split, two sets of the same figures: over every stored view (its stored top-k) and over every row's evaluation
view (:func:`hf_reinforce.augment.center_view`, the view the teachers' accuracy is measured on; one extra teacher
view per row, computed in the pass). A policy that destroys the object shows at once as low *agreement* on views
against high agreement on originals, before any student is trained.

* **agreement**: the fraction of views whose ensemble top-1 is the row's label (rows with a label >= 0 only;
  ``None`` without a label column);
* **top-1 probability**: the mean probability of the ensemble's top-1 class;
* **entropy**: the mean entropy in nats of the top-k *as the loss expands it* (:func:`hf_reinforce.expand_topk`:
  the stored top-k, the residual mass ``1 - sum(top-k)`` spread evenly over the other ``C - K`` classes), for the
  originals too, so both figures describe the distribution a student is trained towards.

Pure numpy: :func:`block_sums` turns one block's labels and top-k into :class:`ReportSums`, which add up over
blocks, shards and processes and give the :class:`SplitReport` that the run record stores.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..validation import check_int, check_mapping, check_number
from .format import topk_residual

SUM_FIELDS = ("count", "labelled", "agree", "top1", "entropy")


def topk_entropy(topk_probs: np.ndarray, num_classes: int) -> np.ndarray:
    """Entropy (nats) of each top-k ``(..., K)`` expanded with its residual spread evenly over ``C - K`` classes."""
    p = np.clip(np.asarray(topk_probs, dtype=np.float64), 0.0, None)
    k = p.shape[-1]
    own = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    residual = topk_residual(p.sum(axis=-1))
    if k >= num_classes:
        return own
    share = residual / (num_classes - k)
    return own - np.where(residual > 0, residual * np.log(np.where(share > 0, share, 1.0)), 0.0)


@dataclass(frozen=True)
class ReportSums:
    """Additive sums behind a :class:`Figures`: views, labelled views, views whose top-1 is the label, summed top-1
    probability and summed entropy."""

    count: int = 0
    labelled: int = 0
    agree: int = 0
    top1: float = 0.0
    entropy: float = 0.0

    def __add__(self, other: ReportSums) -> ReportSums:
        return ReportSums(*(getattr(self, f) + getattr(other, f) for f in SUM_FIELDS))

    def figures(self) -> Figures:
        """The means (``agreement`` is ``None`` when no view had a label)."""
        n = max(self.count, 1)
        agreement = round(self.agree / self.labelled, 6) if self.labelled else None
        return Figures(self.count, agreement, round(self.top1 / n, 6), round(self.entropy / n, 6))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSums:
        return cls(**{f: data.get(f, 0) for f in SUM_FIELDS})


def block_sums(labels: np.ndarray | None, topk_ids: np.ndarray, topk_probs: np.ndarray, num_classes: int) -> ReportSums:
    """The sums of one block: ``topk_ids``/``topk_probs`` ``(rows, views, K)`` (or ``(rows, K)``), ``labels``
    ``(rows,)`` or ``None``; a label < 0 counts as missing."""
    ids = np.asarray(topk_ids)
    probs = np.asarray(topk_probs, dtype=np.float64)
    if ids.ndim == 2:
        ids, probs = ids[:, None], probs[:, None]
    rows, views = ids.shape[:2]
    agree = labelled = 0
    if labels is not None and rows:
        y = np.asarray(labels, dtype=np.int64).reshape(rows, 1)
        known = np.broadcast_to(y >= 0, (rows, views))
        labelled = int(known.sum())
        agree = int(((ids[..., 0] == y) & known).sum())
    return ReportSums(
        count=rows * views,
        labelled=labelled,
        agree=agree,
        top1=float(probs[..., 0].sum()) if probs.size else 0.0,
        entropy=float(topk_entropy(probs, num_classes).sum()) if probs.size else 0.0,
    )


@dataclass(frozen=True)
class Figures:
    """Mean figures over ``count`` views (see module docstring)."""

    count: int
    agreement: float | None
    top1_probability: float
    entropy: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "report") -> Figures:
        """The figures in a record's JSON, each checked (``where`` names them in an error)."""
        check_mapping(data, where)
        for key in ("count", "top1_probability", "entropy"):
            if key not in data:
                raise ConfigError(f"{where}.{key}: missing from the reinforcement report")
        agreement = data.get("agreement")
        return cls(
            check_int(data["count"], f"{where}.count", minimum=0),
            None if agreement is None else check_number(agreement, f"{where}.agreement", minimum=0),
            check_number(data["top1_probability"], f"{where}.top1_probability", minimum=0),
            check_number(data["entropy"], f"{where}.entropy", minimum=0),
        )


@dataclass(frozen=True)
class SplitReport:
    """The report of one split: the figures on stored views and on the originals (evaluation views)."""

    views: Figures
    originals: Figures

    @classmethod
    def from_sums(cls, views: ReportSums, originals: ReportSums) -> SplitReport:
        return cls(views.figures(), originals.figures())

    def to_dict(self) -> dict[str, Any]:
        return {"views": self.views.to_dict(), "originals": self.originals.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "report") -> SplitReport:
        """The report in a record's JSON, checked (``where`` names it in an error)."""
        check_mapping(data, where)
        return cls(*(Figures.from_dict(data.get(side), f"{where}.{side}") for side in ("views", "originals")))

    def lines(self) -> list[str]:
        """The report as aligned text lines (the CLI prints them)."""

        def cells(f: Figures) -> str:
            agreement = "n/a (no labels)" if f.agreement is None else f"{100 * f.agreement:5.1f} %"
            return f"agreement {agreement}, top-1 probability {f.top1_probability:.3f}, entropy {f.entropy:.3f} nats"

        out = [
            f"  stored views ({self.views.count:,}): {cells(self.views)}",
            f"  originals    ({self.originals.count:,}): {cells(self.originals)}",
        ]
        if self.warning:
            out.append(f"  warning: {self.warning}")
        return out

    @property
    def warning(self) -> str | None:
        """A one-line warning when the views agree with the labels far less than the originals do."""
        v, o = self.views.agreement, self.originals.agreement
        if v is None or o is None or o - v < 0.25:
            return None
        return (
            f"the ensemble recognizes {100 * v:.0f} % of the stored views against {100 * o:.0f} % of the originals: "
            "the policy may destroy the object (try a milder one, e.g. 'crop' or rrc with a larger scale)"
        )


class ReportAccumulator:
    """Sums per block of a pass (views and originals), so a shard, a process or the whole pass can be summed."""

    def __init__(self) -> None:
        self.blocks: dict[int, tuple[ReportSums, ReportSums]] = {}

    def add(self, block: int, views: ReportSums, originals: ReportSums) -> None:
        self.blocks[block] = (views, originals)

    def sums(self, blocks: Any = None) -> tuple[ReportSums, ReportSums]:
        """Summed (views, originals) over ``blocks`` (default: every block added)."""
        chosen = self.blocks if blocks is None else [b for b in blocks if b in self.blocks]
        views, originals = ReportSums(), ReportSums()
        for b in chosen:
            views, originals = views + self.blocks[b][0], originals + self.blocks[b][1]
        return views, originals

    def report(self, blocks: Any = None) -> SplitReport:
        return SplitReport.from_sums(*self.sums(blocks))


REPORT_KEY = b"hf_reinforce_report"
"""Parquet schema-metadata key of a shard's report sums (so a resumed or multi-process run sums every shard)."""


def report_metadata(sums: tuple[ReportSums, ReportSums]) -> bytes:
    """A shard's (views, originals) sums as the JSON bytes stored under :data:`REPORT_KEY`."""
    return json.dumps({"views": sums[0].to_dict(), "originals": sums[1].to_dict()}).encode()


def read_report_metadata(metadata: Mapping[bytes, bytes]) -> tuple[ReportSums, ReportSums]:
    """The (views, originals) sums of a shard's schema metadata; zero sums for a shard written without them."""
    if REPORT_KEY not in metadata:
        return ReportSums(), ReportSums()
    data = json.loads(metadata[REPORT_KEY])
    return ReportSums.from_dict(data["views"]), ReportSums.from_dict(data["originals"])


__all__ = [
    "REPORT_KEY",
    "read_report_metadata",
    "report_metadata",
    "Figures",
    "ReportAccumulator",
    "ReportSums",
    "SplitReport",
    "block_sums",
    "topk_entropy",
]
