"""The installed distribution's version, single-sourced from pyproject.toml."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hf-reinforce")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"
