"""The app in a real browser: Debian's Chromium driven by Playwright.

Upload a clip from ``assets/``, predict, read the labels, open the attention tab, move the layer
selector, see the figure, click an anchor; a screenshot of each step is saved. The page must not
reach any host but the app's (the app works offline). Chromium comes from apt (``.ci/run``
installs it); Playwright's own browser download is never used.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.testing import serve, tiny_models
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.browser  # needs Chromium; `-m "not browser"` leaves it out
CHROMIUM = Path(os.environ.get("UNIFORMER_LAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
TIMEOUT_MS = 90_000


MISSING = (f"{CHROMIUM} is missing: the browser test needs Debian's Chromium; "
           "run `apt-get update && apt-get install -y chromium` (as .ci/run does).")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        yield None  # the test fails with MISSING (never skipped)
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def served():
    with tiny_models() as names, serve(default_models=names, views=(1, 1)) as s:
        yield s


def test_predict_then_attention_in_chromium(browser, served, tmp_path):
    if browser is None:
        pytest.fail(MISSING, pytrace=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    host = served.url.split("//")[1].split("/")[0]
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(("data:", "blob:")) and host not in r.url else None)
    page.goto(served.url)
    page.wait_for_selector("#predict-btn", timeout=TIMEOUT_MS)

    # upload + predict: one card per default model, each with five labels
    page.set_input_files("#video-input input[type=file]", str(CLIP))
    page.wait_for_selector("#video-input video", timeout=TIMEOUT_MS)
    page.click("#predict-btn")
    page.wait_for_selector("#predict-cards .ul-card", timeout=TIMEOUT_MS)
    cards = page.locator("#predict-cards .ul-card")
    assert cards.count() == 2
    for i in range(2):
        labels = cards.nth(i).locator(".ul-label").all_inner_texts()
        assert len(labels) == 5 and all(lbl.startswith("class ") for lbl in labels)
    assert "Done in" in page.inner_text("#predict-status")
    assert page.locator("#predict-frames img").count() >= 8 + 4
    page.screenshot(path=str(tmp_path / "predict.png"), full_page=True)

    # attention tab: move the layer selector to the last (global) layer -> a figure appears
    page.get_by_role("tab", name="Attention").click()
    number = page.locator("#layer-slider input[type=number]")
    number.fill("3")
    number.press("Tab")  # leaving the box releases the slider, which runs the view
    page.wait_for_selector("#attention-plot .js-plotly-plot", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#attention-info').innerText.includes('global_attn_stage4_block0')",
                           timeout=TIMEOUT_MS)
    info = page.inner_text("#attention-info")
    assert "layer 4 of 4" in info and "h=1, w=1" in info  # anchor at the centre (50 %, 50 %)
    assert page.locator("#attention-plot .js-plotly-plot image").count() >= 8  # frames drawn under the heat

    # a click near the bottom-left corner of the anchor picker moves the anchor there
    img = page.locator("#anchor-picker img")
    box = img.bounding_box()
    # (the top-left corner holds the label, and the picture is letterboxed inside the element)
    img.click(position={"x": 0.15 * box["width"], "y": 0.85 * box["height"]})
    page.wait_for_function("document.querySelector('#attention-info').innerText.includes('h=1, w=0')",
                           timeout=TIMEOUT_MS)
    assert float(page.input_value("#anchor-row input[type=number]")) > 60
    assert float(page.input_value("#anchor-col input[type=number]")) < 40

    # back to a local layer: the learned kernels
    number.fill("0")
    number.press("Tab")
    page.wait_for_function("document.querySelector('#attention-info').innerText.includes('local_affinity_stage1')",
                           timeout=TIMEOUT_MS)
    shot = tmp_path / "attention.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # a text file named .mp4: one readable sentence in the page, no traceback
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 100)
    page.get_by_role("tab", name="Predict").click()
    page.locator("#video-input button[aria-label='Clear']").first.click()
    page.set_input_files("#video-input input[type=file]", str(fake))
    page.click("#predict-btn")
    page.wait_for_function("document.body.innerText.includes('could not be opened as a video')", timeout=TIMEOUT_MS)
    body = page.inner_text("body")
    assert "'notes.mp4' could not be opened as a video" in body and "Traceback" not in body
    assert outside == [], f"the page reached other hosts: {outside[:5]}"
    page.close()


def _open(browser, served):
    if browser is None:
        pytest.fail(MISSING, pytrace=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served.url)
    page.wait_for_selector("#predict-btn", timeout=TIMEOUT_MS)
    return page


def test_unplayable_clip_plays_as_a_preview_without_a_toast(browser, served, tmp_path):
    from tests.test_app_preview import HEVC, write_clip

    clip = write_clip(tmp_path / f"phone{HEVC[1]}", HEVC[0], size=(160, 96), frames=20)
    page = _open(browser, served)
    page.set_input_files("#video-input input[type=file]", str(clip))
    page.wait_for_function("document.querySelector('#predict-status').innerText.includes('H.264 preview')",
                           timeout=TIMEOUT_MS)
    # the player now holds the preview and the browser can decode it
    page.wait_for_function("(() => { const v = document.querySelector('#video-input video');"
                           " return v && v.currentSrc.includes('.preview.mp4') && v.readyState >= 1; })()",
                           timeout=TIMEOUT_MS)
    page.click("#predict-btn")
    page.wait_for_function("document.querySelector('#predict-status').innerText.includes('Done in')",
                           timeout=TIMEOUT_MS)
    status = page.inner_text("#predict-status")
    assert f"({HEVC[2]}," in status and "the models read the original file" in status  # models read the HEVC file
    assert not any("not playable" in t.lower() for t in page.locator(".toast-body").all_inner_texts())
    page.close()


def test_attention_frames_controls_and_errors_in_chromium(browser, served):
    page = _open(browser, served)
    page.set_input_files("#video-input input[type=file]", str(CLIP))
    page.wait_for_selector("#video-input video", timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Attention").click()
    number = page.locator("#layer-slider input[type=number]")
    number.fill("3")
    number.press("Tab")
    page.wait_for_function("document.querySelector('#attention-info').innerText.includes('global_attn_stage4_block0')",
                           timeout=TIMEOUT_MS)
    frames = page.locator("#attention-plot .js-plotly-plot image")
    page.wait_for_function("document.querySelectorAll('#attention-plot .js-plotly-plot image').length >= 8",
                           timeout=TIMEOUT_MS)
    boxes = [frames.nth(i).bounding_box() for i in range(frames.count())]
    assert all(b["width"] >= 159 for b in boxes)  # every frame at least 160 px wide on the page
    assert len({round(b["y"]) for b in boxes}) == 2  # 8 frames wrapped into 2 rows
    assert page.locator("#attention-plot .colorbar").count() == 1
    assert page.is_visible("#anchor-controls") and page.is_visible("#layer-controls")

    # a whole-model view that does not fit this model: the controls go, the error stays in the page
    page.get_by_label("attention rollout (TimeSformer)").check()
    page.wait_for_selector("#attention-info .ul-error", timeout=TIMEOUT_MS)
    assert "TimeSformer" in page.inner_text("#attention-info .ul-error")
    page.wait_for_selector("#anchor-controls", state="hidden", timeout=TIMEOUT_MS)
    assert not page.is_visible("#layer-controls")
    page.get_by_label("layer: attention / kernels").check()  # back: the layer's controls return
    page.wait_for_selector("#anchor-controls", state="visible", timeout=TIMEOUT_MS)
    page.wait_for_selector("#attention-info .ul-error", state="detached", timeout=TIMEOUT_MS)  # result replaces it
    page.close()
