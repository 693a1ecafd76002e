#!/usr/bin/env bash
# The declared minimum versions: install each `>=` floor of pyproject.toml's dependencies exactly (`==floor`) into
# a throw-away venv that sees the main environment (--system-site-packages: torch/torchvision, numpy and the test
# tools come from there, other torch builds are multi-GB downloads), then run the fast tests against this source
# tree. The main environment is not touched. Usage: .ci/min_versions.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv="${MIN_VERSIONS_VENV:-${TMPDIR:-/tmp}/hf-reinforce-min-versions}"
# The floors, read from pyproject.toml (their only home): the highest `>=` of the dependencies and the `test` extra
# (the tests need a few newer things than the library, e.g. timm's tiny `test_*` models).
pins=$(python - <<'PY'
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
checked = {"datasets", "transformers", "timm", "accelerate", "huggingface_hub", "pyarrow", "filelock", "mpmath"}
floors = {}
for dep in project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]:
    found = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep)
    if found and found[1] in checked:
        floors[found[1]] = max(floors.get(found[1], found[2]), found[2], key=lambda v: tuple(map(int, v.split("."))))
print(" ".join(f"{name}=={floor}" for name, floor in sorted(floors.items())))
PY
)
# transformers 5.0 does not depend on kernels but uses it when installed, without the revision that kernels >= 0.15.2
# requires; the main environment's newer transformers brings kernels 0.19, which the venv would see.
pins="$pins kernels<0.15"
echo "minimum versions: $(echo $pins)"
python -m venv --clear --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q $pins
"$venv/bin/python" -m pip check  # the floors must satisfy each other and everything the venv sees
# PYTHONPATH: this source tree, also for the subprocesses the tests start (torchrun, the CLI).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ["datasets", "transformers", "timm", "accelerate", "huggingface_hub", "pyarrow", "mpmath", "torch", "torchvision"]:
    print(f"  {name} {md.version(name)}")
PY
# Deselected: a test of the local Hub server itself whose client call (DatasetCard.push_to_hub) validates the card
# at a hard-coded https://huggingface.co in huggingface_hub < 2.2; the library never calls it (it commits cards).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" \
    --deselect tests/hub/test_hub_server.py::test_dataset_card_push_and_load "$@"
