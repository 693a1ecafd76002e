"""Train any timm student on a reinforced dataset with a plain PyTorch loop, beside plain-training baselines.

    python scripts/train_student.py --dataset out/quickstart/mnist-plus --student resnet18 --resolution 32 \
        --eval-dataset out/quickstart/mnist-plus-source --baselines crop rrc+ra+re

``--dataset`` is a reinforced folder or Hub dataset repo. Every epoch, each row replays another of its stored
augmentations and the student distills from the teachers' stored top-k: knowledge distillation without running
a teacher. ``--eval-dataset`` (a plain image dataset, e.g. the source dataset) reports test accuracy at the end.
``--baselines`` also trains the same student, same epochs, optimizer and schedule, with cross-entropy on the
labels and each given policy drawn on the fly (``crop``: the standard small-image recipe, pad 4 px and crop, no
flip, for digits and text; ``crop+flip`` for photos; the reinforcement policy itself): the honest comparison is
against the best of them. Accuracies are seeded (``--seed``), not bit-identical across machines.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import timm
import torch
from datasets import load_dataset
from torch.utils.data import DataLoader

import hf_reinforce as hfr
from hf_reinforce.augment import normalize


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--dataset", required=True, help="reinforced folder or Hub dataset repo")
    p.add_argument("--student", default="resnet18", help="timm architecture (random init)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--resolution", type=int, default=None, help="default: the reinforcement resolution")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument(
        "--ce-weight",
        type=float,
        default=0.0,
        help="weight of hard-label cross-entropy in the loss: 0 (KD alone) for teachers well above "
        "the plain student, about 0.5 when they are only a few points above (docs/how-to/choose-a-policy.md)",
    )
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--eval-dataset", help="plain image dataset (folder or Hub repo) to report accuracy on")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--save", help="write the trained student's weights to this .safetensors file")
    p.add_argument(
        "--baselines",
        nargs="*",
        default=[],
        metavar="POLICY",
        help="also train with CE and each policy on the fly (needs the image and label columns), e.g. crop rrc+ra+re",
    )
    p.add_argument("--seed", type=int, default=0, help="student init, row order and stored-augmentation choice")
    return p.parse_args(argv)


def fit(model, loader, epochs: int, lr: float, step, on_epoch=None) -> None:
    """AdamW + cosine schedule over ``epochs``; ``step(model, batch)`` returns the loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    model.train()
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)  # reinforced: another stored augmentation per row
        for batch in loader:
            loss = step(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")


@dataclass
class PlainTransform:
    """CE baseline rows: the image augmented on the fly by ``augment``, normalized like the reinforced student."""

    augment: object
    mean: tuple
    std: tuple
    image_column: str
    label_column: str

    def __call__(self, batch):
        pixels = [normalize(self.augment(hfr.to_rgb_uint8(im)), self.mean, self.std) for im in batch[self.image_column]]
        return {"pixel_values": pixels, "labels": list(batch[self.label_column])}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    train = hfr.load_reinforced(args.dataset, split="train")  # a reinforced folder or Hub repo
    record = hfr.load_record(args.dataset)  # reinforce_config.json as a RunRecord: policy, N, top-k, classes, teachers

    def student() -> torch.nn.Module:
        torch.manual_seed(args.seed)
        return timm.create_model(args.student, num_classes=record.num_classes).to(device)

    data = timm.data.resolve_model_data_config(student())  # the student's own normalization
    transform = hfr.ReinforcedTransform.from_pretrained(
        args.dataset, resolution=args.resolution, mean=data["mean"], std=data["std"], seed=args.seed
    )

    def loader(dataset, collate=None) -> DataLoader:
        generator = torch.Generator().manual_seed(args.seed)
        return DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.num_workers,
            collate_fn=collate,
            generator=generator,
        )

    # The loop: set the epoch (another stored augmentation per row), distill from the stored top-k.
    def distill(model, batch):
        batch = {k: v.to(device) for k, v in batch.items()}
        return hfr.distillation_loss(
            model(batch["pixel_values"]),
            batch["topk_ids"],
            batch["topk_probs"],
            labels=batch["labels"],
            temperature=args.temperature,
            ce_weight=args.ce_weight,
        )

    model = student()
    reinforced = loader(transform.apply(train), hfr.DistillationCollator(pack=False))
    fit(model, reinforced, args.epochs, args.lr, distill, transform.set_epoch)
    results = [(f"reinforced: KD from the stored top-{record.top_k} ({record.policy_name})", model)]

    for policy in args.baselines:  # the same student, epochs and schedule, CE with the policy on the fly
        augment = hfr.AugmentationPolicy.parse(policy).to_torchvision(transform.resolution, transform.interpolation)
        plain = PlainTransform(augment, data["mean"], data["std"], record.image_column, record.label_column)
        print(f"baseline: CE, {policy} on the fly")
        model = student()
        fit(model, loader(train.with_transform(plain)), args.epochs, args.lr, cross_entropy)
        results.append((f"plain: CE, {policy} on the fly", model))

    if args.eval_dataset:
        test = load_dataset(args.eval_dataset, split=args.eval_split).with_transform(transform.evaluation)
        rows = [(how, evaluate(model, test, device)) for how, model in results]
        print(f"\n| student `{args.student}`, {args.epochs} epochs, seed {args.seed} | test accuracy |\n|---|---|")
        for how, accuracy in rows:
            print(f"| {how} | {100 * accuracy:.1f} % |")
        print(f"test accuracy: {rows[0][1]:.4f}")
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in results[0][1].state_dict().items()}, args.save)
        print(f"saved {args.save}")


def cross_entropy(model, batch):
    device = next(model.parameters()).device
    return torch.nn.functional.cross_entropy(model(batch["pixel_values"].to(device)), batch["labels"].to(device))


@torch.inference_mode()
def evaluate(model, test, device) -> float:
    model.eval()
    correct = 0
    for batch in DataLoader(test, batch_size=256, collate_fn=hfr.DistillationCollator(pack=False)):
        correct += int((model(batch["pixel_values"].to(device)).argmax(1).cpu() == batch["labels"]).sum())
    return correct / len(test)


if __name__ == "__main__":
    main()
