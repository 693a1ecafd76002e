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
