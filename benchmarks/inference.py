"""Inference paths side by side, interleaved in one process, against a matmul peak measured in the same run.

    python -m benchmarks.inference                                  # UniFormer-S 16x224, TimeSformer-B 8x224
    python -m benchmarks.inference --models uniformer_s8 --img-size 160 --rounds 3 --json out.json
    python -m benchmarks.run --only inference                       # the same, into docs/BENCHMARKS.md

Every model (a zoo name or a ``benchmarks.model_latency`` alias) gets random weights and random
BatchNorm statistics, so folding has real work to do. Each round runs, one after the other:

- ``explicit``: what the official code does: softmax(QKᵀ) materialised (``attention_capture``), the
  default memory layout. The reference ratio.
- ``plain``: this project's model as built (fused SDPA, default layout).
- ``fp32``: ``optimize_for_inference(m, "fp32")`` (BatchNorm folded, channels-last end to end).
- ``bf16``: ``optimize_for_inference(m, "bf16")`` where ``uniformer.device.resolve_precision`` allows it.
- ``mm fp32`` / ``mm bf16``: a ``torch.mm`` of two N×N matrices (N = 2048 by default), the peak the
  model's GFLOP/s are compared with (bf16 paths against the bf16 peak).

Medians over rounds after one warm-up round; the spread and the 1-minute load average go with
them, because on a shared machine the load is the first thing to check. GFLOP/s count the model's
conv + linear + attention multiply-adds (``uniformer.flops.count_flops``, ``gmacs_raw``) as two
FLOPs each. Logit error: max |fp32 - plain| and the relative error ||bf16 - plain|| / ||plain||.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_MODELS = ("uniformer_s16", "timesformer_base")
PATHS = ("explicit", "plain", "fp32", "bf16")


def randomise_bn(model: Any, seed: int = 0) -> Any:
    """Non-trivial BatchNorm statistics and affine parameters (a trained model has them)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model


def _timed(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": round(1000 * statistics.median(times), 2), "min_ms": round(1000 * min(times), 2),
            "max_ms": round(1000 * max(times), 2)}


def _paths(plain: Any, fast: Any, x: Any, *, with_bf16: bool) -> dict[str, Callable[[], Any]]:
    """The timed calls, in the order each round runs them."""
    from uniformer.models.layers import attention_capture

    def explicit() -> Any:
        with attention_capture(plain):  # softmax(QK^T) materialised, as the official code
            return plain(x)

    paths = {"explicit": explicit, "plain": lambda: plain(x), "fp32": lambda: fast(x)}
    if with_bf16:
        slow = fast.with_precision("bf16")  # the same rewritten weights, under bf16 autocast
        paths["bf16"] = lambda: slow(x)
    return paths


