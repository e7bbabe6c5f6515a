"""Test-time frame sampling and view layout, exactly as each official code base evaluated.

Every rule here was checked index-for-index against the official data code (the fixtures
``tests/fixtures/{uniformer,timesformer}_sampling_reference.json``). Where the official code
does float arithmetic we do the same arithmetic in the same precision: the dense samplers use
``torch.linspace`` in float32 (as SlowFast's ``temporal_sampling`` does), because truncating
``i * (span - 1) / (n - 1)`` in float64 picks a different frame for some ``i``.

Views are ordered **clip-major**: view ``v`` is temporal clip ``v // num_crops`` and spatial crop
``v % num_crops`` (SlowFast's ``_spatial_temporal_idx`` layout).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from uniformer.errors import UniformerLabError

Sampler = Literal["uniformer_dense", "uniformer_segment", "timesformer_dense", "timesformer_segment"]
SAMPLERS: tuple[str, ...] = ("uniformer_dense", "uniformer_segment", "timesformer_dense", "timesformer_segment")


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

    Spatially every protocol resizes the short side to ``short_side`` and takes ``num_crops``
    crops of ``crop_size`` (1 = centre; 3 = left/centre/right, or top/centre/bottom for
    portrait frames). The official 3-crop protocols resize to the crop size
    (``short_side == crop_size``); UniFormer's 1-crop Kinetics test resizes to
    ``TRAIN_JITTER_SCALES[0]`` (224 per the repo README, 256 in the shipped yaml).
    """

    __test__ = False  # not a pytest test class despite the name

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

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        if self.num_frames < 1 or self.num_clips < 1 or self.sampling_rate < 1:
            raise ValueError("num_frames, num_clips and sampling_rate must be >= 1")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {self.num_crops}")

    def clip_span(self, fps: float) -> float:
        """Source frames covered by one dense clip (before clamping to the video)."""
        if self.sampler == "uniformer_dense":
            return float(self.num_frames * self.sampling_rate)
        if self.sampler == "timesformer_dense":
            return self.sampling_rate * self.num_frames / self.target_fps * fps
        return float(self.num_frames)  # segment samplers cover the whole video

    def view_index(self, clip: int, crop: int) -> int:
        """Clip-major view index, as the official test loaders enumerate views."""
        return clip * self.num_crops + crop

    def view_clip_crop(self, view: int) -> tuple[int, int]:
        """Inverse of :meth:`view_index`: ``(clip, crop)``."""
        return divmod(view, self.num_crops)


_VIEWS = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*")


def parse_views(text: str) -> tuple[int, int]:
    """``"4x1"`` -> ``(4, 1)``: temporal clips × spatial crops, as ``--views`` and ``data.*_views`` write them.

    The one rule for every entry point: ``CLIPSxCROPS`` (``x``, ``X`` or ``×``, spaces allowed),
    at least one clip, and 1 or 3 crops (the crops :class:`TestProtocol` knows).
    """
    m = _VIEWS.fullmatch(str(text).lower())
    if m is None or int(m.group(1)) < 1 or int(m.group(2)) not in (1, 3):
        raise UniformerLabError(f"Views '{text}' must look like CLIPSxCROPS with at least 1 clip and 1 or 3 crops, "
                                "e.g. 4x1 or 1x3.")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class SamplingPlan:
    """Frame indices for every temporal clip, plus what a user should be told about them."""

    clips: list[np.ndarray]          # one int64 array of length protocol.num_frames per clip
    num_frames_in_video: int
    span: float                      # source frames one clip is meant to cover
    video_shorter_than_clip: bool    # the video had fewer frames than one clip needs
    repeats_frames: bool             # some clip uses the same frame more than once

    @property
    def unique_indices(self) -> np.ndarray:
        """Sorted frame indices needed by all clips together (what the decoder must read)."""
        return np.unique(np.concatenate(self.clips))


# ----------------------------------------------------------------------------------------------
# temporal
# ----------------------------------------------------------------------------------------------

def _linspace_clamped(start: float, end: float, num: int, num_frames_in_video: int) -> np.ndarray:
    """SlowFast ``temporal_sampling``: float32 linspace, clamp to the video, truncate."""
    index = torch.linspace(float(start), float(end), num, dtype=torch.float32)
    index = torch.clamp(index, 0, num_frames_in_video - 1).long()
    return index.numpy().astype(np.int64)


def _uniformer_dense(p: TestProtocol, n: int) -> list[np.ndarray]:
    # decord branch of UniFormer's decoder: no fps conversion, USE_OFFSET_SAMPLING=True.
    span = p.num_frames * p.sampling_rate
    delta = max(n - span, 0)
    clips = []
    for i in range(p.num_clips):
        start = math.floor(delta / 2) if p.num_clips == 1 else i * math.floor(delta / (p.num_clips - 1))
        clips.append(_linspace_clamped(start, start + span - 1, p.num_frames, n))
    return clips


def _timesformer_dense(p: TestProtocol, n: int, fps: float) -> list[np.ndarray]:
    # PySlowFast get_start_end_idx without offset sampling: start = delta * i / num_clips.
    span = p.sampling_rate * p.num_frames / p.target_fps * fps
    delta = max(n - span, 0)
    clips = []
    for i in range(p.num_clips):
        start = delta * i / p.num_clips
        clips.append(_linspace_clamped(start, start + span - 1, p.num_frames, n))
    return clips


