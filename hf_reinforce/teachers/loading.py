"""Loading teachers from spec strings: ``timm:<arch>[@weights]``, ``timm/<hub id>[@revision]``,
``hf:<repo or folder>[@revision]``, with preprocessing options (``...?resolution=32``); weights through safetensors or
``torch.load(weights_only=True)`` only."""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, HubError, NotFoundError
from ..extras import require
from ..validation import check_preprocessing
from .teacher import (
    PREPROCESSING_KEYS,
    Preprocessing,
    Teacher,
    TeacherSource,
    check_interpolation,
    resolve_device,
)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
RANDOM_INIT_SEED = 0


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

    Args:
        spec_or_teacher: ``"timm:<arch>"``, ``"timm/<hub id>"``, ``"hf:<repo or folder>"``, any of them with
            ``@<checkpoint file>`` and ``?<options>``, or a :class:`Teacher`.
        device: where the teacher runs (default: CUDA when present, else CPU).
        num_classes: the dataset's class count.
        class_mapping: for each dataset class, the teacher logit standing for it.
        trust_remote_code: allow an ``hf:`` model that needs its repo's code.
        preprocessing: what ``timm:<arch>`` teachers see.

    Returns:
        The :class:`Teacher`, on ``device``, in eval mode.

    Raises:
        ConfigError: an unknown spec or option, or a class count that does not match ``num_classes``.
        TypeError: ``spec_or_teacher`` is neither a string nor a :class:`Teacher`.
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
    ``spec_with_options("timm:resnet18@w.safetensors", resolution=32, mean=(0.5,) * 3)``.

    Args:
        spec: a teacher spec, with or without options.
        **options: ``resolution``, ``interpolation``, ``mean``, ``std`` (:data:`PREPROCESSING_KEYS`); they replace
            the spec's own.

    Returns:
        The spec with every option after ``?``, in a fixed order, numbers written exactly.

    Raises:
        ConfigError: an unknown option or a value out of range.
    """
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
        model: Any = timm.create_model(model_name, pretrained=hub_weights, num_classes=None if hub_weights else head)
    if source.weights:
        _load_weights(model, source.weights, name)
    if source.kind == "timm":
        return Teacher(model, **preprocessing.to_dict(), name=name, num_outputs=model.num_classes, source=source)
    size = preprocessing.resolution
    args = {} if model.pretrained_cfg.get("input_size") else {"input_size": (3, size, size)}
    data = resolve_model_data_config(model, args=args)
    _, height, width = data["input_size"]
    return Teacher(
        model,
        resolution=_square(height, width, name),
        mean=data["mean"],
        std=data["std"],
        interpolation=data["interpolation"],
        name=name,
        num_outputs=model.num_classes,
        source=source,
    )


def _load_hf(name: str, source: TeacherSource, trust_remote_code: bool, default_resolution: int) -> Teacher:
    """A transformers image classifier (Hub repo or local folder) with its image processor's preprocessing."""
    transformers = require("transformers", f"teacher {name!r} (an hf: teacher)")
    AutoConfig, AutoImageProcessor = transformers.AutoConfig, transformers.AutoImageProcessor
    AutoModelForImageClassification = transformers.AutoModelForImageClassification

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
        interpolation=check_interpolation(getattr(processor, "resample", "bilinear"), name),
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
    if weight is not None and stored is not None and stored.ndim == 2 and stored.shape[0] != weight.shape[0]:
        with torch.random.fork_rng(devices=[]):  # the new head is overwritten; keep the caller's RNG untouched
            reset(int(stored.shape[0]))  # type: ignore[misc]  # callable: checked with get_classifier above


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
