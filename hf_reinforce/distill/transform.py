"""``ReinforcedTransform``: replay one stored augmentation per row and epoch, with that augmentation's teacher top-k.

Choice of augmentation: for row ``i`` in epoch ``e`` with ``N`` stored augmentations, cycle ``c = e // N`` draws a
permutation of ``0..N-1`` seeded by (seed, i, c) and uses its element ``e % N``, so every stored augmentation is
used once before any repeats. Rendering goes through the same ``AugmentationPolicy.render`` as the teachers'
inputs, so at the teachers' resolution and interpolation the pixels are identical. Pixel work runs with one torch
thread (``augment.single_thread``), as in the pass: in the main process (``Trainer``'s default
``dataloader_num_workers=0``) torch's default thread pool made each row 15–35× slower on a busy 2-core machine.

Only ``augment``, ``storage`` and ``validation`` are imported here: training code never loads teacher code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment import AugmentationPolicy, Params, center_view, normalize, single_thread, to_rgb_uint8
from ..deprecation import warn_renamed
from ..errors import ConfigError
from ..storage.format import ROW_INDEX, TOPK_IDS, TOPK_PROBS, decode_params, decode_topk
from ..storage.reader import load_record
from ..storage.record import RunRecord, record_from_dataset
from ..validation import check_index, check_split


def augmentation_index(seed: int, row: int, epoch: int, num_augmentations: int) -> int:
    """Stored augmentation used for ``row`` in ``epoch``: without replacement within each cycle of N epochs."""
    cycle, position = divmod(int(epoch), num_augmentations)
    return int(np.random.default_rng([seed, row, cycle]).permutation(num_augmentations)[position])


class ReinforcedTransform:
    """``datasets`` transform: rows → ``pixel_values``, ``labels``, ``topk_ids``, ``topk_probs`` of one stored augmentation.

    Use with ``dataset.set_transform(transform)`` / ``with_transform``, a ``DataLoader`` with workers (it pickles;
    persistent workers follow ``set_epoch`` too: the epoch is in shared memory),
    or ``IterableDataset.map(transform, batched=True)`` for streaming (policies without mixing). Defaults for
    resolution, interpolation and normalization come from the run record (the reinforcement resolution and the
    first teacher's interpolation, mean and std). ``record`` is the run record of the dataset (a :class:`RunRecord`
    or its JSON dict, as :func:`hf_reinforce.load_record` returns and ``reinforce_config.json`` holds).
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
        # One shared-memory int: DataLoader workers (persistent ones too) read the epoch the main process set.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.set_epoch(epoch)
        self._partners = None
        self._positions: dict[int, int] | None = None
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
        """Keep an untransformed view of the dataset to fetch MixUp/CutMix partner rows from."""
        import datasets

        if dataset is None:
            raise ConfigError("this policy mixes rows (MixUp/CutMix): pass dataset= so partner rows can be fetched")
        check_split(dataset, "ReinforcedTransform(dataset=...)", streaming=True)
        if isinstance(dataset, datasets.IterableDataset):
            raise ConfigError(
                "mixing policies (MixUp/CutMix) need random access to partner rows, which a streaming dataset cannot "
                "give: load it without streaming=True"
            )
        columns = [self.image_column, ROW_INDEX, *self.policy.columns]
        self._partners = dataset.select_columns(columns).with_format("arrow")

    # -- epochs -----------------------------------------------------------------------------------------------

    epoch_shared_with_workers = True
    """``set_epoch`` reaches DataLoader workers that already hold a copy (``persistent_workers=True``)."""

    @property
    def epoch(self) -> int:
        """The epoch whose stored augmentations this transform replays."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentations of ``epoch`` (call before each epoch; DistillationCallback does it).

        The epoch lives in shared memory, so workers of a ``DataLoader`` (also with ``persistent_workers=True``)
        see it from the next ``iter(loader)`` on; a plain ``pickle`` of the transform gets its own copy.
        """
        self._epoch.fill_(check_index(epoch, "epoch"))

    def augmentation_index(self, row_index: int, epoch: int | None = None) -> int:
        """The stored augmentation this transform uses for ``row_index`` in ``epoch`` (default: current)."""
        return augmentation_index(self.seed, row_index, self.epoch if epoch is None else epoch, self.num_augmentations)

    # -- rendering --------------------------------------------------------------------------------------------

    def _params(self, row: Mapping[str, Any], j: int) -> Params:
        """Parameters of stored augmentation ``j`` only, as a one-augmentation ``Params``."""
        try:
            return decode_params(row, self.policy, index=j)
        except KeyError as error:
            raise KeyError(
                f"{error.args[0]}; with transformers.Trainer set remove_unused_columns=False or use "
                "DistillationCallback/DistillationTrainer"
            ) from None

    def check_row(self, row: Mapping[str, Any]) -> None:
        """Refuse a row of another reinforced dataset (other policy or mixing, other N or K) with what differs:
        replaying its parameters with this transform's policy would give wrong pixels without a word."""
        expected = set(self.policy.columns)
        stored = {name for name in row if name.startswith("aug_")}
        if not stored and ROW_INDEX not in row:
            return  # columns dropped before the transform: example() and _params() say how to keep them
        problems = []
        if stored != expected:
            problems.append(
                f"augmentation columns {sorted(stored)} (this transform's policy {self.record.policy_name!r} "
                f"stores {sorted(expected)})"
            )
        lengths = {name: len(row[name]) for name in (*sorted(stored & expected), TOPK_IDS) if name in row}
        wrong = {name: n for name, n in lengths.items() if n != self.num_augmentations}
        if wrong:
            counts = " or ".join(map(str, sorted(set(wrong.values()))))
            problems.append(f"{counts} stored augmentations (this transform's N is {self.num_augmentations})")
        elif TOPK_IDS in row and len(row[TOPK_IDS]) and len(row[TOPK_IDS][0]) != self.record.top_k:
            problems.append(f"top-{len(row[TOPK_IDS][0])} ids (this transform's K is {self.record.top_k})")
        if problems:
            raise ConfigError(
                f"row {row.get(ROW_INDEX)} is not from the dataset this transform was built for: it has "
                + "; ".join(problems)
                + ". Build the transform from this dataset's own record (from_pretrained(<its folder or repo>) or "
                "from_dataset(ds))"
            )

    def _partner_row(self, row_index: int) -> Mapping[str, Any]:
        if self._partners is None:
            raise KeyError(f"MixUp/CutMix partner row_index {row_index}: the transform was given no dataset")
        if self._positions is None:
            self._positions = {int(r): k for k, r in enumerate(self._partners[ROW_INDEX])}
        if row_index not in self._positions:
            raise KeyError(f"MixUp/CutMix partner row_index {row_index} is not in the dataset given to the transform")
        return arrow_row(self._partners, self._positions[row_index])

    def replay(
        self, row: Mapping[str, Any], aug_index: int, resolution: int | None = None, interpolation: str | None = None
    ) -> torch.Tensor:
        """Exact ``uint8 (3, r, r)`` pixels of stored augmentation ``aug_index`` of ``row`` (mixing included)."""
        self.check_row(row)
        return self._replay(row, check_index(aug_index, "aug_index", self.num_augmentations), resolution, interpolation)

    def _replay(
        self, row: Mapping[str, Any], aug_index: int, resolution: int | None, interpolation: str | None
    ) -> torch.Tensor:
        resolution = int(resolution or self.resolution)
        interpolation = interpolation or self.interpolation
        params = self._params(row, aug_index)
        image = to_rgb_uint8(row[self.image_column])
        partner = int(params["aug_mix_partner"][0]) if self.policy.mix is not None else -1
        if partner < 0:
            return self.policy.render(image, params, 0, resolution, interpolation)
        other = self._partner_row(partner)
        return self.policy.replay(
            image,
            params,
            0,
            resolution,
            interpolation,
            partner_image=to_rgb_uint8(other[self.image_column]),
            partner_params=self._params(other, aug_index),
        )

    def example(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One training example: this epoch's stored augmentation of ``row``, normalized, with its top-k."""
        if ROW_INDEX not in row:
            raise KeyError(
                f"row has no {ROW_INDEX!r} column (columns: {sorted(row)}); is this a reinforced dataset? With "
                "transformers.Trainer set remove_unused_columns=False or use DistillationCallback/DistillationTrainer"
            )
        self.check_row(row)
        j = self.augmentation_index(int(row[ROW_INDEX]))
        ids, probs = decode_topk(row, index=j)
        pixels = self._replay(row, j, None, None)
        out: dict[str, Any] = {
            "pixel_values": normalize(pixels, self.mean, self.std),
            TOPK_IDS: ids,
            TOPK_PROBS: probs,
        }
        if self.label_column and self.label_column in row:
            out["labels"] = int(row[self.label_column])
        return out

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list]:
        """Batched transform (``set_transform``): each row gets its stored augmentation for the current epoch."""
        size = len(next(iter(batch.values()), []))
        with single_thread():  # pixel work as in the pass; the caller's (training) thread count comes back after
            examples = [self.example({name: values[k] for name, values in batch.items()}) for k in range(size)]
        return {key: [e[key] for e in examples] for key in (examples[0] if examples else {})}

    def torch_dataset(self, dataset: Any) -> ReplayDataset:
        """A ``torch.utils.data.Dataset`` over ``dataset`` that reads only the chosen augmentation from Arrow.

        Equivalent to ``dataset.with_transform(self)``, but ``set_transform`` first converts *all* N stored
        augmentations of a row to Python lists; this reads one (measured in README: flat in N).
        """
        check_split(dataset, "torch_dataset")
        return ReplayDataset(dataset, self)

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


