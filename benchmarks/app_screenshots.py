"""Screenshots of every tab of the app, for the README: ``docs/screenshots/*.png``.

    python -m benchmarks.app_screenshots                     # the app's default models
    python -m benchmarks.app_screenshots --models uniformer_small_k400_16x8,timesformer_base_k400_8x32

The app runs in-process (``app.testing.serve``) with its default models — the bundled small
models when ``assets/checkpoints/`` has them, else the full-size architectures with random
weights, which the page says — and Debian's Chromium (``/usr/bin/chromium``) is driven by
Playwright through a real session: upload a clip from ``assets/clips/``, predict, open each tab
and run it. Needs no network.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "docs" / "screenshots"
CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 600_000


def first_global_layer(names: list[str]) -> int:
    """Index of the first attention (not local-affinity) layer: the most telling one to show."""
    return next((i for i, n in enumerate(names) if not n.startswith("local_affinity")), 0)


def write_hevc(out: Path, clip: Path, seconds: float = 4.0) -> Path:
    """The first seconds of ``clip`` re-encoded as HEVC (libx265), a codec Chromium cannot play."""
    import av

    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        s = src.streams.video[0]
        enc = dst.add_stream("libx265", rate=s.average_rate)
        enc.width, enc.height, enc.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        enc.options = {"preset": "ultrafast", "x265-params": "log-level=none"}
        for i, frame in enumerate(src.decode(s)):
            if frame.time is not None and frame.time >= seconds:
                break
            yuv = frame.reformat(format="yuv420p")
            yuv.pts, yuv.time_base = i, 1 / s.average_rate
            for packet in enc.encode(yuv):
                dst.mux(packet)
        for packet in enc.encode(None):
            dst.mux(packet)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.app_screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated default models (default: the app's own choice)")
    p.add_argument("--clip", type=Path, default=CLIP)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--width", type=int, default=1400)
    args = p.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(args.chromium).is_file():
        raise SystemExit(f"{args.chromium} is missing; run `apt-get install -y chromium`.")

    from playwright.sync_api import sync_playwright

    from analysis.attention import map_names
    from app.tab_attention import VIEW_ROLLOUT
    from app.testing import serve

    models = tuple(m for m in (args.models or "").split(",") if m) or None
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(default_models=models, views=(1, 1)) as s, sync_playwright() as pw:
        state = s.state
        lm, _ = state.get_model(state.default_models[0])
        layer = first_global_layer(map_names(lm.model))
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(s.url)
        page.wait_for_selector("#predict-btn", timeout=TIMEOUT_MS)

        def shot(name: str) -> None:
            time.sleep(1.0)  # let plotly finish its transitions
            path = args.out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")

        page.set_input_files("#video-input input[type=file]", str(args.clip))
        page.wait_for_selector("#video-input video", timeout=TIMEOUT_MS)
        page.click("#predict-btn")
        page.wait_for_selector("#predict-cards .ul-card", timeout=TIMEOUT_MS)
        shot("predict")

        page.get_by_role("tab", name="Attention").click()
        for sel, value in (("#anchor-row", "55"), ("#anchor-col", "40")):
            box = page.locator(f"{sel} input[type=number]")
            box.fill(value)
            box.press("Tab")
        number = page.locator("#layer-slider input[type=number]")
        number.fill(str(layer))
        number.press("Tab")
        name = map_names(lm.model)[layer]
        page.wait_for_function(f"document.querySelector('#attention-info').innerText.includes('{name}')",
                               timeout=TIMEOUT_MS)
        page.wait_for_selector("#attention-plot .js-plotly-plot", timeout=TIMEOUT_MS)
        shot("attention")

        # the first layer: UniFormer's learned local kernels (channels, no anchor controls)
        number.fill("0")
        number.press("Tab")
        first = map_names(lm.model)[0]
        page.wait_for_function(f"document.querySelector('#attention-info').innerText.includes('{first}')",
                               timeout=TIMEOUT_MS)
        shot("attention_first_layer")

        # a whole-model view: rollout of the TimeSformer model (no layer, head or anchor controls)
        ts = next((n for n in state.default_models if n.startswith("timesformer")), None)
        if ts is not None:
            page.locator("#attn-model input").click()
            page.get_by_role("option", name=re.compile(re.escape(ts))).first.click()
            page.get_by_label(VIEW_ROLLOUT).check()
            page.wait_for_function("document.querySelector('#attention-info').innerText.includes('rollout')",
                                   timeout=TIMEOUT_MS)
            shot("attention_rollout")

        page.get_by_role("tab", name="Redundancy").click()
        page.click("#redundancy-btn")
        page.wait_for_selector("#redundancy-plot .js-plotly-plot", timeout=TIMEOUT_MS)
        shot("redundancy")

        page.get_by_role("tab", name="Efficiency").click()
        page.wait_for_selector("#efficiency-plot .js-plotly-plot", timeout=TIMEOUT_MS)
        page.click("#efficiency-btn")  # again, now that predictions have timed the loaded models
        page.wait_for_function("document.querySelector('#efficiency-md').innerText.includes('.')", timeout=TIMEOUT_MS)
        time.sleep(3.0)
        shot("efficiency")

        # a clip no browser plays (HEVC): the player gets an H.264 preview, the status says so
        hevc = write_hevc(Path(tempfile.mkdtemp()) / "hevc_clip.mp4", args.clip)
        try:
            page.get_by_role("tab", name="Predict").click()
            page.locator("#video-input button[aria-label='Clear']").first.click()
            page.set_input_files("#video-input input[type=file]", str(hevc))
            page.wait_for_function("document.querySelector('#predict-status').innerText.includes('preview')",
                                   timeout=TIMEOUT_MS)
            page.click("#predict-btn")
            page.wait_for_function("document.querySelector('#predict-status').innerText.includes('Done in')",
                                   timeout=TIMEOUT_MS)
            shot("predict_hevc")
        finally:
            shutil.rmtree(hevc.parent, ignore_errors=True)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
