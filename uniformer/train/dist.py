"""Distributed setup: the process group ``torchrun`` describes in the environment, and the device.

One process (no ``WORLD_SIZE``) needs no group; the helpers below are no-ops there, so the
training loop reads the same on one CPU and on eight GPUs.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from uniformer.device import resolve_device
from uniformer.train.config import RunConfig

__all__ = ["DistEnv", "setup_distributed", "all_gather_objects", "barrier"]


@dataclass
class DistEnv:
    """Where this process sits in the run: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(run: RunConfig) -> DistEnv:
    """Join the process group torchrun describes in the environment (one process: no group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(run.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = run.dist_backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=device)


def all_gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """``obj`` of every rank, in rank order (one process: ``[obj]``)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    """Wait for every rank (one process: return at once)."""
    if env.distributed:
        dist.barrier()
