"""Mixed load: light and heavy clients together, latency reported per class (issue 17).

    python -m benchmarks.load_test --start --duration 40 --clients 2 \\
        --heavy-clients 2 --heavy-model uniformer_lab --heavy-views 4x3 --app-light-request-gflops 1

Why: the app runs requests up to ``--light-request-gflops`` in a lane of their own
(``app/budget.py``) so that a small request never queues behind a heavy one. One latency
distribution over all requests hides exactly that; this run keeps the classes apart. Each class
(``light``: ``--clients/--model/--views``; ``heavy``: ``--heavy-clients/--heavy-model/--heavy-views``)
has its own threads calling ``/predict`` in a loop (``benchmarks.load_test.user``), and each
reports requests, successes, errors, refusals (the budget's "more than this server allows" and
"server is busy" sentences, counted apart from errors, with their messages) and p50 / p99 / max
of the successful requests' client-side latency. The estimated GFLOPs per request of each class
(``uniformer.cost``) says which lane the server should pick for it. The exit status is 1 if a
request failed; a refusal is the budget working, not a failure.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load_test import LOOPBACK, Outcome, RssSampler, _pct, predict_once, tree_rss_mb, unique_copy, user

# The two sentences with which app/budget.py refuses a request (OverBudget); a test builds real
# refusals with RequestBudget and checks that they are classified here, so the two cannot drift.
REFUSAL_MARKERS = ("more than this server allows", "The server is busy")


@dataclass(frozen=True)
class ClientClass:
    """One kind of client in a mixed run: ``clients`` threads asking for ``model`` at ``views``."""

    name: str
    clients: int
    model: str
    views: str


def is_refusal(message: str) -> bool:
    """Whether an error message is the server's budget refusing the request (not a failure)."""
    return any(marker in message for marker in REFUSAL_MARKERS)


def request_gflops(model: str, views: str) -> float | None:
    """Client-side estimate of one request's price, as the server computes it; None if unknown here."""
    from uniformer.cost import run_cost
    from uniformer.data.sampling import parse_views

    try:
        text = views.strip().lower()
        return float(run_cost(model, None if text.startswith("protocol") else parse_views(text)).gflops)
    except Exception:  # noqa: BLE001 - an estimate only (e.g. a model only the server knows)
        return None


def class_summary(cls: ClientClass, outcome: Outcome, wall: float, gflops: float | None) -> dict[str, Any]:
    """Requests, successes, errors and refusals (apart, with their first distinct messages), latency."""
    refusals = [e for e in outcome.errors if is_refusal(e)]
    errors = [e for e in outcome.errors if not is_refusal(e)]
    return {
        "clients": cls.clients, "model": cls.model, "views": cls.views, "gflops_per_request": gflops,
        "requests": len(outcome.latencies) + len(outcome.errors), "ok": len(outcome.latencies),
        "errors": len(errors), "error_samples": list(dict.fromkeys(errors))[:5],
        "refusals": len(refusals), "refusal_samples": list(dict.fromkeys(refusals))[:3],
        "throughput_rps": len(outcome.latencies) / wall if wall else None,
        "latency_s": _pct(outcome.latencies),
    }


def run_mixed(url: str, classes: list[ClientClass], *, duration: float, clip: Path, server_pid: int | None,
              unique: bool = True, settle: float = 5.0, light_gflops: float | None = None,
              log=print) -> dict[str, Any]:
    """One request of each class to warm up (loads the models), then all classes' clients together
    for ``duration`` s; requests in flight at the deadline are awaited."""
    from gradio_client import Client

    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load test only targets loopback addresses, not {host!r}")
    classes = [c for c in classes if c.clients > 0]
    sampler = RssSampler(server_pid)
    sampler.start()
    probe = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    folder = Path(tempfile.mkdtemp(prefix="load_clips_"))
    outcomes = {c.name: Outcome() for c in classes}
    warm: dict[str, float | str] = {}
    try:
        for i, c in enumerate(classes):
            log(f"warm-up: one {c.name} request ({c.model} at {c.views})")
            t0 = time.perf_counter()
            try:
                predict_once(probe, unique_copy(clip, folder, -1 - i) if unique else clip, c.model, c.views)
                warm[c.name] = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a refused class is reported, not fatal
                warm[c.name] = str(err).splitlines()[0][:400] if str(err) else type(err).__name__
        rss_before = tree_rss_mb(server_pid) if server_pid else None
        t_load = time.perf_counter() - sampler.t0
        log(" + ".join(f"{c.clients} {c.name}" for c in classes) + f" clients for {duration:.0f} s")
        counter, counter_lock = [0], threading.Lock()
        start = time.perf_counter()
        deadline = start + duration
        threads = [threading.Thread(target=user, args=(url, clip, c.model, c.views, deadline, outcomes[c.name],
                                                       unique, folder, counter, counter_lock), daemon=True)
                   for c in classes for _ in range(c.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - start
        rss_after = tree_rss_mb(server_pid) if server_pid else None
        if settle > 0:
            time.sleep(settle)
    finally:
        sampler.stop()
        shutil.rmtree(folder, ignore_errors=True)
    per_class = {c.name: class_summary(c, outcomes[c.name], wall, request_gflops(c.model, c.views)) for c in classes}
    return {
        "mode": "mixed", "url": url, "endpoint": "/predict", "clip": clip.name, "unique_uploads": unique,
        "duration_s": duration, "wall_s": wall, "light_request_gflops": light_gflops, "classes": per_class,
        "ok": sum(c["ok"] for c in per_class.values()), "errors": sum(c["errors"] for c in per_class.values()),
        "refusals": sum(c["refusals"] for c in per_class.values()), "warmup": warm, "server_pid": server_pid,
        "server_rss_mb": {"before": rss_before, "peak": sampler.peak(since=t_load), "after": rss_after},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def markdown_mixed(r: dict[str, Any]) -> str:
    """The printed summary: one row per client class."""

    def f(x: float | None, spec: str = ".2f") -> str:
        return "—" if x is None else format(x, spec)

    lane = (f"; light lane up to {r['light_request_gflops']:,.2f} GFLOPs" if r.get("light_request_gflops") is not None
            else "")
    lines = [f"mixed run, {r['duration_s']:.0f} s on {r['url']} ({r['endpoint']}{lane})", "",
             "| class | clients | model @ views | GFLOPs/req | requests | ok | errors | refused | p50 s | p99 s "
             "| max s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, c in r["classes"].items():
        lat = c["latency_s"]
        lines.append(f"| {name} | {c['clients']} | {c['model']} @ {c['views']} | {f(c['gflops_per_request'])} | "
                     f"{c['requests']} | {c['ok']} | {c['errors']} | {c['refusals']} | {f(lat['p50'])} | "
                     f"{f(lat['p99'])} | {f(lat['max'])} |")
    for name, c in r["classes"].items():
        lines += [f"- {name} error: {e}" for e in c["error_samples"]]
        lines += [f"- {name} refused: {e}" for e in c["refusal_samples"]]
    return "\n".join(lines)
