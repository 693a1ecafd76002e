"""Teachers: every spec kind, local weights, preprocessing, class alignment, NaN guard, ensemble math, configs."""

import json
import os

import huggingface_hub
import pytest
import safetensors.torch
import torch
import transformers
from torch import nn
from torchvision.transforms.v2 import functional as TF

from hf_reinforce import testing
from hf_reinforce.teachers import (
    Ensemble,
    Preprocessing,
    Teacher,
    ViewSpec,
    load_teacher,
    parse_teacher_spec,
    weights_sha256,
)

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def photos(resolution: int) -> torch.Tensor:
    """The two sklearn sample photos as uint8 (2, 3, R, R)."""
    images = torch.stack(testing.photo_tensors())
    return TF.resize(images, [resolution, resolution], antialias=True)


def hand_normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """(x / 255 - mean) / std computed by hand."""
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (images.double() / 255 - mean) / std


class Linear(nn.Module):
    """Tiny teacher: flatten + linear, deterministic given the seed."""

    def __init__(self, resolution: int, classes: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(3 * resolution * resolution, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class NaNModel(Linear):
    """Teacher whose second image gets NaN logits."""

    def forward(self, x):
        out = super().forward(x)
        out[1:2] = float("nan")
        return out


def tiny_timm(arch: str = "test_resnet", classes: int = 7) -> nn.Module:
    """A random timm model whose weights differ from a fresh instance."""
    return testing.tiny_timm(arch, classes, seed=123)


def save_tiny_hf(folder, kind: str) -> nn.Module:
    """Save a tiny random transformers classifier plus an image processor config into `folder`."""
    torch.manual_seed(0)
    if kind == "resnet":
        config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=5)
        model = transformers.ResNetForImageClassification(config)
        processor = transformers.BitImageProcessor(
            size={"shortest_edge": 64},
            crop_size={"height": 56, "width": 56},
            do_center_crop=True,
            image_mean=[0.4, 0.5, 0.6],
            image_std=[0.2, 0.25, 0.3],
            resample=3,
        )
    else:
        config = transformers.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=5,
        )
        model = transformers.ViTForImageClassification(config)
        processor = transformers.ViTImageProcessor(
            size={"height": 32, "width": 32},
            image_mean=[0.3, 0.4, 0.5],
            image_std=[0.5, 0.6, 0.7],
            resample=2,
        )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval()


@pytest.fixture
def offline_hub_cache(tmp_path, monkeypatch):
    """An offline HF cache: returns a function placing a folder's files as `repo_id` at FAKE_COMMIT on main."""
    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def add(repo_id: str, folder) -> None:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(FAKE_COMMIT)
        (repo / "snapshots").mkdir()
        os.rename(folder, repo / "snapshots" / FAKE_COMMIT)

    return add


def test_parse_teacher_spec():
    assert parse_teacher_spec("timm:resnet18@w/ckpt.safetensors").weights == "w/ckpt.safetensors"
    hub = parse_teacher_spec("timm/resnet50.a1_in1k@v1")
    assert (hub.kind, hub.id, hub.revision) == ("timm-hub", "timm/resnet50.a1_in1k", "v1")
    assert parse_teacher_spec("hf:microsoft/resnet-50").kind == "hf"
    with pytest.raises(ValueError, match="unknown teacher spec"):
        parse_teacher_spec("resnet18")
    with pytest.raises(ValueError, match="not a weights file"):
        parse_teacher_spec("timm:resnet18@main")


