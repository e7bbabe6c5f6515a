"""End-to-end wall time of ``python -m uniformer.predict`` (import, model build, decode, forward).

    python -m benchmarks.predict_cli                  # 1x1 and 4x1 views, median of 3
    python -m benchmarks.predict_cli --json

Each run is a fresh subprocess, so Python/torch import time and building the model count, as
they do for a user at a terminal. UniFormer-S 16x224 with random weights (no download), on
``assets/clips/pedestrians_576p_10s.mp4``. The JSON the CLI prints gives the in-process split
(decode / preprocess / model); ``import_s`` is a separate run that only imports the package.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
MODEL = "uniformer_small_k400_16x8"


def _wall(cmd: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return time.perf_counter() - start, proc


def time_import(repeats: int = 3, timeout: float = 300) -> dict:
    """Wall time of a process that only imports what the CLI imports before its work starts."""
    cmd = [sys.executable, "-c", "import uniformer.predict, uniformer.zoo, uniformer.models"]
    times = [_wall(cmd, timeout)[0] for _ in range(repeats)]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs_s": times}


def time_cli(views: str, repeats: int = 3, *, model: str = MODEL, clip: Path = CLIP, device: str = "cpu",
             timeout: float = 900) -> dict:
    """Median wall time of ``repeats`` CLI runs with ``--views views``, plus the CLI's own split."""
    cmd = [sys.executable, "-m", "uniformer.predict", str(clip), "--model", model, "--views", views,
           "--device", device, "--json"]
    walls, splits = [], []
    load_before = os.getloadavg()
    for _ in range(repeats):
        wall, proc = _wall(cmd, timeout)
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            return {"views": views, "error": err[:300]}
        walls.append(wall)
        splits.append(json.loads(proc.stdout.strip().splitlines()[-1])["timings"])
    med = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    return {"views": views, "model": model, "clip": clip.name, "device": device, "repeats": repeats,
            "median_wall_s": statistics.median(walls), "min_wall_s": min(walls), "max_wall_s": max(walls),
            "runs_s": walls, "median_split_s": med, "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()]}


def run(views: tuple[str, ...] = ("1x1", "4x1"), repeats: int = 3, device: str = "cpu") -> dict:
    return {"import": time_import(repeats), "runs": [time_cli(v, repeats, device=device) for v in views]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", default="1x1,4x1", help="comma-separated CLIPSxCROPS settings")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    report = run(tuple(args.views.split(",")), args.repeats, args.device)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"import only: {report['import']['median_s']:.2f} s")
    for r in report["runs"]:
        if "error" in r:
            print(f"--views {r['views']}: error: {r['error']}")
            continue
        s = r["median_split_s"]
        print(f"--views {r['views']}: {r['median_wall_s']:.2f} s wall (min {r['min_wall_s']:.2f}, max "
              f"{r['max_wall_s']:.2f}); in-process decode {s['decode_s']:.2f} s, preprocess "
              f"{s['preprocess_s']:.2f} s, model {s['model_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
