"""The command-line options of a config class, derived from its fields' metadata (``help``, ``group``, ``cli``
overrides) and annotations: a new field of :class:`~hf_reinforce.ReinforceConfig` is on the command line with no
edit here. Nothing here imports torch, torchvision or datasets: the parser is built before any command runs.
"""

from __future__ import annotations

import argparse
import builtins
import collections.abc
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from .config import ReinforceConfig
from .errors import ConfigError, NotFoundError


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_class: type = ReinforceConfig,
    *,
    groups: Mapping[str, Any] | None = None,
) -> None:
    """One option per field of ``config_class`` (a ``ReinforceConfig`` or a dataclass subclass of it), from the
    fields' metadata: flag ``--name-with-dashes``, type from the annotation (``int``/``float``/``str``; ``bool``
    → a switch; ``X | None`` → default ``None``, plus ``--no-name`` where the default is not ``None``; anything
    else is read as a string for the config to parse), ``help`` and ``group`` from the metadata, and ``cli``
    metadata overriding these argparse keywords (``cli=None``: not on the command line)."""
    groups = dict(groups or {})
    hints = field_types(config_class)
    for field in dataclasses.fields(config_class):
        if "cli" in field.metadata and field.metadata["cli"] is None:
            continue
        group = field.metadata.get("group", "reinforcement")
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        _add_field(groups[group], field, hints[field.name])


def field_types(config_class: type) -> dict[str, Any]:
    """Each field's annotation, evaluated in the module of the class that declares it, as ``typing.get_type_hints``
    does; a name that module imports only for type checkers (a class of a heavy module the parser must not import)
    reads as ``Any``: such an option is read as a string, which the config parses."""
    hints: dict[str, Any] = {}
    for klass in reversed(config_class.__mro__):
        namespace = vars(sys.modules[klass.__module__])
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if isinstance(annotation, str):
                annotation = eval(annotation, dict(namespace), _TypeCheckingNames(namespace))
            hints[name] = annotation
    return hints


class _TypeCheckingNames(dict):
    """Local names of an annotation: nothing but ``Any`` for names neither its module nor the builtins define."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        super().__init__()
        self.namespace = namespace

    def __missing__(self, name: str) -> Any:
        if name in self.namespace or hasattr(builtins, name):
            raise KeyError(name)  # looked up in the module, then the builtins
        return Any


def _add_field(group: Any, field: dataclasses.Field, hint: Any) -> None:
    """The option (and for an optional field with a default, its ``--no-`` form) of one config field; a field whose
    default is made by a factory is left out of the parsed arguments unless given, so the config makes it."""
    flag = "--" + field.name.replace("_", "-")
    help_text = field.metadata.get("help", "")
    factory = field.default_factory is not dataclasses.MISSING
    default = argparse.SUPPRESS if factory else None if field.default is dataclasses.MISSING else field.default
    optional, kind = _scalar_type(hint)
    if kind is bool:
        action = "store_false" if default else "store_true"
        flag = "--no-" + field.name.replace("_", "-") if default else flag
        group.add_argument(flag, dest=field.name, action=action, help=help_text, **(field.metadata.get("cli") or {}))
        return
    kwargs: dict[str, Any] = {"dest": field.name, "type": kind, "default": default, "help": help_text}
    if typing.get_origin(hint) in (list, tuple, Sequence, collections.abc.Sequence):
        kwargs["nargs"] = "+"
    if default is not None and not factory:
        kwargs["help"] = f"{help_text} (default: {default})"
    kwargs.update(field.metadata.get("cli") or {})
    if not (optional and default is not None) or factory:
        group.add_argument(flag, **kwargs)
        return
    either = group.add_mutually_exclusive_group()
    either.add_argument(flag, **kwargs)
    either.add_argument(
        "--no-" + field.name.replace("_", "-"),
        dest=field.name,
        action="store_const",
        const=None,
        help=field.metadata.get("none_help", f"no {field.name.replace('_', ' ')}"),
    )


def _scalar_type(hint: Any) -> tuple[bool, type]:
    """(whether ``None`` is allowed, the command-line type) of an annotation; non-scalar types are read as ``str``."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union else ()
    optional = type(None) in args
    rest = [a for a in args if a is not type(None)] if args else [hint]
    kind = rest[0] if len(rest) == 1 and rest[0] in (int, float, str, bool) else str
    return optional, kind


def config_from_args(args: argparse.Namespace, config_class: type = ReinforceConfig) -> Any:
    """The ``config_class`` instance the parsed options describe (fields not on the command line keep their
    defaults; a ``--policy`` ending in ``.json`` is read from that file)."""
    values = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(config_class)
        if field.metadata.get("cli", {}) is not None and hasattr(args, field.name)
    }
    if isinstance(values.get("policy"), str):
        values["policy"] = _policy(values["policy"])
    return config_class(**values)


def _policy(value: str) -> Any:
    """A preset name or JSON string as given, or the JSON object in a ``.json`` file."""
    if value.endswith(".json"):
        path = Path(value)
        if not path.is_file():
            raise NotFoundError(f"--policy: policy file {value} not found")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"--policy: {value} is not valid JSON: {error}") from None
    return value


__all__ = ["add_config_arguments", "config_from_args", "field_types"]
