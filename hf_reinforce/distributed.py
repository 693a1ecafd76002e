"""Which process this is, for the pass (accelerate's process state) and for what a person reads (one main process
logs and prints under ``accelerate launch``/``torchrun``)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import torch


def process_state(device: str | torch.device | None = None) -> Any:
    """accelerate's ``PartialState`` (one process unless launched by accelerate/torchrun; gloo when on CPU).

    Without ``cpu=True``, ``PartialState()`` joins a torchrun/accelerate launch only on an accelerator: on a CPU-only
    machine every process would believe it is alone and write every shard, so CPU is asked for whenever there is no
    accelerator, the device is a CPU, or ``ACCELERATE_USE_CPU`` is set."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    accelerator = getattr(torch, "accelerator", None)
    has_accelerator = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    on_cpu = device is not None and torch.device(device).type == "cpu"
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or on_cpu or not has_accelerator)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise RuntimeError(
            f"launched as {launched} processes (WORLD_SIZE) but accelerate set up {state.num_processes}; "
            "to run the processes on CPU set ACCELERATE_USE_CPU=1 (or pass device='cpu')"
        )
    return state


def is_main_process() -> bool:
    """True outside distributed launches and on the global main process under accelerate/torchrun: accelerate's
    answer once its state is set up in this process, else the launcher's ``RANK``."""
    state_module = sys.modules.get("accelerate.state")
    if state_module is not None and state_module.PartialState._shared_state:
        return bool(state_module.PartialState().is_main_process)
    return os.environ.get("RANK", "0") == "0"


class _MainProcessLogger(logging.LoggerAdapter):
    """Drops records in every process but the main one (``main_process_only=False`` logs everywhere)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if kwargs.pop("main_process_only", True) and not is_main_process():
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs


def get_logger(name: str) -> logging.LoggerAdapter:
    """The logger of module ``name`` (under the ``hf_reinforce`` logger), logging in the main process only."""
    return _MainProcessLogger(logging.getLogger(name), {})


__all__ = ["get_logger", "is_main_process", "process_state"]
