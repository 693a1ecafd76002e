"""distillation_loss / expand_topk against a float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_reinforce.distill import distillation_loss, distillation_loss_parts, expand_topk


def reference_teacher(ids: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k where stored, residual mass spread evenly over the other classes (float64)."""
    probs = probs.astype(np.float64)
    full = np.zeros((len(ids), num_classes))
    for row, (row_ids, row_probs) in enumerate(zip(ids, probs)):
        others = num_classes - len(row_ids)
        if others:
            full[row] = max(1.0 - row_probs.sum(), 0.0) / others
        full[row, row_ids] = row_probs
    return full


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def reference_loss(
    logits,
    ids,
    probs,
    *,
    temperature=1.0,
    labels=None,
    ce_weight=0.0,
    label_smoothing=0.0,
):
    """Per-sample (total, kd, ce) by hand in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    num_classes = logits.shape[1]
    teacher = reference_teacher(np.asarray(ids), np.asarray(probs), num_classes)
    log_q = log_softmax(logits / temperature)
    log_p = np.log(np.where(teacher > 0, teacher, 1.0))
    kd = (teacher * (log_p - log_q)).sum(axis=1) * temperature**2
    if labels is None:
        return kd, kd, None
    log_hard = log_softmax(logits)
    nll = -log_hard[np.arange(len(labels)), labels]
    ce = (1 - label_smoothing) * nll - label_smoothing * log_hard.mean(axis=1)
    return (1 - ce_weight) * kd + ce_weight * ce, kd, ce


def make_batch(batch: int, num_classes: int, k: int, seed: int = 0):
    """Random logits, a sorted teacher top-k (sum < 1 unless k == C) and hard labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(batch, num_classes)).astype(np.float32)
    teacher = np.exp(rng.normal(scale=2.0, size=(batch, num_classes)))
    teacher /= teacher.sum(axis=1, keepdims=True)
    ids = np.argsort(-teacher, axis=1)[:, :k]
    probs = np.take_along_axis(teacher, ids, axis=1).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch)
    return logits, ids, probs, labels


def test_expand_topk_spreads_residual_evenly():
    full = expand_topk(torch.tensor([[3, 1]]), torch.tensor([[0.5, 0.3]]), num_classes=5)
    expected = torch.tensor([[0.2 / 3, 0.3, 0.2 / 3, 0.5, 0.2 / 3]])
    assert full.dtype == torch.float32
    torch.testing.assert_close(full, expected)
    torch.testing.assert_close(full.sum(dim=1), torch.tensor([1.0]))


def test_expand_topk_full_k_and_sum_over_one():
    full_k = expand_topk(torch.tensor([[2, 0, 1]]), torch.tensor([[0.5, 0.3, 0.2]]), num_classes=3)
    torch.testing.assert_close(full_k, torch.tensor([[0.3, 0.2, 0.5]]))
    over = torch.tensor([[0.6, 0.41]], dtype=torch.float16)
    clamped = expand_topk(torch.tensor([[0, 1]], dtype=torch.int16), over, num_classes=4)
    assert clamped[0, 2:].tolist() == [0.0, 0.0]
    assert torch.isfinite(clamped).all()


