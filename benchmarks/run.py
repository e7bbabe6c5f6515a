"""One entry point for every measurement; writes ``docs/BENCHMARKS.md`` and ``docs/benchmarks.json``.

    python -m benchmarks.run                    # full run (about 20 min on 2 CPU cores)
    python -m benchmarks.run --quick            # fewer repeats, no B-32, batch 8 only for small models
    python -m benchmarks.run --device cuda      # adds fp32 vs bf16/fp16 autocast and CUDA memory
    python -m benchmarks.run --only models,decode --out /tmp/bench

Sections (``--only`` picks some):

- ``models``    params, GFLOPs (measured on the meta device vs published), forward latency and
                throughput at batch 1 and 8, peak memory; each case in its own process.
- ``attention`` the fused SDPA path vs the attention-capture path (maps kept), interleaved.
- ``precision`` fp32 vs bf16 / fp16 autocast (CUDA only).
- ``compile``   ``torch.compile`` on/off (full run only: compiling takes minutes on a small CPU).
- ``inference`` explicit attention (official) / plain / fp32 fast / bf16 (``optimize_for_inference``) and
                the fp32 / bf16 ``torch.mm`` peak, interleaved in one process (``benchmarks/inference.py``).
- ``decode``    decode time per backend, and only-the-needed-frames vs decoding everything.
- ``predict_cli`` end-to-end ``python -m uniformer.predict`` wall time (1x1 and 4x1 views).
- ``app``       upload → prediction latency through the running app (``benchmarks/app_latency.py``).
- ``load``      not run here (it takes minutes): the last ``python -m benchmarks.load_test``
                result saved in ``docs/load_test.json`` is included when present.

Latency is always the median of repeated runs after warm-up, with min-max spread, and every
measurement records the 1-minute load average next to it: on a shared machine that is the
first thing to check before trusting a number.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.model_latency import ALIASES, Case, run_case, zoo_name  # noqa: E402
from uniformer.device import cpu_name  # noqa: E402

SECTIONS = ("models", "attention", "precision", "compile", "inference", "decode", "predict_cli", "app", "load")
FULL_MODELS = ("uniformer_s8", "uniformer_s16", "uniformer_s32", "uniformer_b8", "uniformer_b16", "uniformer_b32",
               "timesformer_base")
QUICK_MODELS = tuple(m for m in FULL_MODELS if m != "uniformer_b32")
README_START = "<!-- performance:start -->"
README_END = "<!-- performance:end -->"


# ============================================================================== helpers

def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10)
        if out.returncode != 0:
            return None
        return out.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def bundled_models() -> dict[str, str]:
    """Zoo entries shipped as files in ``assets/checkpoints/`` → their weights path."""
    from uniformer.zoo import ZOO

    return {e.name: str(e.local_path) for e in ZOO.values()
            if e.kind == "local" and e.local_path is not None and e.local_path.is_file()}


def _flops(name: str) -> dict[str, Any]:
    from uniformer.flops import flops_for

    try:
        mf = flops_for(zoo_name(name))
    except Exception as err:  # noqa: BLE001 - recorded, the report goes on
        return {"error": f"{type(err).__name__}: {err}"}
    return {"gflops": mf.gflops_per_view, "published_gflops": mf.published_gflops_per_view, "diff_pct": mf.diff_pct,
            "params_m": mf.report.params_m, "input_shape": list(mf.input_shape), "views": mf.views}


class Plan:
    """What a run measures; ``quick`` trims repeats and the largest cases."""

    def __init__(self, quick: bool, device: str, threads: int | None, models: tuple[str, ...] | None = None) -> None:
        self.quick, self.device, self.threads = quick, device, threads
        self.models = models or (QUICK_MODELS if quick else FULL_MODELS)
        self.bundled = bundled_models()

    def case(self, model: str, batch: int = 1, variants: tuple[str, ...] = ("base",), **kw: Any) -> Case:
        big = model in ("uniformer_b16", "uniformer_b32", "uniformer_s32", "timesformer_base")
        if self.quick:
            warmup, repeats = 1, 3 if batch == 1 else 2
        elif batch == 1:
            warmup, repeats = 1, 5 if big else 7
        else:  # batch 8 of the big models costs 10-40 s a run on 2 cores
            warmup, repeats = 1, 2 if big else 3
        kw.setdefault("warmup", warmup)
        kw.setdefault("repeats", repeats)
        return Case(model=model, batch=batch, variants=variants, device=self.device, threads=self.threads,
                    checkpoint=self.bundled.get(model), **kw)


# ============================================================================== sections

def section_models(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    rows = []
    names = list(plan.models) + [n for n in plan.bundled if n not in plan.models]
    for name in names:
        row: dict[str, Any] = {"model": name, "zoo_name": zoo_name(name), "bundled": name in plan.bundled,
                               "flops": _flops(name)}
        batches = [1]
        if not plan.quick or name in plan.bundled:
            batches.append(8)
        for batch in batches:
            log(f"models: {name} batch {batch}")
            row[f"batch{batch}"] = run_case(plan.case(name, batch))
        rows.append(row)
    return {"rows": rows}


def section_attention(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    # B-32 is left out: its captured maps alone take about 4 GB (20 blocks x 5 heads x 3136^2 floats).
    names = ("uniformer_s8",) if plan.quick else ("uniformer_s8", "uniformer_s16", "uniformer_b16", "timesformer_base")
    rows = []
    for name in names:
        log(f"attention: {name} sdpa vs capture")
        rows.append({"model": name, "result": run_case(plan.case(name, 1, ("base", "capture")))})
    return {"rows": rows}


def section_precision(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    if not plan.device.startswith("cuda"):
        return {"skipped": "autocast precisions are measured on CUDA only; this run used the CPU"}
    names = ("uniformer_s16",) if plan.quick else ("uniformer_s16", "uniformer_b16", "uniformer_b32",
                                                   "timesformer_base")
    rows = []
    for name in names:
        for batch in (1, 8):
            log(f"precision: {name} batch {batch}")
            rows.append({"model": name, "batch": batch,
                         "result": run_case(plan.case(name, batch, ("base", "bf16", "fp16")))})
    return {"rows": rows}


def section_compile(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    if plan.quick:
        return {"skipped": "torch.compile is measured in the full run only (compiling takes minutes on a small CPU)"}
    rows = []
    for name in ("uniformer_s16",):
        log(f"compile: {name}")
        rows.append({"model": name, "batch": 1,
                     "result": run_case(plan.case(name, 1, ("base", "compile")), timeout=2400)})
    return {"rows": rows}


def section_inference(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import inference

    models = ("uniformer_s8",) if plan.quick else inference.DEFAULT_MODELS
    return inference.measure(models, rounds=3 if plan.quick else 5, device=plan.device, threads=plan.threads,
                             log=log)


def section_decode(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import decode

    log("decode: per backend")
    load = _load1()
    out = decode.run(runs=3 if plan.quick else 5)
    out["loadavg_1min"] = [load, _load1()]
    return out


def section_predict_cli(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import predict_cli

    log("predict_cli: python -m uniformer.predict 1x1 and 4x1")
    return predict_cli.run(repeats=1 if plan.quick else 3, device=plan.device)


def section_app(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    """``benchmarks/app_latency.py`` (written with the app) in a child process: it starts
    ``python app.py`` itself and drives it with ``gradio_client``."""
    import tempfile

    script = REPO_ROOT / "benchmarks" / "app_latency.py"
    if not script.is_file():
        return {"skipped": "benchmarks/app_latency.py is not in this checkout"}
    log("app: start-up, upload -> prediction, attention view")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "app_latency.json"
        cmd = [sys.executable, "-m", "benchmarks.app_latency", "--device", plan.device,
               "--repeats", "1" if plan.quick else "3", "--json", str(out)]
        load = _load1()
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
                                  env=dict(os.environ, PYTHONWARNINGS="ignore"))
        except subprocess.TimeoutExpired:
            return {"error": "benchmarks.app_latency timed out after 1800 s"}
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines()
                    or [f"exit code {proc.returncode}"])[-1]
            return {"error": tail[:300]}
        result = json.loads(out.read_text())
    shown = "python -m benchmarks.app_latency --device {} --repeats {}".format(plan.device,
                                                                               cmd[cmd.index("--repeats") + 1])
    try:
        from benchmarks.app_latency import markdown

        table = markdown(result)
    except Exception:  # noqa: BLE001 - the JSON is still reported
        table = None
    return {"command": shown, "loadavg_1min": [load, _load1()], "result": result, "markdown": table}


def section_load(plan: Plan | None, log: Callable[[str], None] | None, out_dir: Path) -> dict[str, Any]:
    """The saved load-test results: ``load_test.json`` (the app as shipped) and any
    ``load_test_*.json`` (the same test with another server configuration) for comparison."""
    path = out_dir / "load_test.json"
    if not path.is_file():
        return {"skipped": f"no {path.name}: run python -m benchmarks.load_test --start --clients 8 "
                           f"--duration 120 --rounds 3 --out {path}"}
    others = {p.name: json.loads(p.read_text()) for p in sorted(out_dir.glob("load_test_*.json"))}
    return {"file": path.name, "result": json.loads(path.read_text()), "compare": others}


# ============================================================================== report

def _ms(v: dict[str, Any] | None) -> str:
    if not v:
        return "—"
    return f"{v['median_ms']:.0f} ({v['min_ms']:.0f}–{v['max_ms']:.0f})"


def _f(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def _base(res: dict[str, Any] | None) -> dict[str, Any] | None:
    if not res or "error" in res:
        return None
    return res["variants"][res["case"]["variants"][0]]


def _err(res: dict[str, Any] | None) -> str:
    return f"error: {res['error']}" if res and "error" in res else "—"


def _load_of(res: dict[str, Any] | None) -> str:
    if not res or "loadavg_before" not in res:
        return "—"
    return f"{res['loadavg_before'][0]:.1f}→{res['loadavg_after'][0]:.1f}"


def models_table(sec: dict[str, Any]) -> list[str]:
    out = ["| model | input | params (M) | GFLOPs measured | published | Δ % | batch 1 ms, median (min–max) | "
           "clips/s | peak RSS MB | batch 8 ms, median (min–max) | clips/s | peak RSS MB | load (1 min) b1 / b8 |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in sec["rows"]:
        fl = row["flops"]
        b1, b8 = row.get("batch1"), row.get("batch8")
        s1, s8 = _base(b1), _base(b8)
        shape = fl.get("input_shape") or (b1 or {}).get("input")
        inp = f"{shape[2]}×{shape[3]}" if shape else "—"
        name = row["model"] + (" (bundled)" if row["bundled"] else "")
        out.append(
            f"| {name} | {inp} | {_f(fl.get('params_m'))} | {_f(fl.get('gflops'))} | "
            f"{_f(fl.get('published_gflops'))} | "
            f"{_f(fl.get('diff_pct'), '+.2f')} | {_ms(s1) if s1 else _err(b1)} | "
            f"{_f(s1 and s1['throughput_clips_s'], '.2f')} | "
            f"{_f(b1 and b1.get('peak_rss_mb'), '.0f')} | "
            f"{(_ms(s8) if s8 else (_err(b8) if b8 else 'not run'))} | {_f(s8 and s8['throughput_clips_s'], '.2f')} | "
            f"{_f(b8 and b8.get('peak_rss_mb'), '.0f')} | {_load_of(b1)} / {_load_of(b8)} |")
    return out


def variants_table(rows: list[dict[str, Any]], extra: Callable[[str, dict], str] | None = None,
                   extra_header: str = "") -> list[str]:
    head = ("| model | batch | variant | ms, median (min–max) | first call ms | speed-up vs base "
            "| peak RSS MB (process) | load (1 min) |")
    sep = "|---|---:|---|---:|---:|---:|---:|---|"
    if extra:
        head += f" {extra_header} |"
        sep += "---:|"
    out = [head, sep]
    for row in rows:
        res = row["result"]
        batch = row.get("batch", 1)
        if "error" in res:
            out.append(f"| {row['model']} | {batch} | — | error: {res['error']} | | | | |")
            continue
        for v, st in res["variants"].items():
            speed = next((val for k, val in st.items() if k.startswith("speedup_vs_")), None)
            line = (f"| {row['model']} | {batch} | {v} | {_ms(st)} | {st['first_call_ms']:.0f} | "
                    f"{_f(speed, '.2f') + '×' if speed else '1.00× (reference)'} | {res['peak_rss_mb']:.0f} | "
                    f"{_load_of(res)} |")
            if extra:
                line += f" {extra(v, st)} |"
            out.append(line)
    return out


def decode_tables(sec: dict[str, Any]) -> list[str]:
    out = ["| clip | size | frames | backend | ms, median (min–max) | frames decoded (PyAV) |",
           "|---|---|---:|---|---:|---:|"]
    for r in sec["results"]:
        dec = r["pyav_frames_decoded"] if r["pyav_frames_decoded"] is not None else "—"
        out.append(f"| {r['clip']} | {r['size']} | {r['frames']} | {r['backend']} ({r['used_backend']}) | "
                   f"{1000 * r['median_s']:.0f} ({1000 * r['min_s']:.0f}–{1000 * r.get('max_s', r['min_s']):.0f}) | "
                   f"{dec} |")
    if sec.get("needed_vs_all"):
        out += ["", "| clip | every frame decoded + converted, ms | only the 16 needed (reader), ms | speed-up |",
                "|---|---:|---:|---:|"]
        for c in sec["needed_vs_all"]:
            out.append(f"| {c['clip']} | {1000 * c['all_frames_median_s']:.0f} | "
                       f"{1000 * c['needed_only_median_s']:.0f} | "
                       f"{c['speedup']:.1f}× |")
    return out


def predict_cli_table(sec: dict[str, Any]) -> list[str]:
    out = [f"Import only (`python -c \"import uniformer.predict, uniformer.zoo, uniformer.models\"`): "
           f"{sec['import']['median_s']:.2f} s median.", "",
           "| views | wall s, median (min–max) | decode s | preprocess s | model s | runs | load (1 min) |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for r in sec["runs"]:
        if "error" in r:
            out.append(f"| {r['views']} | error: {r['error']} | | | | | |")
            continue
        s = r["median_split_s"]
        out.append(f"| {r['views']} | {r['median_wall_s']:.2f} ({r['min_wall_s']:.2f}–{r['max_wall_s']:.2f}) | "
                   f"{s['decode_s']:.2f} | {s['preprocess_s']:.2f} | {s['model_s']:.2f} | {r['repeats']} | "
                   f"{r['loadavg_before'][0]:.1f}→{r['loadavg_after'][0]:.1f} |")
    return out


def _json_block(obj: Any) -> list[str]:
    return ["```json", json.dumps(obj, indent=1)[:6000], "```"]


def app_lines(sec: dict[str, Any]) -> list[str]:
    if "skipped" in sec:
        return [f"Not measured: {sec['skipped']}."]
    if "error" in sec:
        return [f"Failed: {sec['error']}"]
    lines = [f"Command: `{sec['command']}`; load (1 min) {sec['loadavg_1min'][0]:.1f}→{sec['loadavg_1min'][1]:.1f}.",
             ""]
    table = sec.get("markdown")
    return lines + (table.splitlines() if isinstance(table, str) else _json_block(sec["result"]))


def load_lines(sec: dict[str, Any]) -> list[str]:
    if "skipped" in sec:
        return [f"Not included: {sec['skipped']}."]
    r = sec["result"]
    lat = r.get("latency_s", {})
    rss = r.get("server_rss_mb", {})
    rounds = r.get("rounds", 1)
    out = [
        f"`{r.get('command', 'python -m benchmarks.load_test')}` — {r.get('clients')} concurrent `gradio_client` "
        "users, "
        f"{rounds} round(s) of {r.get('duration_s'):.0f} s, against `python app.py` on {r.get('url')} "
        f"({r.get('endpoint')}, model `{r.get('model')}`, views {r.get('views')}, "
        f"{'a new upload of the clip per request' if r.get('unique_uploads') else 'the same file each time'}); "
        f"finished {r.get('finished', '?')}, load average at the end {r.get('loadavg', ['?'])[0]}.",
        "",
        "| requests ok | errors | req/s | p50 s | p90 s | p99 s | max s | server RSS MB: after warm-up / peak / last "
        "round settled |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {r.get('ok')} | {r.get('errors')} | {_f(r.get('throughput_rps'))} | {_f(lat.get('p50'))} | "
        f"{_f(lat.get('p90'))} | {_f(lat.get('p99'))} | {_f(lat.get('max'))} | "
        f"{_f(rss.get('before'), '.0f')} / {_f(rss.get('peak'), '.0f')} / {_f(rss.get('settled'), '.0f')} |",
    ]
    if r.get("per_round"):
        out += ["", "| round | ok | errors | p50 s | p99 s | RSS peak MB | RSS settled MB |",
                "|---:|---:|---:|---:|---:|---:|---:|"]
        for i, pr in enumerate(r["per_round"], 1):
            out.append(f"| {i} | {pr['ok']} | {pr['errors']} | {_f(pr['latency_s'].get('p50'))} | "
                       f"{_f(pr['latency_s'].get('p99'))} | {_f(pr.get('rss_peak_mb'), '.0f')} | "
                       f"{_f(pr.get('rss_settled_mb'), '.0f')} |")
    out += [f"- error: {e}" for e in r.get("error_samples", [])]
    if sec.get("compare"):
        out += ["", "Same test, other server configurations:", "",
                "| configuration | file | ok | errors | p50 s | p99 s | RSS after warm-up MB | settled after each "
                "round MB |",
                "|---|---|---:|---:|---:|---:|---:|---|"]
        for name, o in [(sec["file"], r), *sec["compare"].items()]:
            settled = o.get("server_rss_mb", {}).get("settled_per_round") or []
            out.append(f"| {o.get('label', name)} | `{name}` | {o.get('ok')} | {o.get('errors')} | "
                       f"{_f(o.get('latency_s', {}).get('p50'))} | {_f(o.get('latency_s', {}).get('p99'))} | "
                       f"{_f(o.get('server_rss_mb', {}).get('before'), '.0f')} | "
                       f"{' → '.join(_f(x, '.0f') for x in settled)} |")
        if any("MALLOC_ARENA_MAX" in str(o.get("label", "")) for o in sec["compare"].values()):
            out += ["", "Why the settled RSS creeps up in the app as shipped: Gradio runs handlers on a pool of worker "
                        "threads, glibc gives threads their own malloc arenas (up to 8 per core), and the freed "
                        "activation memory of each forward stays mapped in whichever arena served it. Capping the "
                        "arenas (`MALLOC_ARENA_MAX=2` in the environment, or `mallopt(M_ARENA_MAX, 2)` at start-up) "
                        "keeps the server near a plateau."]
    return out


def recommendations(report: dict[str, Any]) -> list[str]:
    """Only what the numbers of *this* run support: each inference path's speed-up over the plain model."""
    sec = report["sections"].get("inference") or {}
    out = []
    for path in ("fp32", "bf16"):
        ratios = [(row["model"], row["paths"][path]["speedup_vs_plain"]) for row in sec.get("models", [])
                  if path in row["paths"]]
        if ratios:
            out.append(f"- `{path}`: " + ", ".join(f"{m} {r:.2f}×" for m, r in ratios) + ".")
    comp = report["sections"].get("compile")
    if comp and comp.get("rows"):
        r = comp["rows"][0]["result"]
        if "error" not in r:
            c = r["variants"].get("compile", {})
            gain = c.get("speedup_vs_base") or 0
            verdict = ("worth it for a long-running server" if gain >= 1.2 else
                       "a small gain, paid for with compilation per input shape" if gain >= 1.05 else
                       "not worth it here")
            out.append(f"- `compile`: {_f(c.get('speedup_vs_base'))}× after a first call of "
                       f"{c.get('first_call_ms', 0) / 1000:.0f} s (compilation) → {verdict}.")
    return out


