"""Rendered bytes do not depend on the CPU, and are pinned against library upgrades.

One subprocess per ``ATEN_CPU_CAPABILITY`` (torch's scalar kernels, AVX2, AVX-512; a CPU without one runs the best it
has below it) renders the golden view set of ``tests/golden_views.py``: every preset at 32, 160 and 224 px, bilinear
and bicubic, on real photos and digits and odd sizes and modes, every RandAugment op at every magnitude bin and sign,
odd resolutions. The hashes must agree across capabilities, and with the committed ones.
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

CAPABILITIES = ("default", "avx2", "avx512")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def renders() -> dict[str, dict]:
    """Capability asked for → the golden view set rendered in a fresh process under it (all at once)."""
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
        for capability in CAPABILITIES
    }
    out = {}
    for capability, process in running.items():
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, f"rendering under ATEN_CPU_CAPABILITY={capability} failed:\n{stderr}"
        out[capability] = json.loads(stdout)
    return out


def test_every_cpu_capability_renders_the_same_bytes(renders):
    reference = renders["default"]
    for capability, rendered in renders.items():
        changed = golden_views.differences(reference["hashes"], rendered["hashes"])
        assert not changed, (
            f"{len(changed)} golden entries render other bytes under ATEN_CPU_CAPABILITY={capability} "
            f"({rendered['environment']['cpu_capability']}) than under the scalar kernels "
            f"({reference['environment']['cpu_capability']}): {changed[:12]}. A render kernel now depends on the "
            "CPU's instruction set (fused multiply-adds, reductions, vectorized float paths): students on other "
            "CPUs would not replay the teachers' pixels. See docs/exact-replay.md."
        )


def test_the_rendered_bytes_are_the_golden_ones(renders):
    golden = json.loads(golden_views.GOLDEN.read_text())
    rendered = renders[CAPABILITIES[-1]]
    changed = golden_views.differences(golden["hashes"], rendered["hashes"])
    assert not changed, (
        f"{len(changed)} of {len(golden['hashes'])} golden views changed: {changed[:12]}.\n"
        f"golden:  {golden['environment']}\nnow:     {rendered['environment']}\n"
        "Stored augmentations of existing datasets would no longer replay to the teachers' pixels. If a torch, "
        "torchvision, Pillow or numpy upgrade did this, pin the versions of the golden environment, or port the "
        "kernel so that it renders the old bytes. Refreshing the hashes (python tests/golden_views.py --write) "
        "is a format event: see docs/exact-replay.md, 'Golden hashes'."
    )


def test_the_golden_set_covers_every_preset_size_interpolation_and_op():
    hashes = json.loads(golden_views.GOLDEN.read_text())["hashes"]
    for preset in golden_views.PRESETS:
        for resolution, interpolation in golden_views.SIZES:
            for kind in ("photo", "odd", "mnist", "digits8"):
                assert f"views/{preset}/{resolution}/{interpolation}/{kind}" in hashes
    for op in golden_views.RAND_AUGMENT_OPS[1:]:
        assert f"ra/{op}/bilinear/224x224" in hashes and f"ra/{op}/nearest/37x53" in hashes
    assert {resolution for resolution, _ in golden_views.SIZES} == {32, 160, 224}


def test_this_process_renders_what_the_subprocesses_render(renders):
    """The subprocesses run this checkout's code (not an installed copy): a view rendered here matches."""
    rows = golden_views.sources()
    assert {name: value for name, value in renders["avx512"]["hashes"].items() if name.startswith("source/")} == {
        f"source/{kind}/{i}": golden_views.digest(image)
        for kind, images in rows.items()
        for i, image in enumerate(images)
    }
    assert torch.backends.cpu.get_cpu_capability() in {r["environment"]["cpu_capability"] for r in renders.values()}
