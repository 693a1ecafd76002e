"""The fast path's hooks into ``datasets``: formats for map-style datasets and a two-step ``map`` for streams.

``datasets`` formats rows through a formatter class chosen by name. ``set_transform`` and ``with_transform`` use the
``"custom"`` one, whose ``CustomFormatter`` turns every column of the requested rows into Python objects (all N stored
augmentations: 10 ms a row at N=1000, K=10, measured) before calling the transform. :class:`ReplayFormatter` gets the
rows' Arrow table instead and hands it to :meth:`ReinforcedTransform.replay_table`; when a ``DataLoader`` fetches a
batch (``__getitems__``) that is the whole batch, rendered together. It is the format of ``transform.apply(dataset)``
(:data:`FORMAT_TYPE`), and :class:`TransformFormatter` takes the ``"custom"`` name so that
``dataset.set_transform(transform)`` with a ``ReinforcedTransform`` reads the same way; any other transform gets
exactly what ``CustomFormatter`` gives it. Registering a format name is ``datasets``' private
``datasets.formatting._register_formatter``: this module is the one place that uses it, and a test in
tests/distill/test_fast_path.py fails naming it if ``datasets`` moves it.

A stream (``IterableDataset``) hands a ``map`` function an Arrow table when formatted as ``"arrow"``, but must get an
Arrow table back, and turning pixel tensors into Arrow and back costs more than rendering them (0.6 ms a 224-px row,
measured). So a stream is mapped twice: on Arrow, down to each row's chosen augmentation (a small table), then on
those small Python rows, to training examples.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

import datasets
import pyarrow as pa
from datasets.formatting import CustomFormatter, Formatter, PythonFormatter

from ..augment import AugmentationPolicy
from ..storage.format import ROW_INDEX, TOPK_IDS, TOPK_PROBS
from . import replay


class Replayer(Protocol):
    """What the format and the stream need of a :class:`~hf_reinforce.ReinforcedTransform`."""

    policy: AugmentationPolicy
    image_column: str
    label_column: str | None

    def replay_table(self, table: pa.Table) -> dict[str, list]: ...

    def select(self, table: pa.Table) -> replay.Chosen: ...

    def examples(self, chosen: replay.Chosen) -> dict[str, list]: ...


FORMAT_TYPE = "hf_reinforce"
"""The ``datasets`` format name of the fast path (``dataset.format["type"]`` after ``transform.apply(dataset)``)."""


class ReplayFormatter(Formatter):
    """``datasets`` formatter: rows' Arrow table → training examples of this epoch (``transform.replay_table``).

    A column asked for by name (``dataset["label"]``) comes back as plain Python values, as without a format."""

    def __init__(self, transform: Replayer, features: Any = None, token_per_repo_id: Any = None, **_: Any):
        super().__init__(features=features, token_per_repo_id=token_per_repo_id)
        self.transform = transform

    def format_batch(self, pa_table: pa.Table) -> dict[str, list]:
        if pa_table.num_columns == 1:  # one column read by name (``dataset["label"]`` iterates rows of it alone)
            return PythonFormatter(features=self.features).format_batch(pa_table)
        return self.transform.replay_table(pa_table)

    def format_row(self, pa_table: pa.Table) -> dict[str, Any]:
        return {key: values[0] for key, values in self.format_batch(pa_table).items()}

    def format_column(self, pa_table: pa.Table) -> list:
        return PythonFormatter(features=self.features).format_column(pa_table)


_ARROW_TRANSFORMS: list[type] = []


def reads_arrow(cls: type) -> type:
    """Class decorator: ``set_transform(instance)`` of ``cls`` (a :class:`Replayer`) reads the rows' Arrow table
    through :class:`TransformFormatter`, unless the instance's class defines a ``__call__`` of its own."""
    _ARROW_TRANSFORMS.append(cls)
    return cls