def _section_markdown(name: str, sec: dict[str, Any], report: dict[str, Any]) -> list[str]:
    if name == "models":
        return [*models_table(sec), "",
                "GFLOPs are counted on the meta device by `uniformer.flops` in the papers' convention (multiply-adds; "
                "UniFormer includes norms as fvcore does), \"published\" from `assets/published_results.csv`."]
    if name == "attention":
        return [*variants_table(sec["rows"], lambda v, st: _f(st.get("attention_maps_mb"), ".0f"), "maps kept MB"), "",
                "`capture` is what the analysis views use (`attention_capture`): explicit softmax with the "
                "L×L maps materialised and kept. The normal forward (and the app's predictions) use SDPA."]
    if name == "precision":
        return variants_table(sec["rows"])
    if name == "compile":
        return variants_table(sec["rows"]) + ["", "First call = compilation + one forward."]
    if name == "inference":
        from benchmarks.inference import markdown

        return [*markdown(sec), "", "Speed-up over the plain model in this run:", "",
                *(recommendations(report) or ["- (no data)"])]
    if name == "decode":
        return [*decode_tables(sec), "",
                f"Median of {sec['meta']['runs']} runs, a fresh reader each run (index building included); "
                f"load (1 min) {sec['loadavg_1min'][0]:.1f}→{sec['loadavg_1min'][1]:.1f}."
                + (f" Skipped (clip not on this machine): {', '.join(sec['meta']['skipped'])}."
                   if sec["meta"].get("skipped") else "")]
    if name == "predict_cli":
        return ["UniFormer-S 16×224 (random weights), `assets/clips/pedestrians_576p_10s.mp4`, a fresh process per "
                "run (import and model construction included).", "", *predict_cli_table(sec)]
    if name == "app":
        return app_lines(sec)
    if name == "load":
        return load_lines(sec)
    return _json_block(sec)


