"""The reinforcement report: the ensemble on stored views against the un-augmented images, per split, in the run
record, the card, the CLI, ``estimate`` and ``show --lowest-agreement``; real MNIST with a teacher that knows it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hf_reinforce as hfr
from hf_reinforce import testing
from hf_reinforce.cli import main
from hf_reinforce.diagnostics.show import lowest_agreement_views
from hf_reinforce.errors import ConfigError
from hf_reinforce.storage.format import read_columns
from hf_reinforce.storage.record import SplitRecord
from hf_reinforce.storage.report import ReportSums, SplitReport, block_sums, topk_entropy

DESTRUCTIVE = {"ops": [{"op": "rrc", "scale": [0.01, 0.02]}]}
"""Crops of 1–2 % of the digit: a teacher that knows MNIST recognizes almost none of them."""
ROWS = range(1000, 1096)  # held out from the teacher's 1,000 training digits


@pytest.fixture(scope="module")
def digits():
    return testing.mnist_dataset(len(ROWS), start=ROWS.start)


def config(policy, **fields) -> hfr.ReinforceConfig:
    base = {"num_augmentations": 4, "top_k": 3, "resolution": 32, "rows_per_block": 16, "rows_per_shard": 32}
    return hfr.ReinforceConfig(teachers=[testing.trained_teacher()], policy=policy, **{**base, **fields})


@pytest.fixture(scope="module")
def destructive_folder(digits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "plus"
    hfr.reinforce(digits, config(DESTRUCTIVE), out, progress=False)
    return out


@settings(max_examples=60, deadline=None)
@given(
    classes=st.integers(2, 40),
    k=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    sharpness=st.floats(0.1, 20.0),
)
def test_entropy_is_that_of_the_top_k_as_the_loss_expands_it(classes, k, seed, sharpness):
    k = min(k, classes)
    logits = torch.randn(5, classes, generator=torch.Generator().manual_seed(seed)) * sharpness
    values, ids = torch.softmax(logits, 1).topk(k, dim=1)
    values = values.half()  # as stored
    full = hfr.expand_topk(ids, values, classes).double()
    expected = -(torch.xlogy(full, full)).sum(1).numpy()
    np.testing.assert_allclose(topk_entropy(values.float().numpy(), classes), expected, rtol=1e-5, atol=1e-6)


def test_block_sums_count_agreement_over_labelled_views_only():
    ids = np.array([[[3, 1], [1, 3]], [[2, 0], [2, 1]], [[0, 1], [0, 2]]])
    probs = np.array([[[0.9, 0.1], [0.6, 0.3]], [[0.5, 0.5], [1.0, 0.0]], [[0.7, 0.2], [0.4, 0.4]]])
    sums = block_sums(np.array([3, 2, -1]), ids, probs, num_classes=4)
    assert (sums.count, sums.labelled, sums.agree) == (6, 4, 3)
    figures = (sums + ReportSums()).figures()
    assert figures.agreement == 0.75 and figures.top1_probability == pytest.approx(
        (0.9 + 0.6 + 0.5 + 1 + 0.7 + 0.4) / 6
    )
    assert block_sums(None, ids, probs, 4).figures().agreement is None


def test_a_destructive_policy_shows_low_view_agreement_beside_high_original_agreement(digits, destructive_folder):
    report = hfr.load_record(destructive_folder).split("train").report
    assert report.originals.agreement > 0.8 and report.originals.count == len(digits)
    assert report.views.agreement < 0.3 and report.views.count == len(digits) * 4
    assert report.views.entropy > report.originals.entropy
    assert report.warning is not None and "destroy" in report.warning
    # the view figures are those of the stored top-k (the folder has several shards, summed at the end)
    stored = read_columns(hfr.load_reinforced(destructive_folder, split="train"), ["label", "topk_ids", "topk_probs"])
    again = block_sums(stored["label"], stored["topk_ids"], stored["topk_probs"].astype(np.float64), 10).figures()
    assert again == report.views


def test_the_in_process_run_reports_the_same_figures_as_the_folder(digits, destructive_folder):
    plus = hfr.reinforce(digits, config(DESTRUCTIVE), progress=False)
    assert hfr.record_from_dataset(plus).source.report == hfr.load_record(destructive_folder).split("train").report


def test_a_mild_policy_keeps_the_views_recognizable(digits):
    mild = {"ops": [{"op": "rrc", "scale": [0.9, 1.0], "ratio": [0.95, 1.05]}]}
    report = hfr.record_from_dataset(hfr.reinforce(digits, config(mild), progress=False)).source.report
    assert report.views.agreement > 0.7 and report.warning is None


def test_the_report_takes_each_rows_label_through_the_datasets_indices_mapping(digits):
    shuffled = digits.shuffle(seed=1)  # an indices mapping: row i is not the i-th row of the Arrow table
    mild = {"ops": [{"op": "rrc", "scale": [0.9, 1.0], "ratio": [0.95, 1.05]}]}
    plus = hfr.reinforce(shuffled, config(mild), progress=False)
    report = hfr.record_from_dataset(plus).source.report
    stored = read_columns(plus, ["label", "topk_ids", "topk_probs"])
    assert list(stored["label"]) == shuffled["label"]
    again = block_sums(stored["label"], stored["topk_ids"], stored["topk_probs"].astype(np.float64), 10).figures()
    assert again == report.views and report.views.agreement > 0.7  # labels of the table's order would agree ~10 %


def test_the_report_round_trips_through_the_record_json_and_is_in_the_card(destructive_folder):
    data = json.loads((destructive_folder / "reinforce_config.json").read_text())
    record = hfr.RunRecord.from_dict(data)
    assert record.to_dict() == data
    assert SplitReport.from_dict(data["splits"]["train"]["report"]) == record.split("train").report
    card = (destructive_folder / "README.md").read_text()
    views = record.split("train").report.views
    assert "## Reinforcement report" in card and f"{100 * views.agreement:.1f} %" in card


def test_a_malformed_report_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"splits\.train\.report"):
        SplitRecord.from_dict({"report": {"views": {}}}, "splits.train.")


def test_the_cli_prints_the_report_after_reinforce(digits, tmp_path):
    source = tmp_path / "mnist"
    digits.select(range(24)).save_to_disk(str(source))
    printed = io.StringIO()
    args = ["reinforce", str(source), "--teachers", "timm:test_resnet", "--num-augmentations", "2", "--top-k", "2"]
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--resolution", "32", "--output-dir", str(tmp_path / "plus"), "--no-progress"]) == 0
    text = printed.getvalue()
    assert "reinforcement report" in text
    assert "stored views (48)" in text and "originals    (24)" in text and "agreement" in text


def test_estimate_reports_on_its_calibration_rows(digits):
    result = hfr.estimate(digits, config(DESTRUCTIVE), calibration_rows=16, calibration_augmentations=4)
    assert result.report is not None and result.report.views.count == 64 and result.report.originals.count == 16
    assert result.report.views.agreement < 0.4 < result.report.originals.agreement
    assert "reinforcement report on the 16 calibration rows" in str(result)
    assert result.to_dict()["report"]["views"]["count"] == 64


def test_show_lowest_agreement_draws_the_views_least_like_their_label(destructive_folder, tmp_path):
    record = hfr.load_record(destructive_folder)
    dataset = hfr.load_reinforced(destructive_folder, split="train")
    picked = lowest_agreement_views(dataset, record, 6)
    assert len(picked) == 6 and [p for *_, p in picked] == sorted(p for *_, p in picked)
    table = read_columns(dataset, ["label", "topk_ids", "topk_probs"])
    for row, j, p in picked:
        ids, probs, label = table["topk_ids"][row, j], table["topk_probs"][row, j], table["label"][row]
        assert label not in ids[:1]
        expected = probs[list(ids).index(label)] if label in ids else max(0.0, 1 - probs.astype(float).sum()) / 7
        assert p == pytest.approx(float(expected), abs=1e-6)
    path = hfr.show(destructive_folder, lowest_agreement=6, output=tmp_path / "low.png")
    assert path.exists() and path.stat().st_size > 0
    assert main(["show", str(destructive_folder), "--lowest-agreement", "3", "--output", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").exists()
    with pytest.raises(ConfigError, match="lowest_agreement"):
        lowest_agreement_views(dataset, record, 0)
