"""A teacher: an eval-mode module mapping a normalized batch to logits, with the preprocessing it expects.

A teacher sees uint8 images (B, 3, R, R) rendered at its own resolution R with its own interpolation, normalizes
them with its own mean/std and returns float32 logits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from ..augment import normalize, single_thread
from ..augment.functional import IMAGENET_MEAN, IMAGENET_STD, interpolation_mode
from ..errors import ConfigError
from ..validation import as_logits, check_int, check_preprocessing


class ViewSpec(NamedTuple):
    """How a teacher wants to see an augmentation: square side in pixels and resize interpolation."""

    resolution: int
    interpolation: str


@dataclasses.dataclass(frozen=True)
class TeacherSource:
    """Where a teacher comes from: loader kind, id as the user gave it, revision (commit once loaded), weights file."""

    kind: str  # "timm", "timm-hub", "hf" or "module"
    id: str
    revision: str | None = None
    weights: str | None = None


PREPROCESSING_KEYS = ("resolution", "interpolation", "mean", "std")
"""What a teacher's input preprocessing consists of; also the option names of a spec string (``...?resolution=32``)."""


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a teacher sees an image: square side in pixels, resize interpolation, and per-channel mean and std of
    ``x / 255``. The default for `timm:<arch>` teachers (random init or a local checkpoint), whose training
    preprocessing nothing records; ``ReinforceConfig.preprocessing`` gives the config's."""

    resolution: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        for key in PREPROCESSING_KEYS:
            object.__setattr__(self, key, check_preprocessing(key, getattr(self, key), key))

    def to_dict(self) -> dict[str, Any]:
        """The four values as keyword arguments of :class:`Teacher`."""
        return {key: getattr(self, key) for key in PREPROCESSING_KEYS}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; by default CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclasses.dataclass(eq=False)
