"""Drive the running app with N concurrent ``gradio_client`` users for a bounded time.

    python -m benchmarks.load_test --start --clients 8 --duration 120        # starts `python app.py`
    python -m benchmarks.load_test --url http://127.0.0.1:7860/ --server-pid 1234

Every user is a thread with its own ``gradio_client.Client`` that calls ``/predict`` in a loop
(upload a clip → top-5 of the app's first default model at ``--views``, 1x1 by default) until
the time is up; requests in flight at the deadline are awaited. By default each request
uploads a *different* file (the bundled clip plus a random MP4 ``free`` box), so every request
is a new upload and a new decode, as with different users, and the app's caches are exercised;
``--same-file`` sends the identical file every time (the decoded clip is then cached).
With ``--heavy-clients N`` the run is mixed: N more users ask for ``--heavy-model`` at
``--heavy-views`` beside the light ones, and each class is reported apart, refusals by the
server's budget counted separately (``benchmarks/load_mix.py``).

Reported: successes, errors (with the first distinct messages), throughput, latency
percentiles (client-side wall time, upload and queue wait included), and the server's resident
memory (``VmRSS`` of the server process and its children, sampled every 0.5 s): *before* (after
two warm-up requests: the plateau), *peak*, *after* (when the last request returned) and
*settled* (after ``--settle`` idle seconds). With ``--rounds N`` the load phase is repeated and
the settled RSS after each round shows whether memory reaches a plateau (the first round warms
the allocator's per-thread arenas and the app's caches) or keeps growing. Exit status 1 if any
request failed.

Loopback only: the URL must point at 127.0.0.1 / localhost.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.testing import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ============================================================================ server side

def stop_app(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Terminate a started app; kill it if it has not exited after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_app(port: int, *, models: str | None = None, device: str = "cpu", views: str = "1x1",
              timeout: float = 900.0, env: dict[str, str] | None = None,
              extra_args: list[str] | None = None) -> tuple[subprocess.Popen, Path]:
    """``python app.py`` on ``127.0.0.1:port``; returns once the page answers. Output goes to a log file."""
    log = Path(tempfile.mkdtemp(prefix="load_test_")) / "app.log"
    cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--device", device,
           "--views", views]
    if models:
        cmd += ["--models", models]
    cmd += extra_args or []
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    deadline = time.time() + timeout
    url = f"http://127.0.0.1:{port}/"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited during start-up; see {log}:\n" + log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, log
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s; see {log}")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def tree_rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` and all its descendants (MB), from ``/proc``."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            if p == pid:
                return None
            continue
        todo.extend(_children(p))
    return total / 1024


def pid_listening_on(port: int) -> int | None:
    """The process that owns the listening socket on ``port`` (Linux ``/proc``), if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # LISTEN
                inodes.add(parts[9])
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


