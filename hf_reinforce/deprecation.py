"""Names kept for one release after a rename, each warning once where it is used."""

from __future__ import annotations

import warnings


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (a ``FutureWarning``, shown to users by default)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        FutureWarning,
        stacklevel=stacklevel,
    )


__all__ = ["warn_renamed"]
