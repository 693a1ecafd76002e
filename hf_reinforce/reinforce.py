"""The reinforcement pass: teacher-ensemble top-k over stored augmentations, as a ``datasets.map`` function.

Rows are processed in fixed blocks of ``rows_per_block`` rows aligned to the dataset start; within a block, the
teachers see fixed chunks of ``augmentations_per_step`` augmentation indices of every row. Teacher batches
therefore do not depend on the ``map`` batch size, the shard count or the number of processes, and neither does
the output. Each image is decoded once per row and rendered on the teachers' device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Features, Image, Value

from . import __version__
from .augment import AugmentationPolicy, Params, to_rgb_uint8
from .format import ROW_INDEX, SCHEMA_VERSION, TOPK_IDS, TOPK_PROBS, attach_config, encode_topk, reinforce_features
from .teachers import Ensemble, Teacher, load_teacher


class BadImageError(ValueError):
    """An image that cannot be decoded, named by row index and column."""


@dataclass
class ReinforceConfig:
    """Everything that defines a reinforced dataset (see README "Reinforce" for each field)."""

    teachers: Sequence[str | Teacher]
    policy: str | Mapping[str, Any] | AugmentationPolicy = "rrc+ra+re"
    num_augmentations: int = 400
    top_k: int = 10
    seed: int = 0
    resolution: int = 224
    image_column: str = "image"
    label_column: str | None = "label"
    temperature: float = 1.0
    num_classes: int | None = None
    class_mappings: Mapping[str, Sequence[int] | Mapping[int, int]] | None = None
    rows_per_block: int = 16
    augmentations_per_step: int = 16
    rows_per_shard: int = 2048
    skip_bad_images: bool = False
    reinforcement_only: bool = False
    key_column: str | None = None
    trust_remote_code: bool = False
    device: str | None = None
    teacher_batch_size: int | None = None
    _policy: AugmentationPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._policy = AugmentationPolicy.parse(self.policy)
        self.teachers = [self.teachers] if isinstance(self.teachers, (str, Teacher)) else list(self.teachers)
        if not self.teachers:
            raise ValueError("teachers: give at least one teacher")
        for name in (
            "num_augmentations",
            "top_k",
            "resolution",
            "rows_per_block",
            "augmentations_per_step",
            "rows_per_shard",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature: expected a positive number, got {self.temperature!r}")
        mixing = self._policy.mixing
        if mixing is not None and self.rows_per_block % mixing.block_size:
            raise ValueError(
                f"rows_per_block ({self.rows_per_block}) must be a multiple of the policy's mix.block_size "
                f"({mixing.block_size}) so that every partner is rendered in the same block"
            )
        if mixing is not None and self.skip_bad_images:
            raise ValueError("skip_bad_images cannot be combined with a mixing policy: a skipped row may be a partner")
        if self.rows_per_shard % self.rows_per_block:
            raise ValueError(
                f"rows_per_shard ({self.rows_per_shard}) must be a multiple of rows_per_block ({self.rows_per_block})"
            )

    @property
    def augmentation_policy(self) -> AugmentationPolicy:
        """The parsed augmentation policy."""
        return self._policy

    def identity(self) -> dict[str, Any]:
        """The fields that determine the output (a rerun or a second split must match them)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "policy": self._policy.to_dict(),
            "num_augmentations": self.num_augmentations,
            "top_k": self.top_k,
            "seed": self.seed,
            "temperature": self.temperature,
            "teachers": [t if isinstance(t, str) else (t.name or type(t.module).__name__) for t in self.teachers],
            "class_mappings": _jsonable(self.class_mappings),
            "image_column": self.image_column,
            "label_column": self.label_column,
            "rows_per_block": self.rows_per_block,
            "augmentations_per_step": self.augmentations_per_step,
            "rows_per_shard": self.rows_per_shard,
            "reinforcement_only": self.reinforcement_only,
            "key_column": self.key_column,
            "skip_bad_images": self.skip_bad_images,
        }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


# -- setup -------------------------------------------------------------------------------------------------------


