"""Augmentation operations as data: constants, a parameter schema, a sampler and an apply function each.

An op is a frozen dataclass. ``columns`` names its stored parameter columns with their dtype and per-augmentation
shape; ``sample`` draws parameters for ``n`` augmentations of one row from generators seeded by
(seed, row, op position); ``apply`` renders a batch of views from their recorded parameters (one view is a batch
of one, so generation and replay run the same code). MixUp/CutMix is not an op: it needs a partner row, so
``MixUpCutMix`` has ``mix`` instead of ``apply`` and a policy holds it apart from its ops.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision.transforms import v2

from . import functional as AF
from . import sampling

RngFactory = Callable[[int], np.random.Generator]
Columns = dict[str, tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class SampleContext:
    """What a sampler may depend on: the row's generators, the image size and the row's mixing block."""

    rng: RngFactory
    height: int
    width: int
    row: int
    block: tuple[int, int]


def _check_range(op: str, field: str, value: tuple[float, float], low: float, high: float | None) -> None:
    if len(value) != 2 or not (low < value[0] <= value[1]) or (high is not None and value[1] > high):
        bound = f"{low} < a <= b" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{op}.{field}: expected a pair (a, b) with {bound}, got {value!r}")


def _check_prob(op: str, field: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{op}.{field}: expected a probability in [0, 1], got {value!r}")


def _check_fill(op: str, value: tuple[int, ...]) -> None:
    if len(value) != 3 or any(not 0 <= int(v) <= 255 for v in value):
        raise ValueError(f"{op}.fill: expected three integers in [0, 255], got {value!r}")


def _to_dict(spec: Any) -> dict[str, Any]:
    """All constants of an op (or of the mix), JSON-serializable, with its ``op`` name."""
    out: dict[str, Any] = {"op": spec.name}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True)
class Op(abc.ABC):
    """Base class of augmentation ops: JSON round trip and the interface every op implements."""

    name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """All constants of the op, JSON-serializable, with its ``op`` name."""
        return _to_dict(self)

    @property
    @abc.abstractmethod
    def columns(self) -> Columns:
        """Stored parameter columns: name → (dtype, per-augmentation shape)."""

    @abc.abstractmethod
    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        """Parameters of ``n`` augmentations of one row, each array with leading dimension ``n``."""

    @abc.abstractmethod
    def apply(
        self, images: torch.Tensor, params: Mapping[str, np.ndarray], resolution: int, interpolation: Any
    ) -> torch.Tensor:
        """Views ``(B, 3, H, W)`` with their recorded parameters (leading dimension ``B``) → rendered views.

        May write into ``images`` (the policy passes a buffer it owns). A policy's first op, the crop, gets instead
        a sequence of ``B`` source images ``(3, H_b, W_b)``, one per view (a row's views repeat its image).
        """

    @abc.abstractmethod
    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        """The torchvision v2 transform that draws this op's augmentation on the fly, with the same constants."""


@dataclass(frozen=True)
class RandomResizedCrop(Op):
    """Crop a random area/aspect box (torchvision's algorithm and defaults) and resize it to the output resolution."""

    name: ClassVar[str] = "rrc"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        _check_range(self.name, "scale", self.scale, 0.0, 1.0)
        _check_range(self.name, "ratio", self.ratio, 0.0, None)
        AF.interpolation_mode(self.interpolation, "rrc.interpolation")

    @property
    def columns(self) -> Columns:
        return {"aug_rrc": ("uint16", (4,))}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        u = ctx.rng(0).random((n, 4 * sampling.RRC_ATTEMPTS))
        return {"aug_rrc": sampling.sample_resized_crop(u, ctx.height, ctx.width, self.scale, self.ratio)}

    def apply(
        self,
        images: torch.Tensor | Sequence[torch.Tensor],
        params: Mapping[str, np.ndarray],
        resolution: int,
        interpolation: Any,
    ) -> torch.Tensor:
        mode = AF.interpolation_mode(interpolation or self.interpolation)
        boxes = np.asarray(params["aug_rrc"]).reshape(len(images), 4).tolist()
        return AF.resized_crops(list(images), boxes, resolution, mode)

    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        mode = AF.interpolation_mode(interpolation or self.interpolation)
        return v2.RandomResizedCrop(resolution, self.scale, self.ratio, interpolation=mode, antialias=True)


@dataclass(frozen=True)
class RandomCrop(Op):
    """torchvision's ``RandomCrop(r, padding, padding_mode=..., fill=...)`` (the standard small-image crop) of the
    image's centred square resized to the output resolution ``r``: pad by ``padding`` × ``r`` pixels (a fraction of
    the output size, so a student at another resolution replays the same relative window: 0.125 is 4 px at 32 px),
    then take an ``r × r`` window at a uniformly drawn offset. The centred square is the evaluation view
    (:func:`hf_reinforce.augment.center_view`), so a square image is only resized and a non-square one loses the ends
    of its long side. Stored: the window position ``(top, left)`` in 1/65535 of the ``2 × pad + 1`` offsets."""

    name: ClassVar[str] = "crop"
    padding: float = 0.125
    padding_mode: str = "constant"
    fill: tuple[int, int, int] = (0, 0, 0)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if isinstance(self.padding, bool) or not isinstance(self.padding, (int, float)) or not 0 <= self.padding < 0.5:
            raise ValueError(
                f"crop.padding: expected a fraction of the output size in [0, 0.5) (0.125 = 4 px at 32 px), "
                f"got {self.padding!r}"
            )
        if self.padding_mode not in AF.PADDING_MODES:
            raise ValueError(f"crop.padding_mode: expected one of {list(AF.PADDING_MODES)}, got {self.padding_mode!r}")
        _check_fill(self.name, self.fill)
        AF.interpolation_mode(self.interpolation, "crop.interpolation")

    @property
    def columns(self) -> Columns:
        return {"aug_crop": ("uint16", (2,))}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        return {"aug_crop": sampling.sample_crop_offsets(ctx.rng(0).random((n, 2)))}

    def apply(
        self,
        images: torch.Tensor | Sequence[torch.Tensor],
        params: Mapping[str, np.ndarray],
        resolution: int,
        interpolation: Any,
    ) -> torch.Tensor:
        mode = AF.interpolation_mode(interpolation or self.interpolation)
        offsets = np.asarray(params["aug_crop"]).reshape(len(images), 2).tolist()
        return AF.padded_crops(
            list(images), offsets, resolution, self.padding, self.padding_mode, tuple(self.fill), mode
        )

    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        mode = AF.interpolation_mode(interpolation or self.interpolation)
        pad = AF.padding_pixels(self.padding, resolution)
        fill = list(self.fill) if self.padding_mode == "constant" else 0
        return v2.Compose(
            [
                v2.Lambda(functools.partial(AF.center_square, resolution=resolution, interpolation=mode)),
                v2.RandomCrop(resolution, padding=pad or None, fill=fill, padding_mode=self.padding_mode),
            ]
        )


@dataclass(frozen=True)
class HorizontalFlip(Op):
    """Mirror the image with probability ``p``."""

    name: ClassVar[str] = "flip"
    p: float = 0.5

    def __post_init__(self) -> None:
        _check_prob(self.name, "p", self.p)

    @property
    def columns(self) -> Columns:
        return {"aug_flip": ("bool", ())}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        return {"aug_flip": sampling.sample_flip(ctx.rng(0).random((n, 1)), self.p)}

    def apply(
        self, images: torch.Tensor, params: Mapping[str, np.ndarray], resolution: int, interpolation: Any
    ) -> torch.Tensor:
        return AF.horizontal_flip(images, np.asarray(params["aug_flip"]).reshape(len(images)))

    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        return v2.RandomHorizontalFlip(self.p)


@dataclass(frozen=True)
class RandAugment(Op):
    """torchvision's RandAugment: ``num_ops`` ops drawn from ``ops`` at bin ``magnitude`` of ``num_magnitude_bins``.

    Signed ops are negated with probability 1/2; ``magnitude_std > 0`` draws the bin from a normal around
    ``magnitude`` (timm's ``mstd``). ``ops`` defaults to all of torchvision's RandAugment operations.
    """

    name: ClassVar[str] = "ra"
    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    magnitude_std: float = 0.0
    ops: tuple[str, ...] = AF.RAND_AUGMENT_OPS
    interpolation: str = "bilinear"
    fill: tuple[int, int, int] = AF.FILL

    def __post_init__(self) -> None:
        if not isinstance(self.num_ops, int) or not 1 <= self.num_ops <= 16:
            raise ValueError(f"ra.num_ops: expected an integer in [1, 16], got {self.num_ops!r}")
        if not isinstance(self.num_magnitude_bins, int) or not 2 <= self.num_magnitude_bins <= 128:
            raise ValueError(f"ra.num_magnitude_bins: expected an integer in [2, 128], got {self.num_magnitude_bins!r}")
        if not isinstance(self.magnitude, int) or not 0 <= self.magnitude < self.num_magnitude_bins:
            raise ValueError(
                f"ra.magnitude: expected an integer in [0, {self.num_magnitude_bins - 1}], got {self.magnitude!r}"
            )
        if not float(self.magnitude_std) >= 0:
            raise ValueError(f"ra.magnitude_std: expected a number >= 0, got {self.magnitude_std!r}")
        unknown = [op for op in self.ops if op not in AF.RAND_AUGMENT_OPS]
        if unknown or not self.ops:
            raise ValueError(f"ra.ops: unknown ops {unknown}; choose from {list(AF.RAND_AUGMENT_OPS)}")
        AF.interpolation_mode(self.interpolation, "ra.interpolation", AF.GRID_INTERPOLATIONS)
        _check_fill(self.name, self.fill)

    @property
    def columns(self) -> Columns:
        return {"aug_ra_op": ("uint8", (self.num_ops,)), "aug_ra_mag": ("int8", (self.num_ops,))}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        signed = np.array([AF.RAND_AUGMENT_SIGNED[op] for op in self.ops], dtype=bool)
        u = ctx.rng(0).random((n, 4 * self.num_ops))
        local, mags = sampling.sample_rand_augment(
            u, self.num_ops, signed, self.magnitude, self.num_magnitude_bins, self.magnitude_std
        )
        global_ids = np.array([AF.RAND_AUGMENT_OPS.index(op) for op in self.ops], dtype=np.uint8)
        return {"aug_ra_op": global_ids[local], "aug_ra_mag": mags}

    def apply(
        self, images: torch.Tensor, params: Mapping[str, np.ndarray], resolution: int, interpolation: Any
    ) -> torch.Tensor:
        mode = AF.interpolation_mode(self.interpolation, "ra.interpolation", AF.GRID_INTERPOLATIONS)
        return AF.rand_augment(
            images, params["aug_ra_op"], params["aug_ra_mag"], self.num_magnitude_bins, mode, tuple(self.fill)
        )

    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        if self.magnitude_std:
            raise ValueError(f"ra.magnitude_std: torchvision's RandAugment has none, got {self.magnitude_std}; use 0")
        if tuple(self.ops) != AF.RAND_AUGMENT_OPS:
            raise ValueError(
                f"ra.ops: torchvision's RandAugment draws from all its ops, got {list(self.ops)}; omit ops"
            )
        mode = AF.interpolation_mode(self.interpolation, "ra.interpolation", AF.GRID_INTERPOLATIONS)
        return v2.RandAugment(self.num_ops, self.magnitude, self.num_magnitude_bins, mode, fill=list(self.fill))


@dataclass(frozen=True)
class RandomErasing(Op):
    """Erase a random box (torchvision's area/aspect search) with probability ``p``, filled with ``fill``."""

    name: ClassVar[str] = "re"
    p: float = 0.25
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    fill: tuple[int, int, int] = AF.FILL

    def __post_init__(self) -> None:
        _check_prob(self.name, "p", self.p)
        _check_range(self.name, "scale", self.scale, 0.0, 1.0)
        _check_range(self.name, "ratio", self.ratio, 0.0, None)
        _check_fill(self.name, self.fill)

    @property
    def columns(self) -> Columns:
        return {"aug_re": ("uint16", (4,))}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        u = ctx.rng(0).random((n, 1 + 4 * sampling.ERASE_ATTEMPTS))
        return {"aug_re": sampling.sample_erasing(u, self.p, self.scale, self.ratio)}

    def apply(
        self, images: torch.Tensor, params: Mapping[str, np.ndarray], resolution: int, interpolation: Any
    ) -> torch.Tensor:
        return AF.erase(images, params["aug_re"], tuple(self.fill))

    def to_torchvision(self, resolution: int, interpolation: Any) -> v2.Transform:
        return v2.RandomErasing(self.p, self.scale, self.ratio, value=list(self.fill))


@dataclass(frozen=True)
class MixUpCutMix:
    """timm-style MixUp/CutMix with a partner row from the same fixed block of ``block_size`` neighbouring rows.

    With probability ``prob`` an augmentation is mixed: CutMix (box from Beta(``cutmix_alpha``)) with
    probability ``switch_prob``, else MixUp (weight from Beta(``mixup_alpha``)). The partner contributes its
    own stored augmentation with the same index, so replay needs only the partner row. Not an :class:`Op`: a
    policy applies it after its ops, and stores it as the last element of its JSON ``ops`` list.
    """

    name: ClassVar[str] = "mix"
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    block_size: int = 16

    def __post_init__(self) -> None:
        for field in ("mixup_alpha", "cutmix_alpha"):
            if not float(getattr(self, field)) > 0:
                raise ValueError(f"mix.{field}: expected a number > 0, got {getattr(self, field)!r}")
        _check_prob(self.name, "prob", self.prob)
        _check_prob(self.name, "switch_prob", self.switch_prob)
        if not isinstance(self.block_size, int) or self.block_size < 2:
            raise ValueError(f"mix.block_size: expected an integer >= 2, got {self.block_size!r}")

    @property
    def columns(self) -> Columns:
        return {"aug_mix_partner": ("int32", ()), "aug_mix_lam": ("uint16", ()), "aug_mix_box": ("uint16", (4,))}

    def sample(self, n: int, ctx: SampleContext) -> dict[str, np.ndarray]:
        u = ctx.rng(0).random((n, 5))
        mixup_lam = ctx.rng(1).beta(self.mixup_alpha, self.mixup_alpha, size=n)
        cutmix_lam = ctx.rng(2).beta(self.cutmix_alpha, self.cutmix_alpha, size=n)
        partner, lam, box = sampling.sample_mix(
            u, mixup_lam, cutmix_lam, ctx.row, ctx.block, self.prob, self.switch_prob
        )
        return {"aug_mix_partner": partner, "aug_mix_lam": lam, "aug_mix_box": box}

    def to_dict(self) -> dict[str, Any]:
        """All constants of the mix, JSON-serializable, with its ``op`` name (``"mix"``)."""
        return _to_dict(self)

    def mix(self, own: torch.Tensor, partner: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        """Mix rendered view ``own`` with the partner's rendered view by one augmentation's recorded parameters."""
        return AF.mix(own, partner, params["aug_mix_lam"], params["aug_mix_box"])

    def mix_block(
        self, views: torch.Tensor, params: Mapping[str, np.ndarray], rows: Sequence[int], n: int
    ) -> torch.Tensor:
        """Mix, in place, the unmixed views of a block (``len(rows) * n``, row-major) with their partners' views.

        ``params`` holds the block's mix columns (leading dimension ``len(rows) * n``); every partner must be one of
        ``rows``, which a whole mixing block guarantees.
        """
        partners = np.asarray(params["aug_mix_partner"]).reshape(len(views))
        mixed = np.flatnonzero(partners >= 0)
        position = {int(row): k for k, row in enumerate(rows)}
        missing = sorted({p for p in partners[mixed].tolist() if p not in position})
        if missing:
            raise ValueError(
                f"rows: views mix with partner rows {missing[:5]}, which are not in the block {list(rows)[:3]}...; "
                f"render whole mixing blocks of {self.block_size} rows"
            )
        source = [position[p] * n + i % n for i, p in zip(mixed.tolist(), partners[mixed].tolist())]
        lams = np.asarray(params["aug_mix_lam"]).reshape(len(views))[mixed]
        boxes = np.asarray(params["aug_mix_box"]).reshape(len(views), 4)[mixed]
        return AF.mix_views(views, mixed, source, lams, boxes)

    def block(self, row: int, num_rows: int) -> tuple[int, int]:
        """The fixed block ``[start, stop)`` of rows a partner of ``row`` is drawn from."""
        start = (row // self.block_size) * self.block_size
        return start, min(start + self.block_size, num_rows)


OPS: dict[str, type[Op]] = {
    op.name: op for op in (RandomResizedCrop, RandomCrop, HorizontalFlip, RandAugment, RandomErasing)
}

CROPS = (RandomResizedCrop, RandomCrop)
"""Ops that make the view from the source image (a policy's first op, at most one); without one the whole image is
resized."""
