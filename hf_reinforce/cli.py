"""The ``hf-reinforce`` command line (also ``python -m hf_reinforce``): reinforce, estimate, push, show.

``reinforce`` works under ``accelerate launch -m hf_reinforce reinforce ...`` and ``torchrun -m hf_reinforce
reinforce ...``: shards are spread over the processes and only the main process prints the summary. User errors
(a missing column, a bad policy, a missing dataset) exit with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "hf-reinforce"
USER_ERRORS = (ValueError, FileNotFoundError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


# -- parser ------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with one subcommand per action."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Dataset Reinforcement for HuggingFace datasets: store teacher-ensemble top-k predictions "
        "over replayable augmentations, distill at the cost of plain training.",
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    reinforce = commands.add_parser(
        "reinforce",
        parents=[_pass_arguments()],
        help="reinforce a dataset into a Hub-layout folder (sharded, resumable, accelerate-aware)",
        description="Reinforce a dataset split into OUTPUT_DIR: parquet shards with augmentation parameters and "
        "the teacher ensemble's top-k probabilities, reinforce_config.json and a dataset card. Rerun the same "
        "command to resume an interrupted run.",
    )
    reinforce.add_argument("--output-dir", required=True, help="output folder (Hub layout); required")
    reinforce.add_argument("--overwrite", action="store_true", help="replace an output folder of a different config")
    reinforce.add_argument("--dry-run", action="store_true", help="print the estimate and write nothing")
    reinforce.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    _calibration_arguments(reinforce)
    reinforce.set_defaults(handler=_reinforce)

    estimate = commands.add_parser(
        "estimate",
        parents=[_pass_arguments()],
        help="estimate the time, output size and memory of a reinforce run from a short calibration",
        description="Run the pass over a few rows × a few augmentations on this machine and extrapolate the "
        "number of teacher views, the time on this device (and on P such devices), the output size and memory.",
    )
    _calibration_arguments(estimate)
    estimate.set_defaults(handler=_estimate)

    push = commands.add_parser(
        "push",
        help="upload a reinforced folder to the Hub",
        description="Upload a reinforced output folder (shards, config, card) to a Hub dataset repository.",
    )
    push.add_argument("folder", help="output folder of `hf-reinforce reinforce`")
    push.add_argument("repo_id", help="Hub dataset repository, e.g. user/cifar100-plus")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", help="branch to push to (default: main)")
    push.add_argument("--commit-message", help="commit message")
    push.set_defaults(handler=_push)

    show = commands.add_parser(
        "show",
        help="render stored augmentations of a row with their teacher top-k",
        description="Render stored augmentations of a reinforced row (replayed exactly) "
        "with the teachers' top-k classes, to an image file.",
    )
    show.add_argument("source", help="reinforced output folder or Hub dataset id")
    show.add_argument("--row", type=int, help="row to show")
    show.add_argument("--num", type=int, help="number of augmentations to show")
    show.add_argument("--output", help="image file to write")
    show.add_argument("--split", help="split to read")
    show.set_defaults(handler=_show)
    return parser


def _pass_arguments() -> argparse.ArgumentParser:
    """Arguments shared by ``reinforce`` and ``estimate``: the dataset and the ReinforceConfig fields."""
    p = argparse.ArgumentParser(add_help=False)
    data = p.add_argument_group("dataset")
    data.add_argument(
        "dataset",
        help="Hub dataset id, local dataset folder/files for datasets.load_dataset, "
        "or a folder written by Dataset.save_to_disk",
    )
    data.add_argument("--name", help="dataset configuration name (datasets.load_dataset name=)")
    data.add_argument("--split", default="train", help="split to reinforce (default: train)")
    data.add_argument("--revision", help="dataset revision on the Hub (recorded in the config)")
    data.add_argument("--max-rows", type=int, help="only the first N rows (for trying things out)")
    data.add_argument("--image-column", default="image", help="image column (default: image)")
    labels = data.add_mutually_exclusive_group()
    labels.add_argument("--label-column", default="label", help="label column (default: label)")
    labels.add_argument(
        "--no-label-column",
        dest="label_column",
        action="store_const",
        const=None,
        help="the dataset has no labels (classes come from the teachers)",
    )
    data.add_argument("--key-column", help="column kept as a join key with --reinforcement-only")

    run = p.add_argument_group("reinforcement")
    run.add_argument(
        "--teachers",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="teacher specs: timm:<arch>[@weights], timm/<hub id>[@revision], hf:<repo|folder>[@revision]",
    )
    run.add_argument(
        "--policy",
        default="rrc+ra+re",
        help="preset (rrc, rrc+mix, rrc+ra+re, rrc+mix+ra+re), a JSON policy, or a .json file (default: rrc+ra+re)",
    )
    run.add_argument("--num-augmentations", type=int, default=400, help="augmentations per row, N (default: 400)")
    run.add_argument("--top-k", type=int, default=10, help="classes stored per augmentation, K (default: 10)")
    run.add_argument("--seed", type=int, default=0, help="augmentation seed (default: 0)")
    run.add_argument(
        "--resolution",
        type=int,
        default=224,
        help="teacher resolution where a teacher's config has none (default: 224)",
    )
    run.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the teachers")
    run.add_argument("--num-classes", type=int, help="number of classes (default: from a ClassLabel label column)")
    run.add_argument("--trust-remote-code", action="store_true", help="allow custom code of hf: teachers")

    pace = p.add_argument_group("execution")
    pace.add_argument("--rows-per-shard", type=int, default=2048, help="rows per parquet shard (default: 2048)")
    pace.add_argument("--rows-per-block", type=int, default=16, help="rows rendered together (default: 16)")
    pace.add_argument(
        "--augmentations-per-step",
        type=int,
        default=16,
        help="augmentations per row in one teacher batch (default: 16)",
    )
    pace.add_argument("--teacher-batch-size", type=int, help="micro-batch of one teacher forward")
    pace.add_argument(
        "--num-workers",
        type=int,
        help="CPU processes that decode and render views while the teachers run (0: in the main process; "
        "default: the cores per process less one)",
    )
    pace.add_argument("--skip-bad-images", action="store_true", help="record and skip rows whose image fails to decode")
    pace.add_argument(
        "--reinforcement-only",
        action="store_true",
        help="write only row_index (+ --key-column) and the reinforcement columns, not the images",
    )
    pace.add_argument(
        "--device",
        help="teacher device, e.g. cuda:0 or cpu (default: cuda when available; "
        "each process's own under accelerate/torchrun)",
    )
    return p


def _calibration_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("estimate")
    group.add_argument("--calibration-rows", type=int, help="rows of the calibration run (default: --rows-per-block)")
    group.add_argument(
        "--calibration-augmentations",
        type=int,
        help="augmentations per row of the calibration run (default: --augmentations-per-step)",
    )
    group.add_argument(
        "--num-processes", type=int, help="devices the run will use, for the per-device time (default: WORLD_SIZE or 1)"
    )


# -- handlers ----------------------------------------------------------------------------------------------------


def _reinforce(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _estimate(args)
    from .runner import reinforce

    config = _config(args)  # before loading: a bad argument fails before a long download
    out = reinforce(
        load_source(args),
        config,
        args.output_dir,
        split=_split_name(args.split),
        overwrite=args.overwrite,
        progress=args.progress,
        source_id=args.dataset,
        source_revision=args.revision,
    )
    if _is_main_process():
        _print_summary(Path(args.output_dir), _split_name(args.split), len(out))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    if not _is_main_process():
        return 0  # one calibration is enough; the others would compete for the same machine
    from .estimation import estimate

    config = _config(args)
    result = estimate(
        load_source(args),
        config,
        calibration_rows=args.calibration_rows,
        calibration_augmentations=args.calibration_augmentations,
        num_processes=args.num_processes or int(os.environ.get("WORLD_SIZE", "1")),
    )
    print(result)
    if getattr(args, "dry_run", False):
        print(f"dry run: nothing was written to {args.output_dir}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    if not Path(args.folder).is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder; give the output folder of `{PROG} reinforce`")
    extra = {"commit_message": args.commit_message} if args.commit_message else {}
    result = push_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision, token=None, **extra)
    print(f"pushed {args.folder} to {result if result is not None else args.repo_id}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .visualize import show

    options = {k: getattr(args, k) for k in ("row", "output", "num", "split") if getattr(args, k) is not None}
    result = show(args.source, **options)
    if result is not None:
        print(result)
    return 0


# -- helpers -----------------------------------------------------------------------------------------------------


def load_source(args: argparse.Namespace) -> Any:
    """The split to reinforce: a ``save_to_disk`` folder via ``load_from_disk``, else ``datasets.load_dataset``."""
    import datasets

    path = Path(args.dataset)
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if args.split not in loaded:
                raise ValueError(f"split {args.split!r} is not in {args.dataset}; its splits are {list(loaded)}")
            loaded = loaded[args.split]
    else:
        loaded = datasets.load_dataset(args.dataset, name=args.name, split=args.split, revision=args.revision)
    if args.max_rows is not None:
        if args.max_rows < 1:
            raise ValueError(f"--max-rows: expected a positive integer, got {args.max_rows}")
        loaded = loaded.select(range(min(args.max_rows, len(loaded))))
    return loaded


def _config(args: argparse.Namespace) -> Any:
    from .config import ReinforceConfig

    return ReinforceConfig(
        teachers=args.teachers,
        policy=_policy(args.policy),
        num_augmentations=args.num_augmentations,
        top_k=args.top_k,
        seed=args.seed,
        resolution=args.resolution,
        image_column=args.image_column,
        label_column=args.label_column,
        temperature=args.temperature,
        num_classes=args.num_classes,
        rows_per_block=args.rows_per_block,
        augmentations_per_step=args.augmentations_per_step,
        rows_per_shard=args.rows_per_shard,
        skip_bad_images=args.skip_bad_images,
        reinforcement_only=args.reinforcement_only,
        key_column=args.key_column,
        trust_remote_code=args.trust_remote_code,
        device=args.device,
        teacher_batch_size=args.teacher_batch_size,
        num_workers=args.num_workers,
    )


def _policy(value: str) -> Any:
    """A preset name or JSON string as given, or the JSON object in a ``.json`` file."""
    if value.endswith(".json"):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"--policy: policy file {value} not found")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"--policy: {value} is not valid JSON: {error}") from None
    return value


def _split_name(split: str) -> str:
    """The split name without a slice (``train[:10%]`` → ``train``), for shard file names."""
    return split.split("[", 1)[0]


def _is_main_process() -> bool:
    """True outside distributed launches and on global rank 0 under accelerate/torchrun."""
    return os.environ.get("RANK", "0") == "0"


def _print_summary(output_dir: Path, split: str, rows: int) -> None:
    from .layout import load_config

    stats = load_config(output_dir).split(split)
    print(f"reinforced {rows:,} rows of split {split!r} into {output_dir}")
    if stats is not None and stats.num_shards is not None:
        print(
            f"  {stats.num_shards} shard(s), {stats.num_bytes:,} bytes, "
            f"{stats.bytes_per_augmentation} B per stored augmentation"
        )
        if stats.skipped_rows:
            print(
                f"  skipped {len(stats.skipped_rows)} row(s) whose image failed to decode: {list(stats.skipped_rows[:20])}"
            )


__all__ = ["build_parser", "load_source", "main"]