class RssSampler(threading.Thread):
    def __init__(self, pid: int | None, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set() and self.pid is not None:
            rss = tree_rss_mb(self.pid)
            if rss is not None:
                self.samples.append((time.perf_counter() - self.t0, rss))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def peak(self, since: float = 0.0) -> float | None:
        vals = [r for t, r in self.samples if t >= since]
        return max(vals) if vals else None


# ============================================================================ client side

@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def unique_copy(clip: Path, folder: Path, i: int) -> Path:
    """The clip plus a trailing MP4 ``free`` box of random bytes: a valid, distinct file."""
    out = folder / f"{clip.stem}_{i}{clip.suffix}"
    shutil.copyfile(clip, out)
    if clip.suffix.lower() in (".mp4", ".mov", ".m4v"):
        payload = os.urandom(24)
        with open(out, "ab") as f:
            f.write((8 + len(payload)).to_bytes(4, "big") + b"free" + payload)
    return out


def predict_once(client: Any, clip: Path, model: str, views: str) -> dict[str, Any]:
    from gradio_client import handle_file

    result, _cards, _gallery, _status = client.predict(handle_file(str(clip)), [model], views, None, None,
                                                       api_name="/predict")
    return result


def user(url: str, clip: Path, model: str, views: str, deadline: float, outcome: Outcome, unique: bool,
         folder: Path, counter: list[int], counter_lock: threading.Lock) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as err:  # noqa: BLE001 - a failed connection is a failed request
        with outcome.lock:
            outcome.errors.append(f"connect: {type(err).__name__}: {str(err)[:200]}")
        return
    while time.perf_counter() < deadline:
        path = clip
        if unique:
            with counter_lock:
                counter[0] += 1
                n = counter[0]
            path = unique_copy(clip, folder, n)
        t0 = time.perf_counter()
        try:
            result = predict_once(client, path, model, views)
            ok = bool(result and result.get("models") and result["models"][0].get("top5"))
            err = None if ok else "empty result"
        except Exception as e:  # noqa: BLE001 - counted and reported
            ok, err = False, f"{type(e).__name__}: {str(e).splitlines()[0][:400] if str(e) else ''}"
        dt = time.perf_counter() - t0
        with outcome.lock:
            if ok:
                outcome.latencies.append(dt)
            else:
                outcome.errors.append(err)
        if unique:
            path.unlink(missing_ok=True)


def _mb(x: float | None) -> str:
    return "?" if x is None else f"{x:.0f}"


def _pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {k: None for k in ("min", "p50", "p90", "p99", "max", "mean")}
    a = np.asarray(values)
    return {"min": float(a.min()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def run_load(url: str, *, clients: int, duration: float, clip: Path, model: str | None, views: str,
             server_pid: int | None, unique: bool = True, settle: float = 15.0, rounds: int = 1,
             log=print) -> dict[str, Any]:
    """Warm up, then ``rounds`` load phases of ``duration`` s, each followed by ``settle`` idle s.

    With several rounds the settled RSS after each one shows whether memory has a plateau
    (allocator arenas and caches warm after the first round) or keeps growing (a leak).
    """
    from gradio_client import Client

    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load test only targets loopback addresses, not {host!r}")
    sampler = RssSampler(server_pid)
    sampler.start()
    probe = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    if model is None:
        payload, _ = probe.predict(api_name="/models")
        model = payload["default_models"][0]
    folder = Path(tempfile.mkdtemp(prefix="load_clips_"))
    per_round: list[dict[str, Any]] = []
    outcome = Outcome()
    wall = 0.0
    try:
        log(f"warm-up: 2 requests with {model}")
        warm = []
        for i in range(2):
            t0 = time.perf_counter()
            predict_once(probe, unique_copy(clip, folder, -1 - i) if unique else clip, model, views)
            warm.append(time.perf_counter() - t0)
        time.sleep(2)
        rss_before = tree_rss_mb(server_pid) if server_pid else None
        t_load = time.perf_counter() - sampler.t0
        counter, counter_lock = [0], threading.Lock()
        for r in range(rounds):
            log(f"round {r + 1}/{rounds}: {clients} clients for {duration:.0f} s "
                f"(server RSS {_mb(tree_rss_mb(server_pid) if server_pid else None)} MB)")
            round_outcome = Outcome()
            t_round = time.perf_counter() - sampler.t0
            start = time.perf_counter()
            deadline = start + duration
            threads = [threading.Thread(target=user, args=(url, clip, model, views, deadline, round_outcome, unique,
                                                           folder, counter, counter_lock), daemon=True)
                       for _ in range(clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            round_wall = time.perf_counter() - start
            wall += round_wall
            rss_after = tree_rss_mb(server_pid) if server_pid else None
            log(f"round {r + 1}: {len(round_outcome.latencies)} ok, {len(round_outcome.errors)} errors in "
                f"{round_wall:.0f} s; settling {settle:.0f} s")
            time.sleep(settle)
            rss_settled = tree_rss_mb(server_pid) if server_pid else None
            per_round.append({"ok": len(round_outcome.latencies), "errors": len(round_outcome.errors),
                              "wall_s": round_wall, "latency_s": _pct(round_outcome.latencies),
                              "rss_peak_mb": sampler.peak(since=t_round), "rss_after_mb": rss_after,
                              "rss_settled_mb": rss_settled})
            outcome.latencies += round_outcome.latencies
            outcome.errors += round_outcome.errors
    finally:
        sampler.stop()
        shutil.rmtree(folder, ignore_errors=True)
    settled = [r["rss_settled_mb"] for r in per_round]
    distinct_errors = list(dict.fromkeys(outcome.errors))[:5]
    return {
        "url": url, "endpoint": "/predict", "model": model, "views": views, "clip": clip.name,
        "unique_uploads": unique, "clients": clients, "duration_s": duration, "rounds": rounds, "wall_s": wall,
        "ok": len(outcome.latencies), "errors": len(outcome.errors), "error_samples": distinct_errors,
        "throughput_rps": len(outcome.latencies) / wall if wall else None,
        "latency_s": _pct(outcome.latencies), "warmup_s": warm, "per_round": per_round,
        "server_pid": server_pid,
        "server_rss_mb": {"before": rss_before, "peak": sampler.peak(since=t_load),
                          "after": per_round[-1]["rss_after_mb"] if per_round else None,
                          "settled": settled[-1] if settled else None,
                          "settled_per_round": settled,
                          "growth_last_round": (settled[-1] - settled[-2])
                          if len(settled) > 1 and None not in settled[-2:] else None,
                          "samples": [(round(t, 1), round(r, 1)) for t, r in sampler.samples[::4]]},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def markdown(r: dict[str, Any]) -> str:
    lat, rss = r["latency_s"], r["server_rss_mb"]

    def f(x, spec=".2f"):
        return "—" if x is None else format(x, spec)

    rounds = f" × {r['rounds']} rounds" if r.get("rounds", 1) > 1 else ""
    uploads = "a new upload per request" if r["unique_uploads"] else "the same file every time"
    return "\n".join([
        f"{r['clients']} clients × {r['duration_s']:.0f} s{rounds} on {r['url']} ({r['endpoint']}, {r['model']}, "
        f"views {r['views']}, {uploads})",
        "",
        "| ok | errors | req/s | p50 s | p90 s | p99 s | max s | server RSS MB before / peak / after / settled |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {r['ok']} | {r['errors']} | {f(r['throughput_rps'])} | {f(lat['p50'])} | {f(lat['p90'])} | "
        f"{f(lat['p99'])} | "
        f"{f(lat['max'])} | {f(rss['before'], '.0f')} / {f(rss['peak'], '.0f')} / {f(rss['after'], '.0f')} / "
        f"{f(rss['settled'], '.0f')} |",
    ] + (["", "Settled server RSS after each round (MB): "
          + " → ".join(f(x, ".0f") for x in rss.get("settled_per_round", []))] if r.get("rounds", 1) > 1 else [])
      + [f"- error: {e}" for e in r["error_samples"]])


def _mixed(args: argparse.Namespace, url: str, pid: int | None, log) -> dict[str, Any]:
    """The mixed run of ``main`` (light: --clients/--model/--views, heavy: --heavy-*)."""
    from gradio_client import Client

    from benchmarks.load_mix import ClientClass, run_mixed

    light_model = args.model
    if light_model is None:
        payload, _ = Client(url, verbose=False, download_files=False,
                            analytics_enabled=False).predict(api_name="/models")
        light_model = payload["default_models"][0]
    light_gflops = args.app_light_request_gflops
    if args.start and light_gflops is None and args.device == "cpu":  # the app's default (app/budget.py)
        from app.budget import LIGHT_FRACTION, default_max_gflops

        light_gflops = LIGHT_FRACTION * (args.app_max_request_gflops or default_max_gflops("cpu"))
    classes = [ClientClass("light", args.clients, light_model, args.views),
               ClientClass("heavy", args.heavy_clients, args.heavy_model or light_model, args.heavy_views)]
    return run_mixed(url, classes, duration=args.duration, clip=args.clip, server_pid=pid,
                     unique=not args.same_file, settle=args.settle, light_gflops=light_gflops, log=log)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running app on loopback, e.g. http://127.0.0.1:7860/")
    where.add_argument("--start", action="store_true", help="start `python app.py` on a free port for the test")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--model", default=None, help="zoo model (default: the app's first default model)")
    ap.add_argument("--app-models", default=None, help="--models for app.py with --start")
    ap.add_argument("--views", default="1x1")
    ap.add_argument("--device", default="cpu", help="--device for app.py with --start")
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--same-file", action="store_true", help="upload the identical file every time")
    ap.add_argument("--server-pid", type=int, default=None, help="server process for RSS (default: found by port)")
    ap.add_argument("--settle", type=float, default=15.0, help="idle seconds before the settled RSS reading")
    ap.add_argument("--rounds", type=int, default=1, help="load phases (each followed by --settle idle seconds)")
    ap.add_argument("--malloc-arena-max", type=int, default=None,
                    help="with --start: MALLOC_ARENA_MAX for the app process (glibc malloc arenas)")
    ap.add_argument("--heavy-clients", type=int, default=0,
                    help="a mixed run: this many more clients ask for --heavy-model at --heavy-views")
    ap.add_argument("--heavy-model", default=None, help="zoo model of the heavy clients (default: as --model)")
    ap.add_argument("--heavy-views", default="protocol", help="views of the heavy clients' requests")
    ap.add_argument("--app-max-request-gflops", type=float, default=None,
                    help="with --start: --max-request-gflops for app.py")
    ap.add_argument("--app-light-request-gflops", type=float, default=None,
                    help="with --start: --light-request-gflops for app.py (the light lane's limit)")
    ap.add_argument("--label", default=None, help="a name for this configuration in the report")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here (e.g. docs/load_test.json)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[load_test] {msg}", flush=True)

    proc = None
    try:
        if args.start:
            port = free_port()
            log(f"starting python app.py on port {port} ...")
            t0 = time.perf_counter()
            env = {"MALLOC_ARENA_MAX": str(args.malloc_arena_max)} if args.malloc_arena_max else None
            extra = [a for flag, v in (("--max-request-gflops", args.app_max_request_gflops),
                                       ("--light-request-gflops", args.app_light_request_gflops))
                     if v is not None for a in (flag, str(v))]
            proc, app_log = start_app(port, models=args.app_models, device=args.device, views=args.views, env=env,
                                      extra_args=extra)
            log(f"app ready in {time.perf_counter() - t0:.0f} s (log: {app_log})")
            url, pid = f"http://127.0.0.1:{port}/", proc.pid
        else:
            url = args.url
            port = urllib.parse.urlparse(url).port or 80
            pid = args.server_pid or pid_listening_on(port)
        if args.heavy_clients > 0:
            result = _mixed(args, url, pid, log)
        else:
            result = run_load(url, clients=args.clients, duration=args.duration, clip=args.clip, model=args.model,
                              views=args.views, server_pid=pid, unique=not args.same_file, settle=args.settle,
                              rounds=args.rounds, log=log)
        result["command"] = "python -m benchmarks.load_test " + " ".join(argv if argv is not None else sys.argv[1:])
        result["label"] = args.label or (f"MALLOC_ARENA_MAX={args.malloc_arena_max}" if args.malloc_arena_max
                                         else "app as shipped")
        result["server_env"] = {"MALLOC_ARENA_MAX": str(args.malloc_arena_max) if args.malloc_arena_max and args.start
                                else os.environ.get("MALLOC_ARENA_MAX")}
        if proc is not None:
            result["server_alive_after"] = proc.poll() is None
    finally:
        if proc is not None:
            stop_app(proc)
    if result.get("mode") == "mixed":
        from benchmarks.load_mix import markdown_mixed

        print(markdown_mixed(result))
    else:
        print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if result["errors"] == 0 and result["ok"] > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