def test_timm_random_uses_the_given_preprocessing_not_timms_and_is_deterministic():
    preprocessing = Preprocessing(resolution=48, interpolation="bicubic", mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    teacher = load_teacher("timm:test_vit", device="cpu", num_classes=7, preprocessing=preprocessing)
    assert teacher.view_spec == ViewSpec(48, "bicubic")  # not timm's pretrained_cfg (160 px, mean 0.5)
    assert teacher.mean == (0.1, 0.2, 0.3) and teacher.std == (0.4, 0.5, 0.6)
    assert not teacher.module.training
    images = photos(48)
    logits = teacher.logits(images)
    assert logits.dtype == torch.float32 and logits.shape == (2, 7)
    assert torch.equal(logits, teacher.logits(images))
    default = load_teacher("timm:test_resnet", num_classes=10)  # random head sized to the dataset
    assert default.num_classes == 10 and default.view_spec == ViewSpec(224, "bilinear")


@pytest.mark.parametrize("fmt, prefix", [("safetensors", ""), ("pth", ""), ("pth", "module."), ("pth", "model.")])
def test_timm_local_weights_are_loaded(tmp_path, fmt, prefix):
    source = tiny_timm()
    state = {prefix + k: v for k, v in source.state_dict().items()}
    path = tmp_path / f"ckpt.{fmt}"
    if fmt == "safetensors":
        safetensors.torch.save_file(state, path)
    else:
        torch.save({"state_dict": state, "epoch": 3}, path)
    teacher = load_teacher(f"timm:test_resnet@{path}", num_classes=7, device="cpu")
    images = photos(teacher.resolution)
    with torch.no_grad():
        expected = source(hand_normalize(images, teacher.mean, teacher.std).float())
    torch.testing.assert_close(teacher.logits(images), expected, rtol=1e-4, atol=1e-4)
    recorded = teacher.to_config()  # the file's name and the weights' hash, never this machine's path
    assert recorded["weights"] == path.name and str(tmp_path) not in json.dumps(recorded)
    assert recorded["weights_sha256"] == weights_sha256(source) == weights_sha256(teacher.module)


def test_weights_that_do_not_match_name_the_teacher(tmp_path):
    path = tmp_path / "vit.safetensors"
    safetensors.torch.save_file(tiny_timm("test_vit").state_dict(), path)
    with pytest.raises(ValueError, match=r"teacher 'timm:test_resnet@.*missing keys .*unexpected keys"):
        load_teacher(f"timm:test_resnet@{path}", num_classes=7)


class Payload:
    """A pickle that would create a directory when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "x": Payload(marker)}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_teacher(f"timm:test_resnet@{path}")
    assert not marker.exists()


@pytest.mark.parametrize(
    "kind, resolution, mean, std, interpolation",
    [
        ("resnet", 56, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), "bicubic"),
        ("vit", 32, (0.3, 0.4, 0.5), (0.5, 0.6, 0.7), "bilinear"),
    ],
)
def test_hf_local_folder(tmp_path, monkeypatch, kind, resolution, mean, std, interpolation):
    source = save_tiny_hf(tmp_path / "tiny", kind)
    monkeypatch.chdir(tmp_path)
    teacher = load_teacher("hf:tiny", num_classes=5, device="cpu")
    assert teacher.view_spec == (resolution, interpolation)
    assert teacher.mean == pytest.approx(mean) and teacher.std == pytest.approx(std)
    images = photos(resolution)
    with torch.no_grad():
        expected = source(pixel_values=hand_normalize(images, mean, std).float()).logits
    torch.testing.assert_close(teacher.logits(images), expected, rtol=1e-4, atol=1e-4)
    config = json.dumps(teacher.to_config())
    assert str(tmp_path) not in config and '"id": "tiny"' in config


def test_hf_normalization_matches_the_image_processor():
    processor = transformers.ViTImageProcessor(
        do_resize=False, do_rescale=False, image_mean=[10.0, 20.0, 30.0], image_std=[50.0, 60.0, 70.0]
    )
    from hf_reinforce.teachers.loading import _processor_normalization

    mean, std = _processor_normalization(processor)
    teacher = Teacher(Linear(16, 3), resolution=16, mean=mean, std=std)
    images = photos(16)
    expected = processor(list(images), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(teacher.normalize(images), expected, rtol=1e-5, atol=1e-4)


def test_hub_teachers_pin_and_record_the_commit(tmp_path, offline_hub_cache):
    source = tiny_timm(classes=4)
    from timm.models._hub import save_for_hf  # exported as timm.models.save_for_hf only in recent timm

    save_for_hf(source, tmp_path / "timm-repo", safe_serialization=True)
    offline_hub_cache("timm/test_resnet.tiny", tmp_path / "timm-repo")
    teacher = load_teacher("timm/test_resnet.tiny", num_classes=4, device="cpu")
    assert teacher.to_config()["revision"] == FAKE_COMMIT
    images = photos(teacher.resolution)
    with torch.no_grad():
        expected = source(hand_normalize(images, teacher.mean, teacher.std).float())
    torch.testing.assert_close(teacher.logits(images), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"'timm/test_resnet.tiny' gives 4 classes but the dataset has 10"):
        load_teacher("timm/test_resnet.tiny", num_classes=10)

    save_tiny_hf(tmp_path / "hf-repo", "vit")
    offline_hub_cache("org/tiny-vit", tmp_path / "hf-repo")
    config = load_teacher("hf:org/tiny-vit").to_config()
    assert (config["id"], config["revision"], config["resolution"]) == ("org/tiny-vit", FAKE_COMMIT, 32)


def test_pretrained_hub_teachers_keep_their_own_preprocessing(tmp_path, offline_hub_cache):
    from timm.models._hub import save_for_hf

    save_for_hf(tiny_timm("test_vit", classes=4), tmp_path / "repo", safe_serialization=True)
    offline_hub_cache("timm/test_vit.tiny", tmp_path / "repo")
    odd = Preprocessing(resolution=40, interpolation="nearest", mean=(0.1,) * 3, std=(0.2,) * 3)
    teacher = load_teacher("timm/test_vit.tiny", num_classes=4, preprocessing=odd)
    assert (teacher.resolution, teacher.interpolation, teacher.mean) == (160, "bicubic", (0.5, 0.5, 0.5))
    override = load_teacher("timm/test_vit.tiny?resolution=48", num_classes=4, preprocessing=odd)
    assert (override.resolution, override.interpolation) == (48, "bicubic")  # an option in the spec still applies


def test_module_teacher_normalize_and_logits():
    module = Linear(24, 6)
    teacher = Teacher(module, resolution=24, mean=(0.1, 0.2, 0.3), std=(0.9, 0.8, 0.7), name="lin")
    images = photos(24)
    normalized = teacher.normalize(images)
    assert normalized.dtype == torch.float32
    torch.testing.assert_close(normalized, hand_normalize(images, teacher.mean, teacher.std).float())
    assert teacher.num_outputs == 6
    torch.testing.assert_close(teacher.logits(images), module(normalized).detach())
    with pytest.raises(ValueError, match="'lin' expects images at 24x24"):
        teacher.logits(photos(16))
    with pytest.raises(ValueError, match="'lin' expects uint8"):
        teacher.normalize(images.float())
    json.dumps(teacher.to_config())


class InputSlice(nn.Module):
    """A teacher whose logits are a view of its normalized input (its first 5 values per image)."""

    def forward(self, x):
        return x.flatten(1)[:, :5]


def test_micro_batches_share_one_input_buffer_without_mixing_their_outputs():
    """On CPU the normalized micro-batches reuse one buffer: same logits as with a new tensor each, even for a module
    whose output views that buffer, and the buffer does not change what ``normalize`` returns."""
    images = torch.cat([photos(12), photos(12).flip(-1), photos(12).roll(5, -1)])  # 6 distinct images
    for module in (Linear(12, 4), InputSlice()):
        teacher = Teacher(module, resolution=12, batch_size=4, name="buffered")
        expected = torch.cat([module(teacher.normalize(chunk)) for chunk in images.split(4)])  # fresh tensors
        assert torch.equal(teacher.logits(images), expected)  # micro-batches of 4 and 2
        assert torch.equal(teacher.logits(images[:3]), expected[:3])
    out = torch.empty(6, 3, 12, 12)
    assert teacher.normalize(images, out=out) is out and torch.equal(out, teacher.normalize(images))
    large = torch.cat([photos(224), photos(224).flip(-1), photos(224).roll(9, -2)])  # filled in slices
    out = torch.empty(6, 3, 224, 224)
    assert teacher.normalize(large, out=out) is out and torch.equal(out, teacher.normalize(large))


def test_module_teacher_takes_logits_of_transformers_outputs(tmp_path):
    model = save_tiny_hf(tmp_path / "tiny", "vit")
    teacher = Teacher(model, resolution=32, mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=1)
    images = photos(32)
    with torch.no_grad():
        expected = model(pixel_values=teacher.normalize(images)).logits
    torch.testing.assert_close(teacher.logits(images), expected, rtol=1e-5, atol=1e-5)


def test_class_count_mismatch_and_class_mapping():
    teacher = Teacher(Linear(8, 5), resolution=8, name="five")
    with pytest.raises(ValueError, match=r"'five' gives 5 classes but the dataset has 3.*class_mapping"):
        load_teacher(teacher, num_classes=3)
    images = photos(8)
    raw = teacher.logits(images)
    for mapping in ([4, 0, 2], {1: 0, 0: 4, 2: 2}):
        mapped = load_teacher(teacher, num_classes=3, class_mapping=mapping)
        assert mapped.num_classes == 3
        torch.testing.assert_close(mapped.logits(images), raw[:, [4, 0, 2]])
    with pytest.raises(ValueError, match="outside its 5 outputs"):
        load_teacher(teacher, num_classes=3, class_mapping=[4, 0, 9])
    with pytest.raises(ValueError, match="class_mapping of teacher 'five' gives 2 classes but the dataset has 3"):
        load_teacher(teacher, num_classes=3, class_mapping=[1, 2])


def test_nan_teacher_is_named():
    good = Teacher(Linear(8, 4), resolution=8, name="good")
    bad = Teacher(NaNModel(8, 4), resolution=8, name="nan-teacher")
    with pytest.raises(ValueError, match="'nan-teacher' produced NaN/Inf logits for 1 of 2 images"):
        Ensemble([good, bad]).probs({(8, "bilinear"): photos(8)})


def test_ensemble_is_mean_of_tempered_softmaxes():
    small = Teacher(Linear(8, 4, seed=1), resolution=8, interpolation="bilinear", name="small")
    large = Teacher(Linear(12, 4, seed=2), resolution=12, interpolation="bicubic", name="large")
    twin = Teacher(Linear(8, 4, seed=3), resolution=8, interpolation="bilinear", name="twin")
    ensemble = Ensemble([small, large, twin], temperature=2.0)
    assert ensemble.view_specs() == [(8, "bilinear"), (12, "bicubic")]
    views = {(8, "bilinear"): photos(8), (12, "bicubic"): photos(12)}
    probs = ensemble.probs(views)
    expected = (
        sum(
            torch.softmax(t.module(t.normalize(views[t.view_spec])).double() / 2.0, dim=1) for t in (small, large, twin)
        )
        / 3
    )
    assert probs.dtype == torch.float32 and probs.shape == (2, 4)
    torch.testing.assert_close(probs.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match=r"no view \(12, 'bicubic'\) for teacher 'large'"):
        ensemble.probs({(8, "bilinear"): photos(8)})
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        Ensemble([small, Teacher(Linear(8, 3), resolution=8)])
    config = json.loads(json.dumps(ensemble.to_config()))
    assert config["temperature"] == 2.0 and [t["name"] for t in config["teachers"]] == ["small", "large", "twin"]


def test_weights_hash_changes_with_any_weight_and_not_with_the_device_or_the_object():
    a, b = testing.tiny_timm(seed=0), testing.tiny_timm(seed=0)
    assert weights_sha256(a) == weights_sha256(b) and Teacher(a, resolution=32).weights_sha256 == weights_sha256(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b)
    assert weights_sha256(a.to(torch.bfloat16)) != weights_sha256(b)  # the dtype is part of the weights
