"""Package surface: plain re-exports, training code free of teacher libraries, real types for static checkers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def test_training_api_imports_neither_timm_transformers_nor_accelerate():
    code = (
        "import sys, hf_reinforce as hfr\n"
        "hfr.ReinforcedTransform, hfr.distillation_loss, hfr.DistillationCollator, hfr.load_reinforced\n"
        "loaded = [m for m in ('timm', 'transformers', 'accelerate') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_modules_are_plain_modules_and_functions_plain_functions():
    code = (
        "import inspect, hf_reinforce as hfr\n"
        "import hf_reinforce.engine.run as runner, hf_reinforce.engine.estimation as estimation, hf_reinforce.diagnostics.show as vis\n"
        "assert hfr.reinforce is runner.reinforce and hfr.estimate is estimation.estimate and hfr.show is vis.show\n"
        "assert all(inspect.isfunction(f) for f in (hfr.reinforce, hfr.estimate, hfr.show))\n"
        "assert type(hfr) is type(inspect), type(hfr)\n"
        "assert set(hfr.__all__) <= set(dir(hfr)) | {'DistillationCallback', 'DistillationLoss', 'DistillationTrainer', 'TimmStudent'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_keep_their_builtin_bases():
    import hf_reinforce as hfr

    for error in (hfr.ConfigError, hfr.MissingColumnError, hfr.BadImageError, hfr.SchemaVersionError):
        assert issubclass(error, hfr.ReinforceError) and issubclass(error, ValueError)
    assert issubclass(hfr.NotFoundError, FileNotFoundError) and issubclass(hfr.IncompleteOutputError, RuntimeError)


def test_mypy_sees_real_types_in_a_user_script(tmp_path):
    pytest.importorskip("mypy")
    script = tmp_path / "user.py"
    script.write_text(
        textwrap.dedent(
            """
            import hf_reinforce as hfr

            config = hfr.ReinforceConfig(teachers=["timm:resnet18"], num_augmentations=4)
            reveal_type(config)
            reveal_type(hfr.reinforce)
            n: str = config.num_augmentations
            """
        )
    )
    ini = tmp_path / "mypy.ini"  # follow hf_reinforce's own annotations; skip the big libraries (minutes otherwise)
    skipped = ",".join(
        f"{m}.*" for m in ("torch", "torchvision", "datasets", "transformers", "timm", "numpy", "pyarrow")
    )
    ini.write_text(
        f"[mypy]\nfollow_imports = silent\nignore_missing_imports = True\n[mypy-{skipped}]\nfollow_imports = skip\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", str(ini), str(script)],
        capture_output=True,
        text=True,
    )
    out = result.stdout
    assert 'Revealed type is "hf_reinforce.config.ReinforceConfig"' in out, out
    assert "config: hf_reinforce.config.ReinforceConfig" in out, out
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in out, out


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

    from hf_reinforce import _version

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version, "version", not_installed)
    assert _version._version() == _pyproject_version()


def _internal_imports() -> dict[str, set[tuple[str, str]]]:
    """module → {(imported module, imported name)} for every relative import inside the package."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "hf_reinforce"
    out: dict[str, set[tuple[str, str]]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1])
        edges = out.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                edges.update((target, alias.name) for alias in node.names)
    return out


def test_imports_point_down_without_cycles_or_private_names():
    imports = _internal_imports()
    private = [
        (m, t, n)
        for m, edges in imports.items()
        for t, n in edges
        if n.startswith("_")
        and n != "__version__"
        and not (f"{t}.{n}" in imports and m.startswith(f"{t}."))  # a private module, imported inside its package
    ]
    assert not private, f"modules import another module's private names: {private}"
    graph = {m: {t if t in imports else f"{t}.{n}" for t, n in edges} & set(imports) for m, edges in imports.items()}
    packages = {"hf_reinforce", "hf_reinforce.augment", "hf_reinforce.distill"}
    graph = {m: {t for t in ts if not (t in packages and m.startswith(t))} for m, ts in graph.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(t == goal or (t not in seen and not seen.add(t) and reaches(t, goal, seen)) for t in graph[start])

    cycles = sorted(m for m in graph if m not in packages and reaches(m, m, set()))
    assert not cycles, f"modules in an import cycle: {cycles}"
