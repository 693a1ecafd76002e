"""Train any timm student on a reinforced dataset with a plain PyTorch loop.

    python scripts/train_student.py --dataset out/quickstart/mnist-plus --student resnet18 --resolution 32

``--dataset`` is a reinforced folder or Hub dataset repo. Every epoch, each row replays another of its stored
augmentations and the student distills from the teachers' stored top-k: knowledge distillation without running
a teacher. ``--eval-dataset`` (a plain image dataset, e.g. the source dataset) reports test accuracy at the end.
"""

from __future__ import annotations

import argparse

import timm
import torch
from datasets import load_dataset
from torch.utils.data import DataLoader

import hf_reinforce as hfr


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
    p.add_argument("--ce-weight", type=float, default=0.0, help="weight of hard-label cross-entropy in the loss")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--eval-dataset", help="plain image dataset (folder or Hub repo) to report accuracy on")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--save", help="write the trained student's weights to this .safetensors file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    train = hfr.load_reinforced(args.dataset, split="train")  # a reinforced folder or Hub repo
    record = hfr.load_config(args.dataset)  # reinforce_config.json as a RunRecord: policy, N, top-k, classes, teachers
    model = timm.create_model(args.student, num_classes=record.num_classes).to(device)
    data = timm.data.resolve_model_data_config(model)  # the student's own normalization
    transform = hfr.ReinforcedTransform.from_pretrained(
        args.dataset, resolution=args.resolution, mean=data["mean"], std=data["std"]
    )
    train.set_transform(transform)
    loader = DataLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
        collate_fn=hfr.DistillationCollator(pack=False),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))

    # The loop: set the epoch (another stored augmentation per row), distill from the stored top-k.
    model.train()
    for epoch in range(args.epochs):
        transform.set_epoch(epoch)
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["pixel_values"])
            loss = hfr.distillation_loss(
                logits,
                batch["topk_ids"],
                batch["topk_probs"],
                labels=batch["labels"],
                temperature=args.temperature,
                ce_weight=args.ce_weight,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}")

    if args.eval_dataset:
        test = load_dataset(args.eval_dataset, split=args.eval_split).with_transform(transform.evaluation)
        model.eval()
        correct = 0
        with torch.inference_mode():
            for batch in DataLoader(test, batch_size=256, collate_fn=hfr.DistillationCollator(pack=False)):
                correct += int((model(batch["pixel_values"].to(device)).argmax(1).cpu() == batch["labels"]).sum())
        print(f"test accuracy: {correct / len(test):.4f}")
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save)
        print(f"saved {args.save}")


if __name__ == "__main__":
    main()
