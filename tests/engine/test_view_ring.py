"""The shared view ring between render workers and the main process: views arrive exact, a slot is reused only
after the main process released it, an early overwrite is an error, and a chunk kept past its turn loses its views
instead of showing another chunk's."""

from __future__ import annotations

import datasets
import pytest
import torch

import hf_reinforce as hfr
from hf_reinforce.engine import render_workers as rendering
from hf_reinforce.engine.reinforce_pass import ReinforcePass
from hf_reinforce.engine.render_workers import render_tasks, task_order
from hf_reinforce.engine.view_ring import ViewRing
from hf_reinforce.teachers import ViewSpec
from hf_reinforce.testing import mnist_dataset, photos_dataset, tiny_teachers
from hf_reinforce.testing import tiny_config as make_config

SPECS = (ViewSpec(8, "bilinear"), ViewSpec(5, "bicubic"))


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))


def ring(slots: int = 2, workers: int = 1) -> ViewRing:
    return ViewRing(SPECS, 6, workers, slots, torch.multiprocessing.get_context())


def views(n: int, seed: int) -> dict[ViewSpec, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s: torch.randint(0, 256, (n, 3, s.resolution, s.resolution), dtype=torch.uint8, generator=g) for s in SPECS}


def test_views_come_back_exact_and_slots_are_taken_in_turn():
    r = ring(slots=2)
    first, second = views(6, 0), views(4, 1)
    a, b = r.put(0, first), r.put(0, second)
    assert (a.slot, a.turn, a.views, b.slot, b.turn, b.views) == (0, 0, 6, 1, 1, 4)
    for ticket, sent in ((a, first), (b, second)):
        got = r.views(ticket)
        assert set(got) == set(SPECS) and all(torch.equal(got[s], sent[s]) for s in SPECS)
    assert not r.free[0].acquire(block=False)  # both slots are held until the main process releases them
    r.release(a)
    assert r.free[0].acquire(block=False)
    r.free[0].release()
    c = r.put(0, views(6, 2))
    assert (c.slot, c.turn) == (0, 2) and torch.equal(r.views(c)[SPECS[0]], views(6, 2)[SPECS[0]])


def test_a_slot_written_again_before_its_release_is_an_error():
    r = ring(slots=1)
    ticket = r.put(0, views(3, 0))
    r.stamps[0, 0] = 7  # what a worker writing the slot for a later task leaves
    with pytest.raises(RuntimeError, match="render worker 0 overwrote slot 0 .task 0, now 7.*cannot be trusted"):
        r.release(ticket)


def test_views_of_one_task_must_share_one_count():
    bad = {SPECS[0]: views(3, 0)[SPECS[0]], SPECS[1]: views(2, 0)[SPECS[1]]}
    with pytest.raises(ValueError, match=r"one count per teacher view, got \[2, 3\]"):
        ring().put(0, bad)


def _tasks(run: ReinforcePass, workers: int) -> list[tuple[int, int]]:
    geometry = run.geometry
    return task_order(list(geometry.blocks(range(geometry.num_rows))), geometry.chunks, workers)


def test_chunks_from_workers_are_the_in_process_views_and_lose_them_when_the_next_is_asked():
    """Real photos and digits, two workers: every chunk's views equal the in-process render of its task while it
    is the current chunk; a consumer that keeps chunks (``list``) finds their views emptied, not overwritten."""
    for source, config in (
        (
            photos_dataset(6),
            make_config(
                rows_per_block=2, num_augmentations=3, augmentations_per_step=2, teachers=tiny_teachers(2), top_k=2
            ),
        ),
        (mnist_dataset(37), make_config(num_augmentations=5, augmentations_per_step=2)),
    ):
        run = ReinforcePass(source, config)
        tasks = _tasks(run, 2)
        here = {task: chunk.views for task, chunk in zip(tasks, render_tasks(run.renderer(), tasks, num_workers=0))}
        compared = 0
        for chunk in render_tasks(run.renderer(), tasks, num_workers=2):
            assert chunk.ticket is not None
            expected = here[(chunk.block, chunk.chunk)]
            assert all(torch.equal(chunk.views[spec], expected[spec]) for spec in expected)
            compared += 1
        assert compared == len(tasks)
        kept = list(render_tasks(run.renderer(), tasks, num_workers=2))
        assert len(kept) == len(tasks) and all(chunk.views == {} for chunk in kept)


def test_one_slot_per_worker_makes_workers_wait_and_changes_nothing(monkeypatch, tmp_path):
    """With fewer slots than a worker renders ahead, workers wait for the main process to release one: the output
    is the same bytes as without workers."""
    source = mnist_dataset(37)
    config = make_config(num_augmentations=5, augmentations_per_step=2)
    expected = hfr.reinforce(source, config, progress=False)
    monkeypatch.setattr(rendering, "_RING_SLOTS", 1)
    for workers in (1, 3):
        out = hfr.reinforce(source, make_config(num_workers=workers, num_augmentations=5, augmentations_per_step=2))
        for name in expected.column_names:
            assert expected.data.table.column(name).equals(out.data.table.column(name)), (workers, name)
