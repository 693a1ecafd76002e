"""Property: whatever is done to a real folder's record — a key dropped, an element repeated, a value retyped, a key
renamed, a number out of range, a shard path escaping the folder, a split renamed, a shard linked out of the
folder —, every entry point ends in a clear one-line error or in the right data: the rows the folder holds, the
shards it holds uploaded and nothing else, the extension a pass would write."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hf_reinforce as hfr
from hf_reinforce.cli import main
from hf_reinforce.storage.paths import CONFIG_FILE, DATA_DIR
from hf_reinforce.testing import mnist_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS, N, GROWN = 16, 2, 4


def make_config(**overrides: Any) -> hfr.ReinforceConfig:
    fields = {"policy": "rrc", "num_augmentations": N, "num_workers": 0, "rows_per_block": 8, "rows_per_shard": 8}
    return tiny_config(**{**fields, **overrides})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "out"
    hfr.reinforce(mnist_dataset(ROWS), make_config(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def expected(pristine, tmp_path_factory) -> dict[str, Any]:
    """What the untouched folder gives: its rows, its shards' bytes, its extension to N=4."""
    grown = hfr.extend(
        pristine, GROWN, tmp_path_factory.mktemp("grown") / "out", teachers=make_config().teachers, progress=False
    )
    return Expected(
        rows=hfr.load_reinforced(pristine).data.table,
        shards={f"{DATA_DIR}/{p.name}": p.read_bytes() for p in (pristine / DATA_DIR).iterdir()},
        grown=grown["train"].data.table,
    )


class Expected(dict):
    """What the untouched folder gives (shown by name in a failing example: the tables are long)."""

    def __repr__(self) -> str:
        return "Expected(rows, shards, grown)"


# -- tampering -------------------------------------------------------------------------------------------------------


def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON value (``("splits", "train", "shards", 0, "file")``)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [path for key, child in items for path in [(*prefix, key), *json_paths(child, (*prefix, key))]]


RETYPED = ["7", [7], {"v": 7}, None, True, 1.5, -1, "", 10**12, 0, float("nan")]
RENAMED = ["test", "train-2", "../escaped", "Train", "", "x_copy"]
ESCAPING = [
    "/etc/passwd",
    "../x.parquet",
    "../../reinforce_config.json",
    "data/../../x.parquet",
    "train-00000-of-00002",
]


@st.composite
def tampers(draw: st.DrawFn, paths: list[tuple]) -> tuple[str, tuple, int]:
    kind = draw(st.sampled_from(["drop", "duplicate", "retype", "rename", "out_of_range", "escape", "link_out"]))
    path = draw(st.sampled_from(paths))
    if kind == "escape":
        path = ("splits", "train", "shards", draw(st.integers(0, 1)), "file")
    if kind == "rename" and draw(st.booleans()):
        path = ("splits", "train")  # the split's name
    return kind, path, draw(st.integers(0, 100))


def tamper(data: dict, kind: str, path: tuple, choice: int) -> dict:
    """``data`` with one change at ``path`` (``choice`` picks among the values a change may put there)."""
    data = copy.deepcopy(data)
    *parents, key = path
    parent = data
    for step in parents:
        parent = parent[step]
    value = parent[key]
    if kind == "drop":
        del parent[key]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(value))
    elif kind == "duplicate":
        parent[f"{key}_copy"] = copy.deepcopy(value)
    elif kind == "retype":
        parent[key] = RETYPED[choice % len(RETYPED)]
    elif kind == "rename" and isinstance(parent, dict):
        parent[RENAMED[choice % len(RENAMED)]] = parent.pop(key)
    elif kind == "out_of_range" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = [0, -1, 10**12, value + 1, value - 1, -value][choice % 6]
    elif kind == "escape":
        parent[key] = ESCAPING[choice % len(ESCAPING)]
    return data


