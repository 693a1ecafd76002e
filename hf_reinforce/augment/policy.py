"""``AugmentationPolicy``: an ordered composition of ops, its presets, JSON form, sampling and rendering."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from ..deprecation import warn_renamed
from . import functional as AF
from .ops import (
    CROPS,
    OPS,
    Columns,
    HorizontalFlip,
    MixUpCutMix,
    Op,
    RandAugment,
    RandomCrop,
    RandomErasing,
    RandomResizedCrop,
    SampleContext,
)

Params = dict[str, np.ndarray]
"""Parameters of ``n`` augmentations of one row: column name → array with leading dimension ``n``."""

_PRESET_TOKENS = ("rrc", "rrc-noflip", "crop", "flip", "ra", "re", "mix")
PRESETS = (
    "rrc",
    "rrc+mix",
    "rrc+ra+re",
    "rrc+mix+ra+re",
    "rrc-noflip",
    "rrc-noflip+ra+re",
    "crop",
    "crop+flip",
    "crop+ra+re",
    "crop+flip+ra+re",
)
"""The paper's four policies (``rrc`` includes a horizontal flip, as in the paper), the same without the flip
(``rrc-noflip``: digits, text), and the standard small-image crop (``crop``: pad 4 px at 32 px, then a random
32-px window; a flip only with ``+flip``). Other ``+``-joined combinations of the tokens are accepted too."""

_FULL_IMAGE = (0, 0, AF.Q, AF.Q)


@dataclass(frozen=True)
class AugmentationPolicy:
    """Ordered ops (an optional crop first, RandomResizedCrop or RandomCrop, else the whole image is resized), then
    an optional mix."""

    ops: tuple[Op, ...]
    mix: MixUpCutMix | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        for op in self.ops:
            if isinstance(op, MixUpCutMix):
                raise ValueError("policy.ops: MixUpCutMix is not an op; pass it as AugmentationPolicy(ops, mix=...)")
            if not isinstance(op, Op):
                raise ValueError(f"policy.ops: expected augmentation ops, got {type(op).__name__}")
        if self.mix is not None and not isinstance(self.mix, MixUpCutMix):
            raise ValueError(f"policy.mix: expected a MixUpCutMix or None, got {type(self.mix).__name__}")
        names = [op.name for op in self.ops]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"policy.ops: each op may appear once, repeated: {duplicates}")
        crops = [op.name for op in self.ops if isinstance(op, CROPS)]
        if len(crops) > 1:
            raise ValueError(f"policy.ops: at most one crop op (rrc or crop), got {crops}")
        if crops and not isinstance(self.ops[0], CROPS):
            raise ValueError(f"policy.ops: {crops[0]} must be the first op")

    # -- construction and serialization ------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str) -> AugmentationPolicy:
        """A policy from a ``+``-joined preset name such as ``"rrc+ra+re"`` or ``"crop+flip"`` (``rrc`` includes a
        horizontal flip, ``rrc-noflip`` and ``crop`` do not; ``+flip`` adds one)."""
        tokens = [t.strip() for t in str(name).lower().split("+") if t.strip()]
        unknown = [t for t in tokens if t not in _PRESET_TOKENS]
        if unknown or not tokens or len(set(tokens)) != len(tokens):
            raise ValueError(
                f"policy: unknown preset {name!r}; presets are {', '.join(PRESETS)} "
                f"(or any '+'-joined combination of {', '.join(_PRESET_TOKENS)})"
            )
        crops = [t for t in tokens if t in ("rrc", "rrc-noflip", "crop")]
        if len(crops) > 1:
            raise ValueError(f"policy: preset {name!r} has {len(crops)} crops ({', '.join(crops)}); choose one")
        ops: list[Op] = []
        if crops:
            ops.append(RandomCrop() if crops[0] == "crop" else RandomResizedCrop())
        if "flip" in tokens or "rrc" in tokens:
            ops.append(HorizontalFlip())
        if "ra" in tokens:
            ops.append(RandAugment())
        if "re" in tokens:
            ops.append(RandomErasing())
        return cls(tuple(ops), MixUpCutMix() if "mix" in tokens else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentationPolicy:
        """Inverse of :meth:`to_dict`; unknown ops or fields raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping) or not isinstance(data.get("ops"), list):
            raise ValueError("policy: expected a mapping with a list under 'ops'")
        specs = [_from_spec(i, spec) for i, spec in enumerate(data["ops"])]
        mixes = [i for i, spec in enumerate(specs) if isinstance(spec, MixUpCutMix)]
        if len(mixes) > 1:
            raise ValueError("policy.ops: each op may appear once, repeated: ['mix']")
        if mixes and mixes[0] != len(specs) - 1:
            raise ValueError("policy.ops: mix must be the last op")
        mix = specs.pop() if mixes else None
        ops = [spec for spec in specs if isinstance(spec, Op)]
        assert mix is None or isinstance(mix, MixUpCutMix)
        return cls(tuple(ops), mix)

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | AugmentationPolicy) -> AugmentationPolicy:
        """Accept a policy, a preset name, a JSON string or a dict."""
        if isinstance(spec, AugmentationPolicy):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        if isinstance(spec, str) and spec.lstrip().startswith("{"):
            return cls.from_dict(json.loads(spec))
        if isinstance(spec, str):
            return cls.from_preset(spec)
        raise ValueError(f"policy: expected a preset name, dict, JSON or AugmentationPolicy, got {type(spec).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Every constant of every op, JSON-serializable; the mix, if any, is the last element of ``ops``."""
        return {"ops": [op.to_dict() for op in self._stages]}

    def to_torchvision(self, resolution: int, interpolation: str | None = None) -> v2.Compose:
        """torchvision v2 transforms drawing, on the fly, from this policy's distribution with its constants (for
        baselines trained with the same augmentation): RandomResizedCrop (or Resize), flip, RandAugment, erasing.

        ``interpolation`` overrides the crop's, as in :meth:`render`. A mixing policy raises ``ValueError``:
        MixUp/CutMix mixes pairs of rows, which a per-image transform cannot express.
        """
        if self.mix is not None:
            raise ValueError(
                "policy.mix: MixUp/CutMix mixes pairs of rows and has no per-image torchvision transform; "
                "use the policy without mix (and torchvision's v2.MixUp/v2.CutMix on batches if you want one)"
            )
        steps = [op.to_torchvision(resolution, interpolation) for op in self.ops]
        if not self._crops:
            mode = AF.interpolation_mode(interpolation or "bilinear")
            steps.insert(0, v2.Resize((resolution, resolution), interpolation=mode, antialias=True))
        return v2.Compose(steps)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- schema -----------------------------------------------------------------------------------------------

    @property
    def columns(self) -> Columns:
        """Stored parameter columns: name → (dtype, per-augmentation shape), in op order, the mix's last."""
        out: Columns = {}
        for stage in self._stages:
            out.update(stage.columns)
        return out

    @property
    def mixing(self) -> MixUpCutMix | None:
        """Deprecated: :attr:`mix`."""
        warn_renamed("AugmentationPolicy.mixing", "AugmentationPolicy.mix")
        return self.mix

    @functools.cached_property
    def _op_columns(self) -> Columns:
        """The ops' columns (not the mix's), built once: 23 µs a view when rebuilt per render (measured at 32 px)."""
        return {name: spec for op in self.ops for name, spec in op.columns.items()}

    @property
    def _stages(self) -> tuple[Op | MixUpCutMix, ...]:
        """The ops, then the mix: the order of the JSON list, of the columns and of the samplers' seeds."""
        return (*self.ops, self.mix) if self.mix is not None else self.ops

    @property
    def _crops(self) -> bool:
        return bool(self.ops) and isinstance(self.ops[0], CROPS)

    @property
    def interpolation(self) -> str:
        """The interpolation used to resize the crop, unless a caller (a teacher, a student) asks for another."""
        crop = self.ops[0] if self.ops else None
        return crop.interpolation if isinstance(crop, CROPS) else "bilinear"

    # -- sampling ---------------------------------------------------------------------------------------------

    def sample(self, seed: int, row: int, n: int, height: int, width: int, num_rows: int | None = None) -> Params:
        """Parameters of augmentations ``0..n-1`` of row ``row``; augmentation ``j`` depends only on (seed, row, j, size).

        ``num_rows`` (the dataset length) bounds the last mixing block; it is required for mixing policies.
        """
        if seed < 0 or row < 0:
            raise ValueError(f"seed and row must be >= 0, got seed={seed}, row={row}")
        block = (row, row + 1)
        if self.mix is not None:
            if num_rows is None:
                raise ValueError("num_rows is required to sample a mixing policy")
            block = self.mix.block(row, num_rows)
        params: Params = {}
        for position, op in enumerate(self._stages):

            def rng(sub: int, _p: int = position) -> np.random.Generator:
                return np.random.default_rng([seed, row, _p, sub])

            params.update(op.sample(n, SampleContext(rng, height, width, row, block)))
        return params

    # -- rendering --------------------------------------------------------------------------------------------

    def render(
        self, image: torch.Tensor, params: Params, j: int, resolution: int, interpolation: str | None = None
    ) -> torch.Tensor:
        """Augmentation ``j`` of ``image`` (``uint8 (3, H, W)``) without mixing, at ``resolution × resolution``."""
        return self._render_views([image], [params], [j], resolution, interpolation)[0]

    def render_many(
        self,
        image: torch.Tensor,
        params: Params,
        indices: Sequence[int],
        resolution: int,
        interpolation: str | None = None,
    ) -> torch.Tensor:
        """Augmentations ``indices`` of one decoded image, unmixed, stacked ``uint8 (len(indices), 3, r, r)``."""
        return self._render_views([image], [params], indices, resolution, interpolation)

    def render_block(
        self,
        images: Sequence[torch.Tensor],
        params: Sequence[Params],
        indices: Sequence[int],
        resolution: int,
        interpolation: str | None = None,
        rows: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Augmentations ``indices`` of every image, mixed: ``uint8 (len(images) * len(indices), 3, r, r)``, row-major.

        ``images`` are decoded ``uint8 (3, H, W)`` tensors (sizes may differ), ``params`` their sampled parameters
        and ``rows`` their global row indices (default ``0..len(images)-1``); a mixing policy mixes each view with
        the same augmentation of its partner row, which must be one of ``rows`` (render whole mixing blocks).
        """
        views = self._render_views(images, params, indices, resolution, interpolation)
        if self.mix is None:
            return views
        block = _gather(params, [int(j) for j in indices], self.mix.columns)
        return self.mix.mix_block(views, block, range(len(images)) if rows is None else rows, len(indices))

    def _render_views(
        self,
        images: Sequence[torch.Tensor],
        params: Sequence[Params],
        indices: Sequence[int],
        resolution: int,
        interpolation: str | None,
    ) -> torch.Tensor:
        """Unmixed views, row-major: the crop (or resize) of every view, then each later op once on the whole batch."""
        js = [int(j) for j in indices]
        if not images or not js:
            device = images[0].device if images else None
            return torch.empty((0, 3, resolution, resolution), dtype=torch.uint8, device=device)
        return self._render(images, _gather(params, js, self._op_columns), len(js), resolution, interpolation)

    def _render(
        self, images: Sequence[torch.Tensor], block: Params, n: int, resolution: int, interpolation: str | None
    ) -> torch.Tensor:
        """``n`` unmixed views of every image by ``block`` (leading dimension ``len(images) * n``, row-major)."""
        crop = self.ops[0] if self.ops else None
        if isinstance(crop, CROPS):  # the crop gets each view's source image (a row's views share it)
            views = crop.apply([image for image in images for _ in range(n)], block, resolution, interpolation)
        else:
            views = torch.cat(
                [self._resize(image, resolution, interpolation).expand(n, -1, -1, -1) for image in images]
            )
        for op in self.ops[1:] if self._crops else self.ops:
            views = op.apply(views, block, resolution, interpolation)
        return views

    @staticmethod
    def _resize(image: torch.Tensor, resolution: int, interpolation: str | None) -> torch.Tensor:
        """The whole image at ``resolution × resolution``: the first stage of a policy without a crop."""
        return AF.resized_crop(image, _FULL_IMAGE, resolution, AF.interpolation_mode(interpolation or "bilinear"))

    def replay_views(
        self,
        images: Sequence[torch.Tensor],
        params: Params,
        resolution: int,
        interpolation: str | None = None,
        partner_images: Sequence[torch.Tensor] = (),
        partner_params: Params | None = None,
    ) -> torch.Tensor:
        """One stored augmentation of each image, rendered together: ``uint8 (len(images), 3, r, r)``, bit for bit
        what :meth:`replay` gives view by view (one view per image instead of :meth:`render_block`'s rows × indices).

        ``params`` holds each image's own augmentation (leading dimension ``len(images)``: one view per row, each
        with its own stored parameters). A mixing policy mixes view ``b`` whose ``aug_mix_partner`` is ``>= 0`` with
        its partner row's view of the same stored augmentation: ``partner_images`` and ``partner_params`` hold those
        partners, one per mixed view in order. The partners are rendered in the same batch as the views.

        Raises:
            ValueError: the partners do not match the mixed views.
        """
        mixed = np.flatnonzero(np.asarray(params["aug_mix_partner"]) >= 0) if self.mix is not None else np.empty(0, int)
        if len(mixed) != len(partner_images) or (len(mixed) and partner_params is None):
            raise ValueError(
                f"{len(mixed)} of {len(images)} views mix with a partner row: pass one partner image and its "
                f"parameters per mixed view, got {len(partner_images)}"
            )
        if not images:
            return torch.empty((0, 3, resolution, resolution), dtype=torch.uint8)
        block = {name: np.asarray(params[name]) for name in self._op_columns}
        if partner_params is not None and len(mixed):
            block = {name: np.concatenate([values, np.asarray(partner_params[name])]) for name, values in block.items()}
        views = self._render([*images, *partner_images], block, 1, resolution, interpolation)
        if not len(mixed):
            return views
        lams, boxes = np.asarray(params["aug_mix_lam"])[mixed], np.asarray(params["aug_mix_box"])[mixed]
        AF.mix_views(views, mixed.tolist(), (len(images) + np.arange(len(mixed))).tolist(), lams.tolist(), boxes)
        return views[: len(images)]

    def replay(
        self,
        image: torch.Tensor,
        params: Params,
        j: int,
        resolution: int,
        interpolation: str | None = None,
        partner_image: torch.Tensor | None = None,
        partner_params: Params | None = None,
    ) -> torch.Tensor:
        """The exact ``uint8`` pixels of stored augmentation ``j`` (mixing policies need the partner row)."""
        own = {name: np.asarray(values)[j : j + 1] for name, values in params.items()}
        if self.mix is None or int(own["aug_mix_partner"][0]) < 0:
            return self.replay_views([image], own, resolution, interpolation)[0]
        if partner_image is None or partner_params is None:
            raise ValueError(
                f"augmentation {j} mixes with partner row {int(own['aug_mix_partner'][0])}: "
                "pass partner_image and partner_params"
            )
        other = {name: np.asarray(values)[j : j + 1] for name, values in partner_params.items()}
        return self.replay_views([image], own, resolution, interpolation, [partner_image], other)[0]


def _from_spec(i: int, spec: Mapping[str, Any]) -> Op | MixUpCutMix:
    """One element of a policy's JSON ``ops`` list → the op (or the mix) it describes."""
    spec = dict(spec)
    kind = spec.pop("op", None)
    kinds = {**OPS, MixUpCutMix.name: MixUpCutMix}
    if kind not in kinds:
        raise ValueError(f"policy.ops[{i}].op: unknown op {kind!r}; expected one of {sorted(kinds)}")
    fields = {field.name for field in dataclasses.fields(kinds[kind])}
    extra = sorted(set(spec) - fields)
    if extra:
        raise ValueError(f"policy.ops[{i}] ({kind}): unknown field(s) {extra}; known: {sorted(fields)}")
    return kinds[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


def _gather(params: Sequence[Params], js: list[int], columns: Mapping[str, Any]) -> Params:
    """The columns of augmentations ``js`` of every row, concatenated row-major (leading dim ``len(params) * len(js)``)."""
    if len(params) == 1:  # one row (render, replay): no concatenation
        return {name: np.asarray(params[0][name])[js] for name in columns}
    return {name: np.concatenate([np.asarray(p[name])[js] for p in params]) for name in columns}