def measure(models: tuple[str, ...] = DEFAULT_MODELS, *, batch: int = 1, rounds: int = 5, mm_size: int = 2048,
            img_size: int | None = None, frames: int | None = None, device: str = "cpu",
            threads: int | None = None, log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run every path of every model interleaved (see the module docstring); a JSON-ready dict."""
    import torch

    from benchmarks.model_latency import zoo_name
    from uniformer import zoo
    from uniformer.device import bf16_unsupported_reason, cpu_bf16_support, cpu_name, resolve_device
    from uniformer.flops import count_flops
    from uniformer.models.optimize import optimize_for_inference

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    no_bf16 = bf16_unsupported_reason(dev)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if cuda else cpu_name(), "device_type": dev.type,
        "cpu_bf16": None if cuda else cpu_bf16_support(), "bf16_refused": no_bf16,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "batch": batch, "rounds": rounds,
        "mm_size": mm_size, "loadavg_before": [round(v, 2) for v in os.getloadavg()], "models": [],
    }
    a, b = (torch.randn(mm_size, mm_size, device=dev) for _ in range(2))
    mm = {"mm fp32": (lambda: torch.mm(a, b))}
    if no_bf16 is None:
        a16, b16 = a.bfloat16(), b.bfloat16()
        mm["mm bf16"] = lambda: torch.mm(a16, b16)
    mm_times: dict[str, list[float]] = {k: [] for k in mm}

    for name in models:
        entry = zoo.get_entry(zoo_name(name))
        torch.manual_seed(0)
        plain = randomise_bn(zoo.create_model(entry.name, device=str(dev))).eval()
        c, t, h, w = entry.input_size
        shape = (batch, c, frames or t, img_size or h, img_size or w)
        x = torch.randn(*shape, device=dev)
        flops = 2e9 * count_flops(plain, shape).gmacs_raw
        log(f"inference: {name} {tuple(shape)}: building the optimised copies")
        fast = optimize_for_inference(plain, "fp32")
        paths = _paths(plain, fast, x, with_bf16=no_bf16 is None)
        times: dict[str, list[float]] = {p: [] for p in paths}
        with torch.inference_mode():
            outs = {p: fn().float().cpu() for p, fn in paths.items()}  # warm-up round, and the logits compared
            for r in range(rounds):
                log(f"inference: {name} round {r + 1}/{rounds}")
                for p, fn in paths.items():
                    times[p].append(_timed(fn, sync))
                for k, fn in mm.items():
                    mm_times[k].append(_timed(fn, sync))
        ref = outs["plain"]
        row: dict[str, Any] = {"model": name, "zoo_name": entry.name, "input": list(shape), "gflop": flops / 1e9,
                               "paths": {}, "fp32_max_abs_diff": float((outs["fp32"] - ref).abs().max()),
                               "explicit_max_abs_diff": float((outs["explicit"] - ref).abs().max())}
        if "bf16" in outs:
            row["bf16_rel_err"] = float((outs["bf16"] - ref).norm() / ref.norm())
        for p in paths:
            st = _stats(times[p])
            st["gflops_per_s"] = round(flops / (st["median_ms"] / 1000) / 1e9, 1)
            row["paths"][p] = st
        plain_ms, explicit_ms = row["paths"]["plain"]["median_ms"], row["paths"]["explicit"]["median_ms"]
        for st in row["paths"].values():
            st["speedup_vs_plain"] = round(plain_ms / st["median_ms"], 3)
            st["speedup_vs_explicit"] = round(explicit_ms / st["median_ms"], 3)
        report["models"].append(row)
        del plain, fast, paths, outs

    report["mm"] = {}
    for k, ts in mm_times.items():
        st = _stats(ts)
        st["gflops_per_s"] = round(2 * mm_size**3 / (st["median_ms"] / 1000) / 1e9, 1)
        report["mm"][k] = st
    for row in report["models"]:
        for p, st in row["paths"].items():
            peak = report["mm"].get("mm bf16" if p == "bf16" else "mm fp32")
            st["pct_of_peak"] = round(100 * st["gflops_per_s"] / peak["gflops_per_s"], 1) if peak else None
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    return report


def markdown(report: dict[str, Any]) -> list[str]:
    """The table README "Performance" and docs/BENCHMARKS.md show."""
    mm = report["mm"]
    peaks = ", ".join(f"{k}: {v['gflops_per_s']:.0f} GFLOP/s" for k, v in mm.items())
    fast_bf16 = report["cpu_bf16"] or ("no" if report["bf16_refused"] else "yes")
    lines = [f"{report['device']} ({report['device_type']}, {report['threads']} threads, fast bf16: {fast_bf16}), "
             f"batch {report['batch']}, {report['rounds']} interleaved rounds, 1-min load "
             f"{report['loadavg_before'][0]} → {report['loadavg_after'][0]}; {report['mm_size']}² `torch.mm` peaks "
             f"in the same run: {peaks}.", "",
             "| model | input | path | median ms (min–max) | × plain | × explicit | GFLOP/s | % of peak | logits |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["models"]:
        shape = "×".join(str(v) for v in row["input"][2:])
        for p, st in row["paths"].items():
            err = {"plain": "reference", "explicit": f"max Δ {row['explicit_max_abs_diff']:.1e}",
                   "fp32": f"max Δ {row['fp32_max_abs_diff']:.1e}",
                   "bf16": f"rel. err {row.get('bf16_rel_err', float('nan')):.1e}"}[p]
            pct = "" if st.get("pct_of_peak") is None else f"{st['pct_of_peak']:.0f} %"
            lines.append(f"| {row['model']} | {shape} | {p} | {st['median_ms']:.0f} ({st['min_ms']:.0f}–"
                         f"{st['max_ms']:.0f}) | {st['speedup_vs_plain']:.2f} | {st['speedup_vs_explicit']:.2f} | "
                         f"{st['gflops_per_s']:.0f} | {pct} | {err} |")
    if report["bf16_refused"]:
        lines += ["", f"bf16 not measured: {report['bf16_refused']}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated zoo names or aliases")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mm-size", type=int, default=2048, help="N of the N×N torch.mm peak (at most 4096)")
    p.add_argument("--img-size", type=int, default=None, help="crop size (default: the checkpoint's)")
    p.add_argument("--frames", type=int, default=None, help="frames (default: the checkpoint's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    a = p.parse_args(argv)
    from uniformer.errors import UniformerLabError

    try:
        report = measure(tuple(m.strip() for m in a.models.split(",") if m.strip()), batch=a.batch,
                         rounds=a.rounds, mm_size=min(a.mm_size, 4096), img_size=a.img_size, frames=a.frames,
                         device=a.device, threads=a.threads, log=lambda m: print(m, file=sys.stderr, flush=True))
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(markdown(report)))
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
