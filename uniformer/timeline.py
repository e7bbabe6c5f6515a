"""A prediction timeline: the checkpoint's own test clip slid over a whole video.

One window is one temporal clip of the checkpoint's test protocol (its spatial crops kept): a
dense protocol's clip covers ``clip_span(fps)`` frames (UniFormer: ``T x rate``, TimeSformer:
``T x rate / target_fps`` seconds), so a window is that span, sampled exactly as
:func:`uniformer.data.sampling.plan_sampling` samples a video of that length. A segment protocol
(Something-Something) spreads its frames over whatever it is given, so its windows have a
length in seconds (``window_s``, default :data:`SEGMENT_WINDOW_S`).

Windows start every ``stride_s`` seconds (default: half a window) and one more window is aligned
to the end, so together they cover the video from its first to its last frame. ``max_windows``
bounds a request: past it the stride is widened (and a note says so).

Frame reuse: overlapping windows share frames. The decoder reads the sorted union of the needed
indices once, in chunks (one decord ``get_batch`` or one PyAV pass each), and every decoded frame
is normalised, resized and cropped once (all of :func:`preprocess_clip`'s operations act frame by
frame, so a window gathered from per-frame tensors is the window preprocessed as a clip). Frames
no remaining window needs are dropped, so memory stays at about one window plus one chunk however
long the video is. ``reuse_frames=False`` decodes each window on its own (the baseline the
benchmark in the README compares against).

Per window the logits of its crops are combined and turned into probabilities by
:func:`uniformer.data.sampling.view_probabilities` (the predictor's rule); the top classes over
the whole video get a smoothed track (centred moving average over ``smooth`` windows).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from uniformer.data.sampling import TestProtocol, plan_sampling, view_probabilities
from uniformer.errors import UniformerLabError

if TYPE_CHECKING:  # pragma: no cover
    from uniformer.data.video import VideoReader
    from uniformer.predict import Predictor

SEGMENT_WINDOW_S = 4.0   # window length for segment protocols (Something-Something clips last 2-6 s)
CHUNK_FRAMES = 64        # frames decoded per decoder call when frames are reused (uint8: 177 MB at 720p)
PREPROCESS_FRAMES = 8    # frames turned into float views at once (float32 720p: 11 MB a frame)
TRACK_CLASSES = 3        # classes with a smoothed track
Progress = Callable[[int, int], None]  # (windows done, windows in all)


@dataclass(frozen=True)
class Window:
    """One window: frames ``[start_frame, end_frame)`` and the indices its clip samples there."""

    start_frame: int
    end_frame: int
    frames: np.ndarray  # (T,) int64, 0-based indices into the video


@dataclass
class Timeline:
    """Per-window top-k over a video, in time order, plus smoothed tracks of the top classes."""

    model: str
    video: str
    windows: list[Window]
    fps: float
    probs: torch.Tensor                    # (W, K) per-window probabilities
    label_names: list[str]
    topk: int
    window_s: float                        # window length, seconds
    stride_s: float                        # stride actually used, seconds
    crops: int
    track_classes: list[int]
    tracks: np.ndarray                     # (len(track_classes), W) smoothed probabilities
    timings: dict[str, float]
    video_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    frames_decoded: int = 0                # frames the decoder returned (reuse: each needed frame once)

    def label(self, i: int) -> str:
        return self.label_names[i] if i < len(self.label_names) else f"class {i}"

    def seconds(self, w: Window) -> tuple[float, float]:
        duration = self.video_info.get("duration") or 0.0
        end = w.end_frame / self.fps
        return w.start_frame / self.fps, min(end, duration) if duration else end

    def window_topk(self, i: int) -> list[tuple[str, float]]:
        p, idx = self.probs[i].topk(min(self.topk, self.probs.shape[1]))
        return [(self.label(c), float(v)) for c, v in zip(idx.tolist(), p.tolist())]

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for i, w in enumerate(self.windows):
            start, end = self.seconds(w)
            rows.append({"start": round(start, 4), "end": round(end, 4), "start_frame": w.start_frame,
                         "end_frame": w.end_frame, "frames": w.frames.tolist(),
                         "topk": [{"label": lbl, "probability": round(p, 6)} for lbl, p in self.window_topk(i)]})
        centres = [round(sum(self.seconds(w)) / 2, 4) for w in self.windows]
        return {
            "model": self.model, "video": self.video, "timeline": rows,
            "tracks": {"time": centres, "smoothing_windows": _smooth_width(len(self.windows)),
                       "classes": [{"label": self.label(c), "index": c,
                                    "smoothed": [round(float(v), 6) for v in self.tracks[j]]}
                                   for j, c in enumerate(self.track_classes)]},
            "window_s": round(self.window_s, 4), "stride_s": round(self.stride_s, 4), "crops": self.crops,
            "frames_decoded": self.frames_decoded, "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "video_info": self.video_info, "notes": self.notes,
        }


# ----------------------------------------------------------------------------------- windows
def window_frames(protocol: TestProtocol, fps: float, window_s: float | None = None) -> int:
    """Frames one window spans: the protocol's clip span (dense) or ``window_s`` seconds (segment)."""
    if protocol.sampler.endswith("_dense"):
        return max(1, math.ceil(protocol.clip_span(fps) - 1e-6))
    seconds = SEGMENT_WINDOW_S if window_s is None else window_s
    return max(protocol.num_frames, round(seconds * fps))


