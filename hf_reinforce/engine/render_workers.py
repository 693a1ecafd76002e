"""Render workers: decode, sample and render fixed row blocks on CPU, in worker processes, ahead of the teachers.

The unit of work is a *task* ``(block, chunk)``: rows ``[block * rows_per_block, ...)`` of the dataset and
augmentation indices ``[chunk * augmentations_per_step, ...)``. A task renders one uint8 view batch per distinct
teacher view (resolution, interpolation); the teachers see exactly these batches, so their composition, and the
output, do not depend on the number of workers. Views are always rendered on CPU, whatever the teachers' device,
so a student replaying on CPU gets the teachers' pixels bit for bit.

Tasks are ordered so that worker ``w`` of ``W`` gets every chunk of the blocks it owns (see :func:`task_order`):
each worker decodes and samples a block once, then renders its chunks. With ``num_workers=0`` the same code runs
in the calling process. From workers, views for CPU teachers come through a :class:`~.view_ring.ViewRing`.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader

from ..augment import AugmentationPolicy, Params, center_view, single_thread, to_rgb_uint8
from ..storage.format import FINGERPRINT_AUGMENTATION, replay_fingerprint
from ..teachers import ViewSpec
from .view_ring import Ticket, ViewRing

Task = tuple[int, int]


@dataclass
class RenderedChunk:
    """The views of one task, with what the main process needs to write the block's rows.

    ``rows`` are the block's rows that decoded (all of them unless bad images are skipped); ``params`` (their
    sampled parameters), ``fingerprints`` (their replay fingerprints), ``originals`` (their evaluation views, for the
    reinforcement report, unless the renderer makes none), ``skipped`` and ``errors`` travel with the block's first
    chunk only (:attr:`BlockGeometry.chunks`). ``cpu_seconds`` is the worker's CPU
    time for the task (decode and sampling included for chunk 0).
    """

    block: int
    chunk: int
    rows: list[int]
    indices: range
    views: dict[ViewSpec, torch.Tensor]
    params: list[Params] | None = None
    fingerprints: list[int] | None = None
    originals: dict[ViewSpec, torch.Tensor] | None = None
    skipped: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    ticket: Ticket | None = None
    """Where a worker left ``views`` in a :class:`~.view_ring.ViewRing` (``views`` then travels empty)."""

    def pin_memory(self) -> RenderedChunk:
        """Page-locked views for fast asynchronous copies to an accelerator (called by the DataLoader)."""
        self.views = {spec: view.pin_memory() for spec, view in self.views.items()}
        if self.originals is not None:
            self.originals = {spec: view.pin_memory() for spec, view in self.originals.items()}
        return self

    @property
    def num_views(self) -> int:
        """Teacher views in this task: kept rows × augmentation indices."""
        return len(self.rows) * len(self.indices)


@dataclass(frozen=True)
class BlockGeometry:
    """How rows and augmentation indices are cut into tasks.

    Chunk ``c`` always holds indices ``[c * augmentations_per_step, ...)`` of ``num_augmentations``, so a chunk's
    teacher batch is the same whether it is computed in a pass with N or, for every chunk but the last, in any pass
    with more augmentations. ``first_index`` (a multiple of ``augmentations_per_step``) skips the chunks below it:
    an extension computes only the chunks a smaller dataset did not hold complete (see :func:`first_new_index`).
    """

    num_rows: int
    num_augmentations: int
    rows_per_block: int
    augmentations_per_step: int
    first_index: int = 0

    def __post_init__(self) -> None:
        if self.first_index % self.augmentations_per_step or not 0 <= self.first_index < self.num_augmentations:
            raise ValueError(
                f"first_index {self.first_index} must be a multiple of augmentations_per_step "
                f"({self.augmentations_per_step}) below num_augmentations ({self.num_augmentations})"
            )

    @property
    def num_chunks(self) -> int:
        """Teacher steps per block of a whole pass: ``ceil(num_augmentations / augmentations_per_step)``."""
        return -(-self.num_augmentations // self.augmentations_per_step)

    @property
    def chunks(self) -> range:
        """The chunks this pass computes: all of them, or those from ``first_index`` on."""
        return range(self.first_index // self.augmentations_per_step, self.num_chunks)

    def block_rows(self, block: int) -> range:
        """Rows of ``block`` (the last block of the dataset may be short)."""
        start = block * self.rows_per_block
        return range(start, min(start + self.rows_per_block, self.num_rows))

    def chunk_indices(self, chunk: int) -> range:
        """Augmentation indices of ``chunk``."""
        start = chunk * self.augmentations_per_step
        return range(start, min(start + self.augmentations_per_step, self.num_augmentations))

    def blocks(self, rows: range) -> range:
        """The blocks covering ``rows``, whose start must be block-aligned."""
        if rows.start % self.rows_per_block:
            raise ValueError(f"rows start at {rows.start}, not a multiple of rows_per_block ({self.rows_per_block})")
        return range(rows.start // self.rows_per_block, -(-rows.stop // self.rows_per_block))


def first_new_index(stored: int, augmentations_per_step: int) -> int:
    """The first augmentation index an extension of a dataset with ``stored`` augmentations computes: ``stored``
    rounded down to a multiple of ``augmentations_per_step``. The chunks below it were teacher batches of exactly
    the composition a pass with more augmentations has; a last, partial chunk was not, so it is recomputed."""
    return stored // augmentations_per_step * augmentations_per_step


def task_order(blocks: Sequence[int], chunks: Sequence[int], num_workers: int) -> list[Task]:
    """Tasks of ``blocks`` × ``chunks`` interleaved so that a DataLoader's round-robin dispatch hands every chunk of
    a block to the same worker: groups of ``W`` blocks, chunk by chunk, block by block within a group."""
    width = max(1, num_workers)
    order = []
    for start in range(0, len(blocks), width):
        group = blocks[start : start + width]
        order += [(block, chunk) for chunk in chunks for block in group]
    return order


class BlockRenderer(torch.utils.data.Dataset):
    """Map-style dataset of tasks: ``renderer[(block, chunk)]`` → :class:`RenderedChunk`.

    ``images`` is the dataset's image column with undecoded values; a block is decoded and sampled once per worker
    and kept while its chunks are rendered. ``originals=False`` renders no evaluation views (an extension reuses
    the report figures of the rows' originals).
    """

    def __init__(
        self,
        images: datasets.Dataset,
        image_column: str,
        policy: AugmentationPolicy,
        seed: int,
        geometry: BlockGeometry,
        view_specs: Sequence[ViewSpec],
        skip_bad_images: bool,
        originals: bool = True,
    ) -> None:
        self.images, self.image_column, self.policy, self.seed = images, image_column, policy, seed
        self.geometry, self.view_specs, self.skip_bad_images = geometry, list(view_specs), skip_bad_images
        self.originals = originals
        self.ring: ViewRing | None = None
        """Set by :func:`render_tasks`: in a worker, views go through this ring instead of fresh shared memory."""
        self._cached: tuple[int, _DecodedBlock] | None = None

    def __len__(self) -> int:
        return -(-self.geometry.num_rows // self.geometry.rows_per_block) * len(self.geometry.chunks)

    def __getitem__(self, task: Task) -> RenderedChunk:
        start = time.process_time()
        block, chunk = task
        decoded = self._decoded(block)
        indices = self.geometry.chunk_indices(chunk)
        views = {
            spec: self.policy.render_block(
                decoded.images, decoded.params, indices, spec.resolution, spec.interpolation, rows=decoded.rows
            )
            for spec in self.view_specs
        }
        first = chunk == self.geometry.chunks.start
        fingerprints = self._fingerprints(decoded, indices, views) if first and decoded.rows else None
        ticket, worker = None, torch.utils.data.get_worker_info()
        if self.ring is not None and worker is not None and decoded.rows:
            ticket, views = self.ring.put(worker.id, views), {}
        return RenderedChunk(
            block=block,
            chunk=chunk,
            rows=decoded.rows,
            indices=indices,
            views=views,
            ticket=ticket,
            params=decoded.params if first else None,
            fingerprints=fingerprints,
            originals=self._originals(decoded) if first and decoded.rows and self.originals else None,
            skipped=decoded.skipped if first else [],
            errors=decoded.errors if first else [],
            cpu_seconds=time.process_time() - start,
        )

    def _fingerprints(self, decoded: _DecodedBlock, indices: range, views: dict[ViewSpec, torch.Tensor]) -> list[int]:
        """Each decoded row's replay fingerprint: of its augmentation :data:`FINGERPRINT_AUGMENTATION` at the first
        teacher's view, taken from this chunk's views when it holds that augmentation, else rendered for it (an
        extension computes only later augmentations: one more view per row)."""
        spec, j = self.view_specs[0], FINGERPRINT_AUGMENTATION
        if j in indices:
            at, step = indices.index(j), len(indices)
            chosen = views[spec][at::step]
        else:
            chosen = self.policy.render_block(
                decoded.images, decoded.params, [j], spec.resolution, spec.interpolation, rows=decoded.rows
            )
        return [replay_fingerprint(view) for view in chosen]

    def _originals(self, decoded: _DecodedBlock) -> dict[ViewSpec, torch.Tensor]:
        """Each decoded row's evaluation view (:func:`~hf_reinforce.augment.center_view`) per teacher view: the report's
        un-augmented images, rendered here with the block's one decode. The decoded images are channels-last,
        which torch's resize kernel works in: the same pixels as from a contiguous copy, 3.4× faster (0.59
        against 2.03 ms per 427×640 photo at 224 px, measured), 0.09 CPU-ms per 224-px view at N=16."""
        return {
            spec: torch.stack([center_view(image, spec.resolution, spec.interpolation) for image in decoded.images])
            for spec in self.view_specs
        }

    def _decoded(self, block: int) -> _DecodedBlock:
        if self._cached is None or self._cached[0] != block:
            self._cached = (block, self._decode_block(block))
        return self._cached[1]

    def _decode_block(self, block: int) -> _DecodedBlock:
        rows = self.geometry.block_rows(block)
        values = self.images[rows.start : rows.stop][self.image_column]
        out = _DecodedBlock()
        for row, value in zip(rows, values):
            try:
                if value is None:
                    raise ValueError("the image is missing (None)")
                image = to_rgb_uint8(value, channels_last=True)
            except Exception as error:  # noqa: BLE001 — any decoder failure is reported with its row
                if self.skip_bad_images:
                    out.skipped.append(row)
                else:
                    out.errors.append((row, f"{type(error).__name__}: {error}"))
                continue
            out.rows.append(row)
            out.images.append(image)
            out.params.append(
                self.policy.sample(
                    self.seed,
                    row,
                    self.geometry.num_augmentations,
                    image.shape[1],
                    image.shape[2],
                    num_rows=self.geometry.num_rows,
                )
            )
        return out


@dataclass
class _DecodedBlock:
    rows: list[int] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _unbatched(item: Any) -> Any:
    return item


def render_tasks(
    renderer: BlockRenderer, tasks: Sequence[Task], *, num_workers: int, pin_memory: bool = False
) -> Iterator[RenderedChunk]:
    """Rendered chunks of ``tasks`` in order: from ``num_workers`` worker processes that prefetch ahead of the
    consumer, or rendered here, one thread, when ``num_workers`` is 0.

    From workers, unless ``pin_memory`` (views for an accelerator are copied into page-locked memory anyway), a
    chunk's views are read in place from a :class:`~.view_ring.ViewRing`: they are valid until the next chunk is
    asked for, and then emptied."""
    if not tasks:
        return iter(())
    if num_workers == 0:
        return _render_here(renderer, tasks)
    workers = min(num_workers, len(tasks))
    context = torch.multiprocessing.get_context()
    ring = None
    if not pin_memory:
        geometry = renderer.geometry
        views_per_task = geometry.rows_per_block * geometry.augmentations_per_step
        ring = ViewRing(renderer.view_specs, views_per_task, workers, _RING_SLOTS, context)
        renderer = copy.copy(renderer)
        renderer.ring = ring
    loader = DataLoader(
        renderer,
        batch_size=None,
        sampler=list(tasks),
        num_workers=workers,
        collate_fn=_unbatched,
        pin_memory=pin_memory,
        prefetch_factor=_PREFETCH,
        worker_init_fn=functools.partial(init_render_worker, parent=os.getpid()),
        multiprocessing_context=context,
    )
    return iter(loader) if ring is None else _through_ring(iter(loader), ring)


_PREFETCH = 2
"""Tasks each worker renders ahead (the DataLoader's ``prefetch_factor``)."""
_RING_SLOTS = _PREFETCH + 1
"""Ring slots per worker: a worker holds at most ``_PREFETCH`` chunks plus the one the main process is reading,
so it does not wait for the main process (with fewer it waits, and the output is the same)."""


def _through_ring(chunks: Iterator[RenderedChunk], ring: ViewRing) -> Iterator[RenderedChunk]:
    """``chunks`` with their views read in place from ``ring``; each slot is released (and the chunk's views
    emptied) when the consumer asks for the next chunk."""
    for chunk in chunks:
        if chunk.ticket is None:
            yield chunk
            continue
        chunk.views = ring.views(chunk.ticket)
        yield chunk
        chunk.views = {}
        ring.release(chunk.ticket)


def init_render_worker(_worker_id: int, *, parent: int) -> None:
    """Set up a render worker process (the DataLoader's ``worker_init_fn``): it dies with ``parent``, the process
    that started it (:func:`die_with_parent`), and keeps the memory it frees (:func:`keep_freed_memory`)."""
    die_with_parent(parent)
    keep_freed_memory()


PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal the kernel sends this process when the thread that created it exits."""


def die_with_parent(parent: int) -> bool:
    """Have the kernel kill this process (SIGKILL) the moment ``parent`` dies, even by ``kill -9``; returns whether
    it could (Linux only).

    A render worker is forked from the pass's process and inherits its open files, the folder's lock files among
    them: a lock is free only when every process holding its file is gone. Left to themselves, the workers of a
    killed pass notice the loss of their parent only at the DataLoader's next status check (every 5 s), and a rerun
    in the meantime was refused as "being written by another process". Elsewhere (macOS, Windows) that check is
    what ends them. ``parent`` is checked after the request, in case it died before the request was made."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        done = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request: nothing will send the signal
        os._exit(1)
    return done


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep the memory this process frees (a render worker's ``worker_init_fn``).

    A worker allocates and frees the same large tensors for every chunk (a 224-px chunk of 256 views is 38 MB);
    by default glibc maps blocks above its threshold afresh and returns freed memory at the top of the heap, so
    every chunk faults in zeroed pages again. Served from the heap and kept, they are reused: the worker's memory
    stays at its peak working set instead. Returns whether the allocator was tuned (``False`` off glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without mallopt): nothing to tune
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def _render_here(renderer: BlockRenderer, tasks: Sequence[Task]) -> Iterator[RenderedChunk]:
    for task in tasks:
        with single_thread():  # render workers run with one thread already
            item = renderer[task]
        yield item


__all__ = ["BlockGeometry", "BlockRenderer", "RenderedChunk", "first_new_index", "render_tasks", "task_order"]
