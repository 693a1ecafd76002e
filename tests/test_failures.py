"""Expected failures, as a newcomer meets them: offline mode, a Hub that cannot be reached, a full or read-only
disk, a typo in a folder name. The library raises an error naming the repo or path and the fix, found at once
(no half minute of retries); the command line prints one line and exits with status 2 (a traceback only with
``--debug``); ``--help`` and argument errors answer without importing torch, torchvision or datasets."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import hf_reinforce as hfr
from hf_reinforce import HubError, NotFoundError, StorageError
from hf_reinforce.cli import build_parser, main
from hf_reinforce.storage import files, remote
from hf_reinforce.testing import mnist_dataset, tiny_config

HEAVY = ("torch", "torchvision", "datasets")


def make_config(**overrides) -> hfr.ReinforceConfig:
    return tiny_config(**{"policy": "rrc", "num_augmentations": 2, "num_workers": 0, **overrides})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("folder") / "out"
    hfr.reinforce(mnist_dataset(16), make_config(), out, progress=False)
    return out


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"hf-reinforce {command}: error: "), err
    return err


# -- the command line answers at once -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["reinforce", "--help"], ["estimate", "--help"], ["reinforce"], ["push"], ["estimate", "--bogus"]],
)
def test_help_and_argument_errors_import_neither_torch_torchvision_nor_datasets(argv):
    code = (
        "import sys\nfrom hf_reinforce.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\nassert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_importing_the_package_imports_nothing_heavy_until_a_name_is_used():
    code = (
        "import sys, hf_reinforce as hfr\n"
        f"assert not [m for m in {HEAVY!r} if m in sys.modules]\n"
        "import hf_reinforce.engine.run as run\n"
        "assert hfr.reinforce is run.reinforce and 'reinforce' in dir(hfr)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_every_public_name_resolves_to_the_object_in_its_module():
    import importlib

    assert set(hfr.__all__) == {"__version__", *hfr.EXPORTS}
    for name, module in hfr.EXPORTS.items():
        assert getattr(hfr, name) is getattr(importlib.import_module(f"hf_reinforce.{module}"), name), name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        hfr.nope  # noqa: B018


def test_estimate_takes_no_progress_like_reinforce():
    for command in ("estimate", "reinforce"):
        extra = ["--output-dir", "out"] if command == "reinforce" else []
        args = build_parser().parse_args([command, "data", "--teachers", "timm:test_resnet", "--no-progress", *extra])
        assert args.progress is False


# -- offline, or a Hub that does not answer ------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def dead_hub(monkeypatch):
    """The Hub's endpoint is a local port nothing listens on; a download that is not from the cache fails the test."""
    import huggingface_hub

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    download = remote.hf_hub_download

    def cache_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), "a download was tried (with its retries) after the Hub did not answer"
        return download(*args, **kwargs)

    monkeypatch.setattr(remote, "hf_hub_download", cache_only)
    return port


def hub_calls(folder: Path, tmp_path: Path) -> dict:
    return {
        "from_pretrained": lambda: hfr.ReinforcedTransform.from_pretrained("user/repo"),
        "load_record": lambda: hfr.load_record("user/repo"),
        "load_reinforced": lambda: hfr.load_reinforced("user/repo"),
        "push_to_hub": lambda: hfr.push_to_hub(folder, "user/repo"),
        "extend": lambda: hfr.extend("user/repo", 4, tmp_path / "grown", teachers=["timm:x"], progress=False),
    }


def test_offline_mode_is_an_error_naming_the_repo_and_the_setting(offline, folder, tmp_path, capsys):
    for name, call in hub_calls(folder, tmp_path).items():
        with pytest.raises(HubError, match=r"user/repo.*HF_HUB_OFFLINE") as info:
            call()
        assert "\n" not in str(info.value), name
    assert main(["push", str(folder), "user/repo"]) == 2
    assert "HF_HUB_OFFLINE=1 is set" in one_line(capsys, "push")


def test_an_unreachable_hub_is_found_with_one_request(dead_hub, folder, tmp_path, capsys):
    for call in hub_calls(folder, tmp_path).values():
        with pytest.raises(HubError, match=rf"user/repo: the Hub at http://127\.0\.0\.1:{dead_hub} cannot be reached"):
            call()
    assert main(["show", "user/repo"]) == 2
    assert "cannot be reached" in one_line(capsys, "show")


def test_a_record_in_the_local_cache_is_used_when_the_hub_does_not_answer(hub_server, folder, monkeypatch, caplog):
    repo = hub_server.repo_id("cached")
    hfr.push_to_hub(folder, repo)
    online = hfr.ReinforcedTransform.from_pretrained(repo)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead)
    offline = hfr.ReinforcedTransform.from_pretrained(repo)
    assert offline.record == online.record
    assert "using reinforce_config.json of" in caplog.text


def test_a_typo_in_a_local_folder_name_never_reaches_the_hub(dead_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-source").mkdir()
    with pytest.raises(NotFoundError, match="no such folder: tiny-sorce"):
        hfr.ReinforcedTransform.from_pretrained("tiny-sorce")
    assert main(["push", "tiny-sorce", "user/repo"]) == 2
    assert "tiny-sorce is not a folder" in one_line(capsys, "push")


# -- the disk -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "fix"),
    [(errno.ENOSPC, "free some space or write to another disk"), (errno.EROFS, "give a folder on a writable disk")],
)
def test_a_full_or_read_only_disk_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys, code, fix):
    write = files.write_json_atomic

    def refuse(data, path):
        raise OSError(code, errno.errorcode[code], str(path))

    monkeypatch.setattr("hf_reinforce.storage.resume.write_json_atomic", refuse)
    out = tmp_path / "out"
    with pytest.raises(StorageError, match=rf"{out}/\.reinforce/train\.progress\.json: .*{fix}") as info:
        hfr.reinforce(mnist_dataset(16), make_config(), out, progress=False)
    assert info.value.__cause__.errno == code and "\n" not in str(info.value)
    saved = tmp_path / "saved"
    mnist_dataset(16).save_to_disk(str(saved))
    capsys.readouterr()
    argv = ["reinforce", str(saved), "--teachers", "timm:test_resnet", "--resolution", "32", "--top-k", "2"]
    assert main([*argv, "--num-augmentations", "2", "--output-dir", str(out), "--no-progress"]) == 2
    assert fix in one_line(capsys, "reinforce")
    monkeypatch.setattr("hf_reinforce.storage.resume.write_json_atomic", write)
    assert len(hfr.reinforce(mnist_dataset(16), make_config(), out, progress=False)) == 16  # once there is room
