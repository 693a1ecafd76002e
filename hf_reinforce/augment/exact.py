"""Float arithmetic whose bits do not depend on the CPU: a fused multiply-add computed exactly.

torch's vectorized kernels turn ``a + alpha * b`` (``add_(b, alpha=...)``, and the multiply-adds compilers contract
in ``grid_sample``) into one fused multiply-add (FMA, a single rounding) on AVX2/AVX-512 x86 and on aarch64, and
into a multiply and an add (two roundings) where the CPU has no FMA (``ATEN_CPU_CAPABILITY=default``). A last-bit
difference truncated or rounded to ``uint8`` becomes a one-level difference, and threshold ops amplify it (measured:
up to 203 levels). Every dataset reinforced so far was rendered with the fused result, so the render kernels compute
that result, exactly, with basic IEEE operations, which are correctly rounded on every CPU:

* :func:`fma` rounds ``a * b + c`` of ``float32`` arrays once: the product of two ``float32`` is exact in
  ``float64``, the sum's rounding error is recovered exactly (TwoSum), the ``float64`` sum is rounded to odd, and
  rounding that to ``float32`` is then correct (Boldo and Melquiond, 2008: 53 ≥ 24 + 2 bits). Rounding the ``float64``
  sum directly is already correct unless it lies exactly halfway between two ``float32`` (:func:`_doubtful`), so
  only those sums, rare, go through the error and the rounding to odd.
* :func:`fma_exact_in_float64`, where the operands are short enough that ``a * b + c`` is exact in ``float64`` (a
  pixel value times a ``float32`` weight plus a ``float32``, the bit count stated at the call site): one ``float64``
  multiply and add, rounded once to ``float32``, is the same fused result, cheaper.
* :func:`linspace`: ``torch.linspace``'s float32 values as its AVX2/AVX-512 kernel computes them.

numpy, not torch: the callers apply these to lookup tables, sampling plans (built once) and the few pixels near a
rounding boundary, where numpy's per-call cost is a fifth of torch's.
"""

from __future__ import annotations

import numpy as np


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` of ``float32`` arrays (broadcast) with one rounding to ``float32``: the FMA instruction's result."""
    product = np.multiply(a, b, dtype=np.float64)  # 24 + 24 significant bits: exact
    addend = np.asarray(c, dtype=np.float64)
    total = np.asarray(product + addend)
    doubtful = _doubtful(total)
    if doubtful.any():  # rare: a float64 sum exactly halfway between two float32
        total = np.where(doubtful, _round_to_odd(total, _two_sum_error(product, addend, total)), total)
    return total.astype(np.float32)


def fma_exact_in_float64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """:func:`fma` for operands whose exact ``a * b + c`` is a float64 (the caller counts the bits): one float64
    multiply and add, rounded once to float32. A third of :func:`fma`'s operations."""
    return (np.multiply(a, b, dtype=np.float64) + c).astype(np.float32)


def _doubtful(total: np.ndarray) -> np.ndarray:
    """Where rounding the float64 ``total`` to float32 may differ from rounding the exact sum: only where ``total``
    lies exactly halfway between two float32 (a float32 rounding boundary strictly between the exact sum and
    ``total`` would be a float64 nearer the exact sum), or below float32's normal range (fewer float32 bits there)."""
    bits = total.view(np.int64)
    halfway = (bits & _BELOW_FLOAT32) == _HALFWAY
    exponent = bits & _EXPONENT
    return halfway | ((exponent < _FLOAT32_NORMAL) & (total != 0))


_BELOW_FLOAT32 = (1 << 29) - 1  # the 29 fraction bits of a float64 that a float32 lacks
_HALFWAY = 1 << 28  # ... set to 1000...0: halfway between two float32
_EXPONENT = 0x7FF << 52
_FLOAT32_NORMAL = (1023 - 126) << 52  # float64 exponent field of 2**-126, float32's smallest normal


def _two_sum_error(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """The exact rounding error ``a + b - total`` of ``total = fl(a + b)`` (Knuth's TwoSum, six IEEE operations)."""
    b_virtual = total - a
    a_virtual = total - b_virtual
    return (a - a_virtual) + (b - b_virtual)


def _round_to_odd(total: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``total`` (round-to-nearest of ``total + error``) re-rounded to odd: an inexact result with an even last bit
    moves one unit toward the exact value, so that the last bit records that the sum was inexact."""
    bits = np.ascontiguousarray(total, dtype=np.float64).view(np.int64).copy()
    inexact_even = (error != 0) & ((bits & 1) == 0)
    toward = np.where((error > 0) == (total > 0), 1, -1)  # away from zero when the error has the sum's sign
    bits += np.where(inexact_even, toward, 0)
    return bits.view(np.float64)


def linspace(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32 as torch's AVX2/AVX-512 kernel computes it: the first half
    ``start + i·step``, the second ``end - (steps - 1 - i)·step``, each with one rounding (``step`` rounded once from
    ``(end - start) / (steps - 1)``). Without FMA the two roundings give other values: under
    ``ATEN_CPU_CAPABILITY=default`` 3084 of the 4191 RandAugment magnitude tables (2 to 128 bins) differ, measured."""
    first, last = np.float32(start), np.float32(end)
    if steps == 1:
        return np.array([first])
    step = np.float32((last - first) / np.float32(steps - 1))
    index = np.arange(steps)
    rising = fma(step, index.astype(np.float32), first)
    falling = fma(-step, (steps - 1 - index).astype(np.float32), last)
    return np.where(index < steps // 2, rising, falling)
