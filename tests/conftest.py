"""Test paths and fixtures. Tests read only files in the repository (or generate what they need):
a fresh clone passes without the project's ``../shared`` folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# Two cores on every machine of this project: keep intra-op threads fixed for stable tests.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core box: extra intra-op threads only add contention.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------- app test fixtures
@pytest.fixture(scope="module")
def tiny():
    """Names of tiny randomly initialised zoo models registered for one test module."""
    from app.testing import tiny_models

    with tiny_models() as names:
        yield names


@pytest.fixture(scope="module")
def client(served):
    """A gradio_client for the module's own ``served`` fixture (a running app)."""
    from gradio_client import Client

    return Client(served.url, verbose=False, analytics_enabled=False)
