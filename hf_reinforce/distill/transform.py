"""``ReinforcedTransform``: replay one stored augmentation per row and epoch, with that augmentation's teacher top-k.

Choice of augmentation: for row ``i`` in epoch ``e`` with ``N`` stored augmentations, cycle ``c = e // N`` is a
permutation of ``0..N-1`` drawn from a hash of (seed, i, c) and the row uses its element ``e % N``, so every stored
augmentation is used once before any repeats (:func:`augmentation_indices`). Rendering goes through the same
``AugmentationPolicy`` code as the teachers' inputs, so at the teachers' resolution and interpolation the pixels are
identical.

The fast path is :meth:`ReinforcedTransform.apply`: rows are read from Arrow with only the chosen augmentation's
values leaving it (per-row cost independent of N) and a batch's views are rendered together (``distill.replay``).
``dataset.set_transform(transform)`` and ``with_transform`` read the same way (``distill.formatting``). Rows that
``datasets`` has already turned into Python (``stream.map(transform)``, a call on a formatted batch) hold all N stored
augmentations as lists (10 ms a row at N=1000, K=10, measured), so that path says once how to switch.
Pixel work runs with one torch thread (``augment.single_thread``), as in the pass: in the main process (``Trainer``'s
default ``dataloader_num_workers=0``) torch's default thread pool made each row 15–35× slower on a busy 2-core machine.

Only ``augment``, ``storage`` and ``validation`` are imported here: training code never loads teacher code.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch

from ..augment import AugmentationPolicy, center_view, normalize, single_thread, to_rgb_uint8
from ..deprecation import warn_renamed
from ..errors import ConfigError, MissingColumnError, ReplayMismatchError, ReplayMismatchWarning
from ..storage.format import FINGERPRINT, FINGERPRINT_AUGMENTATION, ROW_INDEX, TOPK_IDS, TOPK_PROBS, replay_fingerprint
from ..storage.reader import load_record
from ..storage.record import RunRecord, record_from_dataset
from ..validation import check_choice, check_index, check_int, check_split
from .formatting import reads_arrow, replay_format, replay_stream
from .replay import Chosen, Partners, batch_buffer, from_rows, from_table, render

logger = logging.getLogger(__name__)

REPLAY_CHECK_ROWS = 4
"""Rows whose stored replay fingerprint a transform compares with its own replay on first use."""
REPLAY_CHECKS = ("warn", "error", "off")


def augmentation_index(seed: int, row: int, epoch: int, num_augmentations: int) -> int:
    """Stored augmentation used for ``row`` in ``epoch``: without replacement within each cycle of N epochs."""
    return int(augmentation_indices(seed, np.array([row]), epoch, num_augmentations)[0])


def augmentation_indices(seed: int, rows: np.ndarray, epoch: int, num_augmentations: int) -> np.ndarray:
    """:func:`augmentation_index` of every row of ``rows`` (int64), vectorized.

    Cycle ``c = epoch // N`` of row ``i`` is the permutation ``p -> (a p + b) mod P`` of ``0..P-1``, ``P`` the
    smallest prime ``>= N`` and ``1 <= a < P``, ``0 <= b < P`` drawn from a hash of (seed, i, c), walked until it
    lands below N (a permutation of ``0..N-1``: each stored augmentation once per cycle, each equally likely for a
    row in any epoch). Integer arithmetic only, so the same on every machine and numpy version, and the same cost at
    any N: a few µs a batch, against 11–31 µs a row (N = 4–1000, measured) for a seeded ``numpy`` permutation.
    """
    cycle, position = divmod(int(epoch), num_augmentations)
    prime = np.uint64(_prime_at_least(num_augmentations))
    key = _mix(np.asarray(rows).astype(np.uint64) ^ np.uint64(_mix_int(_mix_int(seed + _GAMMA) + cycle)))
    a, b = key % (prime - np.uint64(1)) + np.uint64(1), (key >> np.uint64(32)) % prime
    out = np.full(len(key), position, dtype=np.uint64)
    todo = np.arange(len(key))
    while len(todo):  # a value >= N moves on along the permutation's cycle (rarely: P - N is small)
        out[todo] = (a[todo] * out[todo] + b[todo]) % prime
        todo = todo[out[todo] >= num_augmentations]
    return out.astype(np.int64)


@functools.lru_cache(maxsize=64)
def _prime_at_least(n: int) -> int:
    """The smallest prime ``>= max(n, 2)``."""
    candidate = max(n, 2)
    while any(candidate % d == 0 for d in range(2, math.isqrt(candidate) + 1)):
        candidate += 1
    return candidate


_M64 = 2**64 - 1
_GAMMA = 0x9E3779B97F4A7C15
"""splitmix64's increment: added to the seed so that seed 0, row 0, cycle 0 does not hash to 0 (the identity)."""


