"""``show``: a PNG grid of a row's replayed augmentations with top-3 captions."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Dataset

import hf_reinforce as hfr
from hf_reinforce.testing import photos_dataset
from hf_reinforce.visualize import render_grid


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
        tile = np.asarray(image)[4 : 4 + 48, 4 : 4 + 48]
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
