"""Cost of attention extraction: normal forward (fused SDPA) vs ``analysis.attention.extract``.

    python -m benchmarks.extraction                       # UniFormer-S 16x224 and TimeSformer 8x224
    python -m benchmarks.extraction --repeats 5 --threads 4 --json out.json

Random weights, batch 1, ``torch.no_grad`` for both paths (``extract`` runs under no_grad too).
Each path gets ``--warmup`` untimed runs; then the two paths are timed alternately
(normal, extract, normal, …) ``--repeats`` times each and the medians are reported, so a
machine shared with other work slows both alike. ``extract`` includes reshaping the maps into
the record (not computing metrics).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from analysis.attention import extract
from uniformer import zoo

MODELS = {  # zoo name -> input (B, C, T, H, W)
    "uniformer_small_k400_16x4": (1, 3, 16, 224, 224),
    "timesformer_base_k400_8x32": (1, 3, 8, 224, 224),
}


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, warmup: int = 1, repeats: int = 3) -> dict:
    torch.manual_seed(0)
    model = zoo.create_model(name)  # random init, eval mode
    x = torch.randn(*MODELS[name])

    def normal() -> None:
        with torch.no_grad():
            model(x)

    def extraction() -> None:
        extract(model, x)

    record = extract(model, x)
    map_bytes = sum(m.numel() * m.element_size() for m in record.maps.values())
    del record
    for _ in range(warmup):
        normal()
        extraction()
    t_normal, t_extract = [], []
    for _ in range(repeats):
        t_normal.append(_time(normal))
        t_extract.append(_time(extraction))
    n, e = statistics.median(t_normal), statistics.median(t_extract)
    return {
        "model": name,
        "input": list(x.shape),
        "normal_s": round(n, 4),
        "extract_s": round(e, 4),
        "overhead": round(e / n, 3),
        "normal_runs_s": [round(v, 3) for v in t_normal],
        "extract_runs_s": [round(v, 3) for v in t_extract],
        "maps_MB": round(map_bytes / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.extraction", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine()}
    rows = [measure(name, args.warmup, args.repeats) for name in args.models]
    print(f"CPU, batch 1, median of {args.repeats} after {args.warmup} warm-up; {env}")
    print(f"{'model':30s} {'input':>22s} {'normal s':>9s} {'extract s':>9s} {'x':>6s} {'maps MB':>8s}")
    for r in rows:
        print(f"{r['model']:30s} {str(tuple(r['input'])):>22s} {r['normal_s']:9.3f} {r['extract_s']:9.3f} "
              f"{r['overhead']:6.2f} {r['maps_MB']:8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"env": env, "results": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
