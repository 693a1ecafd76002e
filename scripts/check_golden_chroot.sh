#!/usr/bin/env bash
# Render the golden view set (tests/golden_views.py) inside a chroot of another architecture and compare it with the
# committed hashes: the check behind docs/exact-replay.md, "Checked elsewhere". Not part of CI.
#
#   scripts/check_golden_chroot.sh CHROOT [SITE]
#
# CHROOT: a root file system (e.g. `debootstrap --arch=arm64 bookworm CHROOT`, run through qemu-user-static and
# binfmt_misc) with python3 of the host's minor version; SITE (default /opt/site, inside the chroot): where torch,
# torchvision, numpy, pillow and mpmath for that architecture are installed (e.g. on the host:
# `pip install --no-deps --target CHROOT/opt/site --platform manylinux_2_28_aarch64 --only-binary=:all: WHEELS`).
# torch reads /proc/cpuinfo and /sys/devices/system/cpu: give the chroot files that look like its architecture.
#
# The host exports what the golden set renders from: the package's augment/ code and the two modules it imports
# (_version, deprecation), the scikit-learn sample JPEGs (decoded again inside the chroot, by its Pillow) and the
# MNIST and 8x8 digit arrays (raw data); a stub hf_reinforce/testing.py serves them, so the chroot needs none of the
# library's other dependencies.
set -euo pipefail
chroot_dir=$1
site=${2:-/opt/site}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$chroot_dir/opt/golden
rm -rf "$work" && mkdir -p "$work/hf_reinforce" "$work/tests/golden" "$work/data"
cp -r "$repo/hf_reinforce/augment" "$repo/hf_reinforce/_version.py" "$repo/hf_reinforce/deprecation.py" "$work/hf_reinforce/"
cp "$repo/pyproject.toml" "$work/"
cp "$repo/tests/golden_views.py" "$work/tests/"
cp "$repo/tests/golden/render_views.json" "$work/tests/golden/"
: > "$work/hf_reinforce/__init__.py"
PYTHONPATH="$repo" python - "$work/data" <<'PY'
import shutil, sys
from importlib import resources

import numpy as np

from hf_reinforce import testing

out = sys.argv[1]
for path in sorted(p for p in resources.files("sklearn.datasets.images").iterdir() if p.name.endswith(".jpg")):
    shutil.copy(path, f"{out}/{path.name}")
np.save(f"{out}/mnist.npy", testing.mnist_arrays()[0])
np.save(f"{out}/digits.npy", testing.digits_arrays()[0])
PY
cat > "$work/hf_reinforce/testing.py" <<'PY'
"""Stub of hf_reinforce.testing for the golden set: the same arrays, from files the host exported."""
from pathlib import Path

import numpy as np
import PIL.Image
import torch

DATA = Path(__file__).resolve().parents[1] / "data"


def photo_arrays():
    return [np.asarray(PIL.Image.open(path)).copy() for path in sorted(DATA.glob("*.jpg"))]


def photo_tensors():
    return [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in photo_arrays()]


def mnist_arrays():
    return np.load(DATA / "mnist.npy"), None


def digits_arrays():
    return np.load(DATA / "digits.npy"), None
PY
chroot "$chroot_dir" /usr/bin/env PYTHONPATH="$site" OMP_NUM_THREADS=1 \
    python3 -c "import platform, torch; print(platform.machine(), torch.backends.cpu.get_cpu_capability())"
chroot "$chroot_dir" /usr/bin/env PYTHONPATH="$site" OMP_NUM_THREADS=1 python3 /opt/golden/tests/golden_views.py --check
