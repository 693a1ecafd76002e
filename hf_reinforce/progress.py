"""Progress a person can watch: one bar counting teacher views (views/s, ETA), and quiet ``datasets`` bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import datasets
from tqdm.auto import tqdm


def views_bar(total_views: int, desc: str, *, enabled: bool, position: int = 0) -> tqdm:
    """A bar over ``total_views`` teacher views; it refreshes at least every 2 s while views arrive."""
    return tqdm(
        total=total_views,
        unit="view",
        unit_scale=True,
        dynamic_ncols=True,
        desc=desc,
        disable=not enabled,
        position=position,
        mininterval=0.5,
        maxinterval=2.0,
    )


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence ``datasets``' own progress bars (its per-shard maps under our views bar)."""
    was_enabled = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


__all__ = ["quiet_datasets", "views_bar"]