class Teacher:
    """An eval-mode module mapping a normalized float batch to logits, with the preprocessing it expects.

    `num_outputs` (the module's logit count) is probed with one forward pass when not given; `class_mapping`
    (dataset class -> teacher logit index, as a sequence or a complete dict) gathers logits to the dataset classes.
    `batch_size` is the micro-batch of one forward; `amp` (bf16 autocast) and `channels_last` apply on CUDA only.

    Args:
        module: maps a normalized ``(B, 3, resolution, resolution)`` float batch to logits (or an object with
            ``.logits``); put in eval mode, without gradients.
        resolution: the square side, in pixels, of the views it sees.
        mean: per-channel mean of ``x / 255`` it was trained with.
        std: per-channel std of ``x / 255`` it was trained with.
        interpolation: the resize interpolation of its views (``bilinear``, ``bicubic``, ``nearest``, ...).
        name: how errors, logs and the record name it (default: the module's class name).
        num_outputs: its logit count (default: probed with one forward pass).
        class_mapping: for each dataset class, the logit standing for it.
        batch_size: the micro-batch of one forward.
        amp: bf16 autocast on CUDA.
        channels_last: channels-last memory format on CUDA.
        source: where it was loaded from (set by :func:`~hf_reinforce.load_teacher`).
        weights_sha256: the hash of its weights (default: computed here).

    Raises:
        ConfigError: a value out of range (resolution, batch size, std, interpolation).
        TypeError: ``module`` is not an ``nn.Module``.
    """

    module: nn.Module = dataclasses.field(repr=False)
    resolution: int = 224
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    interpolation: str = "bilinear"
    name: str | None = None
    num_outputs: int | None = None
    class_mapping: Sequence[int] | Mapping[int, int] | None = None
    batch_size: int = 64
    amp: bool = True
    channels_last: bool = True
    source: TeacherSource | None = None
    weights_sha256: str | None = dataclasses.field(default=None, repr=False)
    """:func:`weights_sha256` of the module, computed when the Teacher is built (part of the run identity)."""
    _buffers: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict, init=False, repr=False)
    """Per thread, the reused float32 CPU buffer of normalized micro-batches (see :meth:`_normalized`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise TypeError(f"Teacher needs an nn.Module, got {type(self.module).__name__}")
        self.name = self.name or type(self.module).__name__
        check_int(self.resolution, f"teacher {self.name!r}: resolution", minimum=1)
        check_int(self.batch_size, f"teacher {self.name!r}: batch_size", minimum=1)
        self.interpolation = check_interpolation(self.interpolation, self.name)
        self.mean = _channel_stats(self.mean, "mean", self.name)
        self.std = _channel_stats(self.std, "std", self.name)
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"teacher {self.name!r}: std must be positive, got {self.std}")
        self.module.eval().requires_grad_(False)
        if self.weights_sha256 is None:
            self.weights_sha256 = weights_sha256(self.module)
        self.to(self.device)
        if self.num_outputs is None:
            zeros = torch.zeros(1, 3, self.resolution, self.resolution, dtype=torch.uint8)
            with torch.inference_mode():
                self.num_outputs = self._forward(zeros).shape[1]
        if self.class_mapping is not None:
            self.class_mapping = _mapping_indices(self.class_mapping, self.num_outputs, self.name)

    @property
    def view_spec(self) -> ViewSpec:
        """The (resolution, interpolation) view this teacher consumes."""
        return ViewSpec(self.resolution, self.interpolation)

    @property
    def num_classes(self) -> int:
        """Number of classes in the logits this teacher returns (after `class_mapping`)."""
        if self.class_mapping is not None:
            return len(self.class_mapping)
        assert self.num_outputs is not None  # probed in __post_init__ when not given
        return self.num_outputs

    @property
    def device(self) -> torch.device:
        """Device of the module's parameters (CPU for a module without any)."""
        tensor: torch.Tensor | None = next(self.module.parameters(), None)
        if tensor is None:
            tensor = next(self.module.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> Teacher:
        """Move the module to `device` (channels_last on CUDA when enabled); returns self."""
        device = torch.device(device)
        self.module.to(device)
        if device.type == "cuda" and self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        return self

    def normalize(self, images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 (x / 255 - mean) / std, on the images' device (into ``out`` if given)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"teacher {self.name!r} expects uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        return normalize(images, self.mean, self.std, out=out)

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        """The normalized micro-batch: on CPU with one thread (an elementwise pass: more threads only spin at its
        barrier when render workers share the cores) into a buffer reused across micro-batches (fresh pages for
        each 64-view batch at 224 px: 0.45 against 0.12 CPU-ms per view, measured); elsewhere a new tensor."""
        if images.device.type != "cpu":
            return self.normalize(images)
        buffer = self._buffers.get(threading.get_ident())
        if buffer is None or buffer.numel() < images.numel():
            buffer = self._buffers[threading.get_ident()] = torch.empty(images.numel(), dtype=torch.float32)
        with single_thread():
            return self.normalize(images, out=buffer[: images.numel()].view(images.shape))

    @torch.inference_mode()
    def logits(self, images: torch.Tensor, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """float32 logits (B, num_classes) on the teacher's device for uint8 images (B, 3, R, R), in micro-batches;
        ``progress`` is called with the size of each micro-batch once it is done."""
        if tuple(images.shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(
                f"teacher {self.name!r} expects images at {self.resolution}x{self.resolution}, "
                f"got {tuple(images.shape)}"
            )
        outputs = []
        for chunk in images.split(self.batch_size):
            outputs.append(self._forward(chunk))
            if progress is not None:
                progress(len(chunk))
        with single_thread():  # small ops: across threads they only wait for a thread rendering needs
            out = torch.cat(outputs)
            if self.class_mapping is not None:
                out = out.index_select(1, torch.tensor(self.class_mapping, device=out.device))
            bad = int((~torch.isfinite(out).all(dim=1)).sum())
        if bad:
            raise ConfigError(f"teacher {self.name!r} produced NaN/Inf logits for {bad} of {len(out)} images")
        return out

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw float32 logits of one micro-batch (call under inference mode)."""
        x = self._normalized(images.to(self.device, non_blocking=True))
        cuda = x.device.type == "cuda"
        if cuda and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cuda and self.amp):
            out = as_logits(self.module(x), f"teacher {self.name!r}")
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ConfigError(f"teacher {self.name!r} must return logits (B, C), got {tuple(out.shape)}")
        if self.num_outputs is not None and out.shape[1] != self.num_outputs:
            raise ConfigError(
                f"teacher {self.name!r} returned {out.shape[1]} logits per image but declares num_outputs="
                f"{self.num_outputs}: give the number its module returns (or leave it out to have it measured)"
            )
        if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            out = out.clone()  # logits that view the input must outlive the reused input buffer
        return out.float()

    def to_config(self) -> dict[str, Any]:
        """JSON-able description: name, source, revision, weights, preprocessing and class counts."""
        module_class = type(self.module)
        source = self.source or TeacherSource("module", f"{module_class.__module__}.{module_class.__qualname__}")
        return {
            "name": public_name(self.name or module_class.__name__, source),
            "source": source.kind,
            "id": public_name(source.id, source),
            "revision": source.revision,
            "weights": os.path.basename(source.weights) if source.weights else None,
            "weights_sha256": self.weights_sha256,
            "resolution": self.resolution,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "num_classes": self.num_classes,
            "num_outputs": self.num_outputs,
            "class_mapping": list(self.class_mapping) if self.class_mapping is not None else None,
        }


def teacher_key(spec: str | Teacher) -> str:
    """The name a teacher goes by in ``class_mappings`` and in a config's identity: its spec string, or a
    :class:`Teacher`'s name."""
    return spec if isinstance(spec, str) else (spec.name or type(spec.module).__name__)


def weights_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict: every tensor's name, dtype, shape and bytes, in name order (the same
    weights give the same hash on any device; about 1 s per GB)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def public_name(text: str, source: TeacherSource) -> str:
    """``text`` (a teacher's name or id) with the local paths of its source reduced to their file or folder names:
    a record or card never holds a path of the machine that wrote it (the weights are named by their hash)."""
    paths = [source.weights] if source.weights else []
    if source.kind == "hf" and os.path.isdir(source.id):
        paths.append(source.id)
    for path in paths:
        text = text.replace(path, os.path.basename(os.path.normpath(path)))
    return text


def check_interpolation(value: Any, name: str) -> str:
    """An interpolation name from a string, torchvision InterpolationMode or PIL resample code (augment's rule)."""
    return interpolation_mode(value, f"teacher {name!r}: interpolation").value


def _channel_stats(values: Sequence[float], what: str, name: str) -> tuple[float, ...]:
    """Three per-channel floats (mean or std)."""
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ConfigError(f"teacher {name!r}: {what} needs 3 values (RGB), got {values}")
    return values


def _mapping_indices(mapping: Sequence[int] | Mapping[int, int], num_outputs: int, name: str) -> tuple[int, ...]:
    """Teacher logit index per dataset class from a sequence or a complete {dataset class: teacher index} dict."""
    if isinstance(mapping, Mapping):
        if sorted(mapping) != list(range(len(mapping))):
            raise ConfigError(
                f"class_mapping of teacher {name!r} must have keys 0..{len(mapping) - 1} (the dataset classes)"
            )
        mapping = [mapping[c] for c in range(len(mapping))]
    indices = tuple(int(i) for i in mapping)
    if not indices:
        raise ConfigError(f"class_mapping of teacher {name!r} is empty")
    if not all(0 <= i < num_outputs for i in indices):
        raise ConfigError(f"class_mapping of teacher {name!r} has indices outside its {num_outputs} outputs")
    return indices
