"""Model and clip loading shared by the analysis CLIs (report, redundancy, local mask).

One place decides how a zoo name becomes weights (explicit ``--checkpoint``; else the zoo's own
weights: bundled file or Hugging Face cache, through ``uniformer.zoo.create_model``) and which
view of a video an analysis sees (the model's own test protocol, middle temporal clip, centre
crop: one view per clip).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from uniformer.data.sampling import TestProtocol
from uniformer.data.transforms import preprocess_clip
from uniformer.data.video import VideoInfo, read_clips

__all__ = ["OneView", "checkpoint_arch", "load_model", "one_view"]


def load_model(name: str, checkpoint: str | None = None, pretrained: bool = True) -> tuple[nn.Module, str | None]:
    """Zoo model ``name`` in eval mode and a phrase naming its weights (None: random init).

    ``checkpoint`` wins, built with the architecture it carries when ``uniformer.train`` wrote it
    (so an ablation run's GGGG weights load as GGGG under the lab entry's labels and protocol);
    else ``pretrained`` loads the zoo's weights (one-sentence ``WeightsUnavailableError`` when they
    are neither bundled nor cached); else random weights.
    """
    from uniformer import zoo

    entry = zoo.get_entry(name)
    arch = checkpoint_arch(checkpoint, entry.family) if checkpoint else {}
    model = zoo.create_model(name, checkpoint=checkpoint, pretrained=pretrained and checkpoint is None, **arch)
    if checkpoint:
        layout = getattr(model, "layout", None)
        return model, f"{checkpoint} (layout {layout})" if layout else str(checkpoint)
    if pretrained:
        return model, f"bundled weights ({entry.where})" if entry.kind == "local" else "published weights"
    return model, None


def checkpoint_arch(checkpoint: str, family: str) -> dict[str, Any]:
    """Architecture arguments a ``uniformer.train`` checkpoint carries (e.g. an ablation run's
    ``layout="GGGG"``), when it was trained as ``family``; {} for any other weights file."""
    from uniformer.train.checkpoint import stored_config

    stored = stored_config(checkpoint)
    if stored is None or stored[0].model.family != family:
        return {}
    return dict(stored[0].model.kwargs)


@dataclass
class OneView:
    """One test view of a video: model input ``(1, 3, T, S, S)``, its raw frames and source."""

    x: torch.Tensor
    raw_frames: np.ndarray  # (T, H, W, 3) uint8 frames of the chosen clip, before resize/crop
    frame_indices: list[int]
    video_info: VideoInfo


def one_view(video: str, protocol: TestProtocol) -> OneView:
    """The middle temporal clip of ``protocol``, centre crop, preprocessed as at test time."""
    clips = read_clips(video, protocol)
    k = len(clips.frames) // 2
    single = dataclasses.replace(protocol, num_crops=1, num_clips=1)
    x = preprocess_clip(clips.frames[k], single)
    return OneView(x=x, raw_frames=clips.frames[k], frame_indices=[int(i) for i in clips.plan.clips[k]],
                   video_info=clips.info)