def _max_case_load(report: dict[str, Any]) -> float:
    loads = [report["meta"]["loadavg_start"][0]]

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if "loadavg_before" in obj and isinstance(obj["loadavg_before"], list):
                loads.append(obj["loadavg_before"][0])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk({k: v for k, v in report["sections"].items() if k != "load"})
    return max(loads)


def write_markdown(report: dict[str, Any], path: Path) -> str:
    m = report["meta"]
    s = report["sections"]
    L = ["# Benchmarks", "",
         f"Generated by `{m['command']}` on {m['date']} in {m['wall_s'] / 60:.1f} min.", "",
         f"Machine: {m['cpu']} — {m['cpu_count']} CPU cores, torch {m['torch']} ({m['threads']} threads), "
         f"Python {m['python']}, {m['platform']}; device "
         f"`{m['device']}`{', ' + m['cuda_device'] if m.get('cuda_device') else ''}; "
         f"commit {m.get('commit') or '?'}.",
         f"Load average (1 min) at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f}, highest "
         f"before a case {_max_case_load(report):.2f}; each case itself runs {m['threads']} threads, so a load "
         f"near {m['threads']} is the benchmark alone. "
         + ("**Other jobs shared the machine during this run: absolute times are inflated and noisy; "
            "ratios measured interleaved in one process (attention, optimisations) are the robust numbers.**"
            if _max_case_load(report) > m["cpu_count"] + 1 else ""),
         "",
         "Method: random weights unless a bundled checkpoint exists, `torch.inference_mode()`, the zoo entry's "
         "test input (one view). Latency = median of the timed runs after warm-up, with (min–max); clips/s = "
         "batch / median. Peak RSS is the `VmHWM` of a fresh process that ran only that case (it includes the "
         "Python + torch runtime, ~0.5–0.7 GB). Cases compared against each other (attention path, optimisations, "
         "compile, precision) run interleaved (A, B, A, B, …) in one process. \"load\" is the 1-minute load "
         "average before→after each case.", ""]
    titles = {"models": "Models", "attention": "Attention path: fused SDPA vs capture (maps kept)",
              "precision": "Precision (autocast)", "compile": "torch.compile",
              "inference": "Inference paths (`optimize_for_inference`) against the matmul peak",
              "decode": "Decoding (16 frames of a UniFormer 16×8 clip)",
              "predict_cli": "`python -m uniformer.predict` end to end", "app": "App: upload → prediction",
              "load": "App under load"}
    for name, sec in s.items():
        L += [f"## {titles.get(name, name)}", ""]
        if "error" in sec and name != "app":
            L += [f"Failed: {sec['error']}", ""]
            continue
        if "skipped" in sec and name not in ("app", "load"):
            L += [f"Not measured: {sec['skipped']}.", ""]
            continue
        L += _section_markdown(name, sec, report) + [""]
    L += ["The raw numbers (every run) are in `docs/benchmarks.json`."]
    text = "\n".join(L) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def readme_section(report: dict[str, Any]) -> str:
    """The README's "Performance" block: headline numbers and the command that made them."""
    m, s = report["meta"], report["sections"]
    L = [README_START, "## Performance", "",
         f"Measured with `{m['command']}` on {m['cpu_count']} CPU cores ({m['cpu']}), torch {m['torch']}, "
         f"{m['date'][:10]}; load average {m['loadavg_start'][0]:.1f} at start"
         + (" — a shared, busy machine, so absolute times are pessimistic"
            if _max_case_load(report) > m["cpu_count"] + 1 else "")
         + ". Full report: [docs/BENCHMARKS.md](docs/BENCHMARKS.md).", ""]
    if "models" in s:
        L += ["| model | input | params (M) | GFLOPs (published) | batch 1 latency, ms | batch 8 clips/s |",
              "|---|---|---:|---:|---:|---:|"]
        for row in s["models"]["rows"]:
            fl = row["flops"]
            s1, s8 = _base(row.get("batch1")), _base(row.get("batch8"))
            shape = fl.get("input_shape")
            inp = f"{shape[2]}×{shape[3]}" if shape else "—"
            L.append(f"| {row['model']} | {inp} | {_f(fl.get('params_m'), '.1f')} | "
                     f"{_f(fl.get('gflops'), '.1f')} ({_f(fl.get('published_gflops'), '.1f')}) | "
                     f"{_f(s1 and s1['median_ms'], '.0f')} | {_f(s8 and s8['throughput_clips_s'], '.2f')} |")
        L.append("")
    bullets = []
    att = [(row["model"], row["result"]["variants"]["capture"]) for row in s.get("attention", {}).get("rows", [])
           if "error" not in row["result"] and "capture" in row["result"]["variants"]]
    if att:
        bullets.append("attention capture (maps kept, for the analysis views) vs the fused SDPA forward, batch 1: "
                       + ", ".join(f"{m} {1 / c['speedup_vs_base']:.2f}× the time and "
                                   f"{c.get('attention_maps_mb', 0):.0f} MB "
                                   "of maps" for m, c in att))
    rec = recommendations(report)
    if rec:
        bullets.append("`optimize_for_inference`, speed-up vs the plain model: "
                       + "; ".join(r[2:].rstrip(".") for r in rec))
    dec = s.get("decode", {}).get("needed_vs_all")
    if dec:
        bullets.append("decoding only the needed frames vs every frame: "
                       + ", ".join(f"{c['speedup']:.1f}× ({c['clip']})" for c in dec))
    cli = s.get("predict_cli", {}).get("runs")
    if cli:
        bullets.append("`python -m uniformer.predict` end to end (UniFormer-S 16×224, 10 s 576p clip): "
                       + ", ".join(f"{r['views']} {r['median_wall_s']:.1f} s" for r in cli if "error" not in r))
    load = s.get("load", {}).get("result")
    if load:
        lat = load.get("latency_s", {})
        settled = load.get("server_rss_mb", {}).get("settled_per_round") or []
        bullets.append(f"app under load: {load.get('clients')} concurrent clients × {load.get('rounds', 1)} × "
                       f"{load.get('duration_s'):.0f} s → {load.get('ok')} predictions, {load.get('errors')} errors, "
                       f"latency p50 {_f(lat.get('p50'), '.1f')} s / p99 {_f(lat.get('p99'), '.1f')} s; server RSS "
                       f"{_f(load.get('server_rss_mb', {}).get('before'), '.0f')} MB after warm-up, settled "
                       + " → ".join(_f(x, '.0f') for x in settled) + " MB after each round")
        for name, other in (s.get("load", {}).get("compare") or {}).items():
            st = other.get("server_rss_mb", {}).get("settled_per_round") or []
            bullets.append(f"same load with {other.get('label', name)}: {other.get('ok')} predictions, "
                           f"{other.get('errors')} errors, settled RSS " + " → ".join(_f(x, '.0f') for x in st) + " MB")
    L += [f"- {b}" for b in bullets]
    L += ["", "Reproduce: `python -m benchmarks.run` (about 20 min on 2 cores; `--quick` for a few minutes, "
              "`--device cuda` adds autocast precisions); the load test: "
              "`python -m benchmarks.load_test --start --clients 8 --duration 120 --rounds 3 --out "
              "docs/load_test.json`.", README_END]
    return "\n".join(L)


