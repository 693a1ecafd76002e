"""What decides rendered bytes besides the stored parameters: the libraries and the CPU that rendered them."""

from __future__ import annotations

import platform

import numpy as np
import PIL
import torch
import torchvision

from .._version import __version__


def rendering_environment() -> dict[str, str]:
    """This process's rendering environment, as a run record keeps it: the hf_reinforce, torch, torchvision, Pillow
    and NumPy versions, the CPU capability torch dispatches its kernels to (``ATEN_CPU_CAPABILITY``), and the
    machine architecture."""
    return {
        "hf_reinforce": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


__all__ = ["rendering_environment"]
