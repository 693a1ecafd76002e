"""The command line: reinforce into a folder (in-process and as ``python -m``), estimate, dry run, errors, wiring."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import datasets
import numpy as np
import pytest

from hf_reinforce.cli import add_config_arguments, build_parser, config_from_args, main
from hf_reinforce.config import ReinforceConfig
from hf_reinforce.engine.estimation import Estimate, estimate
from hf_reinforce.errors import ConfigError, NotFoundError
from hf_reinforce.testing import mnist_dataset

ROWS, N, K = 40, 4, 3
TEACHERS = ["timm:test_resnet", "timm:test_vit"]
PASS_ARGS = [
    "--teachers",
    *TEACHERS,
    "--num-augmentations",
    str(N),
    "--top-k",
    str(K),
    "--resolution",
    "64",
    "--rows-per-shard",
    "16",
    "--rows-per-block",
    "8",
    "--augmentations-per-step",
    "2",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 shuffled real MNIST digits saved with ``save_to_disk`` (Image + ClassLabel features)."""
    ds = mnist_dataset(ROWS)
    path = tmp_path_factory.mktemp("mnist") / "mnist40"
    ds.save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def full_run(mnist_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The in-process ``reinforce`` command over all rows: its output folder and what it printed."""
    out = tmp_path_factory.mktemp("full") / "plus"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["reinforce", str(mnist_folder), *PASS_ARGS, "--output-dir", str(out), "--no-progress"]) == 0
    return out, printed.getvalue()


def _shards(folder: Path) -> datasets.Dataset:
    return datasets.load_dataset(
        "parquet", data_files=sorted(str(p) for p in (folder / "data").glob("*.parquet")), split="train"
    )


def test_reinforce_in_process_writes_hub_folder(mnist_folder: Path, full_run: tuple[Path, str]) -> None:
    out, printed = full_run
    assert f"reinforced {ROWS} rows of split 'train' into {out}" in printed
    assert "reinforcement bytes per stored augmentation: " in printed and " per row)" in printed

    assert sorted(p.name for p in (out / "data").iterdir()) == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    assert (out / "README.md").exists()
    config = json.loads((out / "reinforce_config.json").read_text())
    assert (config["num_augmentations"], config["top_k"], config["seed"]) == (N, K, 3)
    assert [t["id"] for t in config["teachers"]] == ["test_resnet", "test_vit"]
    assert config["splits"]["train"]["num_rows_written"] == ROWS
    assert config["splits"]["train"]["id"] == mnist_folder.name  # the folder name, never the path

    plus = _shards(out)
    assert {"image", "label", "row_index", "topk_ids", "topk_probs"} <= set(plus.column_names)
    assert plus["row_index"] == list(range(ROWS))
    source = datasets.load_from_disk(str(mnist_folder))
    assert plus["label"] == source["label"]
    probs = np.asarray(plus[0]["topk_probs"], dtype=np.float32)
    assert probs.shape == (N, K) and np.all(np.diff(probs, axis=1) <= 0)


def test_module_subprocess_matches_in_process(mnist_folder: Path, full_run: tuple[Path, str], tmp_path: Path) -> None:
    """``python -m hf_reinforce`` on the first rows gives the same top-k as the in-process run on all rows."""
    sub = tmp_path / "sub"
    args = [
        "reinforce",
        str(mnist_folder),
        *PASS_ARGS,
        "--max-rows",
        "16",
        "--reinforcement-only",
        "--output-dir",
        str(sub),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "hf_reinforce", *args], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "reinforced 16 rows of split 'train'" in result.stdout
    assert "view/s" in result.stderr  # the pass's own progress bar
    sub_ds, full_ds = _shards(sub), _shards(full_run[0])
    assert "image" not in sub_ds.column_names and "label" not in sub_ds.column_names
    assert sub_ds["topk_ids"] == full_ds.select(range(16))["topk_ids"]
    assert sub_ds["topk_probs"] == full_ds.select(range(16))["topk_probs"]


def test_estimate_command_prints_every_field(mnist_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "estimate",
        str(mnist_folder),
        *PASS_ARGS,
        "--num-augmentations",
        "400",
        "--num-processes",
        "2",
        "--calibration-rows",
        "4",
        "--calibration-augmentations",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"teacher views computed\s+16,000", printed)
    assert re.search(r"calibration sample\s+4 rows × 2 augmentations = 8 views", printed)
    assert re.search(r"pipelined throughput\s+[\d,.]+ views/s", printed)
    assert re.search(r"estimated time, 2 devices\s+.+ per device", printed)
    assert re.search(r"reinforcement bytes per stored augmentation\s+[\d.]+ B\n", printed)
    assert re.search(r"reinforcement columns\s+[\d.]+ [kMG]?B\n", printed)
    for field in (
        "estimated time, 1 device",
        "kept source columns",
        "estimated output size",
        "peak RSS",
        "compress differently",
    ):
        assert field in printed


def test_estimate_api(mnist_folder: Path) -> None:
    ds = datasets.load_from_disk(str(mnist_folder))
    config = ReinforceConfig(
        teachers=TEACHERS, num_augmentations=100, top_k=K, rows_per_block=8, augmentations_per_step=2, rows_per_shard=16
    )
    result = estimate(ds, config, calibration_rows=3, calibration_augmentations=2, num_processes=3)
    assert isinstance(result, Estimate)
    assert (result.total_views, result.calibration_views) == (ROWS * 100, 3 * 2)
    assert result.seconds == pytest.approx(result.total_views / result.views_per_second)
    assert result.seconds_per_process == pytest.approx(16 * 100 / result.views_per_second)  # 3 shards of 16, 16, 8 rows
    assert 0 < result.bytes_per_augmentation < 200
    stored = datasets.load_from_disk(str(mnist_folder)).cast_column("image", datasets.Image(decode=False))["image"]
    assert result.source_bytes >= sum(len(image["bytes"]) for image in stored)
    assert result.output_bytes == result.reinforcement_bytes + result.source_bytes
    assert result.peak_rss_bytes > 0 and "3 rows × 2 augmentations" in str(result)
    with pytest.raises(ValueError, match="calibration_rows"):
        estimate(ds, config, calibration_rows=0)


def test_dry_run_writes_nothing(mnist_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"ops": [{"op": "rrc"}, {"op": "flip", "p": 0.5}]}))
    out = tmp_path / "never"
    args = [
        "reinforce",
        str(mnist_folder),
        *PASS_ARGS,
        "--policy",
        str(policy),
        "--output-dir",
        str(out),
        "--dry-run",
        "--calibration-rows",
        "2",
        "--calibration-augmentations",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "teacher views computed" in printed and "dry run: nothing was written" in printed
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--image-column", "img"],
            r"image_column 'img' is not a column of the dataset; its columns are \['image', 'label'\]",
        ),
        (["--label-column", "target"], r"label_column 'target' is not a column"),
        (["--policy", "rrc+blur"], r"policy: unknown preset 'rrc\+blur'; presets are rrc, rrc\+mix"),
        (["--policy", "missing.json"], r"--policy: policy file missing.json not found"),
        (["--top-k", "0"], r"top_k: expected a positive integer"),
    ],
)
def test_user_errors_exit_2_without_traceback(
    mnist_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["reinforce", str(mnist_folder), *PASS_ARGS, *extra, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^hf-reinforce reinforce: error: " + message, err), err
    assert "Traceback" not in err
    assert not (out / "data").exists()


def test_missing_dataset_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", str(tmp_path / "nowhere"), "--teachers", "timm:test_resnet"]) == 2
    assert "hf-reinforce estimate: error:" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["reinforce", "somewhere", "--teachers", "timm:test_resnet"])  # --output-dir is required
    assert info.value.code == 2 and "--output-dir" in capsys.readouterr().err


def test_push_and_show_call_their_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, tuple, dict]] = []
    hub = types.ModuleType("hf_reinforce.hub.push")
    hub.push_to_hub = lambda *a, **kw: calls.append(("push", a, kw)) or "https://hub/datasets/user/plus"
    show = types.ModuleType("hf_reinforce.diagnostics.show")
    show.show = lambda *a, **kw: calls.append(("show", a, kw)) or str(tmp_path / "grid.png")
    monkeypatch.setitem(sys.modules, "hf_reinforce.hub.push", hub)
    monkeypatch.setitem(sys.modules, "hf_reinforce.diagnostics.show", show)

    assert main(["push", str(tmp_path), "user/plus", "--private", "--commit-message", "first"]) == 0
    assert calls[-1] == (
        "push",
        (str(tmp_path), "user/plus"),
        {"private": True, "revision": None, "token": None, "commit_message": "first"},
    )
    assert "https://hub/datasets/user/plus" in capsys.readouterr().out
    assert main(["push", str(tmp_path / "absent"), "user/plus"]) == 2
    assert "is not a folder" in capsys.readouterr().err

    assert main(["show", "user/plus", "--row", "3", "--num", "8", "--output", "grid.png", "--split", "validation"]) == 0
    assert calls[-1] == ("show", ("user/plus",), {"row": 3, "output": "grid.png", "num": 8, "split": "validation"})
    assert main(["show", "user/plus"]) == 0
    assert calls[-1] == ("show", ("user/plus",), {})
    assert "grid.png" in capsys.readouterr().out


def _config_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_every_config_field_with_cli_metadata_is_an_option_with_its_help() -> None:
    actions = _config_actions(build_parser()._subparsers._group_actions[0].choices["reinforce"])
    for field in dataclasses.fields(ReinforceConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.metadata.get("cli", {}) is None:
            assert flag not in actions
            continue
        assert flag in actions, flag
        assert actions[flag].dest == field.name
        assert actions[flag].help.startswith(field.metadata["help"])
    assert actions["--no-label-column"].const is None and actions["--num-workers"].type is int


def test_a_new_config_field_is_on_the_command_line_without_a_cli_edit() -> None:
    @dataclasses.dataclass(frozen=True)
    class Extended(ReinforceConfig):
        warmup_steps: int = dataclasses.field(default=5, metadata={"help": "steps to warm up", "group": "execution"})
        sharpen: bool = dataclasses.field(default=False, metadata={"help": "sharpen views", "group": "dataset"})
        tag: str | None = dataclasses.field(default=None, metadata={"help": "a tag", "group": "extra"})

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Extended)
    assert "steps to warm up (default: 5)" in " ".join(parser.format_help().split())
    args = parser.parse_args(["--teachers", "timm:a", "--warmup-steps", "7", "--sharpen", "--no-label-column"])
    config = config_from_args(args, Extended)
    assert isinstance(config, Extended) and (config.warmup_steps, config.sharpen, config.tag) == (7, True, None)
    assert config.label_column is None and config.teachers == ("timm:a",)
    defaults = config_from_args(parser.parse_args(["--teachers", "timm:a"]), Extended)
    assert defaults == Extended(teachers=["timm:a"])


def test_cli_config_matches_the_api_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(["estimate", "data", *PASS_ARGS, "--temperature", "2", "--num-workers", "0"])
    expected = ReinforceConfig(
        teachers=TEACHERS,
        num_augmentations=N,
        top_k=K,
        resolution=64,
        rows_per_shard=16,
        rows_per_block=8,
        augmentations_per_step=2,
        seed=3,
        temperature=2.0,
        num_workers=0,
    )
    assert config_from_args(args) == expected


def test_internal_errors_keep_their_traceback(
    mnist_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only user errors become one line with exit 2: a bug anywhere else propagates with its traceback."""
    import hf_reinforce.engine.estimation

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(hf_reinforce.engine.estimation, "estimate", broken)
    with pytest.raises(ZeroDivisionError):
        main(["estimate", str(mnist_folder), "--teachers", "timm:test_resnet"])
    result = subprocess.run(
        [sys.executable, "-m", "hf_reinforce", "push", "folder-that-is-not-there", "user/plus"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("hf-reinforce push: error: folder-that-is-not-there is not a folder")


def test_debug_shows_the_traceback_of_user_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="is not a folder"):
        main(["--debug", "push", str(tmp_path / "absent"), "user/plus"])
    with pytest.raises(ConfigError, match="top_k: expected a positive integer"):
        main(["--debug", "estimate", "data", "--teachers", "timm:test_resnet", "--top-k", "0"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-rows", "0"], r"--max-rows: expected a positive integer, got 0"),
        (["--temperature", "inf"], r"temperature: expected a finite positive number, got inf"),
        (["--teachers", "resnet18"], r"unknown teacher spec 'resnet18'"),
        (["--calibration-rows", "0"], r"calibration_rows: expected a positive integer"),
    ],
)
def test_more_user_errors_exit_2_on_one_line(
    mnist_folder: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["estimate", str(mnist_folder), "--teachers", "timm:test_resnet", *extra]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"hf-reinforce estimate: error: " + message + r".*\n", err), err