def _uniformer_segment(p: TestProtocol, n: int) -> list[np.ndarray]:
    # UniFormer sth.py (test): segment start + int(seg / (views + 1) * (view + 1)); the official
    # code then adds 1 to address img_00001.jpg — we return the 0-based frame instead.
    seg = float(n - 1) / p.num_frames
    duration = seg / (p.num_clips + 1)
    clips = []
    for view in range(p.num_clips):
        offset = int(duration * (view + 1))
        idx = [int(np.round(seg * i)) + offset for i in range(p.num_frames)]
        clips.append(np.asarray(idx, dtype=np.int64))
    return clips


def _timesformer_segment(p: TestProtocol, n: int) -> list[np.ndarray]:
    # TimeSformer ssv2.py (test): middle of the rounded segment; the clip index is ignored, so
    # several clips would all be identical (the released configs use one).
    seg = float(n - 1) / p.num_frames
    idx = [(int(np.round(seg * i)) + int(np.round(seg * (i + 1)))) // 2 for i in range(p.num_frames)]
    one = np.asarray(idx, dtype=np.int64)
    return [one.copy() for _ in range(p.num_clips)]


def plan_sampling(protocol: TestProtocol, num_frames_in_video: int, fps: float) -> SamplingPlan:
    """All clips' frame indices for a video of ``num_frames_in_video`` frames at ``fps``.

    ``fps`` only matters for ``timesformer_dense`` (its clip covers a fixed duration at
    ``target_fps``); the segment samplers index the decoded frames directly (the official code
    indexed frames pre-extracted to JPEG, so a video whose extraction resampled the frame rate
    may differ).
    """
    n = int(num_frames_in_video)
    if n < 1:
        raise ValueError(f"a video needs at least one frame to sample from, got {n}")
    if protocol.sampler == "uniformer_dense":
        clips = _uniformer_dense(protocol, n)
    elif protocol.sampler == "timesformer_dense":
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"timesformer_dense needs a positive frame rate, got {fps!r}")
        clips = _timesformer_dense(protocol, n, float(fps))
    elif protocol.sampler == "uniformer_segment":
        clips = _uniformer_segment(protocol, n)
    else:
        clips = _timesformer_segment(protocol, n)
    span = protocol.clip_span(float(fps) if fps else protocol.target_fps)
    return SamplingPlan(
        clips=clips,
        num_frames_in_video=n,
        span=span,
        video_shorter_than_clip=n < span,
        repeats_frames=any(len(np.unique(c)) < len(c) for c in clips),
    )


def sample_indices(protocol: TestProtocol, num_frames_in_video: int, fps: float) -> list[np.ndarray]:
    """0-based frame indices, one int64 array per temporal clip (see :func:`plan_sampling`)."""
    return plan_sampling(protocol, num_frames_in_video, fps).clips


# ----------------------------------------------------------------------------------------------
# spatial
# ----------------------------------------------------------------------------------------------

def resized_hw(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Frame size after the official short-side resize.

    SlowFast ``random_short_side_scale_jitter`` with min == max: the long side is
    ``floor(long / short * size)`` computed in that order (float division first), and a frame
    whose short side already equals ``size`` is left alone.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"invalid frame size {height}x{width}")
    if (width <= height and width == short_side) or (height <= width and height == short_side):
        return height, width
    if width < height:
        return int(math.floor((float(height) / width) * short_side)), short_side
    return short_side, int(math.floor((float(width) / height) * short_side))


def crop_offsets(height: int, width: int, protocol: TestProtocol) -> list[tuple[int, int]]:
    """``(y0, x0)`` of each spatial crop, in the frame **after** :func:`resized_hw`.

    ``height``/``width`` are the decoded frame's size. One crop is the centre
    (``ceil((L - size) / 2)`` on both axes); three crops run along the long side:
    0 = left/top, 1 = centre, 2 = right/bottom (SlowFast ``uniform_crop``; a square frame uses
    the width branch, so its three crops coincide).
    """
    h, w = resized_hw(height, width, protocol.short_side)
    size = protocol.crop_size
    if h < size or w < size:
        raise ValueError(f"resized frame {h}x{w} is smaller than the crop {size}")
    spatial = [1] if protocol.num_crops == 1 else [0, 1, 2]
    out = []
    for idx in spatial:
        y0 = int(math.ceil((h - size) / 2))
        x0 = int(math.ceil((w - size) / 2))
        if h > w:
            y0 = {0: 0, 1: y0, 2: h - size}[idx]
        else:
            x0 = {0: 0, 1: x0, 2: w - size}[idx]
        out.append((y0, x0))
    return out


# ----------------------------------------------------------------------------------------------
# view aggregation
# ----------------------------------------------------------------------------------------------

def combine_views(logits: torch.Tensor, method: Literal["sum", "mean"] = "sum") -> torch.Tensor:
    """Merge per-view scores ``(..., V, K)`` → ``(..., K)``.

    The official test meters **sum raw logits** over views (``ENSEMBLE_METHOD: sum``), no
    softmax first; ``mean`` only rescales, so the ranking is the same.
    """
    if logits.ndim < 2:
        raise ValueError(f"expected logits of shape (..., V, K), got {tuple(logits.shape)}")
    if method == "sum":
        return logits.sum(dim=-2)
    if method == "mean":
        return logits.mean(dim=-2)
    raise ValueError(f"unknown ensemble method {method!r}; expected 'sum' or 'mean'")


def view_probabilities(logits: torch.Tensor, method: Literal["sum", "mean"] = "sum") -> torch.Tensor:
    """Class probabilities ``(..., K)`` of views' raw logits ``(..., V, K)``.

    Views are ranked as the official meters do (:func:`combine_views`); the probabilities are the
    softmax of the per-view mean, so that the number of views does not sharpen them.
    """
    return torch.softmax(combine_views(logits, method) / logits.shape[-2], dim=-1)
