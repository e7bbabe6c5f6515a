"""Batch-level augmentation for clips: timm's Mixup/CutMix and RandomErasing, video-aware.

timm cuts and erases over the last two dims of an image batch; folding frames into channels
makes the box the same in every frame of a clip (official SlowFast/UniFormer behaviour).
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["VideoMixup", "VideoRandomErasing"]


class VideoMixup:
    """timm ``Mixup`` for clips ``(B, C, T, H, W)``: frames are folded into channels so the cutmix
    box (timm cuts the last two dims) is the same in every frame; mixup is unaffected."""

    def __init__(self, **kwargs: Any) -> None:
        from timm.data import Mixup

        self.mixup = Mixup(**kwargs)

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-2], shape[-1])  # a view for contiguous clips
        flat, target = self.mixup(flat, target)
        return flat.reshape(shape), target


class VideoRandomErasing:
    """timm ``RandomErasing`` per clip with the same box in every frame (frames folded into channels)."""

    def __init__(self, probability: float, device: torch.device) -> None:
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode="pixel", max_count=1, device=str(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.erase(x.reshape(shape[0], -1, shape[-2], shape[-1]).contiguous()).reshape(shape)

