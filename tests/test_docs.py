"""Every example of the documentation runs as written, offline: the ``python`` and ``bash`` blocks of README.md,
CONTRIBUTING.md and docs/**/*.md, page by page (``tests/docs_examples.py`` says how a block is read and run).

Pages that use the Hub run against the local Hub server, which serves small stand-ins under the ids the pages use:
``user/imagenette`` (a 32 + 16 row dataset with Imagenette's class names), ``timm/resnet50.a1_in1k`` and
``microsoft/resnet-50`` (tiny models with 1,000 outputs, like the real ones), and ``user/imagenette-plus`` (that
dataset reinforced as the tutorial does, with 4 augmentations). Examples act as the Hub user ``user``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_examples import LANGUAGES, Block, blocks

import hf_reinforce as hfr

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "CONTRIBUTING.md"] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md") if "generated" not in p.relative_to(ROOT).parts
)
EXAMPLE_PAGES = [page for page in PAGES if any(b.runs for b in blocks(ROOT / page, ROOT))]
USER_TOKEN = "hf_docs_user_token"
OWNERS = {"user": USER_TOKEN, "timm": "hf_docs_timm_token", "microsoft": "hf_docs_microsoft_token"}
IMAGENETTE_CLASSES = [
    "tench",
    "English springer",
    "cassette player",
    "chain saw",
    "church",
    "French horn",
    "garbage truck",
    "gas pump",
    "golf ball",
    "parachute",
]
IMAGENET_INDEX = [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]
STAND_IN_RESOLUTION = 64
"""The stand-in teachers' input size (the real ones take 224 px): small, so that the pages run in seconds."""


# -- the Hub the pages see -----------------------------------------------------------------------------------------


def _timm_stand_in(folder: Path) -> None:
    """A tiny timm model with 1,000 outputs, saved as timm pushes a model (``config.json`` + safetensors)."""
    from timm.models._hub import save_for_hf  # exported as timm.models.save_for_hf only in recent timm

    from hf_reinforce import testing

    save_for_hf(testing.tiny_timm("test_resnet", 1000, seed=0), folder, safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"]["input_size"] = [3, STAND_IN_RESOLUTION, STAND_IN_RESOLUTION]
    (folder / "config.json").write_text(json.dumps(config))


def _transformers_stand_in(folder: Path) -> None:
    """A tiny transformers ResNet with 1,000 labels and its image processor."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=1000)
    transformers.ResNetForImageClassification(config).save_pretrained(folder)
    size = STAND_IN_RESOLUTION
    processor = transformers.BitImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True
    )
    processor.save_pretrained(folder)


def _imagenette_stand_in():
    """48 real MNIST digits at 64 px under Imagenette's class names: 32 train, 16 validation rows."""
    import datasets

    from hf_reinforce import testing

    rows = testing.mnist_dataset(48, size=STAND_IN_RESOLUTION)
    rows = rows.cast_column("label", datasets.ClassLabel(names=IMAGENETTE_CLASSES))
    return datasets.DatasetDict({"train": rows.select(range(32)), "validation": rows.select(range(32, 48))})


@pytest.fixture(scope="session")
def docs_hub(hub_server, tmp_path_factory: pytest.TempPathFactory):
    """The local Hub with the accounts and stand-ins the pages use (built once per test session)."""
    for owner, token in OWNERS.items():
        hub_server.state.tokens[token] = owner
    folder = tmp_path_factory.mktemp("stand-ins")
    for repo_id, make in (("timm/resnet50.a1_in1k", _timm_stand_in), ("microsoft/resnet-50", _transformers_stand_in)):
        make(folder / repo_id)
        api = hub_server.api(OWNERS[repo_id.split("/")[0]])
        api.create_repo(repo_id)
        api.upload_folder(repo_id=repo_id, folder_path=folder / repo_id)
    imagenette = _imagenette_stand_in()
    imagenette.push_to_hub("user/imagenette", token=USER_TOKEN)
    teachers = ["timm/resnet50.a1_in1k", "hf:microsoft/resnet-50"]
    config = hfr.ReinforceConfig(
        teachers=teachers,
        class_mappings={teacher: IMAGENET_INDEX for teacher in teachers},
        policy="rrc+ra+re",
        num_augmentations=4,
        top_k=10,
    )
    hfr.reinforce(imagenette["train"], config, folder / "imagenette-plus", progress=False)
    hfr.push_to_hub(folder / "imagenette-plus", "user/imagenette-plus", token=USER_TOKEN)
    return hub_server


@contextlib.contextmanager
def own_repos(hub) -> Iterator[None]:
    """Delete the Hub repos a page made when it is done, so that pages do not see each other's."""
    before = set(hub.state.repos)
    try:
        yield
    finally:
        for repo_type, repo_id in set(hub.state.repos) - before:
            hub.api(OWNERS[repo_id.split("/")[0]]).delete_repo(repo_id, repo_type=repo_type)


# -- running a page ------------------------------------------------------------------------------------------------


def _environment(folder: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "HF_TOKEN": USER_TOKEN,
        "PYTHONPATH": path,  # this source tree, in every process a page starts
        "DOCS_REPOSITORY": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "HF_DATASETS_CACHE": str(folder / ".datasets-cache"),
        "TQDM_DISABLE": "1",
    }


def _run_python(code: str, block: Block, namespace: dict) -> str:
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(code, block.where, "exec"), namespace)  # noqa: S102 - running the page's example is the test
    except Exception:
        pytest.fail(f"{block.where} failed:\n{traceback.format_exc()}\n--- output\n{output.getvalue()}")
    return output.getvalue()


