"""The reinforced dataset card: ``DatasetCard.from_template`` over ``dataset_cards/reinforced_dataset_card.md``.

The card's YAML carries the full config under ``hf_reinforce`` plus the standard Hub fields (license, task,
tags, ``configs`` with one data-file pattern per split); the body explains every column.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from .augment import RAND_AUGMENT_OPS
from .format import TOPK_IDS, TOPK_PROBS
from .layout import CARD_FILE

TEMPLATE = "reinforced_dataset_card.md"
TAGS = ["dataset-reinforcement", "knowledge-distillation", "hf-reinforce"]

_MEANINGS = {
    "aug_rrc": "RandomResizedCrop box `(top, left, height, width)` per augmentation, 1/65535 units of the image",
    "aug_flip": "horizontal flip applied, per augmentation",
    "aug_ra_op": "RandAugment op ids (index into torchvision's op list), per augmentation",
    "aug_ra_mag": "RandAugment signed magnitude bins, per augmentation",
    "aug_re": "RandomErasing box, 1/65535 units of the output; all zeros = not erased",
    "aug_mix_partner": "`row_index` of the MixUp/CutMix partner row (its augmentation with the same index is mixed in); -1 = not mixed",
    "aug_mix_lam": "MixUp weight of this row's image, 1/65535 units (65535 = no blending)",
    "aug_mix_box": "CutMix box pasted from the partner, 1/65535 units of the output; all zeros = none",
    TOPK_IDS: "class ids of the ensemble's top-k, per augmentation, most probable first",
    TOPK_PROBS: "the ensemble's top-k probabilities (float16), sorted descending, per augmentation",
}


def _template_path() -> str:
    return str(resources.files("hf_reinforce.dataset_cards") / TEMPLATE)


def _column_rows(config: dict[str, Any]) -> list[dict[str, str]]:
    from .augment import AugmentationPolicy

    policy = AugmentationPolicy.from_dict(config["policy"])
    n, k = config["num_augmentations"], config["top_k"]
    id_type = "int16" if config["num_classes"] <= 32767 else "int32"
    rows = [
        {"name": name, "type": f"{dtype}[{n}{''.join(f'×{s}' for s in shape)}]", "meaning": _MEANINGS[name]}
        for name, (dtype, shape) in policy.columns.items()
    ]
    rows.append({"name": TOPK_IDS, "type": f"{id_type}[{n}×{k}]", "meaning": _MEANINGS[TOPK_IDS]})
    rows.append({"name": TOPK_PROBS, "type": f"float16[{n}×{k}]", "meaning": _MEANINGS[TOPK_PROBS]})
    return rows


def _policy_name(policy: dict[str, Any]) -> str:
    names = [op["op"] for op in policy["ops"] if op["op"] != "flip"]
    return "+".join(names) or "none"


def build_card(
    config: dict[str, Any], *, repo_id: str | None = None, license: str | None = None, pretty_name: str | None = None
) -> DatasetCard:
    """Render the card of a reinforced dataset from its full config (``reinforce_config.json``)."""
    splits = config.get("splits", {})
    source = next(iter(splits.values()), {})
    source_id = source.get("id")
    card_data = DatasetCardData(
        license=license or config.get("license"),
        task_categories=["image-classification"],
        tags=TAGS,
        pretty_name=pretty_name or (f"{source_id} (reinforced)" if source_id else "Reinforced dataset"),
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}],
        hf_reinforce=config,
    )
    accuracies = config.get("accuracy") or {}
    teachers = [dict(t, accuracy=accuracies.get("teachers", {}).get(t["name"], "")) for t in config["teachers"]]
    return DatasetCard.from_template(
        card_data,
        template_path=_template_path(),
        repo_id=repo_id or "<user>/<repo>",
        source_id=source_id,
        teachers=teachers,
        has_accuracy=bool(accuracies),
        ensemble_accuracy=accuracies.get("ensemble"),
        num_augmentations=config["num_augmentations"],
        top_k=config["top_k"],
        policy_name=_policy_name(config["policy"]),
        columns=_column_rows(config),
        ra_ops=", ".join(RAND_AUGMENT_OPS),
        splits=splits,
        schema_version=config["schema_version"],
        reinforcement_only=config.get("reinforcement_only", False),
        key_column=config.get("key_column"),
    )


def write_card(output_dir: Path, config: dict[str, Any], **kwargs: Any) -> None:
    """Write ``README.md`` (the card) into a reinforced output folder."""
    build_card(config, **kwargs).save(str(Path(output_dir) / CARD_FILE))