def _mix_int(x: int) -> int:
    """splitmix64's finalizer on a Python int (a bijective 64-bit hash)."""
    x &= _M64
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """:func:`_mix_int` on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@reads_arrow
class ReinforcedTransform:
    """Rows → ``pixel_values``, ``labels``, ``topk_ids``, ``topk_probs`` of this epoch's stored augmentation.

    ``train = transform.apply(train)`` gives the dataset whose rows are training examples (the fast path: a
    ``datasets.Dataset`` that shuffles, selects and goes into a ``DataLoader`` or ``Trainer``; a streaming
    ``IterableDataset`` too). ``dataset.set_transform(transform)`` works as well, slower at large N. It pickles into
    DataLoader workers, and persistent workers follow ``set_epoch`` (the epoch is in shared memory). Defaults for
    resolution, interpolation and normalization come from the run record (the reinforcement resolution and the
    first teacher's interpolation, mean and std). ``record`` is the run record of the dataset (a :class:`RunRecord`
    or its JSON dict, as :func:`hf_reinforce.load_record` returns and ``reinforce_config.json`` holds).

    On first use it replays the fingerprinted augmentation of a few rows (schema 2) and compares with the stored
    fingerprints: ``check_replay="warn"`` (default) warns once with :class:`~hf_reinforce.ReplayMismatchWarning` when
    this machine renders other pixels, ``"error"`` raises :class:`~hf_reinforce.ReplayMismatchError`, ``"off"`` skips.
    """

    def __init__(
        self,
        record: RunRecord | Mapping[str, Any] | None = None,
        *,
        dataset: Any = None,
        resolution: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        interpolation: str | None = None,
        seed: int = 0,
        epoch: int = 0,
        check_replay: str = "warn",
        config: RunRecord | Mapping[str, Any] | None = None,
    ) -> None:
        if config is not None:
            warn_renamed("ReinforcedTransform(config=...)", "ReinforcedTransform(record=...)")
            record = config if record is None else record
        if record is None:
            raise TypeError("ReinforcedTransform needs the dataset's run record: ReinforcedTransform(record)")
        record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
        self.record = record
        self.policy: AugmentationPolicy = record.policy
        teacher = record.teacher
        self.num_augmentations = record.num_augmentations
        self.resolution = int(resolution or record.resolution)
        self.interpolation = interpolation or teacher.interpolation
        self.mean = tuple(mean or teacher.mean)
        self.std = tuple(std or teacher.std)
        self.image_column = record.image_column
        self.label_column = record.label_column
        self.seed = int(seed)
        self.check_replay = check_choice(check_replay, "check_replay", REPLAY_CHECKS)
        # Shared memory: DataLoader workers (persistent ones too) read the epoch the main process set, and the
        # set_transform advice and the first-use replay check happen once for all of them.
        # [epoch, advice given, replay checked]
        self._shared = torch.zeros(3, dtype=torch.int64).share_memory_()
        self.set_epoch(epoch)
        self._partners: Partners | None = None
        self._schema_checked: pa.Schema | None = None
        if self.policy.mix is not None:
            self._attach_partners(dataset)

    @property
    def config(self) -> dict[str, Any]:
        """Deprecated: the run record is ``transform.record`` (its JSON: ``transform.record.to_dict()``)."""
        warn_renamed("ReinforcedTransform.config", "ReinforcedTransform.record.to_dict()")
        return self.record.to_dict()

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def from_record(cls, record: RunRecord | Mapping[str, Any] | str | Path, **kwargs: Any) -> ReinforcedTransform:
        """From a run record, its JSON dict, or a path to ``reinforce_config.json`` (or the folder holding it)."""
        return cls(record if isinstance(record, (RunRecord, Mapping)) else load_record(record), **kwargs)

    @classmethod
    def from_config(cls, config: RunRecord | Mapping[str, Any] | str | Path, **kwargs: Any) -> ReinforcedTransform:
        """Deprecated: :meth:`from_record`."""
        warn_renamed("ReinforcedTransform.from_config", "ReinforcedTransform.from_record")
        return cls.from_record(config, **kwargs)

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> ReinforcedTransform:
        """From a dataset returned by :func:`hf_reinforce.reinforce` (its run record travels in ``dataset.info``).

        Datasets loaded with ``load_dataset`` do not carry it: use :meth:`from_pretrained` with the repo or folder,
        or pass ``record=``.
        """
        check_split(dataset, "ReinforcedTransform.from_dataset", streaming=True)
        if "config" in kwargs:
            warn_renamed("ReinforcedTransform.from_dataset(config=...)", "from_dataset(record=...)")
        record = kwargs.pop("record", None) or kwargs.pop("config", None) or record_from_dataset(dataset)
        if record is None:
            raise ConfigError(
                "this dataset does not carry its run record (load_dataset drops it): use "
                "ReinforcedTransform.from_pretrained(<repo id or folder>, dataset=...) or from_dataset(ds, record=...)"
            )
        return cls.from_record(record, dataset=dataset, **kwargs)

    @classmethod
    def from_pretrained(
        cls, repo_or_folder: str | Path, *, revision: str | None = None, token: str | bool | None = None, **kwargs: Any
    ) -> ReinforcedTransform:
        """From a reinforced dataset folder or Hub dataset repo: everything is read from its ``reinforce_config.json``."""
        return cls(load_record(repo_or_folder, revision=revision, token=token), **kwargs)

    def _attach_partners(self, dataset: Any) -> None:
        """Keep an Arrow view of the dataset to fetch MixUp/CutMix partner rows from."""
        import datasets

        if dataset is None:
            raise ConfigError("this policy mixes rows (MixUp/CutMix): pass dataset= so partner rows can be fetched")
        check_split(dataset, "ReinforcedTransform(dataset=...)", streaming=True)
        if isinstance(dataset, datasets.IterableDataset):
            raise ConfigError(
                "mixing policies (MixUp/CutMix) need random access to partner rows, which a streaming dataset cannot "
                "give: load it without streaming=True"
            )
        self._partners = Partners(dataset, self.policy, self.image_column)

    def __deepcopy__(self, memo: dict[int, Any]) -> ReinforcedTransform:
        """A copy that shares the epoch: ``datasets`` deep-copies a dataset's format (``with_format``,
        ``rename_column``, ...), and those copies must follow :meth:`set_epoch` (``pickle`` still gives an independent
        copy)."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        return clone

    # -- epochs -----------------------------------------------------------------------------------------------

    epoch_shared_with_workers = True
    """``set_epoch`` reaches DataLoader workers that already hold a copy (``persistent_workers=True``)."""

    @property
    def epoch(self) -> int:
        """The epoch whose stored augmentations this transform replays."""
        return int(self._shared[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentations of ``epoch`` (call before each epoch; DistillationCallback does it).

        The epoch lives in shared memory, so workers of a ``DataLoader`` (also with ``persistent_workers=True``)
        see it from the next ``iter(loader)`` on; a plain ``pickle`` of the transform gets its own copy.
        """
        self._shared[0] = check_int(epoch, "epoch", minimum=0, maximum=2**63 - 1)

    def augmentation_index(self, row_index: int, epoch: int | None = None) -> int:
        """The stored augmentation this transform uses for ``row_index`` in ``epoch`` (default: current)."""
        return augmentation_index(self.seed, row_index, self.epoch if epoch is None else epoch, self.num_augmentations)

    def _choose(self, rows: np.ndarray) -> np.ndarray:
        return augmentation_indices(self.seed, rows, self.epoch, self.num_augmentations)

    # -- the fast path ----------------------------------------------------------------------------------------

    def apply(self, dataset: Any) -> Any:
        """``dataset`` with rows formatted as training examples of the current epoch (the fast path).

        A ``datasets.Dataset`` gets a format that reads only each row's chosen augmentation from Arrow (whatever N)
        and renders a batch's views together when a ``DataLoader`` asks for a batch; the result is a new
        ``datasets.Dataset`` (the original keeps its format) that can still be shuffled, selected or filtered, and goes
        into a ``DataLoader`` or ``Trainer(train_dataset=...)``. A streaming ``datasets.IterableDataset`` gets the same
        reading through ``map`` (partner rows of a mixing policy come from ``dataset=`` given at construction).

        Raises:
            MissingColumnError: ``dataset`` lacks the image, ``row_index`` or stored columns.
            ConfigError: ``dataset`` is another reinforced dataset's (other policy, N or K).
        """
        check_split(dataset, "ReinforcedTransform.apply", streaming=True)
        stream = isinstance(dataset, datasets.IterableDataset)
        schema = dataset.features.arrow_schema if stream and dataset.features else None
        schema = schema if stream else dataset.data.schema
        if dataset.column_names is not None:
            self.check_columns(dataset.column_names)
        if schema is not None:
            self.check_schema(schema)
        return replay_stream(dataset, self) if stream else replay_format(dataset, self)

    def torch_dataset(self, dataset: Any) -> Any:
        """Deprecated: :meth:`apply` (this name's result is now a ``datasets.Dataset``, which a ``DataLoader`` takes
        as it is)."""
        warn_renamed("ReinforcedTransform.torch_dataset", "ReinforcedTransform.apply")
        check_split(dataset, "torch_dataset")
        return self.apply(dataset)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Refuse a dataset without the columns replay reads besides the stored parameters (:meth:`check_schema`),
        naming them.

        Raises:
            MissingColumnError: the image, ``row_index`` or top-k column is missing.
        """
        needed = [self.image_column, ROW_INDEX, TOPK_IDS]
        missing = [name for name in needed if name not in columns]
        if missing and not (missing == [TOPK_IDS] and not any(c.startswith("topk_") for c in columns)):
            raise MissingColumnError(
                f"columns {missing} are missing (columns: {list(columns)}); is this the reinforced dataset this "
                "transform was built for (or was it reduced with select_columns/remove_columns, or by "
                "transformers.Trainer, which drops the columns its model does not take unless "
                "TrainingArguments(remove_unused_columns=False))?"
            )

    def check_schema(self, schema: pa.Schema) -> None:
        """Refuse an Arrow schema of another reinforced dataset (other policy or mixing, other N or K), naming what
        differs, like :meth:`check_row`. Lists whose length is not part of the type are checked as they are read."""
        if self._schema_checked is not None and schema.equals(self._schema_checked):
            return  # every batch of a dataset has its schema: checked once (40 µs a batch, measured)
        stored = {name for name in schema.names if name.startswith("aug_")}
        lengths = {
            name: schema.field(name).type.list_size
            for name in (*sorted(stored & set(self.policy.columns)), TOPK_IDS)
            if name in schema.names and pa.types.is_fixed_size_list(schema.field(name).type)
        }
        k = None
        if TOPK_IDS in lengths and pa.types.is_fixed_size_list(schema.field(TOPK_IDS).type.value_type):
            k = schema.field(TOPK_IDS).type.value_type.list_size
        self._refuse(None, self._differences(stored, lengths, k))
        self._schema_checked = schema

    def select(self, table: pa.Table) -> Chosen:
        """This epoch's stored augmentation of each row of an Arrow table of reinforced rows: its parameters and
        top-k, read from Arrow without touching the other N−1 in Python.

        Raises:
            MissingColumnError: the image, ``row_index`` or top-k column is missing.
            ConfigError: the table is another reinforced dataset's (other policy, N or K).
        """
        self.check_columns(table.column_names)
        self.check_schema(table.schema)
        if not int(self._shared[2]) and FINGERPRINT in table.column_names:
            self._check_replay_once(table.slice(0, REPLAY_CHECK_ROWS).to_pylist())
        return from_table(table, self.policy, self.image_column, self.label_column, self._choose)

    def replay_table(self, table: pa.Table) -> dict[str, list]:
        """Training examples of an Arrow table of reinforced rows (a batch of the fast path): :meth:`select`, then
        :meth:`examples`."""
        return self.examples(self.select(table))

    # -- Python rows (set_transform, replay, example) -----------------------------------------------------------

    def check_row(self, row: Mapping[str, Any]) -> None:
        """Refuse a row of another reinforced dataset (other policy or mixing, other N or K) with what differs:
        replaying its parameters with this transform's policy would give wrong pixels without a word."""
        stored = {name for name in row if name.startswith("aug_")}
        if not stored and ROW_INDEX not in row:
            return  # columns dropped before the transform: example() and the parameters' KeyError say how to keep them
        lengths = {
            name: len(row[name]) for name in (*sorted(stored & set(self.policy.columns)), TOPK_IDS) if name in row
        }
        k = len(row[TOPK_IDS][0]) if TOPK_IDS in row and len(row[TOPK_IDS]) else None
        self._refuse(row.get(ROW_INDEX), self._differences(stored, lengths, k))

    def _differences(self, stored: set[str], lengths: Mapping[str, int], k: int | None) -> list[str]:
        """What differs between stored columns and this transform's policy, N and K."""
        expected = set(self.policy.columns)
        problems = []
        if stored != expected:
            problems.append(
                f"augmentation columns {sorted(stored)} (this transform's policy {self.record.policy_name!r} "
                f"stores {sorted(expected)})"
            )
        wrong = {name: n for name, n in lengths.items() if n != self.num_augmentations}
        if wrong:
            counts = " or ".join(map(str, sorted(set(wrong.values()))))
            problems.append(f"{counts} stored augmentations (this transform's N is {self.num_augmentations})")
        elif k is not None and k != self.record.top_k:
            problems.append(f"top-{k} ids (this transform's K is {self.record.top_k})")
        return problems

    def _refuse(self, row: Any, problems: list[str]) -> None:
        if problems:
            where = "these rows are" if row is None else f"row {row} is"
            raise ConfigError(
                f"{where} not from the dataset this transform was built for: it has "
                + "; ".join(problems)
                + ". Build the transform from this dataset's own record (from_pretrained(<its folder or repo>) or "
                "from_dataset(ds))"
            )

    def replay(
        self, row: Mapping[str, Any], aug_index: int, resolution: int | None = None, interpolation: str | None = None
    ) -> torch.Tensor:
        """Exact ``uint8 (3, r, r)`` pixels of stored augmentation ``aug_index`` of ``row`` (mixing included)."""
        self.check_row(row)
        j = check_index(aug_index, "aug_index", self.num_augmentations)
        chosen = self._from_rows([row], [j])
        with single_thread():
            return self._render(chosen, resolution, interpolation)[0]

    def example(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One training example: this epoch's stored augmentation of ``row``, normalized, with its top-k."""
        return {key: values[0] for key, values in self._python_examples([row]).items()}

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        """Batched transform of Python rows (``stream.map(transform, batched=True)``, or a call of your own): each
        row gets its stored augmentation for the current epoch.

        Correct, but ``datasets`` has converted all N stored augmentations of every row to Python lists before this
        runs; the first call says so once (in the log) with the fast path, :meth:`apply`. ``set_transform(transform)``
        and ``with_transform`` do not come here: they read Arrow as :meth:`apply` does."""
        size = len(next(iter(batch.values()), []))
        self._advise_apply()
        return self._python_examples([{name: values[k] for name, values in batch.items()} for k in range(size)])

    def _advise_apply(self) -> None:
        if int(self._shared[1]):
            return
        self._shared[1] = 1
        logger.warning(
            "ReinforcedTransform on Python rows (IterableDataset.map(transform), or a call on rows already formatted): "
            "`datasets` converts all %d stored augmentations of every row to Python lists before one is picked (10 ms "
            "a row at N=1000). Use `dataset = transform.apply(dataset)` instead (a stream too): it reads only the "
            "chosen augmentation and renders a batch's views together",
            self.num_augmentations,
        )

    def _python_examples(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
        for row in rows:
            if ROW_INDEX not in row:
                raise KeyError(
                    f"row has no {ROW_INDEX!r} column (columns: {sorted(row)}); is this a reinforced dataset? With "
                    "transformers.Trainer set remove_unused_columns=False or use DistillationCallback/"
                    "DistillationTrainer"
                )
            self.check_row(row)
        self._check_replay_once(rows)
        return self.examples(self._from_rows(rows, self._choose(np.array([int(row[ROW_INDEX]) for row in rows]))))

    def _check_replay_once(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """On first use, replay the fingerprinted augmentation of a few rows as the teachers saw it and compare with
        the rows' stored fingerprints (schema 2): a mismatch warns once, or raises with ``check_replay="error"``."""
        if self.check_replay == "off" or int(self._shared[2]):
            return
        rows = [row for row in rows if row.get(FINGERPRINT) is not None][:REPLAY_CHECK_ROWS]
        if not rows:
            return  # schema 1 rows, or the column was dropped: nothing to compare (hf-reinforce verify compares views)
        self._shared[2] = 1
        teacher = self.record.teacher
        with single_thread():
            views = self._render(
                self._from_rows(rows, [FINGERPRINT_AUGMENTATION] * len(rows)), teacher.resolution, teacher.interpolation
            )
        differing = [
            int(row[ROW_INDEX]) for row, view in zip(rows, views) if replay_fingerprint(view) != row[FINGERPRINT]
        ]
        if not differing:
            return
        message = (
            f"this machine does not replay the stored augmentations exactly: {len(differing)} of {len(rows)} rows "
            f"checked on first use (row_index {differing}) render other pixels than the machine that wrote them, so "
            "students see slightly different views than the teachers labelled. `hf-reinforce verify <folder or repo>` "
            "(hfr.verify_replay) checks more rows and compares both rendering environments; "
            'ReinforcedTransform(..., check_replay="error") makes this an error, "off" skips the check'
        )
        if self.check_replay == "error":
            raise ReplayMismatchError(message)
        warnings.warn(message, ReplayMismatchWarning, stacklevel=3)

    def _from_rows(self, rows: Sequence[Mapping[str, Any]], augmentations: Sequence[int] | np.ndarray) -> Chosen:
        try:
            return from_rows(rows, self.policy, self.image_column, self.label_column, augmentations)
        except KeyError as error:
            raise KeyError(
                f"{error.args[0]}; with transformers.Trainer set remove_unused_columns=False or use "
                "DistillationCallback/DistillationTrainer"
            ) from None

    # -- rendering --------------------------------------------------------------------------------------------

    def _render(self, chosen: Chosen, resolution: int | None, interpolation: str | None) -> torch.Tensor:
        return render(
            chosen,
            self.policy,
            self._partners,
            self.image_column,
            int(resolution or self.resolution),
            interpolation or self.interpolation,
        )

    def examples(self, chosen: Chosen) -> dict[str, list]:
        """Training examples of the chosen augmentations, as lists: ``pixel_values`` (rendered together and
        normalized into one batch buffer, one view of it per row), ``topk_ids``, ``topk_probs`` and ``labels``."""
        if not len(chosen.rows):
            return {}
        with single_thread():  # pixel work as in the pass; the caller's (training) thread count comes back after
            pixels = self._render(chosen, None, None)
            values = normalize(pixels, self.mean, self.std, out=batch_buffer(tuple(pixels.shape)))
        out: dict[str, list] = {"pixel_values": list(values)}
        if chosen.topk_ids is not None and chosen.topk_probs is not None:
            out[TOPK_IDS] = list(chosen.topk_ids)
            out[TOPK_PROBS] = list(chosen.topk_probs)
        if chosen.labels is not None:
            out["labels"] = [int(label) for label in chosen.labels]
        return out

    def evaluation(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        """Plain evaluation transform for unreinforced rows: the centred largest square resized
        (:func:`~hf_reinforce.augment.center_view`, the view the teachers' accuracy is measured on), normalized like
        training."""
        out: dict[str, list] = {"pixel_values": [], "labels": []}
        with single_thread():
            for k, value in enumerate(batch[self.image_column]):
                pixels = center_view(to_rgb_uint8(value), self.resolution, self.interpolation)
                out["pixel_values"].append(normalize(pixels, self.mean, self.std))
                if self.label_column and self.label_column in batch:
                    out["labels"].append(int(batch[self.label_column][k]))
        if not out["labels"]:
            del out["labels"]
        return out

    def __repr__(self) -> str:
        return (
            f"ReinforcedTransform(policy={self.record.policy_name!r}, "
            f"N={self.num_augmentations}, resolution={self.resolution}, interpolation={self.interpolation!r}, "
            f"epoch={self.epoch})"
        )