def check_columns(dataset: datasets.Dataset, config: ReinforceConfig) -> None:
    """Raise a ``ValueError`` listing the existing columns when a configured column is missing."""
    for role, name in (
        ("image_column", config.image_column),
        ("label_column", config.label_column),
        ("key_column", config.key_column),
    ):
        if name is not None and name not in dataset.column_names:
            raise ValueError(f"{role} {name!r} is not a column of the dataset; its columns are {dataset.column_names}")
    if ROW_INDEX in dataset.column_names or any(c in dataset.column_names for c in reinforce_columns(config)):
        raise ValueError(
            f"the dataset already has reinforcement columns ({ROW_INDEX}, aug_*, topk_*): is it reinforced already?"
        )


def reinforce_columns(config: ReinforceConfig) -> list[str]:
    """Names of the columns a pass adds."""
    return [ROW_INDEX, *config.augmentation_policy.columns, TOPK_IDS, TOPK_PROBS]


def dataset_num_classes(dataset: datasets.Dataset, config: ReinforceConfig) -> int | None:
    """Classes from the config, else from a ``ClassLabel`` label column, else ``None`` (taken from the teachers)."""
    if config.num_classes is not None:
        return config.num_classes
    feature = dataset.features.get(config.label_column) if config.label_column else None
    return feature.num_classes if isinstance(feature, ClassLabel) else None


def build_ensemble(config: ReinforceConfig, num_classes: int | None, device: str | torch.device | None) -> Ensemble:
    """Load every teacher on ``device`` aligned to the dataset's classes."""
    mappings = config.class_mappings or {}
    teachers = []
    for spec in config.teachers:
        key = spec if isinstance(spec, str) else spec.name
        teacher = load_teacher(
            spec,
            device=device,
            num_classes=num_classes,
            class_mapping=mappings.get(key),
            trust_remote_code=config.trust_remote_code,
            default_resolution=config.resolution,
        )
        if config.teacher_batch_size:
            teacher = dataclasses.replace(teacher, batch_size=config.teacher_batch_size)
        teachers.append(teacher)
    ensemble = Ensemble(teachers, temperature=config.temperature)
    if config.top_k > ensemble.num_classes:
        raise ValueError(f"top_k ({config.top_k}) exceeds the number of classes ({ensemble.num_classes})")
    return ensemble


