"""The ``Trainer``: one object holding model, DDP wrapper, optimiser, schedule, scaler, EMA and loss.

``train_step`` is one optimiser update (mixup/cutmix and random erasing on the batch, autocast,
GradScaler for fp16, gradient clipping, a skipped step on a non-finite loss on every rank
together, EMA update); ``state_dict()`` is everything a resume needs, this rank's RNGs included.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from uniformer.device import autocast, resolve_amp, resolve_device
from uniformer.errors import ConfigError, UniformerLabError
from uniformer.train.augment import VideoMixup, VideoRandomErasing
from uniformer.train.checkpoint import CHECKPOINT_FORMAT, plain
from uniformer.train.config import TrainConfig, config_to_dict
from uniformer.train.dist import DistEnv
from uniformer.train.optim import build_optimizer, build_scheduler, scaled_lr
from uniformer.train.rng import capture_rng, restore_rng

__all__ = ["StepResult", "Trainer"]

_CHANNELS_LAST = ("auto", "on", "off")


def _use_channels_last(setting: str, model: nn.Module) -> bool:
    """``run.channels_last``: ``auto`` follows the inference policy (UniFormer yes, TimeSformer no)."""
    from uniformer.models.optimize import runs_channels_last

    text = str(setting).strip().lower()
    if text not in _CHANNELS_LAST:
        raise ConfigError(f"run.channels_last must be one of {', '.join(_CHANNELS_LAST)}, got {setting!r}.")
    return runs_channels_last(model) if text == "auto" else text == "on"


@dataclass
class StepResult:
    """What one ``train_step`` did: its loss (NaN when skipped) and the learning rate it used."""

    loss: float
    skipped: bool
    lr: float


class Trainer:
    """Model + DDP wrapper + optimiser + schedule + scaler + EMA + loss: one object whose
    ``state_dict()`` is everything a resume needs."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        num_classes: int,
        updates_per_epoch: int,
        env: DistEnv | None = None,
    ) -> None:
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
        from timm.utils import ModelEmaV3

        self.cfg = cfg
        self.env = env or DistEnv(device=resolve_device(cfg.run.device, local_rank=0))
        self.device = self.env.device
        self.num_classes = num_classes
        model = model.to(self.device)
        self.channels_last = _use_channels_last(cfg.run.channels_last, model)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        if cfg.model.sync_bn and self.env.distributed:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                warnings.warn("model.sync_bn is ignored on CPU: SyncBatchNorm needs a GPU.", stacklevel=2)
        self.model = model
        self.ddp: nn.Module | None = None
        if self.env.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

        self.global_batch = cfg.data.batch_size * self.env.world_size
        self.lr = scaled_lr(cfg.optim, self.global_batch)
        self.optimizer = build_optimizer(model, cfg.optim, self.lr)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, updates_per_epoch)
        self.amp_dtype = resolve_amp(cfg.run.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.ema = ModelEmaV3(model, decay=cfg.run.ema_decay) if cfg.run.ema else None

        a = cfg.aug
        self.mixup: VideoMixup | None = None
        if a.mixup > 0 or a.cutmix > 0:
            self.mixup = VideoMixup(
                mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mix_prob, switch_prob=a.switch_prob,
                mode=a.mix_mode, label_smoothing=a.label_smoothing, num_classes=num_classes,
            )
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        elif a.label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=a.label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()
        self.erase = VideoRandomErasing(a.random_erase, self.device) if a.random_erase > 0 else None

        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimiser updates
        self.skipped_steps = 0
        self.best: dict[str, Any] = {"top1": -1.0, "epoch": -1, "which": "model"}

    # ---------------------------------------------------------------------------------- steps
    @property
    def train_module(self) -> nn.Module:
        return self.ddp if self.ddp is not None else self.model

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.amp_dtype)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        flag = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if self.env.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # every rank must skip together
        return bool(flag.item() > 0)

    def _clip_format(self, clips: torch.Tensor) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last and clips.ndim == 5 else torch.contiguous_format

    def current_lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def train_step(self, clips: torch.Tensor, targets: torch.Tensor) -> StepResult:
        """One optimiser update on a batch ``(B[, k], C, T, H, W)`` with labels ``(B[, k])``."""
        module = self.train_module
        module.train()
        source_ptr = clips.data_ptr()
        clips = clips.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if clips.ndim == 6:  # (B, num_sample, C, T, H, W): copies become batch entries
            clips = clips.flatten(0, 1)
            targets = targets.flatten(0, 1)
        clips = clips.float().contiguous(memory_format=self._clip_format(clips))
        if (self.erase is not None or self.mixup is not None) and clips.data_ptr() == source_ptr:
            clips = clips.clone()  # mixup / erasing work in place: never touch the caller's batch
        if self.erase is not None:
            clips = self.erase(clips)
        soft = targets
        if self.mixup is not None:
            if clips.shape[0] % 2:
                raise ConfigError("mixup/cutmix need an even number of clips per step; change data.batch_size.")
            clips, soft = self.mixup(clips, targets)
        lr = self.current_lr()
        with self.autocast():
            logits = module(clips)
        loss = self.criterion(logits.float(), soft)
        if not self._all_finite(loss):
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(f"Non-finite loss at step {self.global_step}; the step was skipped.", stacklevel=2)
            if self.skipped_steps > self.cfg.run.max_skipped_steps:
                raise UniformerLabError(
                    f"Training stopped after {self.skipped_steps} non-finite losses; lower optim.lr or turn off "
                    "run.amp."
                )
            return StepResult(float("nan"), True, lr)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.clip_grad > 0:
            from timm.utils import dispatch_clip_grad

            self.scaler.unscale_(self.optimizer)
            dispatch_clip_grad(self.model.parameters(), self.cfg.optim.clip_grad, mode=self.cfg.optim.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        self.scheduler.step_update(num_updates=self.global_step)
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step)
        return StepResult(float(loss.item()), False, lr)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (this rank's RNG states included)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plain(self.scheduler.state_dict()),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "best": dict(self.best),
            "rng": [capture_rng()],
            "world_size": self.env.world_size,
            "config": config_to_dict(self.cfg),
        }

    def load_state_dict(self, state: Mapping[str, Any], restore_rng_state: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.module.load_state_dict(state["ema"])
            else:
                self.ema.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved_optim = dict(state.get("config", {}).get("optim", {}))
        if saved_optim == config_to_dict(self.cfg)["optim"]:
            self.scheduler.load_state_dict(dict(state["scheduler"]))
        elif self.env.is_main:
            # e.g. more epochs to extend a finished run: the schedule follows the new settings
            warnings.warn("The [optim] settings differ from the checkpoint's; the learning-rate schedule "
                          "follows the new ones from the resumed step on.", stacklevel=2)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.best = dict(state.get("best", self.best))
        if restore_rng_state and state.get("rng"):
            rngs = state["rng"]
            if len(rngs) == self.env.world_size:
                restore_rng(rngs[self.env.rank])
            else:
                if self.env.is_main:
                    warnings.warn(
                        f"The checkpoint was written by {len(rngs)} process(es), this run has "
                        f"{self.env.world_size}: RNG streams restart from rank 0's state.",
                        stacklevel=2,
                    )
                restore_rng(rngs[0])
        # the scheduler state already holds the right lr; make sure the optimiser agrees
        self.scheduler.step_update(num_updates=self.global_step)
