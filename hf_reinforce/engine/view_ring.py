"""Reused shared-memory view buffers between the render workers and the main process.

The DataLoader moves every tensor a worker returns into fresh shared memory: the worker copies its views there
(and page-faults the new pages in), the main process maps them anew and reads them cache-cold (page-faulting
again). A :class:`ViewRing` gives each worker a few buffers per teacher view, made once, before the workers start,
and mapped in every process: a worker renders, copies its views into its next buffer and returns only a
:class:`Ticket`; the main process reads the views in place and releases the buffer when it asks for the next chunk.

Worker ``w`` fills its buffers in turn: its ``k``-th task writes slot ``k % slots`` once the main process has
released its task ``k - slots`` (a semaphore per worker counts its free slots; the main process takes each
worker's chunks in the order that worker rendered them). A stamp per slot holds the task count it was written
for (-1 while it is being written) and is checked after the views were used, so a slot written too early is an
error, never wrong data.
"""

from __future__ import annotations

import multiprocessing.context
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from ..teachers import ViewSpec


class Ticket(NamedTuple):
    """Where a worker left one task's views: its worker, slot, task count and number of views."""

    worker: int
    slot: int
    turn: int
    views: int


class ViewRing:
    """``slots`` reused buffers per worker and teacher view, each holding up to ``views_per_task`` uint8 views."""

    _WAIT_SECONDS = 5.0
    """How long a worker waits for a free slot before checking that the main process still exists."""

    def __init__(
        self,
        view_specs: Sequence[ViewSpec],
        views_per_task: int,
        workers: int,
        slots: int,
        context: multiprocessing.context.BaseContext,
    ) -> None:
        self.buffers = {
            spec: torch.empty(
                (workers, slots, views_per_task, 3, spec.resolution, spec.resolution), dtype=torch.uint8
            ).share_memory_()
            for spec in view_specs
        }
        self.stamps = torch.full((workers, slots), -1, dtype=torch.int64).share_memory_()
        self.free = [context.Semaphore(slots) for _ in range(workers)]
        self.slots = slots
        self._parent: int | None = None  # in each worker (its own copy of the ring): its parent at its first task
        self._written = 0  # and the tasks it has written

    def put(self, worker: int, views: Mapping[ViewSpec, torch.Tensor]) -> Ticket:
        """In worker ``worker``: copy one task's ``views`` into its next slot, waiting until that slot is free."""
        sizes = {len(view) for view in views.values()}
        if len(sizes) != 1:  # checked first: a refused task takes no slot and no turn
            raise ValueError(f"a task's views must have one count per teacher view, got {sorted(sizes)}")
        count, self._written = self._written, self._written + 1
        slot = count % self.slots
        if self._parent is None:
            self._parent = os.getppid()
        while not self.free[worker].acquire(timeout=self._WAIT_SECONDS):
            if os.getppid() != self._parent:  # the parent exited: this worker was reparented
                raise RuntimeError("the process that started this render worker has gone")
        self.stamps[worker, slot] = -1
        for spec, view in views.items():
            self.buffers[spec][worker, slot, : len(view)].copy_(view)
        self.stamps[worker, slot] = count
        return Ticket(worker, slot, count, sizes.pop())

    def views(self, ticket: Ticket) -> dict[ViewSpec, torch.Tensor]:
        """In the main process: the views of ``ticket``, in place (valid until :meth:`release`)."""
        return {spec: buffer[ticket.worker, ticket.slot, : ticket.views] for spec, buffer in self.buffers.items()}

    def release(self, ticket: Ticket) -> None:
        """In the main process: the views of ``ticket`` are no longer read; its worker may reuse the slot. Raises
        if the slot no longer holds that task (it was overwritten while its views were in use)."""
        stamp = int(self.stamps[ticket.worker, ticket.slot])
        if stamp != ticket.turn:
            raise RuntimeError(
                f"render worker {ticket.worker} overwrote slot {ticket.slot} (task {ticket.turn}, now {stamp}) "
                "while the teachers read it: the views of that chunk cannot be trusted"
            )
        self.free[ticket.worker].release()


__all__ = ["Ticket", "ViewRing"]
