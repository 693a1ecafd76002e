"""Progress a person can watch: one bar counting teacher views (views/s, ETA), and quiet ``datasets`` bars.

The bar honours the switches users already set for the Hugging Face libraries: ``datasets.disable_progress_bars()``
(or ``HF_DATASETS_DISABLE_PROGRESS_BARS=1``) and ``HF_HUB_DISABLE_PROGRESS_BARS=1`` hide it, as ``progress=False``
(CLI ``--no-progress``) does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import datasets
from tqdm.auto import tqdm


def bars_enabled() -> bool:
    """Whether the user left progress bars on for ``datasets`` and ``huggingface_hub``."""
    from huggingface_hub.utils import are_progress_bars_disabled

    return not datasets.are_progress_bars_disabled() and not are_progress_bars_disabled()


def views_bar(total_views: int, desc: str, *, enabled: bool, position: int = 0) -> tqdm:
    """A bar over ``total_views`` teacher views, shown when ``enabled`` and :func:`bars_enabled`; it refreshes at
    least every 2 s while views arrive."""
    return tqdm(
        total=total_views,
        unit="view",
        unit_scale=True,
        dynamic_ncols=True,
        desc=desc,
        disable=not (enabled and bars_enabled()),
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


__all__ = ["bars_enabled", "quiet_datasets", "views_bar"]
