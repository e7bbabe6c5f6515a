"""Test-time frame sampling and view layout, exactly as each official code base evaluated.

(Stub with the shared ``TestProtocol`` contract; the samplers are filled in by the video-in work.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Sampler = Literal["uniformer_dense", "uniformer_segment", "timesformer_dense", "timesformer_segment"]


@dataclass(frozen=True)
class TestProtocol:
    """How a checkpoint was evaluated: which frames, which crops, which normalisation.

    - ``uniformer_dense``: UniFormer Kinetics clips (``num_frames`` × ``sampling_rate`` span,
      linspace indices, clip starts spread evenly; a single clip is centred).
    - ``uniformer_segment``: UniFormer Something-Something segment middles (1-based in the
      reference, 0-based here).
    - ``timesformer_dense``: TimeSformer Kinetics clip spanning
      ``sampling_rate * num_frames / target_fps * fps`` frames, clip 0 starts at frame 0.
    - ``timesformer_segment``: TimeSformer SSv2 segments with numpy rounding.
    """

    sampler: Sampler
    num_frames: int
    sampling_rate: int = 1
    target_fps: float = 30.0
    num_clips: int = 1
    num_crops: int = 1
    short_side: int = 224
    crop_size: int = 224
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    bgr: bool = False
    ensemble: Literal["sum", "mean"] = "sum"

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops
