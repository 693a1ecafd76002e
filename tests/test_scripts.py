"""The example scripts run end to end: quickstart (quick mode), train_student on its output, bench_train,
bench_loader and bench_augment (tiny)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
pytestmark = pytest.mark.slow


def _run(script: str, *args: str, cwd: Path, timeout: int = 240) -> str:
    # One thread per process: on a small shared machine, oversubscribed cores make tiny ops crawl.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPTS / script), *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``quickstart.py --quick`` run once in a fresh directory with its default output folder."""
    cwd = tmp_path_factory.mktemp("quickstart")
    return cwd, _run("quickstart.py", "--quick", cwd=cwd)


def test_quickstart_writes_folder_card_png_and_table(quickstart: tuple[Path, str]) -> None:
    cwd, out = quickstart
    folder = cwd / "out" / "quickstart" / "mnist-plus"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert "hf_reinforce:" in (folder / "README.md").read_text()
    config = json.loads((folder / "reinforce_config.json").read_text())
    assert (config["num_augmentations"], config["top_k"], config["num_classes"]) == (4, 3, 10)
    assert [t["id"] for t in config["teachers"]] == ["test_resnet", "test_byobnet"]
    assert all(t["weights"].endswith(".safetensors") and t["resolution"] == 32 for t in config["teachers"])
    png = cwd / "out" / "quickstart" / "mnist-plus-augmentations.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(folder.resolve()) in out and str(png.resolve()) in out

    students = [line for line in out.splitlines() if line.startswith("| student")]
    assert [re.search(r"\((\w+)\)", line).group(1) for line in students] == ["a1", "a2", "b", "c"]
    assert all(re.search(r"\| \d+\.\d% \| \d+ s \|$", line) for line in students)
    assert sum(line.startswith("| teacher") for line in out.splitlines()) == 2
    assert "| ensemble of 2 |" in out and "| reinforcement pass |" in out


def test_train_student_on_the_quickstart_folder(quickstart: tuple[Path, str]) -> None:
    cwd, _ = quickstart
    out = _run(
        "train_student.py",
        "--dataset",
        "out/quickstart/mnist-plus",
        "--student",
        "test_convnext",
        "--epochs",
        "1",
        "--resolution",
        "48",
        "--batch-size",
        "32",
        "--num-workers",
        "0",
        "--ce-weight",
        "0.1",
        "--eval-dataset",
        "out/quickstart/mnist-plus-source",
        "--save",
        "student.safetensors",
        "--baselines",
        "crop",
        cwd=cwd,
    )
    assert re.search(r"\| plain: CE, crop on the fly \| \d+\.\d % \|", out)
    assert re.search(r"\| reinforced: KD from the stored top-3 \(.+\) \| \d+\.\d % \|", out)
    assert re.search(r"epoch 1/1: loss \d+\.\d+", out)
    assert re.search(r"test accuracy: \d\.\d+", out)
    assert (cwd / "student.safetensors").stat().st_size > 0


def test_bench_train_prints_the_ratios(tmp_path: Path) -> None:
    out = _run(
        "bench_train.py",
        "--student",
        "test_vit",
        "--teachers",
        "test_vit",
        "--resolution",
        "32",
        "--batch-size",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--repeats",
        "1",
        "--num-workers",
        "0",
        "--threads",
        "1",
        "--num-augmentations",
        "2",
        cwd=tmp_path,
    )
    assert re.search(r"step_time\(b\)/step_time\(a\) = \d+\.\d+", out)
    assert re.search(r"step_time\(c\)/step_time\(a\) = \d+\.\d+", out)
    assert sum(line.startswith("| (") for line in out.splitlines()) == 3


def test_bench_loader_prints_a_row_per_path_and_per_step(tmp_path: Path) -> None:
    out = _run(
        "bench_loader.py",
        *("--sizes", "32", "--n", "4", "--rows", "16", "32", "--epochs", "1", "--repeats", "1"),
        *("--paths", "apply", "streaming", "DistillationTrainer"),
        cwd=tmp_path,
    )
    for path in ("plain timm", "apply", "streaming", "plain timm, Trainer", "DistillationTrainer"):
        assert re.search(
            rf"\| 32 px \| 4 \| {path} \| \d+ \| \d\.\d\dx \| \d+ \| \d\.\d+ \| \d\.\d\dx \| \d+ \|", out
        ), path
    steps = _run("bench_loader.py", *("--steps", "--sizes", "32", "--rows", "16", "32", "--repeats", "1"), cwd=tmp_path)
    assert re.search(r"\| decoding the picture \(Pillow\) \| \d\.\d{3} \| \d\.\d{3} \|", steps)
    assert re.search(r"\| reading the row \(the chosen augmentation only\) \| \d\.\d{3} \| — \|", steps)


def test_bench_loader_end_to_end_trains_on_both_kinds_of_data(tmp_path: Path) -> None:
    """The GPU benchmark's training loop, on the CPU with timm's smallest test model: each mode trains and is timed."""
    out = _run(
        "bench_loader.py",
        *("--end-to-end", "--model", "test_resnet", "--rows", "16", "16", "--n", "4", "--batch-size", "8"),
        *("--workers", "1", "--epochs", "1", "--repeats", "1"),
        cwd=tmp_path,
    )
    assert re.search(r"\| plain timm \| \d+ \| 1\.00x \| \d+ \|", out)
    assert re.search(r"\| reinforced \| \d+ \| \d+\.\d\dx \| \d+ \|", out)
    assert "test_resnet at 224 px on CPU, batches of 8, DataLoader workers: 1, N=4" in out


def test_bench_storage_layouts_prints_a_row_per_layout(tmp_path: Path) -> None:
    out = _run(
        "bench_storage.py", *("--layouts", "--rows", "4", "--augmentations", "8", "--repeats", "1"), cwd=tmp_path
    )
    for layout in (r"typed N × \.\.\. lists \(the format\)", "one flat list per row", "one binary value per row"):
        assert re.search(rf"\| {layout} \| \d+\.\d\d \| \d\.\d{{3}} \|", out), layout


def test_bench_augment_prints_a_row_per_preset_and_op(tmp_path: Path) -> None:
    out = _run(
        "bench_augment.py",
        *("--rows", "2", "--augmentations", "2", "--repeats", "1", "--presets", "rrc+mix+ra+re", "crop"),
        cwd=tmp_path,
    )
    assert re.search(r"\| rrc\+mix\+ra\+re \| 32 \| \d\.\d{3} \| \d\.\d{3} \| — \|", out)
    assert re.search(r"\| crop \| 224 \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \|", out)
    ops = _run("bench_augment.py", "--ops", "--repeats", "1", cwd=tmp_path)
    assert re.search(r"\| Sharpness \| 32 \| \d\.\d{3} \| \d\.\d{3} \| \d+\.\d\d× \| fast \|", ops)


def test_sweep_quality_quick_writes_its_table(tmp_path: Path) -> None:
    out = _run(
        "sweep_quality.py", "--quick", "--datasets", "digits", "--output-dir", str(tmp_path / "sweep"), cwd=tmp_path
    )
    assert "| digits |" in out and "reinforced rrc(0.35)" in out
    assert "| crop 5x | reinforced crop" in out  # the teacher-strength axis (tier 4)
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert results["results"] and all(0.0 <= r["accuracy"] <= 1.0 for r in results["results"])
