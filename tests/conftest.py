"""Shared test paths. ``shared/`` lies beside the repository (``../shared``) here and in CI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("UNIFORMER_LAB_SHARED", REPO_ROOT.parent / "shared"))

# Two cores on every machine of this project: keep intra-op threads fixed for stable tests.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED
