"""The ``hf-reinforce`` command line (also ``python -m hf_reinforce``): reinforce, estimate, extend, push, show,
verify.

``reinforce`` works under ``accelerate launch -m hf_reinforce reinforce ...`` and ``torchrun -m hf_reinforce
reinforce ...``: shards are spread over the processes and only the main process prints the summary.

The ``reinforce``/``estimate`` options are built from ``ReinforceConfig``'s fields and their metadata (help, group,
``cli`` overrides), so a new config field is on the command line with no edit here. The parser imports neither
torch, torchvision nor datasets (``config`` imports them only when a config is built), so ``--help`` and argument
errors answer at once; a command imports what it needs when it runs.

Expected failures exit with status 2 and a one-line message: a :class:`~hf_reinforce.errors.ReinforceError` (a
missing column, a bad policy, a damaged record, the Hub unreachable or offline), or an ``OSError`` (a missing file
or dataset, no space left, a read-only folder, a refused connection). Any other exception is a bug and shows its
traceback; ``--debug`` shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_options import add_config_arguments, config_from_args
from .config import GROUPS
from .errors import ConfigError, HubError, NotFoundError, ReinforceError
from .validation import check_int, check_split_name

PROG = "hf-reinforce"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status: 0, 2 for a user
    error (one line on stderr; the traceback with ``--debug``), 130 when interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        if args.debug or not is_user_error(error):
            raise
        print(f"{PROG} {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is an expected failure, reported as one line with exit status 2: a
    :class:`~hf_reinforce.errors.ReinforceError`, an ``OSError`` (files, disk, network) or a request that reached
    no server. Anything else is a bug and keeps its traceback."""
    if isinstance(error, (ReinforceError, OSError)):
        return True
    if "huggingface_hub" not in sys.modules:  # no request was made
        return False
    from .storage.remote import transport_errors

    return isinstance(error, transport_errors())


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
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of every error, user errors included"
    )
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
    estimate.add_argument(
        "--extend-to",
        type=int,
        metavar="N2",
        help="estimate growing the dataset these options write (N=--num-augmentations) to N2 augmentations with "
        "`extend`: only the new views are computed",
    )
    estimate.set_defaults(handler=_estimate)

    extend = commands.add_parser(
        "extend",
        help="grow a reinforced folder or Hub repo to more augmentations per row, computing only the new ones",
        description="Grow a reinforced dataset to N augmentations per row into OUTPUT_DIR: the same policy, seed and "
        "teachers (checked against its record, weights included), only the new augmentations computed; the output "
        "is identical to a reinforce run with N. Rerun the same command to resume.",
    )
    extend.add_argument("reinforced", help="reinforced output folder or Hub dataset repo to grow (only read)")
    extend.add_argument("--num-augmentations", type=int, required=True, metavar="N", help="augmentations per row")
    extend.add_argument("--output-dir", required=True, help="folder for the grown dataset (not the one it grows)")
    extend.add_argument(
        "--teachers", nargs="+", required=True, metavar="SPEC", help="the teacher specs the dataset was made with"
    )
    extend.add_argument("--split", help="grow only this split (default: every split)")
    extend.add_argument(
        "--source",
        help="the source dataset (as for `reinforce`), needed when the folder stores no images (reinforcement-only)",
    )
    extend.add_argument("--source-name", help="configuration name of --source (datasets.load_dataset name=)")
    extend.add_argument("--revision", help="revision of the reinforced Hub repo")
    extend.add_argument("--push-to-hub", metavar="REPO", help="then push the grown folder to this Hub repo")
    execution = extend.add_argument_group("execution")
    execution.add_argument("--device", help="teacher device (default: cuda when available)")
    execution.add_argument("--num-workers", type=int, help="CPU render workers (default: the cores less one)")
    execution.add_argument("--teacher-batch-size", type=int, help="micro-batch of one teacher forward")
    execution.add_argument("--trust-remote-code", action="store_true", help="allow custom code of hf: teachers")
    extend.add_argument("--overwrite", action="store_true", help="replace an output folder of a different config")
    extend.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    extend.set_defaults(handler=_extend)

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
    show.add_argument(
        "--lowest-agreement",
        type=int,
        metavar="K",
        help="instead of one row, draw the K stored views of the split whose stored ensemble probability of the "
        "true label is lowest (what a destructive policy does to the images)",
    )
    show.set_defaults(handler=_show)

    verify = commands.add_parser(
        "verify",
        help="check that this machine replays a reinforced dataset's stored augmentations exactly",
        description="Replay sampled rows of a reinforced folder or Hub repo on this machine and compare each with the "
        "fingerprint stored with it; with --reference, also compare the views pixel by pixel with views saved by "
        "--save on another machine. Exit status 0 when everything replays exactly, 1 when something differs.",
    )
    verify.add_argument("source", help="reinforced output folder or Hub dataset id")
    verify.add_argument("--split", default="train", help="split to check (default: train)")
    verify.add_argument("--rows", type=int, default=64, help="rows to sample (default: 64)")
    verify.add_argument("--seed", type=int, default=0, help="seed of the row sample (default: 0)")
    verify.add_argument("--revision", help="revision of a Hub repo")
    verify.add_argument("--save", metavar="FILE.npz", help="also save the replayed views, to compare elsewhere")
    verify.add_argument("--reference", metavar="FILE.npz", help="compare with views saved by --save on another machine")
    verify.set_defaults(handler=_verify)
    return parser


