"""``ReinforceConfig``: everything a user chooses about a reinforcement pass, frozen and self-describing.

Each field carries metadata: ``help`` (one line, shown by the CLI), ``group`` (``dataset``, ``reinforcement`` or
``execution``), ``identity`` (whether the field determines the output: a rerun, a resume or a second split must
match it) and optionally ``cli`` (argparse keywords overriding the ones the CLI derives from the annotation, or
``None``: not on the command line) and ``none_help`` (help of the ``--no-<field>`` form of an optional field).
:meth:`ReinforceConfig.identity` and the command line are derived from that metadata, so a new field is one edit
here. Vary a config with ``dataclasses.replace``; inputs are normalized (the policy parsed, teachers a
tuple) and validated at construction.

This module imports no torch, torchvision or datasets until a config is built: the command line builds its parser
(``--help``, argument errors) from these fields alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .deprecation import warn_renamed
from .errors import ConfigError
from .validation import MAX_AUGMENTATIONS, MAX_RESOLUTION, check_block_layout, check_int, check_temperature

if TYPE_CHECKING:
    from .augment import AugmentationPolicy
    from .teachers import Preprocessing, Teacher

GROUPS = ("dataset", "reinforcement", "execution")


def _field(
    default: Any,
    help: str,
    group: str,
    *,
    identity: bool = False,
    default_factory: Any = dataclasses.MISSING,
    **extra: Any,
) -> Any:
    """A dataclass field with the metadata the CLI and :meth:`ReinforceConfig.identity` read."""
    metadata = {"help": help, "group": group, "identity": identity, **extra}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def _imagenet_mean() -> tuple[float, ...]:
    from .augment import IMAGENET_MEAN

    return IMAGENET_MEAN


def _imagenet_std() -> tuple[float, ...]:
    from .augment import IMAGENET_STD

    return IMAGENET_STD


def default_num_workers() -> int:
    """Render workers per process: the CPU cores this process may use, shared among the processes launched on this
    machine (``LOCAL_WORLD_SIZE``), less one for the process that feeds the teachers (at least 1, at most 16)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, cores // local - 1))


