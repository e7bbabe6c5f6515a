"""Command-line entry of the browser app (placeholder until the app issue lands)."""
from __future__ import annotations

import argparse
import os
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python app.py", description="UniFormer Lab browser app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs network)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    start = time.perf_counter()
    import gradio as gr

    with gr.Blocks(title="UniFormer Lab") as demo:
        gr.Markdown("# UniFormer Lab\nThe interface is being built; the core package works from Python.")
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True)
    print(f"UniFormer Lab ready at http://{args.host}:{args.port} in {time.perf_counter() - start:.1f} s")
    demo.block_thread()
    return 0