class _StoredList:
    """One row's ``N × ...`` stored list, read element by element from Arrow without converting the rest."""

    def __init__(self, scalar: Any) -> None:
        self.scalar = scalar

    def __getitem__(self, j: int) -> Any:
        return self.scalar.values[j].as_py()

    def __len__(self) -> int:
        return len(self.scalar.values)


def arrow_row(dataset: Any, index: int) -> dict[str, Any]:
    """Row ``index`` of an Arrow-formatted dataset: list columns stay lazy (:class:`_StoredList`), others are Python."""
    import pyarrow as pa

    table = dataset[index]
    row: dict[str, Any] = {}
    for name in table.column_names:
        scalar = table.column(name)[0]
        is_list = pa.types.is_list(scalar.type) or pa.types.is_fixed_size_list(scalar.type)
        row[name] = _StoredList(scalar) if is_list else scalar.as_py()
    return row


class ReplayDataset(torch.utils.data.Dataset):
    """``torch`` view of a reinforced ``datasets.Dataset``: item ``i`` is ``transform.example`` of row ``i``."""

    def __init__(self, dataset: Any, transform: ReinforcedTransform) -> None:
        self.rows = dataset.with_format("arrow")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = arrow_row(self.rows, int(index))
        with single_thread():
            return self.transform.example(row)