# -- the map function --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def pixel_threads(device: torch.device) -> Iterator[None]:
    """On CPU, decode and render with one thread: small-image ops cost several times more CPU across threads
    (measured: 2.6 vs 14.9 CPU-ms per rrc+ra+re view), while the teacher forward keeps every thread. Pixels are
    identical either way."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ReinforceFunction:
    """``datasets.map(batched=True, with_indices=True)`` function adding parameter and top-k columns.

    ``offset`` is the global index of the first row of the mapped dataset (shards are mapped separately), and
    ``num_rows`` the length of the whole dataset (mixing blocks). Rows that fail to decode raise
    :class:`BadImageError`, or are recorded in ``skipped`` and dropped when ``config.skip_bad_images``.
    """

    def __init__(
        self,
        config: ReinforceConfig,
        ensemble: Ensemble,
        num_rows: int,
        offset: int = 0,
        keep_columns: Sequence[str] = (),
        on_views: Callable[[int], None] | None = None,
    ) -> None:
        self.config, self.ensemble, self.num_rows, self.offset = config, ensemble, num_rows, offset
        self.policy = config.augmentation_policy
        self.keep_columns = list(keep_columns)
        self.on_views = on_views
        self.skipped: list[int] = []

    def __call__(self, batch: Mapping[str, list], indices: list[int]) -> dict[str, list]:
        rows = [self.offset + i for i in indices]
        block = self.config.rows_per_block
        outputs: dict[str, list] = {name: [] for name in (*self.keep_columns, ROW_INDEX)}
        for start in range(0, len(rows), block):
            chunk = range(start, min(start + block, len(rows)))
            if rows[chunk[0]] % block:
                raise RuntimeError(f"internal error: block starting at row {rows[chunk[0]]} is not aligned to {block}")
            images = {}
            with pixel_threads(self.ensemble.device):
                for k in chunk:
                    image = self._decode(batch[self.config.image_column][k], rows[k])
                    if image is not None:
                        images[k] = image
            kept = list(images)
            result = self._reinforce_block([rows[k] for k in kept], [images[k] for k in kept])
            for name in self.keep_columns:
                outputs[name].extend(batch[name][k] for k in kept)
            outputs[ROW_INDEX].extend(rows[k] for k in kept)
            for name, values in result.items():
                outputs.setdefault(name, []).extend(values)
        return outputs

    def _decode(self, value: Any, row: int) -> torch.Tensor | None:
        try:
            if value is None:
                raise ValueError("the image is missing (None)")
            return to_rgb_uint8(value)
        except Exception as error:  # noqa: BLE001 — any decoder failure is reported with its row
            if self.config.skip_bad_images:
                self.skipped.append(row)
                return None
            raise BadImageError(
                f"row {row}, column {self.config.image_column!r}: cannot decode the image ({type(error).__name__}: {error}); "
                "fix or remove it, or pass skip_bad_images=True to record and skip such rows"
            ) from error

    def _reinforce_block(self, rows: list[int], images: list[torch.Tensor]) -> dict[str, list]:
        """Parameters and ensemble top-k for all augmentations of a block of rows."""
        if not rows:
            return {}
        n, step = self.config.num_augmentations, self.config.augmentations_per_step
        device = self.ensemble.device
        params = [
            self.policy.sample(self.config.seed, row, n, img.shape[1], img.shape[2], num_rows=self.num_rows)
            for row, img in zip(rows, images)
        ]
        on_device = [img.to(device) for img in images]
        ids_chunks, prob_chunks = [], []
        for j0 in range(0, n, step):
            js = range(j0, min(j0 + step, n))
            with pixel_threads(device):
                views = {
                    spec: self._render(rows, on_device, params, js, spec.resolution, spec.interpolation)
                    for spec in self.ensemble.view_specs()
                }
            probs = self.ensemble.probs(views)
            ids, values = encode_topk(probs, self.config.top_k, self.ensemble.num_classes)
            ids_chunks.append(ids.reshape(len(rows), len(js), -1))
            prob_chunks.append(values.reshape(len(rows), len(js), -1))
            if self.on_views:
                self.on_views(len(rows) * len(js))
        ids_all, probs_all = np.concatenate(ids_chunks, axis=1), np.concatenate(prob_chunks, axis=1)
        out: dict[str, list] = {name: [p[name] for p in params] for name in self.policy.columns}
        out[TOPK_IDS] = list(ids_all)
        out[TOPK_PROBS] = list(probs_all)
        return out

    def _render(
        self,
        rows: list[int],
        images: list[torch.Tensor],
        params: list[Params],
        js: range,
        resolution: int,
        interpolation: str,
    ) -> torch.Tensor:
        """``(len(rows) * len(js), 3, r, r)`` uint8 views, row-major; mixing partners come from the same block."""
        rendered = torch.stack(
            [self.policy.render_many(img, p, js, resolution, interpolation) for img, p in zip(images, params)]
        )
        if self.policy.mixing is not None:
            position = {row: k for k, row in enumerate(rows)}
            mixed = rendered.clone()
            for k, p in enumerate(params):
                for t, j in enumerate(js):
                    partner = int(p["aug_mix_partner"][j])
                    if partner >= 0:
                        mixed[k, t] = self.policy.mix_rendered(rendered[k, t], rendered[position[partner], t], p, j)
            rendered = mixed
        return rendered.reshape(-1, *rendered.shape[2:])


# -- the pass ----------------------------------------------------------------------------------------------------


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def map_reinforce(
    dataset: datasets.Dataset, fn: ReinforceFunction, features: Features, fingerprint: str, **kwargs: Any
) -> datasets.Dataset:
    """``dataset.map(fn)`` in whole blocks of rows, replacing the columns by ``fn``'s output (kept ones included)."""
    return dataset.map(
        fn,
        batched=True,
        batch_size=fn.config.rows_per_block,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=features,
        new_fingerprint=fingerprint,
        load_from_cache_file=False,
        **kwargs,
    )


