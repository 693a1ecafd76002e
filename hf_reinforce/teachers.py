"""Teachers: load timm / transformers / checkpoint / nn.Module teachers with their own preprocessing, and ensemble them.

A teacher sees uint8 images (B, 3, R, R) rendered at its own resolution R with its own interpolation, normalizes
them with its own mean/std and returns float32 logits; an `Ensemble` averages the teachers' softmaxes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from .augment import normalize
from .augment.functional import IMAGENET_MEAN, IMAGENET_STD, interpolation_mode
from .errors import ConfigError, HubError, NotFoundError
from .shared import as_logits, check_temperature, single_thread

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
RANDOM_INIT_SEED = 0


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


def check_preprocessing(key: str, value: Any, where: str) -> Any:
    """``value`` of preprocessing ``key`` normalized (an int resolution, an interpolation name, 3 floats), or a
    :class:`ConfigError` starting with ``where``."""
    if key == "resolution":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{where}: expected a positive integer (pixels), got {value!r}")
        return value
    if key == "interpolation":
        try:
            return interpolation_mode(value, where).value
        except ValueError as error:
            raise ConfigError(str(error)) from None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or (key == "std" and any(v <= 0 for v in values)):
        kind = "3 positive numbers" if key == "std" else "3 numbers"
        raise ConfigError(f"{where}: expected {kind} (one per RGB channel, of x/255), got {value!r}")
    return values


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
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution <= 0:
            raise ConfigError(f"teacher {self.name!r}: resolution must be a positive int, got {self.resolution!r}")
        if self.batch_size <= 0:
            raise ConfigError(f"teacher {self.name!r}: batch_size must be positive, got {self.batch_size}")
        self.interpolation = _check_interpolation(self.interpolation, self.name)
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
        return len(self.class_mapping) if self.class_mapping is not None else self.num_outputs

    @property
    def device(self) -> torch.device:
        """Device of the module's parameters (CPU for a module without any)."""
        tensor = next(self.module.parameters(), None)
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
        if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            out = out.clone()  # logits that view the input must outlive the reused input buffer
        return out.float()

    def to_config(self) -> dict[str, Any]:
        """JSON-able description: name, source, revision, weights, preprocessing and class counts."""
        module_class = type(self.module)
        source = self.source or TeacherSource("module", f"{module_class.__module__}.{module_class.__qualname__}")
        return {
            "name": public_name(self.name, source),
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


class Ensemble:
    """Mean over teachers of softmax(logits / temperature), each teacher fed the view at its own resolution."""

    def __init__(self, teachers: Sequence[Teacher], temperature: float = 1.0) -> None:
        self.teachers = list(teachers)
        if not self.teachers:
            raise ConfigError("teachers: an Ensemble needs at least one teacher")
        for teacher in self.teachers:
            if not isinstance(teacher, Teacher):
                raise TypeError(f"Ensemble takes Teacher objects (see load_teacher), got {type(teacher).__name__}")
        self.temperature = check_temperature(temperature)
        counts = {t.name: t.num_classes for t in self.teachers}
        if len(set(counts.values())) > 1:
            raise ConfigError(f"teachers disagree on the number of classes: {counts}; use class_mapping to align them")

    @property
    def num_classes(self) -> int:
        """Number of classes of the ensemble's probabilities."""
        return self.teachers[0].num_classes

    @property
    def device(self) -> torch.device:
        """Device of the returned probabilities (the first teacher's)."""
        return self.teachers[0].device

    def view_specs(self) -> list[ViewSpec]:
        """Distinct (resolution, interpolation) views the teachers need, in teacher order."""
        return list(dict.fromkeys(t.view_spec for t in self.teachers))

    @torch.inference_mode()
    def teacher_probs(
        self, views: Mapping[tuple[int, str], torch.Tensor], progress: Callable[[float], None] | None = None
    ) -> list[torch.Tensor]:
        """Each teacher's float32 (B, C) tempered softmax on the ensemble's device, in teacher order; `views` maps
        each view spec to uint8 (B, 3, R, R). `progress` is called after every teacher micro-batch with the views
        done, each teacher counting 1/T."""
        out: list[torch.Tensor] = []
        for teacher in self.teachers:
            if teacher.view_spec not in views:
                raise ValueError(
                    f"no view {tuple(teacher.view_spec)} for teacher {teacher.name!r}; "
                    f"the ensemble needs {[tuple(v) for v in self.view_specs()]}"
                )
            share = None if progress is None else (lambda n: progress(n / len(self.teachers)))
            logits = teacher.logits(views[teacher.view_spec], share)
            with single_thread():  # (B, C): a (256, 10) softmax took 26 ms on 2 threads beside a worker (loaded)
                probs = torch.softmax(logits / self.temperature, dim=1).to(self.device)
            if out and probs.shape != out[0].shape:
                raise ValueError(
                    f"teacher {teacher.name!r} got a batch of {probs.shape[0]} images, other teachers {out[0].shape[0]}"
                )
            out.append(probs)
        return out

    @torch.inference_mode()
    def probs(
        self, views: Mapping[tuple[int, str], torch.Tensor], progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """float32 (B, C) mean of the teachers' tempered softmaxes; `views` maps each view spec to uint8 (B,3,R,R)."""
        probs = self.teacher_probs(views, progress)
        with single_thread():
            return self.average(probs)

    @staticmethod
    def average(teacher_probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The ensemble's probabilities from :meth:`teacher_probs`' output (the mean, summed in teacher order)."""
        total = teacher_probs[0]
        for probs in teacher_probs[1:]:
            total = total + probs
        return total / len(teacher_probs)

    def describe(self) -> str:
        """One line per teacher: spec, resolution, interpolation, mean, std and parameter count (printed when a
        pass starts, so a wrong preprocessing shows before hours of compute)."""
        lines = [f"teachers ({len(self.teachers)}), each sees its own view:"]
        for t in self.teachers:
            params = sum(p.numel() for p in t.module.parameters())
            stats = "mean ({}), std ({})".format(*(", ".join(f"{v:.4g}" for v in vs) for vs in (t.mean, t.std)))
            lines.append(f"  {t.name}: {t.resolution} px {t.interpolation}, {stats}, {params:,} parameters")
        return "\n".join(lines)

    def to_config(self) -> dict[str, Any]:
        """JSON-able description of the ensemble: temperature and each teacher's config."""
        return {"temperature": self.temperature, "teachers": [t.to_config() for t in self.teachers]}


def parse_teacher_spec(spec: str) -> TeacherSource:
    """Split "timm:<arch>[@weights]", "timm/<hub id>[@revision|@weights]" or "hf:<repo|folder>[@revision|@weights]"."""
    for prefix, kind in (("timm:", "timm"), ("timm/", "timm-hub"), ("hf:", "hf")):
        if spec.startswith(prefix):
            ident = spec if kind == "timm-hub" else spec[len(prefix) :]
            break
    else:
        raise ConfigError(
            f"unknown teacher spec {spec!r}: expected 'timm:<arch>[@weights]', 'timm/<hub id>[@revision]' "
            "or 'hf:<repo id or folder>[@revision]' (weights: a local .safetensors/.pth/.pt/.bin file)"
        )
    ident, at, suffix = ident.rpartition("@") if "@" in ident else (ident, "", "")
    if not ident or (at and not suffix):
        raise ConfigError(f"teacher spec {spec!r} has an empty model id or an empty part after '@'")
    weights = suffix if suffix.lower().endswith(WEIGHT_SUFFIXES) else None
    revision = suffix if at and weights is None else None
    if revision and (kind == "timm" or os.path.isdir(ident)):
        raise ConfigError(f"teacher {spec!r}: '@{revision}' is not a weights file (expected one of {WEIGHT_SUFFIXES})")
    return TeacherSource(kind, ident, revision, weights)


def load_teacher(
    spec_or_teacher: str | Teacher,
    *,
    device: str | torch.device | None = None,
    num_classes: int | None = None,
    class_mapping: Sequence[int] | Mapping[int, int] | None = None,
    trust_remote_code: bool = False,
    preprocessing: Preprocessing | None = None,
) -> Teacher:
    """Load a teacher from a spec string (or take a Teacher), move it to `device` and align it to `num_classes`.

    Random-init timm teachers and timm teachers with local weights get a head of `num_classes` outputs (when given
    and no `class_mapping`; a checkpoint without `num_classes` keeps its own head size, a random head without it is
    an error); pretrained teachers keep their head, and a count mismatch raises unless `class_mapping` maps each
    dataset class to a teacher logit. `preprocessing` (default :class:`Preprocessing`) is what `timm:<arch>`
    teachers see, having no known training preprocessing, and its resolution applies where a Hub config has no
    input size; options in the spec (``...?resolution=32&interpolation=bilinear``) override either.
    """
    preprocessing = preprocessing or Preprocessing()
    if isinstance(spec_or_teacher, Teacher):
        teacher = spec_or_teacher
    elif isinstance(spec_or_teacher, str):
        base, options = split_spec_options(spec_or_teacher)
        source = parse_teacher_spec(base)
        head = num_classes if class_mapping is None else None
        if source.kind == "hf":
            teacher = _load_hf(spec_or_teacher, source, trust_remote_code, preprocessing.resolution)
        else:
            _check_head(spec_or_teacher, source, head, class_mapping)
            teacher = _load_timm(spec_or_teacher, source, head, preprocessing)
        if options:
            teacher = dataclasses.replace(teacher, **options)
    else:
        raise TypeError(f"a teacher is a spec string or an hfr.Teacher, got {type(spec_or_teacher).__name__}")
    teacher.to(resolve_device(device))
    if class_mapping is not None:
        teacher = dataclasses.replace(teacher, class_mapping=class_mapping)
    if num_classes is not None and teacher.num_classes != num_classes:
        hint = (
            ""
            if class_mapping is not None
            else "; map each dataset class to a teacher logit with ReinforceConfig(class_mappings={teacher: [...]}) "
            "(load_teacher: class_mapping=)"
        )
        what = "class_mapping of teacher" if class_mapping is not None else "teacher"
        raise ConfigError(
            f"{what} {teacher.name!r} gives {teacher.num_classes} classes but the dataset has {num_classes}{hint}"
        )
    return teacher


def split_spec_options(spec: str) -> tuple[str, dict[str, Any]]:
    """Split the preprocessing options off a teacher spec: ``"timm:resnet18@ckpt.safetensors?resolution=32&
    interpolation=bilinear&mean=0.13,0.13,0.13&std=0.31,0.31,0.31"`` → (the spec before ``?``, the options
    normalized). Keys are :data:`PREPROCESSING_KEYS`; each at most once; mean/std are 3 comma-separated numbers."""
    base, mark, query = spec.partition("?")
    if not mark:
        return spec, {}
    options: dict[str, Any] = {}
    for item in query.split("&"):
        key, eq, text = item.partition("=")
        where = f"teacher {spec!r}: option {key!r}"
        if key not in PREPROCESSING_KEYS or not eq or not text:
            raise ConfigError(
                f"{where}: expected key=value options joined by '&' with keys {list(PREPROCESSING_KEYS)}, "
                f"got {item!r} (e.g. {base}?resolution=32&interpolation=bilinear&mean=0.5,0.5,0.5&std=0.5,0.5,0.5)"
            )
        if key in options:
            raise ConfigError(f"{where}: given twice")
        value: Any = text.split(",") if key in ("mean", "std") else text
        if key == "resolution":
            value = int(text) if text.isdigit() else text
        options[key] = check_preprocessing(key, value, where)
    return base, options


def spec_with_options(spec: str, **options: Any) -> str:
    """``spec`` with preprocessing options appended (the inverse of :func:`split_spec_options`), e.g.
    ``spec_with_options("timm:resnet18@w.safetensors", resolution=32, mean=(0.5,) * 3)``."""
    base, given = split_spec_options(spec)
    for key in options:
        if key not in PREPROCESSING_KEYS:
            raise ConfigError(f"teacher {spec!r}: unknown option {key!r}; options are {list(PREPROCESSING_KEYS)}")
    given.update({k: check_preprocessing(k, v, f"teacher {spec!r}: option {k!r}") for k, v in options.items()})
    text = {k: ",".join(map(repr, given[k])) if k in ("mean", "std") else str(given[k]) for k in given}  # exact
    return base + ("?" + "&".join(f"{k}={text[k]}" for k in PREPROCESSING_KEYS if k in text) if text else "")


def _check_head(name: str, source: TeacherSource, head: int | None, class_mapping: Any) -> None:
    """A random-init `timm:<arch>` head must be sized to the dataset: without a class count timm's default (1000)
    would silently become the dataset's classes."""
    if source.kind == "timm" and source.weights is None and head is None and class_mapping is None:
        raise ConfigError(
            f"teacher {name!r} has a random-init head whose size must come from the dataset, but the number of "
            "classes is unknown (no num_classes, and no ClassLabel label column): pass num_classes=<count> "
            "(CLI --num-classes), or cast the label column to datasets.ClassLabel"
        )


def _load_timm(name: str, source: TeacherSource, head: int | None, preprocessing: Preprocessing) -> Teacher:
    """A timm model (random init, Hub pretrained and/or local weights): a Hub model with its pretrained_cfg
    preprocessing, a `timm:<arch>` model (no known training preprocessing) with `preprocessing`."""
    import timm
    from timm.data import resolve_model_data_config

    if source.kind == "timm-hub":
        source = dataclasses.replace(source, revision=_hub_commit(source.id, source.revision))
        model_name = f"hf-hub:{source.id}@{source.revision}"
    else:
        model_name = source.id
        if not timm.is_model(model_name):
            raise ConfigError(f"teacher {name!r}: timm has no architecture {model_name!r} (see timm.list_models())")
    hub_weights = source.kind == "timm-hub" and source.weights is None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)  # random-init teachers are the same in every process and run
        model = timm.create_model(model_name, pretrained=hub_weights, num_classes=None if hub_weights else head)
    if source.weights:
        _load_weights(model, source.weights, name)
    if source.kind == "timm":
        return Teacher(model, **preprocessing.to_dict(), name=name, num_outputs=model.num_classes, source=source)
    size = preprocessing.resolution
    args = {} if model.pretrained_cfg.get("input_size") else {"input_size": (3, size, size)}
    data = resolve_model_data_config(model, args=args)
    return Teacher(
        model,
        resolution=_square(*data["input_size"][1:], name),
        mean=data["mean"],
        std=data["std"],
        interpolation=data["interpolation"],
        name=name,
        num_outputs=model.num_classes,
        source=source,
    )


def _load_hf(name: str, source: TeacherSource, trust_remote_code: bool, default_resolution: int) -> Teacher:
    """A transformers image classifier (Hub repo or local folder) with its image processor's preprocessing."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    if not os.path.isdir(source.id):
        source = dataclasses.replace(source, revision=_hub_commit(source.id, source.revision))
    kwargs = {"revision": source.revision, "trust_remote_code": trust_remote_code}
    try:
        processor = AutoImageProcessor.from_pretrained(source.id, **kwargs)
    except OSError as e:
        raise ConfigError(
            f"teacher {name!r} has no image processor config (preprocessor_config.json) to read its "
            f"resolution/mean/std from; add one or wrap the model in hfr.Teacher(...): {e}"
        ) from e
    if source.weights:
        config = AutoConfig.from_pretrained(source.id, **kwargs)
        model = AutoModelForImageClassification.from_config(config, trust_remote_code=trust_remote_code)
        _load_weights(model, source.weights, name)
    else:
        model = AutoModelForImageClassification.from_pretrained(source.id, dtype=torch.float32, **kwargs)
    mean, std = _processor_normalization(processor)
    return Teacher(
        model.float(),
        resolution=_processor_resolution(processor, default_resolution, name),
        mean=mean,
        std=std,
        interpolation=_check_interpolation(getattr(processor, "resample", "bilinear"), name),
        name=name,
        num_outputs=model.config.num_labels,
        source=source,
    )


def _hub_commit(repo_id: str, revision: str | None) -> str:
    """The commit `revision` of Hub model `repo_id` points to (asked from the Hub, or from the cache offline)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError, RevisionResolutionError

    try:
        return HfApi().resolve_revision(repo_id, revision=revision).resolved
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise NotFoundError(
            f"teacher model {repo_id!r} (revision {revision or 'main'}) not found on the Hub: {e}"
        ) from e
    except RevisionResolutionError as e:  # no network and nothing cached
        raise HubError(f"teacher model {repo_id!r}: {e}") from e


def _load_weights(model: nn.Module, path: str, name: str) -> None:
    """Load a safetensors / weights-only torch checkpoint into `model`, tolerating wrapper prefixes; strict keys.
    A timm model's classifier first takes the checkpoint's class count (see `_fit_head_to_checkpoint`)."""
    from timm.models import load_state_dict

    if not os.path.isfile(path):
        raise NotFoundError(f"teacher {name!r}: weights file {path!r} not found")
    try:
        state = load_state_dict(path, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError) as e:  # older timm lets torch's UnpicklingError through
        raise ConfigError(
            f"teacher {name!r}: cannot load {path!r} as safetensors or a weights-only torch checkpoint "
            f"(arbitrary pickles are refused; re-save it as a plain state dict or .safetensors): {e}"
        ) from e
    state = _strip_prefixes(state, model.state_dict().keys())
    _fit_head_to_checkpoint(model, state)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ConfigError(f"teacher {name!r}: weights in {path!r} do not fit the model: {e}") from e
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"teacher {name!r}: weights in {path!r} do not match the model: "
            f"missing keys {_preview(result.missing_keys)}, unexpected keys {_preview(result.unexpected_keys)}"
        )


def _fit_head_to_checkpoint(model: nn.Module, state: Mapping[str, Any]) -> None:
    """Give a timm model the classifier size of the checkpoint (the checkpoint says how many classes the teacher
    knows; :func:`load_teacher` then compares that count with the dataset's and asks for ``class_mapping``)."""
    get_classifier, reset = getattr(model, "get_classifier", None), getattr(model, "reset_classifier", None)
    weight = getattr(get_classifier(), "weight", None) if callable(get_classifier) and callable(reset) else None
    key = next((k for k, p in model.named_parameters() if weight is not None and p is weight), None)
    stored = state.get(key) if key else None
    if stored is not None and stored.ndim == 2 and stored.shape[0] != weight.shape[0]:
        with torch.random.fork_rng(devices=[]):  # the new head is overwritten; keep the caller's RNG untouched
            reset(int(stored.shape[0]))


def _strip_prefixes(state: Mapping[str, Any], model_keys: Iterable[str]) -> dict[str, Any]:
    """Drop "module." / "model." / "_orig_mod." prefixes shared by all checkpoint keys but not by the model's."""
    model_keys = list(model_keys)
    state = dict(state)
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in model_keys):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped = True
    return state


