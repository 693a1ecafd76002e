"""The process ``test_reinforce.py`` starts, alone or two under ``torchrun``: it reinforces the MNIST digits of
:mod:`hf_reinforce.testing` with its tiny teachers and config (the ones the in-process tests use) into a folder and,
with ``--log-dir``, writes one line per shard a process wrote to ``<log-dir>/rank<r>.jsonl``::

    python tests/reinforce_worker.py OUTPUT_DIR --rows 64 --rows-per-shard 16 --log-dir LOGS [--throttle 0.5] [--split test]

With ``--extend-from FOLDER`` it extends that folder (written with the same config) to ``--num-augmentations``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

import hf_reinforce as hfr
from hf_reinforce.testing import mnist_dataset, tiny_config


def _spy_on_shard_writes(log_dir: Path | None, throttle: float) -> None:
    """Wrap ``write_parquet_atomic``: sleep ``throttle`` seconds before each shard is written (so that a test can
    kill the process mid-pass) and log (rank, shard) of every shard this process writes to ``log_dir``."""
    from accelerate import PartialState

    from hf_reinforce.storage import shards

    write = shards.write_parquet_atomic

    def logged(batches: Any, schema: Any, path: Path) -> int:
        time.sleep(throttle)
        size = write(batches, schema, path)
        if log_dir is None:
            return size
        state = PartialState()  # the state the pass set up
        log_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": state.process_index,
            "world_size": state.num_processes,
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "shard": Path(path).name,
        }
        with open(log_dir / f"rank{state.process_index}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return size

    shards.write_parquet_atomic = logged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--policy", default="rrc+ra+re")
    parser.add_argument("--num-augmentations", type=int, default=4)
    parser.add_argument("--rows-per-shard", type=int, default=16)
    parser.add_argument("--rows-per-block", type=int, default=16)
    parser.add_argument("--split", default="train")
    parser.add_argument("--extend-from", type=Path, help="extend this folder to --num-augmentations instead")
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--throttle", type=float, default=0.0, help="seconds to sleep before writing each shard")
    args = parser.parse_args(argv)
    _spy_on_shard_writes(args.log_dir, args.throttle)
    config = tiny_config(
        policy=args.policy,
        num_augmentations=args.num_augmentations,
        rows_per_block=args.rows_per_block,
        rows_per_shard=args.rows_per_shard,
    )
    if args.extend_from is not None:
        out = hfr.extend(
            args.extend_from,
            args.num_augmentations,
            args.output_dir,
            teachers=config.teachers,
            split=args.split,
            progress=False,
        )
    else:
        out = hfr.reinforce(mnist_dataset(args.rows), config, args.output_dir, split=args.split, progress=False)
    print(f"done: {len(out)} rows", flush=True)


if __name__ == "__main__":
    main()
