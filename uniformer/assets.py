"""Where the repository's assets live: one place, so the zoo, the model registry and the app agree.

``UNIFORMER_LAB_ASSETS`` moves the whole folder (labels, bundled checkpoints, published results,
example clips), e.g. for an installed package whose data sits elsewhere. It is read once, at import.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ASSETS_DIR", "CHECKPOINTS_DIR", "CLIPS_DIR", "DEFAULT_APP_MODELS", "DEFAULT_MODEL", "LABELS_DIR",
           "PUBLISHED_CSV"]

ASSETS_DIR = Path(os.environ.get("UNIFORMER_LAB_ASSETS") or Path(__file__).resolve().parents[1] / "assets")
LABELS_DIR = ASSETS_DIR / "labels"
CHECKPOINTS_DIR = ASSETS_DIR / "checkpoints"
CLIPS_DIR = ASSETS_DIR / "clips"
PUBLISHED_CSV = ASSETS_DIR / "published_results.csv"

# The model a prediction uses when none is named (CLI, API): bundled and trained, never random
# weights: the lab UniFormer (LLGG, 112 px; the tiny 64-px models stay as fast test models). It lives here,
# not in the zoo, so that ``python -m uniformer.predict --help`` can name it without importing timm.
DEFAULT_MODEL = "uniformer_lab"
# The app's side-by-side pair when both files are bundled (else the tiny pair): UniFormer and its
# TimeSformer baseline, trained with one recipe. Other bundled lab models (uniformer_lab_gggg) are choices.
DEFAULT_APP_MODELS = ("uniformer_lab", "timesformer_lab")