def update_readme(report: dict[str, Any], readme: Path = REPO_ROOT / "README.md") -> None:
    """Replace the text between the performance markers (or append the section once)."""
    text = readme.read_text(encoding="utf-8")
    block = readme_section(report)
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")


# ============================================================================== main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no B-32, batch 8 only for bundled models")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", default=None, help=f"comma-separated sections: {', '.join(SECTIONS)}")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per case (default: torch's)")
    ap.add_argument("--models", default=None, help="comma-separated models for the models section "
                                                   f"(default: {', '.join(FULL_MODELS)}; short names or zoo names)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="folder for BENCHMARKS.md and benchmarks.json")
    ap.add_argument("--update-readme", action="store_true", help="rewrite README.md's Performance section")
    ap.add_argument("--merge", action="store_true",
                    help="add to the existing benchmarks.json instead of replacing it: the sections run now replace "
                         "theirs, and model rows replace the rows of the same model (e.g. --only models --models "
                         "NAME after bundling a new model)")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rebuild BENCHMARKS.md (and the README section) from benchmarks.json, "
                         "refreshing the saved load-test results")
    args = ap.parse_args(argv)

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA device is available.", file=sys.stderr)
            return 2
    only = SECTIONS if not args.only else tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        print(f"error: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}.", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((args.out / "benchmarks.json").read_text())
        report["sections"]["load"] = section_load(None, None, args.out)
        (args.out / "benchmarks.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        write_markdown(report, args.out / "BENCHMARKS.md")
        if args.update_readme:
            update_readme(report)
        print(f"rebuilt {args.out / 'BENCHMARKS.md'} from {args.out / 'benchmarks.json'}")
        return 0
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    plan = Plan(args.quick, args.device, args.threads, models)

    import torch

    t0 = time.perf_counter()
    cmd = "python -m benchmarks.run" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    report: dict[str, Any] = {"meta": {
        "command": cmd, "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick, "device": args.device, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "commit": _git_commit(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()], "models": list(plan.models),
        "bundled_models": list(plan.bundled), "aliases": {k: v for k, v in ALIASES.items()},
    }, "sections": {}}
    if args.device == "cuda":
        report["meta"]["cuda_device"] = torch.cuda.get_device_name(0)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s, load {_load1():.1f}] {msg}", flush=True)

    funcs: dict[str, Callable[..., dict[str, Any]]] = {
        "models": section_models, "attention": section_attention, "precision": section_precision,
        "compile": section_compile, "inference": section_inference, "decode": section_decode,
        "predict_cli": section_predict_cli, "app": section_app,
    }
    json_path, md_path = args.out / "benchmarks.json", args.out / "BENCHMARKS.md"
    base = json.loads(json_path.read_text()) if args.merge and json_path.is_file() else None
    if base is not None:  # keep the earlier run's meta; note this run beside it
        base["meta"].setdefault("merged", []).append(
            {k: report["meta"][k] for k in ("command", "date", "commit", "loadavg_start")})
        base["meta"]["bundled_models"] = report["meta"]["bundled_models"]
        report = base
    for name in SECTIONS:
        if name not in only:
            continue
        try:
            result = section_load(plan, log, args.out) if name == "load" else funcs[name](plan, log)
        except Exception as err:  # noqa: BLE001 - one broken section must not lose the others
            result = {"error": f"{type(err).__name__}: {err}"}
            log(f"{name} failed: {result['error']}")
        if base is not None and name == "models" and "rows" in result and "rows" in base["sections"].get(name, {}):
            new = {r["model"]: r for r in result["rows"]}
            old = [new.pop(r["model"], r) for r in base["sections"][name]["rows"]]
            result = {"rows": old + list(new.values())}
        report["sections"][name] = result
        report["meta"]["wall_s" if base is None else "merged_wall_s"] = time.perf_counter() - t0
        report["meta"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")  # partial results survive
    write_markdown(report, md_path)
    if args.update_readme:
        update_readme(report)
    log(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