def _run_bash(code: str, block: Block, folder: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{block.where} exited with {result.returncode}:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result.stdout + result.stderr


def run_block(block: Block, namespace: dict, folder: Path, env: dict[str, str]) -> None:
    """Run one block of a page (its directives applied) in the page's folder."""
    code = block.code_to_run()
    if block.file is not None:
        (folder / block.file).write_text(code)
        return
    language = LANGUAGES[block.language]
    output = ""
    for before in block.before:
        output += (
            _run_python(before, block, namespace) if language == "python" else _run_bash(before, block, folder, env)
        )
    output += _run_python(code, block, namespace) if language == "python" else _run_bash(code, block, folder, env)
    for pattern in block.expect:
        assert re.search(pattern, output), f"{block.where}: output does not match {pattern!r}:\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_examples_run(page: str, docs_hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request) -> None:
    env = _environment(tmp_path)
    if page == "CONTRIBUTING.md":  # its `mkdocs build --strict` is the site the browser test builds once
        env["DOCS_SITE"] = str(request.getfixturevalue("built_site"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", USER_TOKEN)
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    namespace: dict = {"__name__": "__main__"}
    with own_repos(docs_hub):
        for block in blocks(ROOT / page, ROOT):
            if block.runs:
                run_block(block, namespace, tmp_path, env)


# -- what the pages say about themselves ---------------------------------------------------------------------------


def test_every_page_is_read_and_its_directives_parse() -> None:
    found = {page: blocks(ROOT / page, ROOT) for page in PAGES}
    assert "README.md" in EXAMPLE_PAGES and len(EXAMPLE_PAGES) >= 15
    for page_blocks in found.values():
        for block in page_blocks:
            if block.runs and block.run_as is None:
                block.code_to_run()  # every replace: occurs in its block


def test_pages_that_substitute_say_so_where_a_reader_sees_it() -> None:
    """A page whose examples run against substitutes tells the reader (an admonition or a sentence), not only the
    HTML comment the suite reads."""
    for page in PAGES:
        page_blocks = blocks(ROOT / page, ROOT)
        if any(b.run_as is not None or b.replace or b.before for b in page_blocks):
            text = (ROOT / page).read_text()
            assert re.search(r"test suite runs|CI runs", text), f"{page} substitutes examples without saying so"


def test_the_readme_starts_with_the_commands_ci_keeps_true() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    first_block = next(b for b in blocks(ROOT / "README.md", ROOT) if b.runs)
    assert first_block.line < 12, "the set-up commands come first"
    commands = [line for line in first_block.code.splitlines() if line and not line.startswith("#")]
    assert commands == [
        'python -m pip install -e ".[demo]" && python scripts/quickstart.py',
        'python -m pip install -e ".[test]" && python -m pytest -q',
    ]
    assert commands[1] in ci.splitlines()
    assert len(readme) <= 250, "the README is a landing page; the documentation is in docs/"


def test_the_api_reference_lists_every_public_name() -> None:
    documented = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: hf_reinforce\.(\w+)$", page.read_text(), re.MULTILINE))
    documented.discard("testing")  # the helpers module, imported explicitly, is a page of its own
    assert documented == set(hfr.__all__) == {"__version__", *hfr.EXPORTS}


def test_the_documents_speak_about_the_product_only() -> None:
    words = re.compile(r"this session|issue [0-9]+|was lent|commit [0-9a-f]{7}\b", re.IGNORECASE)
    paths = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
    for folder in ("docs", "hf_reinforce", "scripts", "tests"):
        paths += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".md", ".py") and p != Path(__file__)]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in paths for m in words.finditer(p.read_text())]
    assert not found