def plan_windows(protocol: TestProtocol, num_frames: int, fps: float, *, stride_s: float | None = None,
                 window_s: float | None = None,
                 max_windows: int | None = None) -> tuple[list[Window], float, list[str]]:
    """Windows covering ``num_frames`` frames in time order, the stride used (s) and notes."""
    if stride_s is not None and not (stride_s > 0 and math.isfinite(stride_s)):
        raise UniformerLabError(f"The window stride must be a positive number of seconds, got {stride_s}.")
    if window_s is not None and not (window_s > 0 and math.isfinite(window_s)):
        raise UniformerLabError(f"The window length must be a positive number of seconds, got {window_s}.")
    n = int(num_frames)
    length = min(window_frames(protocol, fps, window_s), n)
    stride = length / 2 if stride_s is None else stride_s * fps
    stride = max(stride, 1.0)
    notes: list[str] = []
    last = n - length
    starts = _starts(last, stride)
    if max_windows is not None and len(starts) > max_windows:
        widened = last / max(max_windows - 1, 1)
        notes.append(f"The video needs {len(starts)} windows at a {stride / fps:.2f} s stride, more than the "
                     f"{max_windows} allowed per request, so the stride was widened to {widened / fps:.2f} s.")
        stride = widened
        starts = sorted(set(_starts(last, stride)[:max_windows - 1]) | {last}) if max_windows > 1 else [0]
    one = dataclasses.replace(protocol, num_clips=1)
    offsets = plan_sampling(one, length, fps).clips[0]
    windows = [Window(s, s + length, offsets + s) for s in starts]
    return windows, stride / fps, notes


def _starts(last: int, stride: float) -> list[int]:
    """Start frames every ``stride`` frames from 0, plus one window ending at the video's end."""
    if last <= 0:
        return [0]
    return sorted({min(round(k * stride), last) for k in range(math.ceil(last / stride) + 1)} | {last})


# ---------------------------------------------------------------------------------- frames
def iter_window_views(reader: VideoReader, windows: list[Window], protocol: TestProtocol, *,
                      reuse_frames: bool = True, chunk_frames: int = CHUNK_FRAMES) -> Iterator[torch.Tensor]:
    """Each window's views ``(crops, 3, T, S, S)``, in window order.

    With ``reuse_frames`` every needed frame is decoded and preprocessed once (streamed in chunks
    of ``chunk_frames`` sorted indices; frames behind every remaining window are dropped).
    """
    from uniformer.data.transforms import preprocess_clip  # torchvision: imported when first needed

    if not reuse_frames:
        for w in windows:
            yield preprocess_clip(reader.get_frames(w.frames), protocol)
        return
    needed = np.unique(np.concatenate([w.frames for w in windows]))
    cache: dict[int, torch.Tensor] = {}   # frame index -> (crops, 3, S, S)
    pos, done_up_to = 0, -1
    for w in windows:
        top = int(w.frames.max())
        while done_up_to < top:
            chunk = needed[pos:pos + max(1, chunk_frames)]
            pos += len(chunk)
            frames = reader.get_frames(chunk)
            for lo in range(0, len(chunk), PREPROCESS_FRAMES):
                views = preprocess_clip(frames[lo:lo + PREPROCESS_FRAMES], protocol)  # (crops, 3, n, S, S)
                for j, idx in enumerate(chunk[lo:lo + PREPROCESS_FRAMES].tolist()):
                    cache[idx] = views[:, :, j].clone()  # not a view: the sub-chunk's tensor can go
            del frames
            done_up_to = int(chunk[-1])
        yield torch.stack([cache[int(i)] for i in w.frames.tolist()], dim=2)
        low = int(w.frames.min())
        for idx in [i for i in cache if i < low]:
            del cache[idx]


