"""Shared fixtures: real photos and digits available offline (from :mod:`hf_reinforce.testing`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_reinforce import testing

pytest_plugins = ["conftest_hub"]  # the local Hub-protocol server fixture (hub_server)


@pytest.fixture(scope="session")
def photos() -> list[torch.Tensor]:
    """The two real photos shipped with scikit-learn (427×640 RGB), as uint8 (3, H, W) tensors."""
    return testing.photo_tensors()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real 8×8 handwritten digits as uint8 images (0..255) and labels."""
    return testing.digits_arrays()
