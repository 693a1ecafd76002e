"""Distillation loss from stored teacher top-k: pure functions, no training-framework code.

The stored top-k probabilities are the teacher ensemble's distribution at the teacher temperature chosen at
reinforcement time. ``temperature`` here softens only the student (``log_softmax(logits / T)``) and scales the
KL term by ``T**2`` (Hinton et al.) so gradient magnitudes stay comparable across temperatures. The stored
probabilities are never re-tempered: re-tempering (``p ** (1 / T)``, renormalized) is exact only for a full
distribution, and here it would also raise the uniform residual we invented for the classes outside the top-k
to a power, amplifying that approximation. With ``T`` equal to the temperature used at reinforcement this is
classic KD; the default ``T = 1`` (teacher at ``T = 1``) is what the paper uses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..storage.format import topk_residual
from ..validation import check_temperature

REDUCTIONS = ("mean", "sum", "none")


class LossParts(NamedTuple):
    """Total loss and its parts, reduced alike: ``kd`` is ``T**2``-scaled KL, ``ce`` unweighted (None without labels)."""

    loss: torch.Tensor
    kd: torch.Tensor
    ce: torch.Tensor | None


def check_hyperparameters(temperature: float, ce_weight: float, label_smoothing: float) -> None:
    """Raise :class:`~hf_reinforce.errors.ConfigError` (a ValueError) for a temperature that is not finite and
    positive (:func:`~hf_reinforce.validation.check_temperature`, the rule of the teachers' temperature too) or a
    weight/smoothing outside [0, 1]."""
    check_temperature(temperature)
    if not 0.0 <= ce_weight <= 1.0:
        raise ConfigError(f"ce_weight: expected a number in [0, 1], got {ce_weight}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing}")


def expand_topk(topk_ids: torch.Tensor, topk_probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Full (B, C) float32 teacher distribution: top-k where stored, residual ``1 - sum(top-k)`` spread evenly elsewhere.

    The residual is clamped at 0 (float16 sums can exceed 1 slightly); with K == C there is nowhere to spread it.
    """
    if topk_ids.ndim != 2 or topk_ids.shape != topk_probs.shape:
        raise ValueError(
            f"topk_ids and topk_probs must both be (batch, k); got {tuple(topk_ids.shape)} and {tuple(topk_probs.shape)}"
        )
    if topk_ids.dtype.is_floating_point or topk_ids.dtype == torch.bool:
        raise TypeError(f"topk_ids must be an integer tensor of class ids, got {topk_ids.dtype}")
    k = topk_ids.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"top-k size {k} must be between 1 and num_classes={num_classes}")
    if topk_ids.numel():
        low, high = (int(v) for v in torch.aminmax(topk_ids.long()))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"topk_ids hold class ids in [{low}, {high}], outside [0, {num_classes - 1}] (num_classes={num_classes})"
            )
    probs = topk_probs.float()
    residual = topk_residual(probs.sum(dim=1, keepdim=True))
    fill = residual / (num_classes - k) if k < num_classes else torch.zeros_like(residual)
    full = fill.expand(-1, num_classes).clone()
    return full.scatter_(1, topk_ids.long(), probs)


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` over the batch."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def distillation_loss_parts(
    student_logits: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_probs: torch.Tensor,
    *,
    temperature: float = 1.0,
    labels: torch.Tensor | None = None,
    ce_weight: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> LossParts:
    """``(1 - ce_weight) * KD + ce_weight * CE`` and its parts; see :func:`distillation_loss`."""
    check_hyperparameters(temperature, ce_weight, label_smoothing)
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    if student_logits.ndim != 2:
        raise ValueError(f"student_logits must be (batch, num_classes), got shape {tuple(student_logits.shape)}")
    batch, num_classes = student_logits.shape
    if topk_ids.shape[:1] != (batch,):
        raise ValueError(
            f"topk_ids shape {tuple(topk_ids.shape)} does not match student_logits shape {tuple(student_logits.shape)}"
        )
    if labels is None and ce_weight > 0:
        raise ValueError(f"ce_weight={ce_weight} needs hard labels; pass labels=")
    if labels is not None and labels.shape != (batch,):
        raise ValueError(f"labels must be shape ({batch},), got {tuple(labels.shape)}")

    logits = student_logits.float()
    teacher = expand_topk(topk_ids, topk_probs, num_classes)
    log_student = F.log_softmax(logits / temperature, dim=1)
    kd = (torch.xlogy(teacher, teacher) - teacher * log_student).sum(dim=1) * temperature**2
    ce = None
    loss = kd
    if labels is not None:
        ce = F.cross_entropy(logits, labels.long(), reduction="none", label_smoothing=label_smoothing)
        loss = (1.0 - ce_weight) * kd + ce_weight * ce
    return LossParts(
        _reduce(loss, reduction),
        _reduce(kd, reduction),
        None if ce is None else _reduce(ce, reduction),
    )


def distillation_loss(
    student_logits: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_probs: torch.Tensor,
    *,
    temperature: float = 1.0,
    labels: torch.Tensor | None = None,
    ce_weight: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """KL(teacher ‖ student) from stored top-k, ``T**2``-scaled, optionally mixed with hard-label cross-entropy.

    student_logits (B, C) any float dtype (computed in float32); topk_ids (B, K) int16/int32/int64;
    topk_probs (B, K) sorted top-k teacher probabilities; labels (B,) hard labels, needed when ce_weight > 0.
    Total = ``(1 - ce_weight) * T**2 * KL(teacher ‖ softmax(logits / T)) + ce_weight * CE(logits, labels)``;
    the CE uses untempered logits and ``label_smoothing``. The teacher is :func:`expand_topk`, never re-tempered.
    KD alone (``ce_weight=0``) suits teachers well above what the student reaches by plain training; ``ce_weight``
    ≈ 0.5 helps when they are only a few points above (the documentation's "Choose a policy").
    """
    return distillation_loss_parts(
        student_logits,
        topk_ids,
        topk_probs,
        temperature=temperature,
        labels=labels,
        ce_weight=ce_weight,
        label_smoothing=label_smoothing,
        reduction=reduction,
    ).loss
