"""Decode time per backend for one UniFormer test clip (16 frames, 16x8 dense, centred).

    python -m benchmarks.decode            # table
    python -m benchmarks.decode --json     # machine-readable

Each run opens a fresh reader (so index building is included, as in a real request) and reads
the 16 frames ``uniformer_dense`` 16x8 picks; the figure is the median of ``--runs`` runs.
Clips: the shipped 10 s 576p H.264 clip, Big Buck Bunny (5.3 s 720p) and a 10 s 720p H.264
clip generated into a temporary folder from Big Buck Bunny's frames (x264 defaults apart from
``preset=veryfast``: one keyframe every 250 frames, B-frames). ``needed_vs_all`` compares the
reader with the naive way (decode and convert every frame, keep 16). Clips missing on this
machine (Big Buck Bunny lives in ``shared/clips``) are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from uniformer.data.sampling import TestProtocol, plan_sampling  # noqa: E402
from uniformer.data.video import VideoReader  # noqa: E402

PROTOCOL = TestProtocol("uniformer_dense", num_frames=16, sampling_rate=8, num_clips=1)


def _clip(name: str) -> Path:
    local = REPO_ROOT / "assets" / "clips" / name
    shared = Path(os.environ.get("UNIFORMER_LAB_SHARED", REPO_ROOT.parent / "shared")) / "clips" / name
    return local if local.exists() else shared


def make_720p_10s(out_dir: Path) -> Path:
    """10 s at 25 fps, 1280x720: Big Buck Bunny's 132 frames, played forward then backward."""
    import av

    path = out_dir / "bbb_720p_10s.mp4"
    if path.exists():
        return path
    with av.open(str(_clip("bigbuckbunny.mp4"))) as c:
        src = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    seq = (src + src[::-1]) * 2
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.options = {"preset": "veryfast"}
        for arr in seq[:250]:
            for packet in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def time_backend(path: Path, backend: str, runs: int) -> dict:
    times, decoded = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = VideoReader(path, backend=backend)
        plan = plan_sampling(PROTOCOL, r.info.num_frames, r.info.fps)
        frames = r.get_frames(plan.clips[0])
        times.append(time.perf_counter() - t0)
        decoded.append(r.stats.frames_decoded)
        assert frames.shape[0] == 16
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs,
            "used_backend": r.backend, "pyav_frames_decoded": decoded[-1] if r.backend == "pyav" else None,
            "indices": plan.clips[0].tolist()}


def time_full_decode(path: Path, runs: int) -> dict:
    """The naive way, for comparison: decode and convert every frame with PyAV, keep 16."""
    import av

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = VideoReader(path, backend="pyav")
        plan = plan_sampling(PROTOCOL, r.info.num_frames, r.info.fps)
        wanted = set(plan.clips[0].tolist())
        kept, n = [], 0
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                arr = frame.to_ndarray(format="rgb24")
                n += 1
                if i in wanted:
                    kept.append(arr)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs,
            "frames_decoded": n}


def run(runs: int = 5, backends: str = "decord,pyav", workdir: Path | None = None,
        full_decode: bool = True) -> dict:
    """Decode timings as a dict ``{"meta": ..., "results": [...], "needed_vs_all": [...]}``.

    Clips that are not available on this machine are skipped (listed in ``meta["skipped"]``).
    """
    rows, compare, skipped = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips = {"pedestrians 576p 10 s": _clip("pedestrians_576p_10s.mp4"),
                 "bigbuckbunny 720p 5.3 s": _clip("bigbuckbunny.mp4")}
        if clips["bigbuckbunny 720p 5.3 s"].exists():
            clips["generated 720p 10 s"] = make_720p_10s(work)
        for label, path in clips.items():
            if not path.exists():
                skipped.append(label)
                continue
            with VideoReader(path) as r:
                info = r.info
            for backend in backends.split(","):
                res = time_backend(path, backend, runs)
                rows.append({"clip": label, "file": path.name, "frames": info.num_frames,
                             "size": f"{info.width}x{info.height}", "codec": info.codec,
                             "backend": backend, **res})
            if full_decode:
                needed = next(r for r in rows if r["clip"] == label and r["backend"] == "pyav") \
                    if "pyav" in backends.split(",") else time_backend(path, "pyav", runs)
                full = time_full_decode(path, max(1, min(runs, 3)))
                compare.append({"clip": label, "frames": info.num_frames, "all_frames_median_s": full["median_s"],
                                "needed_only_median_s": needed["median_s"],
                                "needed_frames_decoded": needed["pyav_frames_decoded"],
                                "speedup": full["median_s"] / needed["median_s"]})
    meta = {"protocol": "uniformer_dense 16x8, 1 clip", "runs": runs, "skipped": skipped,
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    return {"meta": meta, "results": rows, "needed_vs_all": compare}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--backends", default="decord,pyav")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write the generated 720p clip")
    ap.add_argument("--no-full-decode", action="store_true", help="skip the decode-every-frame comparison")
    args = ap.parse_args(argv)

    report = run(args.runs, args.backends, args.workdir, full_decode=not args.no_full_decode)
    meta, rows = report["meta"], report["results"]
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"decode 16 frames ({meta['protocol']}), median of {args.runs} runs, fresh reader each run, "
          f"{meta['cpu_count']} CPUs")
    print(f"{'clip':26} {'size':>9} {'frames':>6} {'backend':>7} {'median ms':>10} {'min ms':>8} {'decoded':>8}")
    for r in rows:
        dec = "" if r["pyav_frames_decoded"] is None else str(r["pyav_frames_decoded"])
        print(f"{r['clip']:26} {r['size']:>9} {r['frames']:>6} {r['backend']:>7} "
              f"{1000 * r['median_s']:>10.1f} {1000 * r['min_s']:>8.1f} {dec:>8}")
    for c in report["needed_vs_all"]:
        print(f"{c['clip']}: every frame {1000 * c['all_frames_median_s']:.0f} ms vs needed only "
              f"{1000 * c['needed_only_median_s']:.0f} ms ({c['speedup']:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
