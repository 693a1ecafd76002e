"""Package surface: lazy imports (training code never loads teacher code) and functions named like modules."""

from __future__ import annotations

import subprocess
import sys


def test_training_imports_do_not_load_teacher_code():
    code = (
        "import sys, hf_reinforce, hf_reinforce.distill\n"
        "hf_reinforce.ReinforcedTransform, hf_reinforce.distillation_loss\n"
        "loaded = [m for m in ('hf_reinforce.teachers', 'hf_reinforce.reinforce', 'timm', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_functions_named_like_their_modules_stay_functions():
    code = (
        "import inspect, hf_reinforce as hfr, hf_reinforce.reinforce, hf_reinforce.estimate, hf_reinforce.show\n"
        "from hf_reinforce import reinforce, estimate, show\n"
        "assert all(inspect.isfunction(f) for f in (hfr.reinforce, hfr.estimate, hfr.show, reinforce, estimate, show))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _pyproject_version() -> str:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    return re.search(r'(?m)^version\s*=\s*"([^"]+)"', text).group(1)


def test_version_comes_from_the_distribution_metadata():
    from importlib.metadata import version

    import hf_reinforce

    assert hf_reinforce.__version__ == version("hf-reinforce") == _pyproject_version()


def test_version_of_an_uninstalled_source_tree_is_read_from_pyproject(monkeypatch):
    import importlib.metadata

    import hf_reinforce

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert hf_reinforce._version() == _pyproject_version()
