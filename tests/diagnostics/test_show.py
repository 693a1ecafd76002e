"""``show``: a PNG grid of a row's replayed augmentations with top-3 captions."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Dataset

import hf_reinforce as hfr
from hf_reinforce.diagnostics.show import TITLE_HEIGHT, _caption, class_label, render_grid, title
from hf_reinforce.errors import ConfigError
from hf_reinforce.testing import mnist_dataset, photos_dataset, tiny_config


@pytest.fixture(scope="module")
def photos_ds() -> Dataset:
    return photos_dataset(8)


@pytest.mark.parametrize("policy", ["rrc+ra+re", "rrc+mix"])
def test_show_dataset_and_folder(photos_ds, tmp_path, policy):
    config = hfr.ReinforceConfig(
        teachers=["timm:test_resnet"],
        policy=policy,
        num_augmentations=6,
        top_k=2,
        resolution=48,
        rows_per_block=16,
        rows_per_shard=16,
    )
    plus = hfr.reinforce(photos_ds, config, tmp_path / "plus", progress=False)
    for source in (plus, tmp_path / "plus"):
        path = hfr.show(source, row=3, output=tmp_path / "grid.png", num=6)
        image = PIL.Image.open(path)
        assert image.size[0] >= 4 * 48 and image.size[1] >= 2 * 48
        top = TITLE_HEIGHT + 4
        tile = np.asarray(image)[top : top + 48, 4 : 4 + 48]
        transform = hfr.ReinforcedTransform.from_pretrained(tmp_path / "plus", dataset=plus)
        expected = transform.replay(plus[3], 0).permute(1, 2, 0).numpy()
        assert np.array_equal(tile, expected)  # the first tile is the exact replay of augmentation 0
    with pytest.raises(IndexError, match="out of range"):
        hfr.show(plus, row=99, output=tmp_path / "x.png")


def test_grid_captions_are_drawn():
    tiles = [torch.full((3, 32, 32), 200, dtype=torch.uint8)] * 2
    blank = render_grid(tiles, [[], []])
    captioned = render_grid(tiles, [["flower 0.91", "temple 0.05"], ["x 1.00"]])
    assert blank.size == captioned.size
    assert np.asarray(captioned).min() < np.asarray(blank).min()  # black caption text appears


def test_show_takes_a_loaded_dataset_with_its_config_and_titles_the_row(tmp_path):
    config = tiny_config(num_augmentations=4)
    hfr.reinforce(mnist_dataset(16), config, tmp_path / "plus", progress=False)
    loaded = hfr.load_reinforced(tmp_path / "plus", split="train")  # plain parquet: no record attached
    with pytest.raises(ConfigError, match="record=<its folder or repo id>"):
        hfr.show(loaded, row=2, output=tmp_path / "x.png")
    record = hfr.load_record(tmp_path / "plus")
    for given in (tmp_path / "plus", str(tmp_path / "plus"), record):
        path = hfr.show(loaded, row=2, output=tmp_path / "grid.png", num=4, resolution=96, record=given)
        assert PIL.Image.open(path).size[1] > TITLE_HEIGHT + 96
    label = loaded[2]["label"]
    assert title(2, loaded[2], record) == f"row 2 (row_index 2) · label {label}"  # digit names say no more than ids


def test_captions_name_classes_only_where_names_say_more_than_ids():
    digits = [str(d) for d in range(10)]
    assert _caption([3, 7], [0.91, 0.05], digits) == ["3 (0.91)", "7 (0.05)"]  # not the ambiguous "3 3" / "3: 3"
    assert _caption([1, 0], [0.6, 0.4], ["temple", "flower"]) == ["flower (0.60)", "temple (0.40)"]
    assert class_label(5, None) == "5" and class_label(12, digits) == "12"
    photos = hfr.RunRecord.from_dict({**_record().to_dict(), "class_names": ["temple", "flower"], "num_classes": 2})
    assert title(0, {"row_index": 4, "label": 1}, photos) == "row 0 (row_index 4) · label 1 (flower)"


def _record() -> hfr.RunRecord:
    from hf_reinforce.testing import run_record

    return run_record(num_classes=2)
