"""Training checkpoints (``last.pt``/``best.pt``) and the slim ``model.safetensors`` export.

A checkpoint holds plain data only (tensors, numbers, strings, lists, dicts), so it loads with
``torch.load(weights_only=True)``; it carries the config, the class names, the metrics and every
rank's RNG states, so ``run.resume`` continues exactly where the run stopped.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from uniformer.errors import CheckpointError
from uniformer.train.config import TrainConfig, config_from_dict, config_to_dict
from uniformer.train.dist import DistEnv, all_gather_objects
from uniformer.train.rng import capture_rng

if TYPE_CHECKING:
    from uniformer.train.trainer import Trainer

__all__ = [
    "CHECKPOINT_FORMAT", "WEIGHTS_FORMAT", "save_checkpoint", "load_training_checkpoint", "load_on_main", "resume_from",
    "export_weights", "plain", "stored_config",
]

CHECKPOINT_FORMAT = "uniformer-lab/train-checkpoint/v1"
WEIGHTS_FORMAT = "uniformer-lab/weights/v1"


def plain(obj: Any) -> Any:
    """Scheduler states hold only numbers/lists; turn tuples into lists for weights_only loading."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def save_checkpoint(trainer: Trainer, path: Path, classes: Sequence[str], metrics: Mapping[str, Any]) -> None:
    """Write a full training checkpoint (rank 0 writes; every rank must call it: RNGs are gathered)."""
    state = trainer.state_dict()
    state["rng"] = all_gather_objects(capture_rng(), trainer.env)
    if not trainer.env.is_main:
        return
    state["classes"] = list(classes)
    state["metrics"] = plain(dict(metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; anything else is one clear ``CheckpointError``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"The checkpoint file {p} does not exist.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"The checkpoint file {p} cannot be read safely: {err}.") from err
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a training checkpoint written by uniformer.train; use "
                              f"model.init=checkpoint:{p} to fine-tune from it.")
    return dict(state)


def export_weights(
    state_dict: Mapping[str, torch.Tensor], path: Path, cfg: TrainConfig, classes: Sequence[str],
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Slim weights file for bundling: ``.safetensors`` with the config and classes as metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    meta = {
        "format": WEIGHTS_FORMAT,
        "config": json.dumps(config_to_dict(cfg)),
        "classes": json.dumps(list(classes)),
        "metrics": json.dumps(plain(dict(metrics or {}))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def stored_config(path: str | os.PathLike) -> tuple[TrainConfig, list[str]] | None:
    """(config, classes) that ``uniformer.train`` stored in a ``.pt`` checkpoint or ``.safetensors``
    export; None for any other weights file (official, timm, hand-made), so callers fall back to a
    zoo entry's architecture."""
    p = Path(path)
    if not p.is_file():  # missing, a folder, a FIFO or a device: the weights loader names the problem
        return None
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception:
            return None
        if "config" not in meta:
            return None
        return config_from_dict(json.loads(meta["config"])), json.loads(meta.get("classes", "[]"))
    from uniformer.models.checkpoint import read_checkpoint

    try:
        obj = read_checkpoint(p, lazy=True)  # bounded, weights-only; the tensors are mapped, not read
    except CheckpointError:
        return None
    if isinstance(obj, Mapping) and isinstance(obj.get("config"), Mapping) and "format" in obj:
        return config_from_dict(obj["config"]), list(obj.get("classes", []))
    return None


def load_on_main(path: Path, env: DistEnv) -> dict[str, Any]:
    """Rank 0 reads a training checkpoint and hands it to every rank (nodes need no shared disk)."""
    box: list[Any] = [load_training_checkpoint(path) if env.is_main else None]
    if env.distributed:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def resume_from(resume: str, out_dir: Path, env: DistEnv) -> str:
    """The checkpoint ``run.resume`` names: "" (none), "auto" (``out_dir/last.pt`` when rank 0 has
    it, else none) or a path."""
    if resume != "auto":
        return resume
    found = [(out_dir / "last.pt").is_file()] if env.is_main else [False]
    if env.distributed:
        dist.broadcast_object_list(found, src=0)  # rank 0's disk decides
    return str(out_dir / "last.pt") if found[0] else ""
