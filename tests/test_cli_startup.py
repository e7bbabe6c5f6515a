"""The CLIs start without their heavy dependencies (issue 15 item 7), checked structurally.

``--help`` and argument errors must not pay for timm, torchvision, the decoders or the UI/plot
libraries: those are imported where they are used. A fresh interpreter imports the module and
reports ``sys.modules``; no timing here (``python -m benchmarks.cli_startup`` measures it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("timm", "torchvision", "av", "decord", "gradio", "matplotlib", "plotly", "captum", "huggingface_hub",
         "uniformer.zoo", "uniformer.models")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["uniformer.predict", "uniformer.train.cli", "uniformer.train"])
def test_cli_module_import_is_light(module):
    assert _loaded_after(f"import {module}") == []


def test_evaluate_import_skips_models_and_video():
    assert _loaded_after("import uniformer.evaluate") == []


def test_predict_help_and_bad_arguments_are_light():
    code = ("import contextlib, io\nfrom uniformer import predict\n"
            "for argv in (['--help'], ['--topk', 'x']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n            predict.main(argv)\n        except SystemExit:\n            pass")
    assert _loaded_after(code) == []


def test_train_package_names_still_resolve():
    """``uniformer.train`` loads its names on first use; they are the same objects as in the submodules."""
    code = ("import uniformer.train as t, uniformer.train.loop as loop, uniformer.train.trainer as tr\n"
            "assert t.train is loop.train and t.Trainer is tr.Trainer and 'Trainer' in dir(t)\n"
            "assert all(getattr(t, n) is not None for n in t.__all__)")
    assert "timm" in _loaded_after(code)


def test_the_model_files_still_register_with_timm_when_imported():
    """What moved out of ``import uniformer``: ``import uniformer.models`` registers the checkpoints."""
    code = "import uniformer.models, timm\nassert 'uniformer_small_k400_16x8' in timm.list_models('uniformer_*')"
    assert "timm" in _loaded_after(code)