def link_out(folder: Path, outside: Path, choice: int) -> None:
    """Move one shard out of the folder and leave a link to it in its place (the same bytes, elsewhere)."""
    shard = sorted((folder / DATA_DIR).iterdir())[choice % 2]
    shutil.move(shard, outside / shard.name)
    shard.symlink_to(outside / shard.name)


# -- outcomes --------------------------------------------------------------------------------------------------------


def outcome(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or ``None`` after a clear error: a library error on one line (anything else fails)."""
    try:
        return call()
    except hfr.ReinforceError as error:
        message = str(error)
        assert message and "\n" not in message, f"{type(error).__name__} on several lines: {message}"
        return None


def cli_status(argv: list[str], capsys) -> int:
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (0, 2), status
    assert status == 0 or (err.count("\n") == 1 and "Traceback" not in err), err
    return status


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_entry_point_ends_in_a_clear_error_or_the_right_data(data, pristine, expected, hub_server, capsys):
    original = json.loads((pristine / CONFIG_FILE).read_text())
    kind, path, choice = data.draw(tampers(json_paths(original)))
    with tempfile.TemporaryDirectory() as tmp:
        folder, outside = Path(tmp) / "folder", Path(tmp) / "outside"
        shutil.copytree(pristine, folder)
        outside.mkdir()
        if kind == "link_out":
            link_out(folder, outside, choice)
        else:
            (folder / CONFIG_FILE).write_text(json.dumps(tamper(original, kind, path, choice)))
        with mock.patch.object(datasets.config, "HF_DATASETS_CACHE", str(Path(tmp) / "cache")):
            check_entry_points(folder, Path(tmp), mnist_dataset(ROWS), expected, hub_server, capsys)


def check_entry_points(folder: Path, tmp: Path, source, expected: dict, hub_server, capsys) -> None:
    record = outcome(lambda: hfr.load_record(folder))
    rows = outcome(lambda: hfr.load_reinforced(folder))
    if rows is not None:
        assert rows.data.table.equals(expected["rows"]), "load_reinforced returned other rows than the folder holds"
    transform = outcome(lambda: hfr.ReinforcedTransform.from_pretrained(folder))
    assert (transform is None) == (record is None)
    if transform is not None:
        assert transform.record == record
    if outcome(lambda: hfr.show(folder, output=tmp / "grid.png")) is None:
        assert not (tmp / "grid.png").exists()
    repo = hub_server.repo_id("tampered")
    if outcome(lambda: hfr.push_to_hub(folder, repo)) is not None:
        pushed = {f for f in hub_server.api().list_repo_files(repo, repo_type="dataset") if f.startswith(DATA_DIR)}
        assert pushed == set(expected["shards"]), f"uploaded {pushed}"
        for name in pushed:
            assert (
                Path(hub_server.api().hf_hub_download(repo, name, repo_type="dataset")).read_bytes()
                == (expected["shards"][name])
            ), f"{name} was not the folder's own shard"
    elif hub_server.api().repo_exists(repo, repo_type="dataset"):
        assert not [f for f in hub_server.api().list_repo_files(repo, repo_type="dataset") if f.startswith(DATA_DIR)]
    reinforcement = datasets.Dataset(expected["rows"]).remove_columns(["image", "label"])  # joined back by attach
    joined = outcome(lambda: hfr.attach(reinforcement, source, record=folder))
    if joined is not None:
        assert joined["label"] == source["label"] and joined["row_index"] == list(range(ROWS))
    grown = outcome(
        lambda: hfr.extend(folder, GROWN, tmp / "grown", teachers=make_config().teachers, split="train", progress=False)
    )
    if grown is not None:
        assert grown.data.table.equals(expected["grown"]), "the extension differs from a pass with the larger N"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained teachers score near chance
        outcome(lambda: hfr.evaluate_teachers(source, make_config(), output_dir=folder, split="train"))
    cli_status(["show", str(folder), "--output", str(tmp / "cli.png")], capsys)
    cli_status(["push", str(folder), hub_server.repo_id("tampered-cli")], capsys)
