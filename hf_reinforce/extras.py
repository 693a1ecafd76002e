"""Optional dependencies: a missing one is an error that names the extra installing it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"transformers": "transformers"}
"""Optional module → the ``hf-reinforce`` extra that installs it."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` (a feature), or raise an ``ImportError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise ImportError(
            f"{what} needs {module.split('.')[0]}, an optional dependency of hf_reinforce: "
            f"pip install 'hf-reinforce[{extra}]'"
        ) from error


__all__ = ["require"]
