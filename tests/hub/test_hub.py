"""Hub round trips against the local Hub-protocol server: push → load_dataset → from_pretrained → a training step."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from huggingface_hub import DatasetCard
from huggingface_hub.errors import HfHubHTTPError

import hf_reinforce as hfr
from hf_reinforce.testing import mnist_dataset

N, K = 4, 3


@pytest.fixture(scope="module")
def source() -> datasets.DatasetDict:
    ds = mnist_dataset(40, seed=1, key_column="id")
    return ds.train_test_split(test_size=8, seed=0)


def _config(**kwargs) -> hfr.ReinforceConfig:
    base = dict(
        teachers=["timm:test_resnet"],
        policy="rrc+ra+re",
        num_augmentations=N,
        top_k=K,
        resolution=32,
        rows_per_block=8,
        augmentations_per_step=4,
        rows_per_shard=16,
    )
    return hfr.ReinforceConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def folder(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("plus")
    hfr.reinforce(source["train"], _config(), out, split="train", progress=False, source_id="local/mnist-5k")
    return out


def test_push_load_from_pretrained_and_train(hub_server, folder, capsys):
    repo_id = hub_server.repo_id("mnist-plus")
    url = hfr.push_to_hub(folder, repo_id)
    assert repo_id in url
    files = hub_server.list_files(repo_id, "dataset")
    assert {"README.md", "reinforce_config.json"} <= set(files)
    assert sum(f.startswith("data/train-") for f in files) == 2 and files["data/train-00000-of-00002.parquet"].lfs

    train = datasets.load_dataset(repo_id, split="train")
    assert train.num_rows == 32 and train.features["topk_probs"].feature.feature.dtype == "float16"
    transform = hfr.ReinforcedTransform.from_pretrained(repo_id, dataset=train)
    assert transform.num_augmentations == N and transform.resolution == 32
    train.set_transform(transform)
    batch = hfr.DistillationCollator(pack=False)([train[i] for i in range(8)])
    import timm

    student = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    loss = hfr.distillation_loss(student(batch["pixel_values"]), batch["topk_ids"], batch["topk_probs"])
    loss.backward()
    assert torch.isfinite(loss)

    card = DatasetCard.load(repo_id, repo_type="dataset")
    assert card.data.hf_reinforce["num_augmentations"] == N
    assert "dataset-reinforcement" in card.data.tags and card.data.task_categories == ["image-classification"]
    assert f'load_dataset("{repo_id}"' in card.text and "Faghri" in card.text
    everything = card.content + json.dumps(hf_reinforce_config(hub_server, repo_id)) + "".join(capsys.readouterr())
    assert hub_server.token not in everything


def hf_reinforce_config(hub_server, repo_id):
    return json.loads(hub_server.read_file(repo_id, "reinforce_config.json", "dataset"))


def test_second_split_keeps_first_and_updates_card(hub_server, folder, source, tmp_path):
    repo_id = hub_server.repo_id("two-splits")
    hfr.push_to_hub(folder, repo_id)
    val = tmp_path / "val"
    hfr.reinforce(source["test"], _config(), val, split="validation", progress=False)
    hfr.push_to_hub(val, repo_id)
    config = hf_reinforce_config(hub_server, repo_id)
    assert set(config["splits"]) == {"train", "validation"}
    assert datasets.load_dataset(repo_id, split="train").num_rows == 32
    assert datasets.load_dataset(repo_id, split="validation").num_rows == 8
    card = DatasetCard.load(repo_id, repo_type="dataset")
    assert {c["split"] for c in card.data.configs[0]["data_files"]} == {"train", "validation"}


def test_interrupted_push_resumes_without_resending(hub_server, source, tmp_path):
    fresh = tmp_path / "fresh"  # content the server has never seen, so uploads really happen
    hfr.reinforce(source["train"], _config(seed=11), fresh, progress=False)
    repo_id = hub_server.repo_id("resume")
    before = hub_server.count("PUT", "/__lfs__/")
    hub_server.fail("POST", r"/commit/", status=500, times=1)
    with pytest.raises(HfHubHTTPError):
        hfr.push_to_hub(fresh, repo_id)
    assert "reinforce_config.json" not in hub_server.list_files(repo_id, "dataset")  # nothing half-published
    uploads = hub_server.count("PUT", "/__lfs__/")
    assert uploads - before == 2  # both shards went up before the commit failed
    hfr.push_to_hub(fresh, repo_id)
    assert hub_server.count("PUT", "/__lfs__/") == uploads  # the rerun re-sends nothing, only redoes the commit
    assert datasets.load_dataset(repo_id, split="train").num_rows == 32


def test_private_repo_and_revision(hub_server, folder):
    repo_id = hub_server.repo_id("private")
    hfr.push_to_hub(folder, repo_id, private=True)
    assert hub_server.api().repo_exists(repo_id, repo_type="dataset")
    assert not hub_server.api(token=False).repo_exists(repo_id, repo_type="dataset")

    branch_repo = hub_server.repo_id("branch")
    hfr.push_to_hub(folder, branch_repo, revision="v2")
    assert "reinforce_config.json" not in hub_server.api().list_repo_files(branch_repo, repo_type="dataset")
    train = datasets.load_dataset(branch_repo, split="train", revision="v2")
    assert train.num_rows == 32
    assert hfr.ReinforcedTransform.from_pretrained(branch_repo, revision="v2").num_augmentations == N


def test_mismatches_are_refused(hub_server, folder, source, tmp_path):
    repo_id = hub_server.repo_id("mismatch")
    hfr.push_to_hub(folder, repo_id)
    other = tmp_path / "other"
    hfr.reinforce(source["test"], _config(seed=3), other, split="validation", progress=False)
    with pytest.raises(ValueError, match="seed"):
        hfr.push_to_hub(other, repo_id)

    newer = hub_server.repo_id("newer")
    hub_server.api().create_repo(newer, repo_type="dataset")
    config = json.loads((folder / "reinforce_config.json").read_text())
    config["schema_version"] = 99
    hub_server.api().upload_file(
        path_or_fileobj=json.dumps(config).encode(),
        path_in_repo="reinforce_config.json",
        repo_id=newer,
        repo_type="dataset",
    )
    with pytest.raises(ValueError, match=f"version 99.*up to version {hfr.SCHEMA_VERSION}"):
        hfr.ReinforcedTransform.from_pretrained(newer)


def test_reinforcement_only_push_and_attach(hub_server, source, tmp_path):
    train = source["train"]
    out = tmp_path / "only"
    hfr.reinforce(train, _config(reinforcement_only=True, key_column="id"), out, progress=False)
    repo_id = hub_server.repo_id("only")
    hfr.push_to_hub(out, repo_id)
    reinforcement = datasets.load_dataset(repo_id, split="train")
    assert set(reinforcement.column_names) == {
        "id",
        "row_index",
        "aug_rrc",
        "aug_flip",
        "aug_ra_op",
        "aug_ra_mag",
        "aug_re",
        "topk_ids",
        "topk_probs",
        "replay_fingerprint",
    }

    joined = hfr.attach(reinforcement, train, record=repo_id)
    assert joined.num_rows == 32 and "image" in joined.column_names and joined[5]["id"] == train[5]["id"]
    transform = hfr.ReinforcedTransform.from_pretrained(repo_id)
    assert transform.replay(joined[5], 1).shape == (3, 32, 32)

    with pytest.raises(ValueError, match="rows"):
        hfr.attach(reinforcement, train.select(range(30)), record=repo_id)
    with pytest.raises(ValueError, match=r"its labels \(column 'label'\) differ"):
        hfr.attach(reinforcement, train.map(lambda r: {"label": 0}), record=repo_id)
    with pytest.raises(ValueError, match="fingerprint"):
        hfr.attach(reinforcement, train.map(lambda r: {"id": r["id"]}), record=repo_id)


def test_push_in_memory_dataset(hub_server, source):
    plus = hfr.reinforce(source["train"], _config(), progress=False)
    repo_id = hub_server.repo_id("in-memory")
    hfr.push_to_hub(plus, repo_id)
    loaded = datasets.load_dataset(repo_id, split="train")
    assert loaded.num_rows == 32 and list(loaded["topk_ids"][:2]) == list(plus["topk_ids"][:2])