# --------------------------------------------------------------------------------- tracks
def _smooth_width(num_windows: int) -> int:
    return 1 if num_windows < 3 else 3 if num_windows < 20 else 5


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the last axis (edges average what exists)."""
    if width <= 1 or values.shape[-1] == 0:
        return values.astype(np.float64)
    kernel = np.ones(width)
    num = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -1, values.astype(np.float64))
    den = np.convolve(np.ones(values.shape[-1]), kernel, mode="same")
    return num / den


# ------------------------------------------------------------------------------------ run
def predict_timeline(predictor: Predictor, video: str | os.PathLike, *, stride_s: float | None = None,
                     window_s: float | None = None, topk: int = 5, batch_windows: int = 8,
                     max_windows: int | None = None, reuse_frames: bool = True, max_side: int | None = None,
                     progress: Progress | None = None, admit: Callable[[int], None] | None = None) -> Timeline:
    """Slide ``predictor``'s test clip over ``video`` and score every window (see the module doc).

    ``admit(n_windows)`` is called once the windows are planned, before any is decoded (a server
    prices the request there and may refuse it); between batches the work stops if the request was
    cancelled (``uniformer.cost.check_cancelled``).
    """
    from uniformer.cost import check_cancelled
    from uniformer.data.video import VideoReader
    from uniformer.predict import default_max_side, video_notes

    start = time.perf_counter()
    protocol = dataclasses.replace(predictor.protocol, num_clips=1)
    side = default_max_side(protocol) if max_side is None else max_side
    model_s, data_s = 0.0, 0.0
    rows: list[torch.Tensor] = []
    with VideoReader(video, max_side=side) as reader:
        info = reader.info
        windows, stride, notes = plan_windows(protocol, info.num_frames, info.fps, stride_s=stride_s,
                                              window_s=window_s, max_windows=max_windows)
        if admit is not None:
            admit(len(windows))
        if progress:
            progress(0, len(windows))
        stream = iter_window_views(reader, windows, protocol, reuse_frames=reuse_frames)
        done = 0
        while done < len(windows):
            check_cancelled()
            t0 = time.perf_counter()
            batch = []
            for _ in range(min(batch_windows, len(windows) - done)):
                batch.append(next(stream))
            x = torch.stack(batch)                                    # (b, crops, 3, T, S, S)
            t1 = time.perf_counter()
            with torch.inference_mode():  # the predictor's own inference path and precision
                logits = predictor.fast_model()(x.flatten(0, 1).to(predictor.device)).float().cpu()
            t2 = time.perf_counter()
            rows.append(view_probabilities(logits.view(len(batch), protocol.num_crops, -1), protocol.ensemble))
            data_s, model_s = data_s + t1 - t0, model_s + t2 - t1
            done += len(batch)
            if progress:
                progress(done, len(windows))
        info = reader.info
    probs = torch.cat(rows)
    unique = len(np.unique(np.concatenate([w.frames for w in windows])))
    frames_decoded = unique if reuse_frames else sum(len(np.unique(w.frames)) for w in windows)
    order = probs.mean(0).argsort(descending=True)[:min(TRACK_CLASSES, probs.shape[1])].tolist()
    tracks = smooth(probs[:, order].T.numpy(), _smooth_width(len(windows)))
    length = windows[0].end_frame - windows[0].start_frame
    return Timeline(
        model=predictor.name, video=str(video), windows=windows, fps=info.fps, probs=probs,
        label_names=predictor.label_names, topk=topk, window_s=length / info.fps, stride_s=stride,
        crops=protocol.num_crops, track_classes=order, tracks=tracks,
        timings={"data_s": data_s, "model_s": model_s, "total_s": time.perf_counter() - start},
        video_info=dataclasses.asdict(info), notes=[*predictor.notes, *notes, *video_notes(info)],
        frames_decoded=frames_decoded,
    )


def format_timeline(tl: Timeline) -> str:
    """One line per window for the terminal, then the smoothed tracks' peaks."""
    d = tl.to_dict()
    lines = [f"{tl.video}: {len(tl.windows)} windows of {tl.window_s:.2f} s every {tl.stride_s:.2f} s, "
             f"model {tl.model}, {tl.crops} crop(s) per window, {tl.frames_decoded} frames decoded"]
    for row in d["timeline"]:
        best = ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in row["topk"][:3])
        lines.append(f"  {row['start']:8.2f}-{row['end']:8.2f} s  {best}")
    for track in d["tracks"]["classes"]:
        peak = int(np.argmax(track["smoothed"]))
        lines.append(f"track {track['label']}: peak {100 * track['smoothed'][peak]:.1f}% at "
                     f"{d['tracks']['time'][peak]:.2f} s")
    t = tl.timings
    lines.append(f"time: data {t['data_s']:.2f} s, model {t['model_s']:.2f} s, total {t['total_s']:.2f} s")
    lines.extend(f"note: {n}" for n in tl.notes)
    return "\n".join(lines)


def run_cli(predictor: Predictor, video: str, *, stride_s: float | None, window_s: float | None, topk: int,
            as_json: bool) -> str:
    """What ``python -m uniformer.predict VIDEO --timeline`` prints (a tqdm bar on stderr meanwhile)."""
    from tqdm import tqdm

    from uniformer import jsonsafe

    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:  # made once the windows are planned, so it knows their number
            bars.append(tqdm(total=total, unit="window", desc="timeline", leave=False))
        bars[0].update(done - bars[0].n)

    try:
        tl = predict_timeline(predictor, video, stride_s=stride_s, window_s=window_s, topk=topk, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    return jsonsafe.dumps(tl.to_dict()) if as_json else format_timeline(tl)
