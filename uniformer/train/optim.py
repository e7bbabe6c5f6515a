"""Optimiser and learning-rate schedule from ``[optim]``, built with timm's factories.

The recipe means what it means in timm and in the official SlowFast-based code: AdamW without
weight decay on 1-D parameters, the learning rate scaled linearly with the global batch
(``lr * global_batch / lr_base_batch``), and a per-iteration schedule: linear warm-up from
``warmup_lr``, then a decay (cosine to ``min_lr``) over the remaining ``epochs - warmup_epochs``;
step/multistep milestones stay absolute epochs.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from uniformer.errors import ConfigError
from uniformer.train.config import OptimConfig

__all__ = ["scaled_lr", "build_optimizer", "build_scheduler"]


def scaled_lr(o: OptimConfig, global_batch: int) -> float:
    """``optim.lr`` scaled linearly to the global batch (unscaled when ``lr_base_batch`` is 0)."""
    return o.lr * (global_batch / o.lr_base_batch if o.lr_base_batch else 1.0)


def build_optimizer(model: nn.Module, o: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` with the ``[optim]`` settings at learning rate ``lr``."""
    from timm.optim import create_optimizer_v2

    opt_kwargs: dict[str, Any] = {}
    if o.betas is not None:
        opt_kwargs["betas"] = tuple(o.betas)
    if o.eps is not None:
        opt_kwargs["eps"] = o.eps
    return create_optimizer_v2(
        model, opt=o.opt, lr=lr, weight_decay=o.weight_decay, momentum=o.momentum,
        filter_bias_and_bn=o.filter_bias_and_bn, **opt_kwargs,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, o: OptimConfig, updates_per_epoch: int) -> Any:
    """timm scheduler stepped per update (``step_update(num_updates=...)``), as in SlowFast."""
    from timm.scheduler import create_scheduler_v2

    # Linear warm-up, then the decay spans the remaining ``epochs - warmup_epochs`` (cosine after
    # warm-up); step milestones stay absolute epochs.
    decays_after_warmup = o.sched not in ("step", "multistep", "plateau") and o.warmup_epochs > 0
    if decays_after_warmup and o.warmup_epochs >= o.epochs:
        raise ConfigError("optim.warmup_epochs must be smaller than optim.epochs.")
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=o.sched,
        num_epochs=o.epochs - o.warmup_epochs if decays_after_warmup else o.epochs,
        warmup_epochs=o.warmup_epochs, warmup_prefix=decays_after_warmup,
        warmup_lr=o.warmup_lr, min_lr=o.min_lr, decay_milestones=list(o.decay_milestones),
        decay_rate=o.decay_rate, step_on_epochs=False, updates_per_epoch=max(1, updates_per_epoch),
    )
    return scheduler
