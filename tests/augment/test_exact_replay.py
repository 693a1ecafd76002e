"""Rendered bytes do not depend on the CPU, and are pinned against library upgrades.

This process renders the golden view set of ``tests/golden_views.py`` (every preset at 32, 160 and 224 px, bilinear
and bicubic, on real photos and digits and odd sizes and modes, every RandAugment op at every magnitude bin and sign,
odd resolutions) under its own CPU capability, while one subprocess per other ``ATEN_CPU_CAPABILITY`` (torch's
scalar kernels, AVX2, AVX-512) renders it too. Each capability's hashes must equal this process's, and this
process's the committed ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import golden_views
import pytest
import torch

from hf_reinforce.augment import RENDER_KERNELS

CAPABILITIES = ("default", "avx2", "avx512")
HERE = torch.backends.cpu.get_cpu_capability().lower()
"""This process's capability: its own render stands for it."""
OTHERS = tuple(capability for capability in CAPABILITIES if capability != HERE)
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def renders() -> dict[str, dict]:
    """``"here"`` and each other capability asked for → the golden view set rendered in this process, and in a
    fresh process under that capability (all at once)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    script = [sys.executable, str(Path(golden_views.__file__))]
    running = {
        capability: subprocess.Popen(
            script,
            env={**env, "ATEN_CPU_CAPABILITY": capability},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for capability in OTHERS
    }
    out = {"here": {"environment": golden_views.environment(), "hashes": golden_views.render()}}
    for capability, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"rendering under ATEN_CPU_CAPABILITY={capability} failed:\n{stderr}"
        out[capability] = json.loads(stdout)
    return out


@pytest.mark.parametrize("capability", OTHERS)
def test_every_other_cpu_capability_renders_the_bytes_this_process_renders(renders, capability):
    rendered, here = renders[capability], renders["here"]
    ran = rendered["environment"]["cpu_capability"]
    if ran.lower() != capability:
        pytest.skip(f"this CPU lacks {capability}: under ATEN_CPU_CAPABILITY={capability} torch ran {ran}")
    changed = golden_views.differences(here["hashes"], rendered["hashes"])
    assert not changed, (
        f"{len(changed)} golden entries render other bytes under ATEN_CPU_CAPABILITY={capability} than in this "
        f"process ({here['environment']['cpu_capability']}): {changed[:12]}. A render kernel now depends on the "
        "CPU's instruction set (fused multiply-adds, reductions, vectorized float paths): students on other CPUs "
        "would not replay the teachers' pixels. See docs/exact-replay.md."
    )


def test_the_rendered_bytes_are_the_golden_ones(renders):
    golden = json.loads(golden_views.GOLDEN.read_text())
    here = renders["here"]
    changed = golden_views.differences(golden["hashes"], here["hashes"])
    assert not changed, (
        f"{len(changed)} of {len(golden['hashes'])} golden views changed: {changed[:12]}.\n"
        f"golden:  {golden['environment']}\nnow:     {here['environment']}\n"
        "Stored augmentations of existing datasets would no longer replay to the teachers' pixels. If a torch, "
        "torchvision, Pillow or numpy upgrade did this, pin the versions of the golden environment, or port the "
        "kernel so that it renders the old bytes. Refreshing the hashes (python tests/golden_views.py --write) "
        "is a format event: see docs/exact-replay.md, 'Golden hashes'."
    )


def test_the_golden_hashes_are_of_the_current_render_kernels():
    """Raising RENDER_KERNELS comes with hashes rendered by the new kernels (and the reverse)."""
    golden = json.loads(golden_views.GOLDEN.read_text())
    assert golden["environment"]["render_kernels"] == str(RENDER_KERNELS)


def test_the_golden_set_covers_every_preset_size_interpolation_and_op():
    hashes = json.loads(golden_views.GOLDEN.read_text())["hashes"]
    for preset in golden_views.PRESETS:
        for resolution, interpolation in golden_views.SIZES:
            for kind in ("photo", "odd", "mnist", "digits8"):
                assert f"views/{preset}/{resolution}/{interpolation}/{kind}" in hashes
    for op in golden_views.RAND_AUGMENT_OPS[1:]:
        assert f"ra/{op}/bilinear/224x224" in hashes and f"ra/{op}/nearest/37x53" in hashes
    assert {resolution for resolution, _ in golden_views.SIZES} == {32, 160, 224}
