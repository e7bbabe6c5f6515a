"""Small video files the tests write themselves (a fresh clone has no sample phone clips)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_rotated_clip(path: Path, coded: np.ndarray, degrees: int, num_frames: int = 1) -> Path:
    """An H.264 mp4 whose stored frames are ``coded`` (H, W, 3 uint8) under a display matrix that
    says to rotate them by ``degrees`` counter-clockwise (PyAV's and FFmpeg's convention), as a
    phone stores an upright video."""
    h, w = coded.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(coded), format="rgb24")
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "10"}
        s.set_display_rotation(degrees)
        for _ in range(num_frames):
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def write_moving_clip(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (128, 96),
                      gop: int | None = None) -> Path:
    """An H.264 mp4 of ``seconds`` seconds: a bright square crossing a dark frame (frame ``i`` also
    carries ``i`` in its red channel, so a test can tell frames apart). ``size`` is (width, height)."""
    w, h = size
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18", **({"g": str(gop)} if gop else {})}
        for i in range(n):
            img = np.full((h, w, 3), 20, np.uint8)
            img[..., 0] = i % 256
            x = int((i * 7) % max(1, w - h // 4))
            img[h // 3: h // 3 + h // 4, x: x + h // 4] = 230
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path
