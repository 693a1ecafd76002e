"""The exception hierarchy: every error the library raises on purpose derives from :class:`ReinforceError`.

Each class also subclasses the built-in exception it replaces, so ``except ValueError`` (or ``FileNotFoundError``)
in user code keeps working. The CLI turns exactly these into one-line messages with exit status 2.
"""

from __future__ import annotations


class ReinforceError(Exception):
    """Base class of the errors hf_reinforce raises about the user's input, config or files."""


class ConfigError(ReinforceError, ValueError):
    """A configuration value is invalid: the message names the field, what was expected and what was got."""


class MissingColumnError(ReinforceError, ValueError):
    """A configured column is not in the dataset (the message lists the columns that exist)."""


class BadImageError(ReinforceError, ValueError):
    """An image that cannot be decoded, named by row index and column."""


class BadLabelError(ReinforceError, ValueError):
    """A label outside the classes, named by row index and column."""


class SchemaVersionError(ReinforceError, ValueError):
    """Reinforced data written by a newer schema than this library reads."""


class OutputConflictError(ReinforceError, ValueError):
    """An output folder holds something this run must not overwrite or mix with (another config, source, files)."""


class IncompleteOutputError(ReinforceError, RuntimeError):
    """A reinforced folder or split is unfinished or damaged (the message names the file)."""


class OutOfRangeError(ReinforceError, IndexError):
    """A row or augmentation index outside what the data holds (the message gives the valid range)."""


class NotFoundError(ReinforceError, FileNotFoundError):
    """A local folder or file the user named does not exist."""


class StorageError(ReinforceError, OSError):
    """A local file or folder cannot be read or written (no space left, read-only, no permission): the message
    names the path and the fix."""


class HubError(ReinforceError, OSError):
    """The Hub refused a request (401: no or bad token, 403: no rights) or could not be reached."""


class ReplayMismatchError(ReinforceError, RuntimeError):
    """This machine replays stored augmentations to other pixels than the machine that wrote them (their stored
    replay fingerprints differ): raised by a transform built with ``check_replay="error"``."""


class ReplayMismatchWarning(UserWarning):
    """The warning a transform gives once when sampled rows do not replay to their stored fingerprints."""


__all__ = [
    "BadImageError",
    "BadLabelError",
    "ConfigError",
    "HubError",
    "IncompleteOutputError",
    "MissingColumnError",
    "NotFoundError",
    "OutOfRangeError",
    "OutputConflictError",
    "ReinforceError",
    "ReplayMismatchError",
    "ReplayMismatchWarning",
    "SchemaVersionError",
    "StorageError",
]
