"""The thread count of pixel work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run pixel work (decoding, rendering, normalizing small images) with one torch thread, then restore the count:
    small-image ops cost several times more CPU across threads (measured: 2.6 vs 14.9 CPU-ms per rrc+ra+re view in
    the pass; docs "Training step time" for the transform); pixels are identical either way. The pass renders in
    it when ``num_workers`` is 0 and the transform in the main process (workers run with one thread already); the
    thread count is process-wide, so code training in another Python thread at the same time would see it too."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


__all__ = ["single_thread"]
