"""Issue 18's figures: timeline speed with and without frame reuse, feature throughput, ONNX Runtime
against PyTorch.

    python -m benchmarks.beyond_one_clip                      # 90 s of generated 720p video
    python -m benchmarks.beyond_one_clip --seconds 600 --json # the issue's 10-minute case

The long video is generated (a moving square over a textured 1280x720 frame, H.264, 30 fps,
a keyframe every ``--gop`` frames, as phones and cameras write about every 1-2 s). The timeline
runs with reuse and without it in turn (``--rounds`` times), so a machine that gets busier
mid-run slows both alike; the figure is windows per second of the whole run (decode, preprocess
and model). Features: ``uniformer.features`` over ``--clips`` generated 720p clips. ONNX:
:func:`uniformer.export.latency_ratio` (interleaved forwards at batch 1) for the bundled tiny models.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from uniformer.device import cpu_name


def write_video(path: Path, seconds: float, *, size: tuple[int, int] = (1280, 720), fps: int = 30,
                gop: int = 60) -> Path:
    """A textured H.264 clip with motion (so the encoder makes P-frames of realistic size)."""
    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23", "g": str(gop)}
        for i in range(int(seconds * fps)):
            img = np.roll(texture, i * 2, axis=1)
            x = (i * 9) % (w - h // 4)
            img[h // 3: h // 3 + h // 4, x: x + h // 4] = 240
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def bench_timeline(video: Path, model: str, rounds: int) -> dict[str, Any]:
    from uniformer.predict import Predictor
    from uniformer.timeline import predict_timeline

    pred = Predictor(model)
    runs: dict[str, list[float]] = {"reuse": [], "no_reuse": []}
    info: dict[str, Any] = {}
    for _ in range(rounds):
        for mode in runs:
            t0 = time.perf_counter()
            tl = predict_timeline(pred, video, reuse_frames=mode == "reuse")
            runs[mode].append(time.perf_counter() - t0)
            info[mode] = {"windows": len(tl.windows), "frames_decoded": tl.frames_decoded,
                          "stride_s": round(tl.stride_s, 3), "window_s": round(tl.window_s, 3)}
    out = {mode: {**info[mode], "seconds": [round(s, 2) for s in secs],
                  "windows_per_s": round(info[mode]["windows"] / float(np.median(secs)), 2)}
           for mode, secs in runs.items()}
    out["speedup"] = round(out["reuse"]["windows_per_s"] / out["no_reuse"]["windows_per_s"], 2)
    return out


def bench_features(folder: Path, models: list[str]) -> dict[str, Any]:
    from uniformer import features

    out = {}
    for model in models:
        target = folder / f"{model}.safetensors"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):   # its summary line is not part of this JSON
            assert features.main(["--model", model, "--data", str(folder), "--out", str(target)]) == 0
        n = len(features.list_videos(folder))
        out[model] = {"videos": n, "videos_per_s": round(n / (time.perf_counter() - t0), 2)}
    return out


def bench_onnx(models: list[str], tmp: Path, repeats: int) -> dict[str, Any]:
    from uniformer.export import export_and_verify
    from uniformer.zoo import create_model, get_entry, resolve_weights

    out = {}
    for model in models:
        m = create_model(model, checkpoint=resolve_weights(model).path)
        p = get_entry(model).protocol
        report = export_and_verify(m, tmp / f"{model}.onnx", frames=p.num_frames, size=p.crop_size, benchmark=repeats)
        out[model] = {"max_abs_diff": report.max_abs_diff, "ort_over_torch_latency": round(report.latency_ratio, 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.beyond_one_clip", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="length of the generated 720p video")
    ap.add_argument("--gop", type=int, default=60, help="frames between keyframes")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--clips", type=int, default=6, help="720p clips of 5 s for the feature throughput")
    ap.add_argument("--model", default="uniformer_tiny_synthetic_8x2")
    ap.add_argument("--repeats", type=int, default=20, help="interleaved forwards per runtime (ONNX)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    tiny = ["uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        video = write_video(tmp / "long.mp4", a.seconds, gop=a.gop)
        made_s = time.perf_counter() - t0
        clips = tmp / "clips"
        clips.mkdir()
        for i in range(a.clips):
            write_video(clips / f"clip{i}.mp4", 5.0, gop=a.gop)
        result = {
            "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
            "video": f"{a.seconds:g} s, 1280x720, 30 fps, H.264 keyframe every {a.gop} frames (generated in "
                     f"{made_s:.0f} s)",
            "timeline": bench_timeline(video, a.model, a.rounds),
            "features": bench_features(clips, tiny),
            "onnx": bench_onnx(tiny, tmp, a.repeats),
        }
    print(json.dumps(result, indent=None if a.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