def _prepare(dataset: datasets.Dataset, config: ReinforceConfig) -> tuple[datasets.Dataset, Image | None]:
    """Cast the image column to undecoded bytes so the pass decodes each image itself, once, with row context;
    also returns the original ``Image`` feature to cast the output back to (``None`` when nothing was cast)."""
    feature = dataset.features[config.image_column]
    if isinstance(feature, Image) and feature.decode:
        return dataset.cast_column(config.image_column, Image(decode=False)), feature
    return dataset, None


def _output_features(
    dataset: datasets.Dataset, config: ReinforceConfig, num_classes: int, keep: Sequence[str]
) -> Features:
    new = reinforce_features(config.augmentation_policy, config.num_augmentations, config.top_k, num_classes)
    return Features({**{c: dataset.features[c] for c in keep}, ROW_INDEX: Value("int64"), **new})


class _quiet:
    """Silence ``datasets``' own progress bars (per-shard maps under our views/s bar, or ``progress=False``)."""

    def __enter__(self) -> None:
        self.was_enabled = not datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            datasets.enable_progress_bars()


def _keep_columns(dataset: datasets.Dataset, config: ReinforceConfig) -> list[str]:
    if config.reinforcement_only:
        return [config.key_column] if config.key_column else []
    return list(dataset.column_names)


def reinforce(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    output_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
    source_id: str | None = None,
    source_revision: str | None = None,
) -> datasets.Dataset:
    """Add augmentation-parameter and teacher top-k columns to ``dataset``.

    Without ``output_dir`` the result is computed in this process by ``Dataset.map`` and returned. With
    ``output_dir`` it is written as a Hub-layout folder shard by shard (atomic, resumable; under
    ``accelerate launch`` shards are spread over the processes) and loaded back from it.
    """
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(
            f"reinforce() takes a datasets.Dataset, got {type(dataset).__name__} (streaming is not supported)"
        )
    if len(dataset) == 0:
        raise ValueError("the dataset has no rows: there is nothing to reinforce")
    check_columns(dataset, config)
    if output_dir is not None:
        from .shards import reinforce_to_folder

        return reinforce_to_folder(
            dataset,
            config,
            Path(output_dir),
            split=split,
            overwrite=overwrite,
            progress=progress,
            source_id=source_id,
            source_revision=source_revision,
        )
    ensemble = build_ensemble(config, dataset_num_classes(dataset, config), config.device)
    prepared, image_feature = _prepare(dataset, config)
    keep = _keep_columns(prepared, config)
    fn = ReinforceFunction(config, ensemble, len(dataset), keep_columns=keep)
    features = _output_features(prepared, config, ensemble.num_classes, keep)
    with contextlib.nullcontext() if progress else _quiet():
        out = map_reinforce(
            prepared,
            fn,
            features,
            _fingerprint(dataset._fingerprint, config.identity(), ensemble.to_config()),
            desc="reinforce",
        )
    if image_feature and config.image_column in keep:
        out = out.cast_column(config.image_column, image_feature)
    run = run_config(dataset, config, ensemble, split, source_id, source_revision)
    run["source"]["skipped_rows"] = sorted(fn.skipped)
    return attach_config(out, run)


def run_config(
    dataset: datasets.Dataset,
    config: ReinforceConfig,
    ensemble: Ensemble,
    split: str,
    source_id: str | None,
    source_revision: str | None,
) -> dict[str, Any]:
    """The full JSON config of a run: identity, teachers as loaded, source dataset and library version."""
    info = dataset.info
    return {
        **config.identity(),
        "library": "hf_reinforce",
        "library_version": __version__,
        "resolution": config.resolution,
        "num_classes": ensemble.num_classes,
        "class_names": _class_names(dataset, config),
        "teachers": ensemble.to_config()["teachers"],
        "source": {
            "id": source_id or info.dataset_name,
            "config": info.config_name,
            "revision": source_revision,
            "split": split,
            "num_rows": len(dataset),
            "fingerprint": dataset._fingerprint,
        },
    }


def _class_names(dataset: datasets.Dataset, config: ReinforceConfig) -> list[str] | None:
    feature = dataset.features.get(config.label_column) if config.label_column else None
    return list(feature.names) if isinstance(feature, ClassLabel) else None


__all__ = ["BadImageError", "ReinforceConfig", "ReinforceFunction", "reinforce"]
