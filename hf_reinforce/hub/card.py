"""The reinforced dataset card: ``DatasetCard.from_template`` over the packaged ``templates/reinforced_dataset_card.md``.

The template is read through ``importlib.resources``, so a source checkout works without installing (the top-level
``dataset_cards/`` folder holds a symlink to the same file). The card's YAML carries the run record under
``hf_reinforce`` (without the per-shard lists, which only ``reinforce_config.json`` holds) plus the standard Hub
fields (license, task, tags, ``configs`` with one data-file pattern per split); the body explains every column.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from ..augment import RAND_AUGMENT_OPS
from ..storage.files import write_json_atomic, write_text_atomic
from ..storage.format import FINGERPRINT, FINGERPRINT_SINCE, TOPK_IDS, TOPK_PROBS
from ..storage.locks import folder_lock
from ..storage.paths import CARD_FILE, CONFIG_FILE
from ..storage.record import RunRecord
from ..storage.shards import BYTES_PER_AUGMENTATION

TEMPLATE_DIR = "templates"
TEMPLATE = "reinforced_dataset_card.md"
TAGS = ["dataset-reinforcement", "knowledge-distillation", "hf-reinforce"]

_MEANINGS = {
    "aug_rrc": "RandomResizedCrop box `(top, left, height, width)` per augmentation, 1/65535 units of the image",
    "aug_crop": "padded-crop window position `(top, left)` per augmentation, 1/65535 of the range of offsets",
    "aug_flip": "horizontal flip applied, per augmentation",
    "aug_ra_op": "RandAugment op ids (index into torchvision's op list), per augmentation",
    "aug_ra_mag": "RandAugment signed magnitude bins, per augmentation",
    "aug_re": "RandomErasing box, 1/65535 units of the output; all zeros = not erased",
    "aug_mix_partner": "`row_index` of the MixUp/CutMix partner row (its augmentation with the same index is mixed in); -1 = not mixed",
    "aug_mix_lam": "MixUp weight of this row's image, 1/65535 units (65535 = no blending)",
    "aug_mix_box": "CutMix box pasted from the partner, 1/65535 units of the output; all zeros = none",
    TOPK_IDS: "class ids of the ensemble's top-k, per augmentation, most probable first",
    TOPK_PROBS: "the ensemble's top-k probabilities (float16), sorted descending, per augmentation",
    FINGERPRINT: "hash of the pixels of augmentation 0 as the teachers saw it: `hf-reinforce verify` replays and "
    "compares it to check exact replay on your machine",
}


def _column_rows(record: RunRecord) -> list[dict[str, str]]:
    n, k = record.num_augmentations, record.top_k
    rows = [
        {"name": name, "type": f"{dtype}[{n}{''.join(f'×{s}' for s in shape)}]", "meaning": _MEANINGS[name]}
        for name, (dtype, shape) in record.policy.columns.items()
    ]
    rows.append({"name": TOPK_IDS, "type": f"{record.topk_id_dtype}[{n}×{k}]", "meaning": _MEANINGS[TOPK_IDS]})
    rows.append({"name": TOPK_PROBS, "type": f"float16[{n}×{k}]", "meaning": _MEANINGS[TOPK_PROBS]})
    if record.schema_version >= FINGERPRINT_SINCE:
        rows.append({"name": FINGERPRINT, "type": "int64", "meaning": _MEANINGS[FINGERPRINT]})
    return rows


def _reports(record: RunRecord) -> dict[str, dict[str, dict[str, str]]]:
    """Each split's reinforcement report with its figures formatted for the card (percent, 3 decimals)."""
    out = {}
    for name, split in (record.splits or {}).items():
        if split.report is None:
            continue
        cells = {}
        for side in ("views", "originals"):
            f = getattr(split.report, side)
            agreement = "n/a" if f.agreement is None else f"{100 * f.agreement:.1f} %"
            cells[side] = {
                "agreement": agreement,
                "top1_probability": f"{f.top1_probability:.3f}",
                "entropy": f"{f.entropy:.3f}",
            }
        out[name] = cells
    return out


def build_card(
    record: RunRecord, *, repo_id: str | None = None, license: str | None = None, pretty_name: str | None = None
) -> DatasetCard:
    """Render the card of a reinforced dataset from its run record (``reinforce_config.json``)."""
    data = record.to_dict()
    splits = data.get("splits") or {}
    for stats in splits.values():  # the per-shard hashes live in reinforce_config.json only: the card stays small
        stats.pop("shards", None)
    source = record.split()
    source_id = source.id if source is not None else None
    card_data = DatasetCardData(
        license=license or record.license,
        task_categories=["image-classification"],
        tags=TAGS,
        pretty_name=pretty_name or (f"{source_id} (reinforced)" if source_id else "Reinforced dataset"),
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}],
        hf_reinforce=data,
    )
    accuracies = record.accuracy or {}
    teachers = [dict(t, accuracy=accuracies.get("teachers", {}).get(t["name"], "")) for t in data["teachers"]]
    with resources.as_file(resources.files(__package__) / TEMPLATE_DIR / TEMPLATE) as template:
        return DatasetCard.from_template(
            card_data,
            template_path=str(template),
            repo_id=repo_id or "<user>/<repo>",
            source_id=source_id,
            teachers=teachers,
            has_accuracy=bool(accuracies),
            ensemble_accuracy=accuracies.get("ensemble"),
            accuracy_split=accuracies.get("split", "validation"),
            num_augmentations=record.num_augmentations,
            top_k=record.top_k,
            policy_name=record.policy_name,
            columns=_column_rows(record),
            ra_ops=", ".join(RAND_AUGMENT_OPS),
            splits=splits,
            bytes_per_augmentation_label=BYTES_PER_AUGMENTATION,
            reports=_reports(record),
            schema_version=record.schema_version,
            reinforcement_only=record.reinforcement_only,
            key_column=record.key_column,
        )


def write_record(output_dir: Path, record: RunRecord) -> None:
    """Write a folder's run record (``reinforce_config.json``) and its card (``README.md``, rendered from the record),
    each atomically, under the folder lock: the one writer of both, so they never disagree."""
    output_dir = Path(output_dir)
    with folder_lock(output_dir):
        write_json_atomic(record.to_dict(), output_dir / CONFIG_FILE)
        write_text_atomic(str(build_card(record)), output_dir / CARD_FILE)
