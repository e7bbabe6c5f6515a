"""Command-line entry of the browser app: ``python app.py [--host 127.0.0.1] [--port 7860]
[--device auto|cpu|cuda|cuda:N] [--share]``.

Start-up works offline: Gradio analytics are off, Hugging Face look-ups are local-only (unless
``--allow-downloads``), the default models are loaded once before the server opens, and the time
from start to ready is printed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python app.py", description="UniFormer Lab browser app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs network)")
    p.add_argument("--models", help="comma-separated default models (default: the bundled ones, else "
                                    "UniFormer-S and TimeSformer-B with random weights)")
    p.add_argument("--views", default="1x1", help="default views per prediction, CLIPSxCROPS (default 1x1)")
    p.add_argument("--max-request-gflops", type=float, default=None,
                   help="most GFLOPs one request may ask for (models x views x GFLOPs per view; default "
                        "1000 on a CPU, 20000 with CUDA)")
    p.add_argument("--light-request-gflops", type=float, default=None,
                   help="requests up to this many GFLOPs run in their own lane, never behind heavy ones "
                        "(default 5%% of --max-request-gflops)")
    p.add_argument("--no-warm-up", action="store_true",
                   help="skip running each default model once at start-up (faster start, slower first request)")
    p.add_argument("--allow-downloads", action="store_true",
                   help="download published weights from the Hugging Face hub when a chosen model has none on disk")
    return p.parse_args(argv)


def limit_malloc_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX=n`` would) unless the user set that.

    Why: every worker thread that decodes a clip gets its own arena, and freed frame buffers stay
    mapped in them; under 8 concurrent users the server grew from 2.1 to 2.7 GB RSS with the
    default, and stayed near 2.3 GB with 2 arenas at the same speed (benchmarks/load_test.py).
    Returns whether the cap was applied.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-8, int(n)))  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to cap
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    limit_malloc_arenas()
    # before gradio / huggingface_hub are imported: they read these at import time
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not args.allow_downloads:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from app.layout import build_app, launch_kwargs, make_state
    from uniformer.data.sampling import parse_views
    from uniformer.errors import UniformerLabError

    try:
        views = parse_views(args.views)
        models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
        print(f"UniFormer Lab: loading default models on {args.device} ...", flush=True)
        state = make_state(device=args.device, default_models=models, views=views,
                           allow_downloads=args.allow_downloads, preload=False, warm_up=not args.no_warm_up,
                           max_request_gflops=args.max_request_gflops, light_request_gflops=args.light_request_gflops)
        state.preload_defaults(report=lambda line: print(line, flush=True))
        demo = build_app(state)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                **launch_kwargs(state))
    state.startup_s = time.perf_counter() - start
    print(f"UniFormer Lab ready at http://{args.host}:{args.port} in {state.startup_s:.1f} s "
          f"(device {state.device})", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0
