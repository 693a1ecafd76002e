"""The local Hub server works with the real, unmodified clients: huggingface_hub, datasets, timm, transformers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, HfApi, HfFileSystem, get_session, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

pytest_plugins = ["conftest_hub"]
# huggingface_hub's LFS upload passes a file object as `data=`, which httpx2 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

README = """---
license: mit
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
# A tiny dataset
"""


@pytest.fixture
def hub(hub_server):
    """The session Hub; fails the test if a client called a route the server lacks or a non-loopback host."""
    unhandled, blocked = len(hub_server.unhandled), len(hub_server.blocked)
    yield hub_server
    assert hub_server.unhandled[unhandled:] == []
    assert hub_server.blocked[blocked:] == []


@pytest.fixture
def dataset_folder(tmp_path: Path) -> Path:
    """A Hub-layout dataset folder: two train shards, one test shard, a card and a json."""
    folder = tmp_path / "folder"
    (folder / "data").mkdir(parents=True)
    shards = {
        "train-00000-of-00002": range(5),
        "train-00001-of-00002": range(5, 9),
        "test-00000-of-00001": range(100, 103),
    }
    for name, rows in shards.items():
        table = pa.table({"x": list(rows), "name": [f"row{i}" for i in rows]})
        pq.write_table(table, folder / "data" / f"{name}.parquet")
    (folder / "README.md").write_text(README)
    (folder / "meta.json").write_text(json.dumps({"version": 1}))
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_create_repo_public_private_and_auth(hub):
    api, anon, other = HfApi(), hub.api(token=False), hub.api(token=hub.other_token)
    public, private = hub.repo_id("public"), hub.repo_id("private")
    assert api.create_repo(public, repo_type="dataset").repo_id == public
    api.create_repo(private, repo_type="dataset", private=True)

    assert anon.dataset_info(public).private is False
    assert api.dataset_info(private).private is True
    assert api.list_repo_files(private, repo_type="dataset") == [".gitattributes"]  # the Hub's initial commit
    for client in (anon, other):
        with pytest.raises(RepositoryNotFoundError):
            client.dataset_info(private)
        with pytest.raises(RepositoryNotFoundError):
            client.hf_hub_download(private, ".gitattributes", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as err:
        other.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=public, repo_type="dataset")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        hub.api(token="hf_not_a_token").whoami()
    assert err.value.response.status_code == 401
    assert api.whoami()["name"] == hub.user

    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(public, repo_type="dataset")
    assert err.value.response.status_code == 409
    assert api.create_repo(public, repo_type="dataset", exist_ok=True).repo_id == public
    assert api.repo_exists(public, repo_type="dataset") and not api.repo_exists(public)  # model != dataset


def test_upload_folder_commits_listing_and_downloads(hub, dataset_folder, tmp_path):
    api, repo_id = HfApi(), hub.repo_id("folder")
    api.create_repo(repo_id, repo_type="dataset")
    first = api.upload_folder(folder_path=dataset_folder, repo_id=repo_id, repo_type="dataset")
    local = folder_files(dataset_folder)

    stored = hub.list_files(repo_id, "dataset")
    assert stored["data/train-00000-of-00002.parquet"].lfs and not stored["README.md"].lfs
    assert sorted(api.list_repo_files(repo_id, repo_type="dataset")) == sorted([".gitattributes", *local])
    info = api.dataset_info(repo_id, files_metadata=True)
    assert info.sha == first.oid and info.card_data["license"] == "mit"
    lfs = {s.rfilename: s.lfs for s in info.siblings if s.lfs}
    test_shard = "data/test-00000-of-00001.parquet"
    assert lfs[test_shard].sha256 == hashlib.sha256(local[test_shard]).hexdigest()

    # A second commit, then an unchanged re-upload that the client turns into a no-op.
    second = api.upload_file(
        path_or_fileobj=b'{"version": 2}', path_in_repo="meta.json", repo_id=repo_id, repo_type="dataset"
    )
    again = api.upload_folder(folder_path=dataset_folder, repo_id=repo_id, repo_type="dataset", allow_patterns="data/*")
    assert again.oid == second.oid
    commits = api.list_repo_commits(repo_id, repo_type="dataset")
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid] and len(commits) == 3

    path = hf_hub_download(repo_id, "meta.json", repo_type="dataset")
    assert json.loads(Path(path).read_text()) == {"version": 2}
    old = hf_hub_download(repo_id, "meta.json", repo_type="dataset", revision=first.oid)
    assert json.loads(Path(old).read_text()) == {"version": 1}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", repo_type="dataset")
    snapshot = snapshot_download(repo_id, repo_type="dataset", revision=first.oid, local_dir=tmp_path / "snap")
    assert {k: v for k, v in folder_files(Path(snapshot)).items() if not k.startswith(".")} == local

    # Range reads (HfFileSystem seeks), paths-info and paginated tree listing.
    shard = "data/train-00000-of-00002.parquet"
    with HfFileSystem().open(f"datasets/{repo_id}/{shard}", "rb", block_size=64) as f:
        f.seek(100)
        assert f.read(50) == local[shard][100:150]
    assert any(m == "GET" and s == 206 for m, _, s in hub.requests)
    infos = api.get_paths_info(repo_id, ["README.md", "data", "nope"], repo_type="dataset")
    assert [(type(i).__name__, i.path) for i in infos] == [("RepoFile", "README.md"), ("RepoFolder", "data")]
    hub.state.page_size = 2
    try:
        tree = list(api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, expand=True))
    finally:
        hub.state.page_size = 1000
    assert len(tree) == len(local) + 2 and all(t.last_commit is not None for t in tree)  # + .gitattributes, data/


def test_load_dataset_from_uploaded_folder(hub, dataset_folder):
    from datasets import load_dataset

    repo_id = hub.repo_id("load")
    HfApi().create_repo(repo_id, repo_type="dataset")
    HfApi().upload_folder(folder_path=dataset_folder, repo_id=repo_id, repo_type="dataset")
    ds = load_dataset(repo_id)
    assert ds["train"]["x"] == list(range(9)) and ds["test"]["name"] == ["row100", "row101", "row102"]
    assert load_dataset(repo_id, split="test")["x"] == [100, 101, 102]


def test_branch_tag_and_pull_request(hub, dataset_folder):
    from datasets import load_dataset

    api, repo_id = HfApi(), hub.repo_id("branches")
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(folder_path=dataset_folder, repo_id=repo_id, repo_type="dataset")
    api.create_branch(repo_id, branch="dev", repo_type="dataset")
    api.create_branch(repo_id, branch="dev", repo_type="dataset", exist_ok=True)
    table = pa.table({"x": [7], "name": ["dev"]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    api.upload_file(
        path_or_fileobj=sink.getvalue().to_pybytes(),
        path_in_repo="data/test-00000-of-00001.parquet",
        repo_id=repo_id,
        repo_type="dataset",
        revision="dev",
    )
    api.upload_file(
        path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=repo_id, repo_type="dataset", revision="dev"
    )

    assert Path(hf_hub_download(repo_id, "dev.txt", repo_type="dataset", revision="dev")).read_bytes() == b"dev only"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "dev.txt", repo_type="dataset")
    assert load_dataset(repo_id, split="test", revision="dev")["name"] == ["dev"]
    assert load_dataset(repo_id, split="test")["x"] == [100, 101, 102]

    api.create_tag(repo_id, tag="v1", revision="dev", repo_type="dataset")
    assert Path(hf_hub_download(repo_id, "dev.txt", repo_type="dataset", revision="v1")).read_bytes() == b"dev only"
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]

    pr = api.upload_file(
        path_or_fileobj=b"pr", path_in_repo="pr.txt", repo_id=repo_id, repo_type="dataset", create_pr=True
    )
    assert pr.pr_revision == "refs/pr/1"
    assert Path(hf_hub_download(repo_id, "pr.txt", repo_type="dataset", revision=pr.pr_revision)).read_bytes() == b"pr"
    assert "pr.txt" not in api.list_repo_files(repo_id, repo_type="dataset")


def test_interrupted_upload_resumes_without_reuploading(hub, tmp_path):
    """Upload interrupted twice (LFS PUTs refused, then the commit fails): each rerun sends only what is missing."""
    api, repo_id = HfApi(), hub.repo_id("resume")
    api.create_repo(repo_id, repo_type="dataset")
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(6):
        (folder / f"shard-{i}.bin").write_bytes(hashlib.sha256(str(i).encode()).digest() * 300)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")

    def puts() -> int:  # successful LFS uploads since the test started
        return sum(1 for m, p, s in hub.requests[before:] if m == "PUT" and s == 200 and "/__lfs__/" in p)

    before = len(hub.requests)

    hub.fail("PUT", r"^/__lfs__/", status=403, times=2)
    with pytest.raises(RuntimeError, match="Error while uploading"):
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes"]
    uploaded = puts()
    assert uploaded <= 4

    hub.fail("POST", r"/commit/main$", status=500)
    with pytest.raises(HfHubHTTPError):
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    assert puts() == 6  # the first run's objects were not sent again

    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    assert puts() == 6
    assert hub.read_file(repo_id, "shard-5.bin", "dataset") == (folder / "shard-5.bin").read_bytes()


def test_dataset_push_to_hub_and_load(hub):
    from datasets import ClassLabel, Dataset, Features, Image, Value, load_dataset
    from PIL import Image as PILImage

    features = Features({"image": Image(), "label": ClassLabel(names=["cat", "dog"]), "score": Value("float32")})
    images = [PILImage.new("RGB", (5 + i, 3), color=(10 * i, 0, 0)) for i in range(4)]
    ds = Dataset.from_dict({"image": images, "label": [0, 1, 1, 0], "score": [0.5, 1.5, 2.5, 3.5]}, features=features)
    repo_id = hub.repo_id("pushed")
    ds.push_to_hub(repo_id)  # creates the repo
    ds.select([0]).push_to_hub(repo_id, split="test")

    loaded = load_dataset(repo_id)
    assert loaded["train"].features == features and loaded["train"]["label"] == [0, 1, 1, 0]
    assert [im.size for im in loaded["train"]["image"]] == [(5, 3), (6, 3), (7, 3), (8, 3)]
    assert loaded["test"]["score"] == [0.5]

    ds.select([2, 3]).push_to_hub(repo_id)  # replaces the train split in a new commit
    assert load_dataset(repo_id, split="train")["score"] == [2.5, 3.5]

    private = hub.repo_id("pushed-private")
    ds.push_to_hub(private, private=True)
    assert len(load_dataset(private, split="train")) == 4
    assert HfApi().dataset_info(private).private
    assert not hub.api(token=False).repo_exists(private, repo_type="dataset")


def test_dataset_card_push_and_load(hub):
    repo_id = hub.repo_id("card")
    HfApi().create_repo(repo_id, repo_type="dataset")
    card = DatasetCard("---\nlicense: mit\ntags:\n- reinforced\nhf_reinforce:\n  top_k: 10\n---\n# Card\nBody.\n")
    card.push_to_hub(repo_id)
    loaded = DatasetCard.load(repo_id)
    assert loaded.data.license == "mit" and loaded.data.to_dict()["hf_reinforce"] == {"top_k": 10}
    assert loaded.text.strip() == "# Card\nBody."

    url = f"{hub.endpoint}/api/validate-yaml"
    bad = get_session().post(url, json={"content": "---\nlicense: mit\n", "repoType": "dataset"})
    assert bad.status_code == 400 and bad.json()["errors"]
    assert get_session().post(url, json={"content": "no metadata", "repoType": "dataset"}).json()["warnings"]


def test_timm_and_transformers_models_roundtrip(hub):
    import timm
    import torch
    from transformers import AutoModelForImageClassification, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    repo_id = hub.repo_id("timm-test-resnet")
    timm.models.push_to_hf_hub(model, repo_id, safe_serialization=True)
    assert hub.list_files(repo_id)["model.safetensors"].lfs
    loaded = timm.create_model(f"hf-hub:{repo_id}", pretrained=True)  # without pretrained=True: config only
    assert loaded.num_classes == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    model = ResNetForImageClassification(config).eval()
    repo_id = hub.repo_id("hf-resnet")
    model.push_to_hub(repo_id)
    loaded = AutoModelForImageClassification.from_pretrained(repo_id).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.config.num_labels == 3


def test_subprocess_uses_the_same_hub_and_cannot_leave_loopback(hub_server, dataset_folder):
    repo_id = hub_server.repo_id("subprocess")
    HfApi().create_repo(repo_id, repo_type="dataset")
    HfApi().upload_folder(folder_path=dataset_folder, repo_id=repo_id, repo_type="dataset")
    blocked = len(hub_server.blocked)
    code = (
        "import sys, datasets, huggingface_hub\n"
        "print(sorted(huggingface_hub.HfApi().list_repo_files(sys.argv[1], repo_type='dataset')))\n"
        "print(list(datasets.load_dataset(sys.argv[1], split='test')['x']))\n"
    )
    out = hub_server.run(code, repo_id).stdout.splitlines()
    assert "'meta.json'" in out[0] and out[1] == "[100, 101, 102]"
    # datasets (USE_PARQUET_EXPORT defaults on) asks http://datasets-server.127.0.0.1:<port>/info: the proxy stops it.
    assert any("datasets-server." in b for b in hub_server.blocked[blocked:])


def test_unknown_route_is_reported(hub_server, capfd):
    response = get_session().get(f"{hub_server.endpoint}/api/not-a-route")
    assert response.status_code == 404 and "unhandled route" in response.headers["X-Error-Message"]
    assert hub_server.unhandled[-1] == "GET /api/not-a-route"
    assert "unhandled route: GET /api/not-a-route" in capfd.readouterr().err