@pytest.mark.parametrize("id_dtype", [torch.int16, torch.int32, torch.int64])
def test_expand_topk_accepts_integer_id_dtypes(id_dtype):
    _, ids, probs, _ = make_batch(4, 7, 3)
    full = expand_topk(torch.from_numpy(ids).to(id_dtype), torch.from_numpy(probs), 7)
    np.testing.assert_allclose(full.numpy(), reference_teacher(ids, probs, 7), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "k, temperature, ce_weight, label_smoothing",
    [
        (1, 1.0, 0.0, 0.0),
        (3, 1.0, 0.0, 0.0),
        (3, 4.0, 0.0, 0.0),
        (10, 2.0, 0.0, 0.0),
        (3, 1.0, 0.3, 0.1),
        (10, 3.0, 1.0, 0.2),
    ],
)
def test_loss_matches_float64_reference(k, temperature, ce_weight, label_smoothing):
    logits, ids, probs, labels = make_batch(6, 10, k)
    parts = distillation_loss_parts(
        torch.from_numpy(logits),
        torch.from_numpy(ids),
        torch.from_numpy(probs),
        temperature=temperature,
        labels=torch.from_numpy(labels),
        ce_weight=ce_weight,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    total, kd, ce = reference_loss(
        logits,
        ids,
        probs,
        temperature=temperature,
        labels=labels,
        ce_weight=ce_weight,
        label_smoothing=label_smoothing,
    )
    for got, want in ((parts.loss, total), (parts.kd, kd), (parts.ce, ce)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_reductions_and_no_labels():
    logits, ids, probs, _ = make_batch(5, 8, 2)
    args = torch.from_numpy(logits), torch.from_numpy(ids), torch.from_numpy(probs)
    per_sample = distillation_loss(*args, reduction="none")
    torch.testing.assert_close(distillation_loss(*args), per_sample.mean())
    torch.testing.assert_close(distillation_loss(*args, reduction="sum"), per_sample.sum())
    assert distillation_loss_parts(*args).ce is None
    np.testing.assert_allclose(per_sample.numpy(), reference_loss(logits, ids, probs)[0], rtol=1e-5, atol=1e-6)


def test_float16_inputs_are_computed_in_float32():
    logits, ids, probs, labels = make_batch(4, 12, 5)
    logits16, probs16 = logits.astype(np.float16), probs.astype(np.float16)
    loss = distillation_loss(
        torch.from_numpy(logits16),
        torch.from_numpy(ids).short(),
        torch.from_numpy(probs16),
        labels=torch.from_numpy(labels),
        ce_weight=0.5,
        reduction="none",
    )
    assert loss.dtype == torch.float32
    want = reference_loss(logits16, ids, probs16, labels=labels, ce_weight=0.5)[0]
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5, atol=1e-6)


def test_probabilities_summing_over_one_clamp_the_residual():
    logits = np.array([[1.0, -1.0, 0.5, 2.0]], dtype=np.float32)
    ids, probs = np.array([[3, 0]]), np.array([[0.6, 0.41]], dtype=np.float16)
    loss = distillation_loss(torch.from_numpy(logits), torch.from_numpy(ids), torch.from_numpy(probs))
    want = reference_loss(logits, ids, probs)[0]
    assert torch.isfinite(loss)
    np.testing.assert_allclose(loss.numpy(), want[0], rtol=1e-5)


def test_loss_is_zero_at_the_teacher():
    _, ids, probs, _ = make_batch(3, 6, 6)
    teacher = expand_topk(torch.from_numpy(ids), torch.from_numpy(probs), 6)
    loss = distillation_loss(teacher.log(), torch.from_numpy(ids), torch.from_numpy(probs))
    assert abs(float(loss)) < 1e-6


@pytest.mark.parametrize("k, temperature", [(1, 1.0), (4, 2.0), (9, 0.5)])
def test_gradient_is_finite_and_equals_t_times_q_minus_p(k, temperature):
    logits, ids, probs, _ = make_batch(3, 9, k)
    probs = probs / probs.sum(axis=1, keepdims=True) if k == 9 else probs
    student = torch.tensor(logits, requires_grad=True)
    distillation_loss(
        student,
        torch.from_numpy(ids),
        torch.from_numpy(probs),
        temperature=temperature,
        reduction="sum",
    ).backward()
    teacher = reference_teacher(ids, probs, 9)
    q = np.exp(log_softmax(logits / temperature))
    assert torch.isfinite(student.grad).all()
    np.testing.assert_allclose(student.grad.numpy(), temperature * (q - teacher), rtol=1e-4, atol=1e-6)


def test_gradient_finite_for_extreme_float16_logits():
    logits = torch.tensor([[6e4, -6e4, 0.0, 1.0]], dtype=torch.float16, requires_grad=True)
    loss = distillation_loss(
        logits,
        torch.tensor([[1, 2]]),
        torch.tensor([[0.9, 0.1]]),
        labels=torch.tensor([1]),
        ce_weight=0.5,
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"topk_probs": torch.rand(2, 4)}, ValueError, r"\(2, 3\) and \(2, 4\)"),
        (
            {"topk_ids": torch.tensor([[0, 1, 5], [0, 1, 2]])},
            ValueError,
            r"\[0, 5\].*num_classes=5",
        ),
        ({"topk_ids": torch.tensor([[0, 1, -1], [0, 1, 2]])}, ValueError, r"\[-1, 2\]"),
        ({"topk_ids": torch.zeros(2, 3)}, TypeError, "integer tensor"),
        (
            {
                "topk_ids": torch.zeros(3, 3, dtype=torch.long),
                "topk_probs": torch.rand(3, 3),
            },
            ValueError,
            r"\(3, 3\).*\(2, 5\)",
        ),
        (
            {"student_logits": torch.randn(2, 2)},
            ValueError,
            "top-k size 3 must be between 1 and num_classes=2",
        ),
        ({"ce_weight": 0.5}, ValueError, "needs hard labels"),
        (
            {"labels": torch.tensor([1, 2, 3])},
            ValueError,
            r"labels must be shape \(2,\)",
        ),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"ce_weight": 1.5, "labels": torch.tensor([0, 1])}, ValueError, "ce_weight"),
        ({"reduction": "avg"}, ValueError, "reduction"),
    ],
)
def test_clear_errors(kwargs, error, match):
    args = {
        "student_logits": torch.randn(2, 5),
        "topk_ids": torch.tensor([[0, 1, 2], [3, 4, 0]]),
        "topk_probs": torch.rand(2, 3),
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        distillation_loss(
            args.pop("student_logits"),
            args.pop("topk_ids"),
            args.pop("topk_probs"),
            **args,
        )
