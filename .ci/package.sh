#!/usr/bin/env bash
# Build the sdist and the wheel the way a release would (PEP 517, isolated), check their metadata with twine, and
# check the wheel holds every subpackage, the card template and py.typed. Build tools live in a throw-away venv, so
# the environment the tests ran in is not touched. Usage: .ci/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv="${PACKAGE_VENV:-${TMPDIR:-/tmp}/hf-reinforce-package}"
dist=$(mktemp -d)
python -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q build twine
"$venv/bin/python" -m build --sdist --wheel --outdir "$dist" . > "$dist/build.log" || { cat "$dist/build.log"; exit 1; }
"$venv/bin/twine" check --strict "$dist"/*.whl "$dist"/*.tar.gz
python - "$dist" <<'PY'
import pathlib, sys, zipfile

wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
names = set(zipfile.ZipFile(wheel).namelist())
packages = sorted(str(p.parent) for p in pathlib.Path("hf_reinforce").rglob("__init__.py"))
required = [f"{p}/__init__.py" for p in packages] + ["hf_reinforce/py.typed", "hf_reinforce/hub/templates/reinforced_dataset_card.md"]
missing = [name for name in required if name not in names]
if missing:
    sys.exit(f"{wheel.name} lacks {missing}")
print(f"{wheel.name}: {len(packages)} packages, template and py.typed present")
PY