def _pass_arguments() -> argparse.ArgumentParser:
    """Arguments shared by ``reinforce`` and ``estimate``: the dataset to load, then one per ReinforceConfig field."""
    p = argparse.ArgumentParser(add_help=False)
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    data = groups["dataset"]
    data.add_argument(
        "dataset",
        help="Hub dataset id, local dataset folder/files for datasets.load_dataset, "
        "or a folder written by Dataset.save_to_disk",
    )
    data.add_argument("--name", help="dataset configuration name (datasets.load_dataset name=)")
    data.add_argument("--split", default="train", help="split to reinforce (default: train)")
    data.add_argument("--revision", help="dataset revision on the Hub (recorded in the config)")
    data.add_argument("--max-rows", type=int, help="only the first N rows (for trying things out)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    add_config_arguments(p, groups=groups)
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
    from .distributed import is_main_process
    from .engine.run import reinforce

    config = config_from_args(args)  # before loading: a bad argument fails before a long download
    split = _split_name(args.split)
    out = reinforce(
        load_source(args),
        config,
        args.output_dir,
        split=split,
        overwrite=args.overwrite,
        progress=args.progress,
        source_id=args.dataset,
        source_revision=args.revision,
    )
    if is_main_process():
        _print_summary(Path(args.output_dir), split, len(out))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from .distributed import is_main_process

    if not is_main_process():
        return 0  # one calibration is enough; the others would compete for the same machine
    from .engine.estimation import estimate

    config = config_from_args(args)
    result = estimate(
        load_source(args),
        config,
        calibration_rows=args.calibration_rows,
        calibration_augmentations=args.calibration_augmentations,
        num_processes=args.num_processes or int(os.environ.get("WORLD_SIZE", "1")),
        extend_to=getattr(args, "extend_to", None),
    )
    print(result)
    if getattr(args, "dry_run", False):
        print(f"dry run: nothing was written to {args.output_dir}")
    return 0


def _extend(args: argparse.Namespace) -> int:
    import datasets

    from .distributed import is_main_process
    from .engine.extension import extend
    from .storage.reader import load_record

    source = None
    if args.source is not None:
        splits = [args.split] if args.split else list(load_record(args.reinforced, revision=args.revision).splits or {})
        source = datasets.DatasetDict(
            {
                s: load_source(
                    argparse.Namespace(
                        dataset=args.source, name=args.source_name, split=s, revision=None, max_rows=None
                    )
                )
                for s in splits
            }
        )
    out = extend(
        args.reinforced,
        args.num_augmentations,
        args.output_dir,
        teachers=args.teachers,
        source=source,
        split=args.split,
        revision=args.revision,
        device=args.device,
        num_workers=args.num_workers,
        teacher_batch_size=args.teacher_batch_size,
        trust_remote_code=args.trust_remote_code,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    if not is_main_process():
        return 0
    grown = {args.split: out} if args.split else dict(out)
    for name, ds in grown.items():
        _print_summary(Path(args.output_dir), name, len(ds))
    if args.push_to_hub:
        from .hub.push import push_to_hub

        print(f"pushed {args.output_dir} to {push_to_hub(args.output_dir, args.push_to_hub)}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub.push import push_to_hub

    if not Path(args.folder).is_dir():
        raise NotFoundError(f"{args.folder} is not a folder; give the output folder of `{PROG} reinforce`")
    extra = {"commit_message": args.commit_message} if args.commit_message else {}
    result = push_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision, token=None, **extra)
    print(f"pushed {args.folder} to {result if result is not None else args.repo_id}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .diagnostics.show import show

    names = ("row", "output", "num", "split", "lowest_agreement")
    options = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    result = show(args.source, **options)
    if result is not None:
        print(result)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .diagnostics.verify import verify_replay

    check = verify_replay(
        args.source,
        rows=args.rows,
        split=args.split,
        revision=args.revision,
        seed=args.seed,
        save=args.save,
        reference=args.reference,
    )
    print(check)
    return 0 if check.ok else 1


# -- helpers -----------------------------------------------------------------------------------------------------


def load_source(args: argparse.Namespace) -> Any:
    """The split to reinforce: a ``save_to_disk`` folder via ``load_from_disk``, else ``datasets.load_dataset``."""
    import datasets

    from .progress import quiet_datasets
    from .storage.paths import local_folder

    path = local_folder(args.dataset, bare_names=False)  # a missing local folder: "no such folder", not the Hub
    with contextlib.nullcontext() if getattr(args, "progress", True) else quiet_datasets():
        if path is not None and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            loaded = datasets.load_from_disk(str(path))
        else:
            try:
                loaded = datasets.load_dataset(args.dataset, name=args.name, split=args.split, revision=args.revision)
            except ConnectionError as error:
                raise HubError(f"cannot load dataset {args.dataset!r}: {error}; check the network or the id") from error
    if isinstance(loaded, datasets.DatasetDict):
        if args.split not in loaded:
            raise ConfigError(f"--split: {args.split!r} is not in {args.dataset}; its splits are {list(loaded)}")
        loaded = loaded[args.split]
    if args.max_rows is not None:
        check_int(args.max_rows, "--max-rows", minimum=1)
        loaded = loaded.select(range(min(args.max_rows, len(loaded))))
    return loaded


def _one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined with spaces)."""
    return " ".join(str(error).split()) or type(error).__name__


def _split_name(split: str) -> str:
    """The split name without a slice (``train[:10%]`` → ``train``), for shard file names, checked."""
    return check_split_name(split.split("[", 1)[0], "--split")


def _print_summary(output_dir: Path, split: str, rows: int) -> None:
    from .storage.reader import load_record
    from .storage.shards import BYTES_PER_AUGMENTATION

    stats = load_record(output_dir).split(split)
    print(f"reinforced {rows:,} rows of split {split!r} into {output_dir}")
    if stats is not None and stats.num_shards is not None:
        per_row = f" ({(stats.num_bytes or 0) / stats.num_rows_written:,.0f} per row)" if stats.num_rows_written else ""
        print(f"  {stats.num_shards} shard(s), {stats.num_bytes:,} bytes in all{per_row}")
        print(
            f"  {BYTES_PER_AUGMENTATION}: {stats.bytes_per_augmentation} B (images and other source columns excluded)"
        )
        if stats.skipped_rows:
            print(
                f"  skipped {len(stats.skipped_rows)} row(s) whose image failed to decode: {list(stats.skipped_rows[:20])}"
            )
    if stats is not None and stats.report is not None:
        print("reinforcement report (the teacher ensemble on the stored views and on the un-augmented images):")
        print("\n".join(stats.report.lines()))


__all__ = ["build_parser", "load_source", "main"]
