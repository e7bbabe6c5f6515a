"""RNG states: seeding, and capturing/restoring every generator so a resume repeats the exact steps.

States are stored as tensors and plain numbers so a checkpoint loads with ``weights_only=True``.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def capture_rng() -> dict[str, Any]:
    """All RNG states as tensors / plain numbers (loadable with ``weights_only=True``)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py[1], dtype=torch.int64),
        "python_version": py[0],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back the states ``capture_rng`` took (CUDA only when the device count matches)."""
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python"].tolist()), None))
    np.random.set_state((
        "MT19937",
        state["numpy_keys"].numpy().astype(np.uint32),
        int(state["numpy_pos"]),
        int(state["numpy_has_gauss"]),
        float(state["numpy_gauss"]),
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

