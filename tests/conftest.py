"""Shared fixtures: real photos and digits available offline (from :mod:`hf_reinforce.testing`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from hf_reinforce import testing

pytest_plugins = ["conftest_hub"]  # the local Hub-protocol server fixture (hub_server)

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root folder."""
WORKER = Path(__file__).with_name("reinforce_worker.py")
"""A pass run as a subprocess (under torchrun, or killed mid-pass)."""


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests, as in the subprocesses: tiny teachers gain nothing from more, and
    on a busy 2-core machine two threads per process run up to 10x slower. Outputs do not depend on it (see
    test_output_does_not_depend_on_the_thread_count). Modules opt in with ``pytestmark``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """Keep the Arrow cache of ``load_dataset`` inside the test's tmp_path."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a pass started as a subprocess: its own Arrow cache, offline, one thread, no launcher
    variables of the test process (``extra`` added last)."""
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets_cache"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def photos() -> list[torch.Tensor]:
    """The two real photos shipped with scikit-learn (427×640 RGB), as uint8 (3, H, W) tensors."""
    return testing.photo_tensors()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real 8×8 handwritten digits as uint8 images (0..255) and labels."""
    return testing.digits_arrays()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, ``mkdocs build --strict`` of this tree into a fresh folder (needs the docs extra):
    every warning is an error, so a broken link, a missing page or an unresolved reference fails here."""
    pytest.importorskip("mkdocs", reason='the docs extra is not installed: pip install -e ".[docs]"')
    folder = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return folder


fma_oracle = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="torchvision's own result is the oracle on x86 AVX2/AVX-512, where torch's float kernels fuse multiply-adds "
    "(elsewhere they round differently; tests/augment/test_exact_replay.py holds the render kernels to those bytes everywhere)",
)
"""Marks a test whose oracle is torchvision's (or torch's) float arithmetic as computed on AVX2/AVX-512 x86."""
