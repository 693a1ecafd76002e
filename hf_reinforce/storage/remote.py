"""Talking to the Hub: its refusals turned into errors a user can act on, naming the repo and the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from huggingface_hub.errors import HfHubHTTPError

from ..errors import HubError, NotFoundError


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn the Hub's refusals into errors a user can act on: 401/403 → :class:`HubError`, 404 →
    :class:`NotFoundError`, each naming the repo and the fix; other HTTP errors pass through unchanged."""
    try:
        yield
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        server = str(error).splitlines()[0]
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
        raise


__all__ = ["hub_errors"]
