"""How long the browser app makes a user wait: start-up, upload → top-5, attention view.

    python -m benchmarks.app_latency                       # starts `python app.py` itself
    python -m benchmarks.app_latency --url http://127.0.0.1:7860/   # an app that is already running
    python -m benchmarks.app_latency --models uniformer_small_k400_16x8 --json out.json

Method. Without ``--url`` the script runs ``python app.py --port P`` as a child process and
times it from spawn until the page answers (and reports the app's own printed start-up time:
imports, loading the default models, launching the server). Everything else goes through
``gradio_client`` exactly as a user script would, so each time includes the upload and the
HTTP/queue round trip:

- **upload → top-5**: ``/predict`` with the first default model at the app's default views.
  *first* = the server's first request, with a file it has not seen (decode + preprocess +
  forward); *new file* = a file it has not seen on a server that has answered before, median of
  ``--repeats``; *same file* = the same content uploaded again (the decoded clip is cached by
  content hash; the forward runs again), median of ``--repeats``. The unseen files are copies of
  ``--clip`` with an MP4 ``free`` box of random bytes appended, so their content hashes differ.
- **attention view**: ``/attention`` on the same clip and model at its last layer. *first* =
  the extraction forward with attention capture (the one-view clip is cached if predict used
  1x1 views); *layer move* = another layer of the same extraction (no forward), median of
  ``--repeats``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from app.testing import free_port
from benchmarks.load_test import stop_app

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"


def start_app(port: int, models: str | None, device: str, timeout: float = 600.0, warm_up: bool = True
              ) -> tuple[subprocess.Popen, float, float | None, list[str]]:
    """Spawn ``python app.py``; return (process, seconds until the page answers, the app's own
    printed start-up seconds, its output lines so far)."""
    cmd = [sys.executable, "app.py", "--port", str(port), "--device", device]
    if models:
        cmd += ["--models", models]
    if not warm_up:
        cmd.append("--no-warm-up")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    printed = None
    assert proc.stdout is not None
    while time.perf_counter() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("the app exited during start-up:\n" + "".join(lines[-20:]))
            continue
        lines.append(line)
        if "UniFormer Lab ready" in line:
            try:
                printed = float(line.rsplit(" in ", 1)[1].split()[0])
            except (IndexError, ValueError):
                printed = None
            break
    # keep reading the app's output so a full pipe never blocks it
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    return proc, time.perf_counter() - t0, printed, lines


def _timed(fn, *args, **kwargs) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def unseen_copy(clip: Path, folder: Path, index: int) -> Path:
    """A copy of ``clip`` whose content hash no server has seen: an MP4 ``free`` box (which players
    and decoders skip) holding 16 random bytes, appended."""
    out = folder / f"{clip.stem}_unseen{index}{clip.suffix}"
    out.write_bytes(clip.read_bytes() + (8 + 16).to_bytes(4, "big") + b"free" + os.urandom(16))
    return out


def run(url: str, clip: Path, repeats: int) -> dict[str, Any]:
    import tempfile

    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, analytics_enabled=False)
    payload, _ = client.predict(api_name="/models")
    model = payload["default_models"][0]
    res: dict[str, Any] = {"model": model, "device": payload["device"], "clip": clip.name}

    def predict(path: Path) -> tuple[float, dict[str, Any]]:
        """Client-side seconds and the first model's result for one /predict upload of ``path``."""
        t, out = _timed(client.predict, handle_file(str(path)), [model], None, None, None, api_name="/predict")
        return t, out[0]["models"][0]

    with tempfile.TemporaryDirectory() as tmp:
        unseen = [unseen_copy(clip, Path(tmp), i) for i in range(repeats + 1)]
        cold, m = predict(unseen[0])
        assert not m["clip_cached"], "a file the server has not seen cannot be in its clip cache"
        res["predict_cold_s"] = cold
        res["predict_cold_server"] = m["timings"]
        res["views"] = m["views"]
        res["top1"] = m["top5"][0]
        new, servers = [], []
        for path in unseen[1:]:
            t, m = predict(path)
            assert not m["clip_cached"]
            new.append(t)
            servers.append(m["timings"])
        res["predict_new_file_s"] = statistics.median(new)
        res["predict_new_file_server"] = {k: statistics.median(s[k] for s in servers) for k in servers[0]}
        warm = []
        for _ in range(repeats):
            t, m = predict(unseen[-1])
            assert m["clip_cached"], "the same file again should reuse the decoded clip"
            warm.append(t)
        res["predict_warm_s"] = statistics.median(warm)
        res["predict_warm_model_s"] = m["timings"]["model_s"]

    view = "layer: attention / kernels"
    first, out = _timed(client.predict, handle_file(str(clip)), model, 999, "average", view, 8, 50, 50,
                        api_name="/attention")
    last = int(out[3]["value"])
    res["attention_layers"] = last + 1
    res["attention_first_s"] = first
    moves = []
    for i in range(repeats):
        t, out = _timed(client.predict, handle_file(str(clip)), model, max(last - 1 - i, 0), "average", view, 8, 50,
                        50, api_name="/attention")
        moves.append(t)
    res["attention_layer_move_s"] = statistics.median(moves)
    return res


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"App latency — `{res['model']}` on {res['device']}, clip `{res['clip']}`, {res['views']} views "
        f"(client-side wall time, upload included; start-up warm-up {'off' if res.get('warm_up') is False else 'on'})",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    if "startup_s" in res:
        lines.append(f"| `python app.py` → page answers | {res['startup_s']:.1f} |")
    if res.get("startup_printed_s") is not None:
        lines.append(f"| (the app's own printed start-up) | {res['startup_printed_s']:.1f} |")
    t, n = res["predict_cold_server"], res["predict_new_file_server"]
    lines += [
        f"| upload → top-5, the server's first request (decode {t['decode_s']:.2f} + preprocess "
        f"{t['preprocess_s']:.2f} + model {t['model_s']:.2f} on the server) | {res['predict_cold_s']:.2f} |",
        f"| upload → top-5, a new file (decode {n['decode_s']:.2f} + preprocess {n['preprocess_s']:.2f} + "
        f"model {n['model_s']:.2f}) | {res['predict_new_file_s']:.2f} |",
        f"| upload → top-5, same file again (decoded clip cached; model {res['predict_warm_model_s']:.2f}) | "
        f"{res['predict_warm_s']:.2f} |",
        f"| attention view, first (extraction forward, {res['attention_layers']} layers) | "
        f"{res['attention_first_s']:.2f} |",
        f"| attention view, moving the layer selector (cached extraction) | {res['attention_layer_move_s']:.2f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.app_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an app that is already running (default: start `python app.py`)")
    p.add_argument("--models", help="--models passed to app.py when starting it")
    p.add_argument("--device", default="auto")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-warm-up", action="store_true", help="start the app with --no-warm-up")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    proc = None
    extra: dict[str, Any] = {}
    url = args.url
    try:
        if url is None:
            port = free_port()
            proc, startup, printed, _ = start_app(port, args.models, args.device, warm_up=not args.no_warm_up)
            url = f"http://127.0.0.1:{port}/"
            extra = {"startup_s": startup, "startup_printed_s": printed, "warm_up": not args.no_warm_up}
        res = {**extra, **run(url, args.clip, args.repeats)}
    finally:
        if proc is not None:
            stop_app(proc)
    print(markdown(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