@dataclass(frozen=True)
class ReinforceConfig:
    """Everything that defines a reinforced dataset and how the pass runs: frozen and validated when built; vary it
    with ``dataclasses.replace``. Only ``teachers`` is required. The fields marked *identity* define the output (a
    resume or an extension must keep them); the others only change how the pass runs. Every field is also an option
    of ``hf-reinforce reinforce`` and ``estimate`` (``--field-name``), except ``class_mappings``.

    Raises:
        ConfigError: a field out of range or of the wrong type, no teachers, or an unknown policy (names the field).
    """

    teachers: Sequence[str | Teacher] = _field(
        dataclasses.MISSING,
        "teacher specs: timm:<arch>[@weights], timm/<hub id>[@revision], hf:<repo|folder>[@revision], or Teacher objects",
        "reinforcement",
        identity=True,
        cli={"nargs": "+", "required": True, "metavar": "SPEC"},
    )
    policy: AugmentationPolicy = _field(
        "rrc+ra+re",
        "augmentation policy: a preset (rrc+ra+re, the paper's for ImageNet-scale training; rrc, rrc+mix, "
        "rrc+mix+ra+re; rrc-noflip[+ra+re]; crop, crop+flip[+ra+re]: pad-and-crop, for small images and short "
        "schedules; no flip for digits, text or aligned product photos; docs: 'Choose a policy'), a JSON policy, "
        "or a .json file",
        "reinforcement",
        identity=True,
    )
    num_augmentations: int = _field(400, "augmentations stored per row, N", "reinforcement", identity=True)
    top_k: int = _field(10, "classes stored per augmentation, K", "reinforcement", identity=True)
    seed: int = _field(0, "augmentation seed", "reinforcement", identity=True)
    resolution: int = _field(
        224,
        "resolution of timm:<arch> teachers (random or local weights) and where a Hub config has none; the students' "
        "default",
        "reinforcement",
    )
    interpolation: str = _field(
        "bilinear", "resize interpolation of timm:<arch> teachers (random or local weights)", "reinforcement"
    )
    mean: Sequence[float] = _field(
        dataclasses.MISSING,
        "per-channel mean of x/255 for timm:<arch> teachers (random or local weights; default: ImageNet's)",
        "reinforcement",
        default_factory=_imagenet_mean,
        cli={"nargs": 3, "type": float, "metavar": ("R", "G", "B")},
    )
    std: Sequence[float] = _field(
        dataclasses.MISSING,
        "per-channel std of x/255 for timm:<arch> teachers (random or local weights; default: ImageNet's)",
        "reinforcement",
        default_factory=_imagenet_std,
        cli={"nargs": 3, "type": float, "metavar": ("R", "G", "B")},
    )
    image_column: str = _field("image", "image column", "dataset", identity=True)
    label_column: str | None = _field(
        "label",
        "label column",
        "dataset",
        identity=True,
        none_help="the dataset has no labels (classes come from the teachers)",
    )
    temperature: float = _field(1.0, "softmax temperature of the teachers", "reinforcement", identity=True)
    num_classes: int | None = _field(None, "number of classes (default: from a ClassLabel label column)", "dataset")
    class_mappings: Mapping[str, Sequence[int] | Mapping[int, int]] | None = _field(
        None, "per teacher spec: dataset class -> teacher logit index", "reinforcement", identity=True, cli=None
    )
    rows_per_block: int = _field(16, "rows rendered and sent to the teachers together", "execution", identity=True)
    augmentations_per_step: int = _field(16, "augmentations per row in one teacher batch", "execution", identity=True)
    rows_per_shard: int = _field(2048, "rows per parquet shard", "execution", identity=True)
    skip_bad_images: bool = _field(False, "record and skip rows whose image fails to decode", "dataset", identity=True)
    reinforcement_only: bool = _field(
        False,
        "write only row_index (+ key column) and the reinforcement columns, not the images",
        "dataset",
        identity=True,
    )
    key_column: str | None = _field(None, "column kept as a join key with reinforcement_only", "dataset", identity=True)
    trust_remote_code: bool = _field(False, "allow custom code of hf: teachers", "reinforcement")
    device: str | None = _field(
        None,
        "teacher device, e.g. cuda:0 or cpu (default: cuda when available; each process's own under accelerate)",
        "execution",
    )
    teacher_batch_size: int | None = _field(
        None,
        "micro-batch of one teacher forward (default: each teacher's own, 64); it changes the stored probabilities' "
        "last bits, so a resume or an extension must use the same one",
        "execution",
        identity=True,
    )
    num_workers: int | None = _field(
        None,
        "CPU worker processes that decode and render views while the teachers run (0: render in the main process; "
        "default: the cores per process less one)",
        "execution",
    )

    def __post_init__(self) -> None:
        from .teachers import Teacher

        object.__setattr__(self, "policy", _parse_policy(self.policy))
        teachers = [self.teachers] if isinstance(self.teachers, (str, Teacher)) else list(self.teachers)
        if not teachers:
            raise ConfigError("teachers: give at least one teacher (e.g. teachers=['timm:resnet18'])")
        object.__setattr__(self, "teachers", tuple(teachers))
        check_int(self.num_augmentations, "num_augmentations", minimum=1, maximum=MAX_AUGMENTATIONS)
        check_int(self.resolution, "resolution", minimum=1, maximum=MAX_RESOLUTION)
        for name in ("top_k", "rows_per_block", "augmentations_per_step", "rows_per_shard"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.seed, "seed", minimum=0)
        for name in ("num_classes", "teacher_batch_size"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, minimum=1)
        if self.num_workers is not None:
            check_int(self.num_workers, "num_workers", minimum=0)
        check_temperature(self.temperature)
        for name, value in self.preprocessing.to_dict().items():
            object.__setattr__(self, name, value)  # normalized: interpolation name, mean/std as float tuples
        mix = self.policy.mix
        check_block_layout(
            mix_block_size=mix.block_size if mix is not None else None,
            rows_per_block=self.rows_per_block,
            rows_per_shard=self.rows_per_shard,
            skip_bad_images=self.skip_bad_images,
        )

    @property
    def augmentation_policy(self) -> AugmentationPolicy:
        """Deprecated: ``policy`` itself is the parsed :class:`AugmentationPolicy`."""
        warn_renamed("ReinforceConfig.augmentation_policy", "ReinforceConfig.policy")
        return self.policy

    @property
    def preprocessing(self) -> Preprocessing:
        """What ``timm:<arch>`` teachers (random init or local weights: no known training preprocessing) see, unless
        their spec says otherwise (``...?resolution=32&interpolation=bicubic``); pretrained Hub teachers keep theirs.
        Not part of :meth:`identity`: the teachers' recorded preprocessing carries it wherever it has an effect."""
        from .teachers import Preprocessing

        return Preprocessing(self.resolution, self.interpolation, tuple(self.mean), tuple(self.std))

    @property
    def workers(self) -> int:
        """``num_workers``, or the default for this machine when it is ``None``."""
        return default_num_workers() if self.num_workers is None else self.num_workers

    @property
    def identity(self) -> dict[str, Any]:
        """The fields that determine the output (a rerun or a second split must match them), JSON-able."""
        from .storage.format import SCHEMA_VERSION

        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            if f.metadata.get("identity"):
                out[f.name] = _identity_value(f.name, getattr(self, f.name))
        return out


def identity_fields() -> list[str]:
    """Names of the fields that determine a pass's output."""
    return [f.name for f in dataclasses.fields(ReinforceConfig) if f.metadata.get("identity")]


def _parse_policy(policy: Any) -> AugmentationPolicy:
    from .augment import AugmentationPolicy

    try:
        return AugmentationPolicy.parse(policy)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _identity_value(name: str, value: Any) -> Any:
    if name == "policy":
        return value.to_dict()
    if name == "teachers":
        from .teachers import teacher_key

        return [teacher_key(t) for t in value]
    return jsonable(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars/arrays via ``tolist``, anything else via ``str``)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


__all__ = ["ReinforceConfig", "default_num_workers", "identity_fields", "jsonable"]
