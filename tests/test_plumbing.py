"""The ecosystem's plumbing: logging under ``hf_reinforce`` in the main process only, progress bars that honour the
switches of ``datasets`` and ``huggingface_hub``, optional ``transformers``, every public error exported, images
given as Hub paths decoded as ``datasets.Image`` decodes them."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import datasets
import PIL.Image
import pytest
import torch

import hf_reinforce as hfr
from hf_reinforce import errors, testing
from hf_reinforce.distributed import get_logger
from hf_reinforce.progress import views_bar


def test_every_public_error_class_is_exported():
    assert set(errors.__all__) <= set(hfr.__all__)
    assert all(getattr(hfr, name) is getattr(errors, name) for name in errors.__all__)


def test_logs_are_under_hf_reinforce_and_only_from_the_main_process(caplog, monkeypatch):
    from hf_reinforce import distributed

    logger = get_logger("hf_reinforce.engine.run")
    with caplog.at_level(logging.INFO, logger="hf_reinforce"):
        logger.info("from the main process")
        monkeypatch.setattr(distributed, "is_main_process", lambda: False)
        logger.info("from another process")
        logger.info("from every process", main_process_only=False)
    assert [r.getMessage() for r in caplog.records] == ["from the main process", "from every process"]
    assert {r.name for r in caplog.records} == {"hf_reinforce.engine.run"}


@pytest.mark.parametrize(("rank", "main"), [("0", "True"), ("1", "False")])
def test_before_accelerate_is_set_up_the_launchers_rank_says_which_process_is_main(rank, main):
    code = "from hf_reinforce.distributed import is_main_process; print(is_main_process())"
    env = {**os.environ, "RANK": rank}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == f"{main}\n"


def test_the_views_bar_honours_the_libraries_progress_switches():
    import huggingface_hub.utils

    assert not views_bar(10, "reinforce", enabled=True).disable
    assert views_bar(10, "reinforce", enabled=False).disable
    for library in (datasets, huggingface_hub.utils):
        library.disable_progress_bars()
        try:
            assert views_bar(10, "reinforce", enabled=True).disable
        finally:
            library.enable_progress_bars()


@pytest.mark.parametrize("variable", ["HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"])
def test_the_views_bar_honours_the_libraries_environment_switches(variable):
    code = "from hf_reinforce.progress import views_bar; print(views_bar(10, 'x', enabled=True).disable)"
    env = {**os.environ, variable: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "True\n"


def test_without_transformers_the_trainer_and_hf_teachers_name_the_extra():
    code = (
        "import sys; sys.modules['transformers'] = None\n"  # as if it were not installed
        "import hf_reinforce as hfr\n"
        "try:\n"
        "    hfr.DistillationTrainer\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "try:\n"
        "    hfr.load_teacher('hf:some/model')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "hfr.ReinforcedTransform, hfr.distillation_loss, hfr.DistillationCollator\n"  # training without it works
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2 and all("pip install 'hf-reinforce[transformers]'" in line for line in lines), out
    assert "hf_reinforce.DistillationTrainer" in lines[0] and "'hf:some/model'" in lines[1]


def test_images_given_as_hub_paths_decode_like_datasets_image(hub_server, photos):
    from huggingface_hub import HfApi

    repo_id = hub_server.repo_id("pictures")
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset")
    picture = PIL.Image.fromarray(photos[0].permute(1, 2, 0).numpy()[:40, :56])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    api.upload_file(path_or_fileobj=buffer.getvalue(), path_in_repo="a.png", repo_id=repo_id, repo_type="dataset")
    remote = f"hf://datasets/{repo_id}/a.png"
    expected = hfr.to_rgb_uint8(buffer.getvalue())
    assert torch.equal(hfr.to_rgb_uint8(remote), expected)
    assert torch.equal(hfr.to_rgb_uint8({"path": remote, "bytes": None}), expected)


def test_a_record_and_its_card_are_written_together_under_the_folder_lock(tmp_path):
    from huggingface_hub import DatasetCard

    from hf_reinforce.hub.card import write_record
    from hf_reinforce.storage.locks import folder_lock

    folder = tmp_path / "plus"
    hfr.save_folder(hfr.reinforce(testing.mnist_dataset(4), testing.tiny_config(num_workers=0), progress=False), folder)
    record = hfr.load_record(folder).replace(license="mit")
    with folder_lock(folder):  # the writer takes the lock again: re-entrant in one thread
        write_record(folder, record)
    assert hfr.load_record(folder).license == "mit"
    assert DatasetCard.load(folder / "README.md").data.to_dict()["license"] == "mit"
