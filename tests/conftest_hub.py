"""pytest plugin: ``hub_server``, a session-wide local Hugging Face Hub for offline tests.

Enable it once in ``tests/conftest.py`` (or in a test module) with::

    pytest_plugins = ["conftest_hub"]

then use the clients exactly as production code does — no endpoint or token arguments needed::

    def test_roundtrip(hub_server):
        repo_id = hub_server.repo_id("cifar-plus")        # unique "test-user/cifar-plus-<n>"
        Dataset.from_dict({"x": [1, 2]}).push_to_hub(repo_id)
        assert load_dataset(repo_id, split="train")["x"] == [1, 2]
        hub_server.run("scripts/quickstart.py", "--push", repo_id)   # a subprocess sees the same Hub

How the clients are pointed at the server (both, so test order does not matter):

1. **Environment** (``hub_server.env``), set in ``os.environ`` for the session and inherited by every
   subprocess: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET=1`` (the server has no Xet storage),
   ``HF_HUB_OFFLINE=0`` (+ ``HF_DATASETS_OFFLINE``/``TRANSFORMERS_OFFLINE``), ``HF_HOME`` and the cache
   paths under a tmp dir, ``HF_UPDATE_DOWNLOAD_COUNTS=0`` (datasets would HEAD s3.amazonaws.com),
   telemetry off, and ``HTTP(S)_PROXY=<server>`` with ``NO_PROXY=127.0.0.1,localhost``: any request to
   a non-loopback host goes to the server, which refuses it and records it in ``hub_server.blocked``
   (e.g. datasets' ``datasets-server.<endpoint host>`` lookup) — nothing ever leaves the machine.
2. **Module constants** read at import time are patched too, because ``huggingface_hub``/``datasets`` are
   usually imported before the fixture runs: ``huggingface_hub.constants.ENDPOINT``,
   ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_XET``, cache paths, ...;
   ``datasets.config.HF_ENDPOINT``, ``HUB_DATASETS_URL``, ``HF_HUB_OFFLINE``, cache paths,
   ``HF_UPDATE_DOWNLOAD_COUNTS`` and ``USE_PARQUET_EXPORT=False`` (no env var exists for the latter);
   ``huggingface_hub.hf_api.api.endpoint`` (the module-level ``HfApi()`` behind the functions
   ``huggingface_hub.upload_file``/``create_repo``/... and ``RepoCard.push_to_hub``, built at import);
   the shared ``httpx`` client of ``huggingface_hub`` is closed so the next one sees the proxy variables.
   ``transformers`` and ``timm`` read everything through ``huggingface_hub.constants``.

Everything is restored when the session ends. Inside the session the Hub is reachable (offline mode
off) even if the rest of the suite runs with ``HF_HUB_OFFLINE=1``. An ``HfApi``/``HfFileSystem`` object
built *before* the fixture started keeps its old endpoint: production code should build them per call.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hub_server import HubServer

TOKEN, USER = "hf_test_token_xxx", "test-user"
OTHER_TOKEN, OTHER_USER = "hf_other_token_yyy", "other-user"


class LocalHub:
    """What the ``hub_server`` fixture yields: the running server plus the client-side setup.

    Attributes of the :class:`hub_server.HubServer` are reachable directly: ``fail``, ``count``,
    ``requests``, ``unhandled``, ``blocked``, ``list_files``, ``read_file``, ``state``.
    """

    def __init__(self, server: HubServer, home: Path):
        self.server, self.home = server, home
        self.endpoint, self.token, self.user = server.endpoint, TOKEN, USER
        self.other_token, self.other_user = OTHER_TOKEN, OTHER_USER
        self.env = hub_environ(self.endpoint, self.token, home)
        self._ids = itertools.count(1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    def repo_id(self, name: str) -> str:
        """A fresh ``user/name-<n>`` id, so tests never collide on the shared server."""
        return f"{self.user}/{name}-{next(self._ids)}"

    def api(self, token: str | bool | None = None):
        """An ``HfApi`` on this server (default token: the test user's)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token if token is None else token)

    def reset(self) -> None:
        """Empty the server and the local caches (repos, blobs, logs, faults, HF cache, fs instances)."""
        self.server.reset()
        for name in ("hub", "datasets", "xet"):
            shutil.rmtree(self.home / name, ignore_errors=True)
        _clear_client_caches()

    def run(
        self,
        target: str | Path | Sequence[str],
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run, in a fresh process with the Hub environment, a command (list), a ``.py`` file, or Python code.

        Returns the completed process (``stdout``/``stderr`` as text); raises with both on failure if ``check``.
        """
        if isinstance(target, (list, tuple)):
            cmd = [*target, *args]
        elif isinstance(target, Path) or str(target).endswith(".py"):
            cmd = [sys.executable, str(target), *args]
        else:
            cmd = [sys.executable, "-c", str(target), *args]
        env = {**os.environ, **self.env, **(env or {})}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{cmd[:3]} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc


def hub_environ(endpoint: str, token: str, home: Path) -> dict[str, str]:
    """Environment variables that point every HF client (in this or a child process) at ``endpoint``."""
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    for name in ("http_proxy", "https_proxy"):
        env[name] = env[name.upper()] = endpoint
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def _clear_client_caches() -> None:
    from huggingface_hub import HfFileSystem, close_session

    HfFileSystem.clear_instance_cache()
    close_session()


def _client_patches(endpoint: str, home: Path) -> list[tuple[Any, str, Any]]:
    """(module, attribute, value) for the constants the clients captured at import time."""
    from urllib.parse import urlsplit

    import datasets.config as dc
    import huggingface_hub.constants as hc
    import huggingface_hub.hf_api as ha
    import huggingface_hub.utils._http as hh

    patches = [
        (hc, "ENDPOINT", endpoint),
        (hc, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
        (hc, "HF_URL_HOSTS", hc.HF_URL_HOSTS | {urlsplit(endpoint).hostname}),
        (ha.api, "endpoint", endpoint),  # the HfApi() behind `huggingface_hub.upload_file` & co, built at import
        (hc, "HF_HUB_OFFLINE", False),
        (hc, "HF_HUB_DISABLE_XET", True),
        (hc, "HF_HUB_DISABLE_TELEMETRY", True),
        (hc, "HF_HOME", str(home)),
        (hc, "HF_HUB_CACHE", str(home / "hub")),
        (hc, "HF_ASSETS_CACHE", str(home / "assets")),
        (hc, "HF_XET_CACHE", str(home / "xet")),
        (hc, "HF_TOKEN_PATH", str(home / "token")),
        (hc, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens")),
        (dc, "HF_ENDPOINT", endpoint),
        (dc, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"),
        (dc, "HF_HUB_OFFLINE", False),
        (dc, "HF_DATASETS_OFFLINE", False),
        (dc, "HF_UPDATE_DOWNLOAD_COUNTS", False),
        (dc, "USE_PARQUET_EXPORT", False),
        (dc, "HF_CACHE_HOME", str(home)),
        (dc, "HF_DATASETS_CACHE", home / "datasets"),
        (dc, "HF_MODULES_CACHE", home / "modules"),
        (dc, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "downloads"),
        (dc, "EXTRACTED_DATASETS_PATH", home / "datasets" / "downloads" / "extracted"),
    ]
    if hasattr(hh, "_HUB_ORIGINS"):  # huggingface_hub >= 2.2 follows redirects only to these origins
        patches.append((hh, "_HUB_ORIGINS", hh._HUB_ORIGINS | {hh._url_origin(endpoint)}))
    return patches


@contextmanager
def hub_clients(hub: LocalHub) -> Iterator[None]:
    """Point the clients of this process at ``hub`` (env + patched constants); undo on exit."""
    old_env = {key: os.environ.get(key) for key in hub.env}
    os.environ.update(hub.env)
    patches = _client_patches(hub.endpoint, hub.home)
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    for obj, attr, value in patches:
        setattr(obj, attr, value)
    _clear_client_caches()
    try:
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_client_caches()


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """A local Hub on 127.0.0.1 for the whole session, with this process's HF clients pointed at it."""
    home = tmp_path_factory.mktemp("hf_home")
    with HubServer(tokens={TOKEN: USER, OTHER_TOKEN: OTHER_USER}, root=home / "server") as server:
        hub = LocalHub(server, home)
        with hub_clients(hub):
            yield hub