def _preview(keys: Sequence[str], limit: int = 8) -> str:
    """First few keys of a list, for error messages."""
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def _processor_resolution(processor: Any, default: int, name: str) -> int:
    """Square input side of a transformers image processor: crop_size if it center-crops, else size."""
    cropping = getattr(processor, "do_center_crop", False) and getattr(processor, "crop_size", None)
    size = (processor.crop_size if cropping else getattr(processor, "size", None)) or {}
    if size.get("height") is not None:
        return _square(size["height"], size.get("width", size["height"]), name)
    return int(size.get("shortest_edge", default))


def _processor_normalization(processor: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) such that (x/255 - mean)/std equals the processor's rescale + normalize of uint8 x."""
    rescale = processor.rescale_factor if getattr(processor, "do_rescale", True) else 1.0
    normalize = getattr(processor, "do_normalize", True)
    mean = processor.image_mean if normalize else (0.0, 0.0, 0.0)
    std = processor.image_std if normalize else (1.0, 1.0, 1.0)
    scale = 255.0 * rescale
    return tuple(m / scale for m in mean), tuple(s / scale for s in std)


def _square(height: int, width: int, name: str) -> int:
    """The side of a square input size; non-square sizes are an error."""
    if height != width:
        raise ConfigError(
            f"teacher {name!r} expects non-square {height}x{width} inputs; "
            "wrap it in hfr.Teacher with a square resolution"
        )
    return int(height)


def _check_interpolation(value: Any, name: str) -> str:
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
