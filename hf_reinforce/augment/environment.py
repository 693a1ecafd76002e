"""What decides rendered bytes besides the stored parameters: the libraries and the CPU that rendered them."""

from __future__ import annotations

import platform
from collections.abc import Mapping

import numpy as np
import PIL
import torch
import torchvision

from .._version import __version__
from .functional import RENDER_KERNELS


def rendering_environment() -> dict[str, str]:
    """This process's rendering environment, as a run record keeps it: the hf_reinforce, torch, torchvision, Pillow
    and NumPy versions, the version of the render kernels' arithmetic (:data:`~hf_reinforce.augment.RENDER_KERNELS`),
    the CPU capability torch dispatches its kernels to (``ATEN_CPU_CAPABILITY``), and the machine architecture."""
    return {
        "hf_reinforce": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "render_kernels": str(RENDER_KERNELS),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def environment_changes(recorded: Mapping[str, str], local: Mapping[str, str] | None = None) -> list[str]:
    """What differs between a recorded rendering environment and ``local`` (this process's by default), as
    ``"name recorded -> local"``; an environment recorded before render kernels were versioned had version 1."""
    recorded = {"render_kernels": "1", **recorded}
    local = rendering_environment() if local is None else local
    return [
        f"{name} {recorded.get(name, '?')} -> {local.get(name, '?')}"
        for name in [*local, *(name for name in recorded if name not in local)]
        if recorded.get(name) != local.get(name)
    ]


__all__ = ["environment_changes", "rendering_environment"]
