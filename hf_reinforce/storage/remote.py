"""Talking to the Hub: offline mode and an unreachable Hub found at once, and the Hub's refusals turned into errors a
user can act on, each naming the repo and the fix.

``huggingface_hub`` retries a request that cannot connect for about half a minute (five tries with back-off)
before it gives up or falls back on its cache. Every entry point that needs the Hub asks :func:`check_reachable`
first: offline mode (``HF_HUB_OFFLINE=1``) is read from ``huggingface_hub``'s setting, and one request without
retries (within ``HF_HUB_ETAG_TIMEOUT``, 10 s by default) tells whether the Hub answers. Files in the local Hub cache
are used when the Hub cannot be asked (:func:`download`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import constants, get_session, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from ..distributed import get_logger
from ..errors import HubError, NotFoundError

logger = get_logger(__name__)

OFFLINE_SETTING = "HF_HUB_OFFLINE=1"


def transport_errors() -> tuple[type[Exception], ...]:
    """The exception classes of a request that reached no server (DNS, refused, reset, timed out, proxy), for
    each HTTP client ``huggingface_hub`` has used (``httpx2``, ``httpx``): they derive from no built-in error."""
    found: list[type[Exception]] = []
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            found.append(__import__(module).TransportError)
    return tuple(found)


def unreachable(repo_id: str) -> str | None:
    """Why the Hub does not answer (one request, no retries), or ``None`` when it answers at all."""
    url = f"{constants.ENDPOINT}/api/datasets/{repo_id}"
    try:
        get_session().get(url, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as error:  # noqa: BLE001 — whatever stops the request, the Hub cannot be reached
        return f"{type(error).__name__}: {error}"
    return None


def check_reachable(repo_id: str, what: str) -> None:
    """Refuse at once, naming ``repo_id``, when the Hub cannot be asked for ``what`` (``"push to"``, ``"read"``):
    offline mode is on (:class:`HubError` naming the setting) or one request gets no answer.

    Raises:
        HubError: offline mode, or the Hub does not answer.
    """
    if constants.is_offline_mode():
        raise HubError(
            f"cannot {what} {repo_id}: {OFFLINE_SETTING} is set (huggingface_hub's offline mode); unset it to reach "
            "the Hub, or give a local folder"
        )
    reason = unreachable(repo_id)
    if reason is not None:
        raise HubError(
            f"cannot {what} {repo_id}: the Hub at {constants.ENDPOINT} cannot be reached ({reason}); check the "
            f"network connection (or set {OFFLINE_SETTING} to use files already in the local Hub cache)"
        )


def download(repo_id: str, filename: str, *, revision: str | None, token: str | bool | None) -> Path:
    """``filename`` of the Hub dataset repo ``repo_id``: downloaded, or from the local Hub cache when offline mode
    is on or the Hub cannot be reached (then without waiting for retries).

    Raises:
        HubError: the Hub cannot be asked and the file is not in the cache (naming the repo and why).
        NotFoundError: the repo, the revision or the file does not exist.
    """
    with hub_errors(repo_id):
        try:
            check_reachable(repo_id, "read")
        except HubError as error:
            cached = _cached(repo_id, filename, revision, token)
            if cached is None:
                raise HubError(f"{error} ({filename} is not in the local Hub cache)") from None
            logger.warning("%s; using %s of %s from the local Hub cache", error, filename, repo_id)
            return cached
        path = hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision, token=token)
    return Path(path)


def _cached(repo_id: str, filename: str, revision: str | None, token: str | bool | None) -> Path | None:
    try:
        path = hf_hub_download(
            repo_id, filename, repo_type="dataset", revision=revision, token=token, local_files_only=True
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        return None
    return Path(path)


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn what the Hub does into errors a user can act on, naming the repo and the fix: a missing file, repo or
    branch → :class:`NotFoundError`; 401/403, offline mode, no answer, a lost connection → :class:`HubError`; other
    HTTP errors pass through unchanged."""
    try:
        yield
    except (EntryNotFoundError, OfflineModeIsEnabled) as error:
        if isinstance(error, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
            raise HubError(
                f"{repo_id}: not in the local Hub cache, and the Hub cannot be asked ({OFFLINE_SETTING}, or no "
                "network): unset HF_HUB_OFFLINE and check the network connection"
            ) from error
        raise NotFoundError(
            f"{repo_id} has no such file ({_first_line(error)}): is it a reinforced dataset?"
        ) from error
    except HfHubHTTPError as error:
        _raise_refusal(repo_id, error)
        raise
    except transport_errors() as error:
        raise HubError(
            f"lost the connection to the Hub at {constants.ENDPOINT} while talking about {repo_id} "
            f"({type(error).__name__}: {error}); check the network connection and rerun (uploads resume)"
        ) from error


def _raise_refusal(repo_id: str, error: HfHubHTTPError) -> None:
    status = getattr(error.response, "status_code", None)
    server = _first_line(error)
    if status == 401:
        raise HubError(
            f"the Hub refused the token for {repo_id} (401: missing, invalid or expired): log in with "
            f"`hf auth login` or set HF_TOKEN to a token with write access ({server})"
        ) from error
    if status == 403:
        raise HubError(
            f"no rights to write to {repo_id} (403): push to your own namespace or an organization you can write "
            f"to, with a token that has write permission ({server})"
        ) from error
    if status == 404:
        raise NotFoundError(
            f"{repo_id} or its branch was not found on the Hub (404): check the repo id and --revision ({server})"
        ) from error


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


__all__ = ["check_reachable", "download", "hub_errors", "transport_errors", "unreachable"]
