"""Forward latency, throughput and peak memory of zoo models (random weights unless bundled).

    python -m benchmarks.model_latency --model uniformer_s16
    python -m benchmarks.model_latency --model uniformer_s16 --capture          # attention maps kept
    python -m benchmarks.model_latency --model uniformer_s16 --variants base,capture
    python -m benchmarks.model_latency --model uniformer_s16 --variants base,fold_bn,channels_last
    python -m benchmarks.model_latency --model uniformer_s16 --device cuda --variants base,bf16,fp16
    python -m benchmarks.model_latency --model uniformer_b16 --batch 8 --subprocess

Method: the model is built with ``uniformer.zoo.create_model`` (eval mode), fed
``torch.randn(batch, 3, T, S, S)`` at the zoo entry's test input, under
``torch.inference_mode()``. ``--warmup`` untimed runs, then ``--repeats`` timed ones; the
figure is the **median**, with min/max as the spread. Several ``--variants`` (optimisations
from ``uniformer.models.optimize``) are timed **interleaved** in one process (A, B, A, B, ...)
so a noisy machine slows them alike and the ratios stay meaningful.

Memory: with ``--subprocess`` (what ``benchmarks.run`` does) each case runs in a fresh Python
process, so its peak RSS (``VmHWM``) is its own: one configuration's peak cannot hide
another's. ``rss_model_mb`` is the resident size after building the model(s), before any forward;
``peak_rss_mb - rss_model_mb`` is what the forward passes added. On CUDA
``torch.cuda.max_memory_allocated`` is reported too. With the ``capture`` variant,
``attention_maps_mb`` is the size of the maps it keeps (what the analysis views pay for).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

# Short names for the architectures the papers report, mapped to one zoo entry each. S-32 has no
# Kinetics release; its published GFLOPs are for the SSv2 checkpoint (174 classes).
ALIASES: dict[str, str] = {
    "uniformer_s8": "uniformer_small_k400_8x8",
    "uniformer_s16": "uniformer_small_k400_16x8",
    "uniformer_s32": "uniformer_small_sthv2_32_prek400",
    "uniformer_b8": "uniformer_base_k400_8x8",
    "uniformer_b16": "uniformer_base_k400_16x8",
    "uniformer_b32": "uniformer_base_k400_32x4",
    "timesformer_base": "timesformer_base_k400_8x32",
}
MODELS = ALIASES  # backwards-compatible name
# Variant flags, combined with "+": optimisations from uniformer.models.optimize, the attention
# capture path (maps kept, explicit softmax) and autocast precisions (CUDA).
VARIANT_FLAGS = ("fold_bn", "channels_last", "compile", "capture", "bf16", "fp16")
RESULT_PREFIX = "RESULT "


def zoo_name(model: str) -> str:
    return ALIASES.get(model, model)


@dataclass
class Case:
    """One measurement: a model at a batch size, one or more variants timed interleaved."""

    model: str
    batch: int = 1
    variants: tuple[str, ...] = ("base",)   # "base" (fp32, SDPA, as built) or "+"-joined VARIANT_FLAGS
    warmup: int = 1
    repeats: int = 3
    device: str = "cpu"
    threads: int | None = None
    frames: int | None = None               # override the entry's frame count
    img_size: int | None = None             # override the entry's crop size
    checkpoint: str | None = None           # weights file (bundled models)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Case:
        d = json.loads(text)
        d["variants"] = tuple(d.get("variants") or ("base",))
        return cls(**d)


def _proc_status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    kb = _proc_status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float:
    kb = _proc_status_kb("VmHWM")
    if kb is None:  # not Linux: getrusage reports the same peak (KiB on Linux, bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    return kb / 1024


def spread(times_s: list[float]) -> dict[str, float]:
    """Median, min, max and interquartile range in milliseconds."""
    ms = sorted(t * 1000 for t in times_s)
    q = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) >= 2 else [ms[0]] * 3
    return {"median_ms": round(statistics.median(ms), 2), "min_ms": round(ms[0], 2),
            "max_ms": round(ms[-1], 2), "p25_ms": round(q[0], 2), "p75_ms": round(q[2], 2),
            "runs_ms": [round(t * 1000, 1) for t in times_s]}


def _flags(variant: str) -> dict[str, bool]:
    parts = set() if variant == "base" else set(variant.split("+"))
    unknown = parts - set(VARIANT_FLAGS)
    if unknown:
        raise ValueError(f"unknown variant flag(s) {sorted(unknown)}; use base or {'+'.join(VARIANT_FLAGS)}")
    return {flag: flag in parts for flag in VARIANT_FLAGS}


def measure(case: Case) -> dict[str, Any]:
    """Run ``case`` in this process and return its figures (see the module docstring)."""
    import copy

    import torch

    from uniformer import zoo
    from uniformer.models.layers import attention_capture
    from uniformer.models.optimize import optimize_for_inference

    if case.threads:
        torch.set_num_threads(case.threads)
    load_before = os.getloadavg()
    rss_start = rss_mb()
    device = torch.device(case.device)
    name = zoo_name(case.model)
    entry = zoo.get_entry(name)
    torch.manual_seed(0)
    base = zoo.create_model(name, checkpoint=case.checkpoint, device=str(device))
    c, t, h, w = entry.input_size
    t = case.frames or t
    h = w = case.img_size or h
    x = torch.randn(case.batch, c, t, h, w, device=device)

    flags = {v: _flags(v) for v in case.variants}
    models, inputs, amp = {}, {}, {}
    rewritten = {v for v, f in flags.items() if f["fold_bn"] or f["channels_last"] or f["compile"]}
    shares_base = len(case.variants) - len(rewritten) > 1
    for v, f in flags.items():
        if v in rewritten:
            m = optimize_for_inference(base, fold_bn=f["fold_bn"], channels_last=f["channels_last"],
                                       compile=f["compile"])
        elif f["capture"] and shares_base:
            m = copy.deepcopy(base)  # capture flips switches on the model: give it its own copy
        else:
            m = base
        models[v] = m
        inputs[v] = x.contiguous(memory_format=torch.channels_last_3d) if f["channels_last"] else x
        dtype = torch.bfloat16 if f["bf16"] else torch.float16 if f["fp16"] else None
        amp[v] = (lambda d=dtype: torch.autocast(device.type, dtype=d)) if dtype is not None else nullcontext
    rss_model = rss_mb()

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    times: dict[str, list[float]] = {v: [] for v in case.variants}
    first_call: dict[str, float] = {}
    maps_mb: dict[str, float] = {}
    with torch.inference_mode():
        ctxs = {v: (attention_capture(models[v]) if flags[v]["capture"] else nullcontext()) for v in case.variants}
        captured = {v: ctx.__enter__() for v, ctx in ctxs.items()}
        try:
            for i in range(case.warmup + case.repeats):
                for v in case.variants:
                    sync()
                    start = time.perf_counter()
                    with amp[v]():
                        out = models[v](inputs[v])
                    sync()
                    elapsed = time.perf_counter() - start
                    if i == 0:
                        first_call[v] = elapsed
                    if i >= case.warmup:
                        times[v].append(elapsed)
                    del out
            for v in case.variants:
                if flags[v]["capture"]:
                    maps_mb[v] = sum(m.attn_map.numel() * m.attn_map.element_size()
                                     for m in captured[v].values() if m.attn_map is not None) / 2**20
        finally:
            for v in case.variants:
                ctxs[v].__exit__(None, None, None)

    result: dict[str, Any] = {
        "case": dataclasses.asdict(case),
        "zoo_name": name,
        "family": entry.family,
        "input": [case.batch, c, t, h, w],
        "params": sum(p.numel() for p in base.parameters()),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rss_start_mb": rss_start,
        "rss_model_mb": rss_model,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "variants": {},
    }
    if cuda:
        result["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["cuda_device"] = torch.cuda.get_device_name(device)
    for v in case.variants:
        stats = spread(times[v])
        stats["first_call_ms"] = round(first_call[v] * 1000, 1)
        stats["throughput_clips_s"] = round(case.batch / (stats["median_ms"] / 1000), 3)
        if v in maps_mb:
            stats["attention_maps_mb"] = round(maps_mb[v], 1)
        result["variants"][v] = stats
    base_v = case.variants[0]
    for v in case.variants[1:]:
        result["variants"][v]["speedup_vs_" + base_v] = round(
            result["variants"][base_v]["median_ms"] / result["variants"][v]["median_ms"], 3)
    return result


def run_case(case: Case, *, timeout: float = 1800) -> dict[str, Any]:
    """``measure(case)`` in a fresh Python process (own peak RSS); errors come back as a dict."""
    cmd = [sys.executable, "-m", "benchmarks.model_latency", "--case", case.to_json()]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"case": dataclasses.asdict(case), "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_wall_s"] = round(time.perf_counter() - start, 2)
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    return {"case": dataclasses.asdict(case), "error": tail[0][:300]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="uniformer_s16",
                        help=f"short name ({', '.join(ALIASES)}) or any zoo name")
    parser.add_argument("--capture", action="store_true", help="explicit softmax, keep attention maps "
                                                                 "(same as --variants capture)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--img-size", type=int, default=None, help="override the crop size")
    parser.add_argument("--frames", type=int, default=None, help="override the model's frame count")
    parser.add_argument("--variants", default="base",
                        help=f"comma-separated: base or '+' combinations of {', '.join(VARIANT_FLAGS)}; timed "
                             "interleaved, ratios against the first")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--checkpoint", default=None, help="weights file (else random weights)")
    parser.add_argument("--subprocess", action="store_true", help="measure in a fresh process (own peak RSS)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # JSON Case, used by run_case
    args = parser.parse_args(argv)
    if args.case:
        print(RESULT_PREFIX + json.dumps(measure(Case.from_json(args.case))), flush=True)
        return 0
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if args.capture:
        variants = ("capture",)
    case = Case(model=args.model, batch=args.batch, variants=variants, warmup=args.warmup,
                repeats=args.repeats, device=args.device, threads=args.threads, frames=args.frames,
                img_size=args.img_size, checkpoint=args.checkpoint)
    result = run_case(case) if args.subprocess else measure(case)
    print(json.dumps(result, indent=1))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main())
