"""``AugmentationPolicy``: an ordered composition of ops, its presets, JSON form, sampling and rendering."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import functional as AF
from .ops import (
    OPS,
    Columns,
    HorizontalFlip,
    MixUpCutMix,
    Op,
    RandAugment,
    RandomErasing,
    RandomResizedCrop,
    SampleContext,
)

Params = dict[str, np.ndarray]
"""Parameters of ``n`` augmentations of one row: column name → array with leading dimension ``n``."""

_PRESET_TOKENS = ("rrc", "ra", "re", "mix")
PRESETS = ("rrc", "rrc+mix", "rrc+ra+re", "rrc+mix+ra+re")
"""The paper's four policies. Other ``+``-joined combinations of rrc, ra, re, mix are accepted too."""

_FULL_IMAGE = (0, 0, AF.Q, AF.Q)


@dataclass(frozen=True)
class AugmentationPolicy:
    """Ordered ops: an optional RandomResizedCrop first (else the whole image is resized), an optional mix last."""

    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        names = [getattr(op, "name", type(op).__name__) for op in self.ops]
        for op in self.ops:
            if not isinstance(op, Op):
                raise ValueError(f"policy.ops: expected augmentation ops, got {type(op).__name__}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"policy.ops: each op may appear once, repeated: {duplicates}")
        if "rrc" in names and names[0] != "rrc":
            raise ValueError("policy.ops: rrc must be the first op")
        if "mix" in names and names[-1] != "mix":
            raise ValueError("policy.ops: mix must be the last op")

    # -- construction and serialization ------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str) -> AugmentationPolicy:
        """A policy from a ``+``-joined preset name such as ``"rrc+ra+re"`` (rrc includes a horizontal flip)."""
        tokens = [t.strip() for t in str(name).lower().split("+") if t.strip()]
        unknown = [t for t in tokens if t not in _PRESET_TOKENS]
        if unknown or not tokens or len(set(tokens)) != len(tokens):
            raise ValueError(
                f"policy: unknown preset {name!r}; presets are {', '.join(PRESETS)} "
                f"(or any '+'-joined combination of {', '.join(_PRESET_TOKENS)})"
            )
        ops: list[Op] = []
        if "rrc" in tokens:
            ops += [RandomResizedCrop(), HorizontalFlip()]
        if "ra" in tokens:
            ops.append(RandAugment())
        if "re" in tokens:
            ops.append(RandomErasing())
        if "mix" in tokens:
            ops.append(MixUpCutMix())
        return cls(tuple(ops))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentationPolicy:
        """Inverse of :meth:`to_dict`; unknown ops or fields raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping) or not isinstance(data.get("ops"), list):
            raise ValueError("policy: expected a mapping with a list under 'ops'")
        ops = []
        for i, spec in enumerate(data["ops"]):
            spec = dict(spec)
            kind = spec.pop("op", None)
            if kind not in OPS:
                raise ValueError(f"policy.ops[{i}].op: unknown op {kind!r}; expected one of {sorted(OPS)}")
            op_cls = OPS[kind]
            fields = set(op_cls.__dataclass_fields__)
            extra = sorted(set(spec) - fields)
            if extra:
                raise ValueError(f"policy.ops[{i}] ({kind}): unknown field(s) {extra}; known: {sorted(fields)}")
            ops.append(op_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}))
        return cls(tuple(ops))

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
        """Every constant of every op, JSON-serializable."""
        return {"ops": [op.to_dict() for op in self.ops]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- schema -----------------------------------------------------------------------------------------------

    @property
    def columns(self) -> Columns:
        """Stored parameter columns: name → (dtype, per-augmentation shape), in op order."""
        out: Columns = {}
        for op in self.ops:
            out.update(op.columns)
        return out

    @property
    def mixing(self) -> MixUpCutMix | None:
        """The MixUp/CutMix op, if the policy mixes rows."""
        last = self.ops[-1] if self.ops else None
        return last if isinstance(last, MixUpCutMix) else None

    @property
    def _base_ops(self) -> tuple[Op, ...]:
        return self.ops[:-1] if self.mixing else self.ops

    @property
    def _crops(self) -> bool:
        return bool(self.ops) and isinstance(self.ops[0], RandomResizedCrop)

    @property
    def interpolation(self) -> str:
        """The interpolation used to resize the crop, unless a caller (a teacher, a student) asks for another."""
        return self.ops[0].interpolation if self._crops else "bilinear"

    # -- sampling ---------------------------------------------------------------------------------------------

    def sample(self, seed: int, row: int, n: int, height: int, width: int, num_rows: int | None = None) -> Params:
        """Parameters of augmentations ``0..n-1`` of row ``row``; augmentation ``j`` depends only on (seed, row, j, size).

        ``num_rows`` (the dataset length) bounds the last mixing block; it is required for mixing policies.
        """
        if seed < 0 or row < 0:
            raise ValueError(f"seed and row must be >= 0, got seed={seed}, row={row}")
        mixing = self.mixing
        if mixing is not None and num_rows is None:
            raise ValueError("num_rows is required to sample a mixing policy")
        block = mixing.block(row, num_rows) if mixing is not None else (row, row + 1)
        params: Params = {}
        for position, op in enumerate(self.ops):

            def rng(sub: int, _p: int = position) -> np.random.Generator:
                return np.random.default_rng([seed, row, _p, sub])

            params.update(op.sample(n, SampleContext(rng, height, width, row, block)))
        return params

    # -- rendering --------------------------------------------------------------------------------------------

    def render(
        self, image: torch.Tensor, params: Params, j: int, resolution: int, interpolation: str | None = None
    ) -> torch.Tensor:
        """Augmentation ``j`` of ``image`` (``uint8 (3, H, W)``) without mixing, at ``resolution × resolution``."""
        p = {name: values[j] for name, values in params.items()}
        out = image
        if not self._crops:
            out = AF.resized_crop(out, _FULL_IMAGE, resolution, AF.interpolation_mode(interpolation or "bilinear"))
        for op in self._base_ops:
            out = op.apply(out, p, resolution, interpolation)
        return out

    def render_many(
        self,
        image: torch.Tensor,
        params: Params,
        indices: Sequence[int],
        resolution: int,
        interpolation: str | None = None,
    ) -> torch.Tensor:
        """Augmentations ``indices`` of one decoded image, stacked ``uint8 (len(indices), 3, r, r)``."""
        return torch.stack([self.render(image, params, int(j), resolution, interpolation) for j in indices])

    def render_block(
        self,
        images: Sequence[torch.Tensor],
        params: Sequence[Params],
        indices: Sequence[int],
        resolution: int,
        interpolation: str | None = None,
        rows: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Augmentations ``indices`` of every image of a block, mixed, ``uint8 (len(images) * len(indices), 3, r, r)``
        row-major; ``rows`` (global row indices of ``images``) locate mixing partners, which are in the same block."""
        rendered = torch.stack(
            [self.render_many(im, p, indices, resolution, interpolation) for im, p in zip(images, params)]
        )
        if self.mixing is not None:
            if rows is None:
                raise ValueError("rows is required to render a block of a mixing policy")
            position = {int(row): k for k, row in enumerate(rows)}
            mixed = rendered.clone()
            for k, p in enumerate(params):
                for t, j in enumerate(indices):
                    partner = int(p["aug_mix_partner"][j])
                    if partner >= 0:
                        mixed[k, t] = self.mix_rendered(rendered[k, t], rendered[position[partner], t], p, j)
            rendered = mixed
        return rendered.reshape(-1, *rendered.shape[2:])

    def mix_rendered(self, own: torch.Tensor, partner: torch.Tensor, params: Params, j: int) -> torch.Tensor:
        """Apply the recorded mix of augmentation ``j`` to rendered ``own`` and ``partner`` images."""
        mixing = self.mixing
        if mixing is None or int(params["aug_mix_partner"][j]) < 0:
            return own
        return mixing.mix(own, partner, {name: values[j] for name, values in params.items()})

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
        own = self.render(image, params, j, resolution, interpolation)
        if self.mixing is None or int(params["aug_mix_partner"][j]) < 0:
            return own
        if partner_image is None or partner_params is None:
            raise ValueError(
                f"augmentation {j} mixes with partner row {int(params['aug_mix_partner'][j])}: "
                "pass partner_image and partner_params"
            )
        partner = self.render(partner_image, partner_params, j, resolution, interpolation)
        return self.mix_rendered(own, partner, params, j)