class TransformFormatter(CustomFormatter):
    """``datasets``' ``"custom"`` format (``set_transform``, ``with_transform``): a transform of a :func:`reads_arrow`
    class (``ReinforcedTransform``) gets the rows' Arrow table (``replay_table``, the fast path); any other transform,
    a subclass that defines its own ``__call__`` too, gets what ``CustomFormatter`` gives it. The table goes to the
    transform whatever columns it has (a ``Trainer`` that dropped some hears which, and why), and a column asked for by
    name comes back as plain Python values."""

    def __init__(self, transform: Callable, features: Any = None, token_per_repo_id: Any = None, **kwargs: Any):
        super().__init__(transform, features=features, token_per_repo_id=token_per_repo_id, **kwargs)
        base = next((cls for cls in _ARROW_TRANSFORMS if isinstance(transform, cls)), None)
        own_call = base is not None and type(transform).__call__ is base.__call__  # a subclass's own is honoured
        self.replayer: Replayer | None = cast(Replayer, transform) if own_call else None

    def format_batch(self, pa_table: pa.Table) -> Any:
        return super().format_batch(pa_table) if self.replayer is None else self.replayer.replay_table(pa_table)

    def format_column(self, pa_table: pa.Table) -> Any:
        if self.replayer is None:
            return super().format_column(pa_table)
        return PythonFormatter(features=self.features).format_column(pa_table)


def _register() -> None:
    """Make :data:`FORMAT_TYPE` a ``datasets`` format and :class:`TransformFormatter` its ``"custom"`` one (once per
    process: on import of this module)."""
    try:
        from datasets.formatting import _register_formatter
    except ImportError as error:
        raise ImportError(
            f"datasets {datasets.__version__} has no datasets.formatting._register_formatter, which "
            "hf_reinforce.distill.formatting uses to register its fast path format; this hf_reinforce needs an "
            "update for this datasets version"
        ) from error
    _register_formatter(ReplayFormatter, FORMAT_TYPE)
    log = logging.getLogger("datasets.formatting")  # replacing a format it knows, datasets warns: this one is meant
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        _register_formatter(TransformFormatter, "custom")
    finally:
        log.setLevel(level)


_register()


def replay_format(dataset: datasets.Dataset, transform: Replayer) -> datasets.Dataset:
    """A new ``datasets.Dataset`` over the same rows, formatted by :class:`ReplayFormatter` with ``transform``."""
    return dataset.with_format(FORMAT_TYPE, transform=transform)


STREAM_BATCH = 64
"""Rows a stream replays at once: ``map``'s default of 1000 would hold 600 MB of 224-px pixels; at 32 px 64 rows cost
0.21 ms a row against 0.18 in batches of 128 and 0.38 in batches of 16 (measured)."""


def replay_stream(stream: datasets.IterableDataset, transform: Replayer) -> datasets.IterableDataset:
    """``stream`` mapped to training examples: on Arrow to each row's chosen augmentation, then to examples."""
    select = functools.partial(_select, transform=transform)
    selected = stream.with_format("arrow").map(select, batched=True, batch_size=STREAM_BATCH)
    stored = stream.column_names
    kept = [transform.image_column, ROW_INDEX, replay.AUGMENTATION, *transform.policy.columns]
    kept += [
        name for name in (transform.label_column, TOPK_IDS, TOPK_PROBS) if name and (stored is None or name in stored)
    ]
    examples = functools.partial(_examples, transform=transform)
    return selected.with_format(None).map(examples, batched=True, batch_size=STREAM_BATCH, remove_columns=kept)


def _select(table: pa.Table, transform: Replayer) -> pa.Table:
    return transform.select(table).to_arrow(transform.image_column, transform.label_column)


def _examples(batch: dict[str, list], transform: Replayer) -> dict[str, list]:
    chosen = replay.Chosen.from_selected(batch, transform.policy, transform.image_column, transform.label_column)
    return transform.examples(chosen)
