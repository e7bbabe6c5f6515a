"""The timeline in Chromium: run it, click a marker of the plot, see that window's frames."""
from __future__ import annotations

import pytest

from app.testing import serve, tiny_models
from tests.test_app_browser import CHROMIUM_ARGS, CLIP, MISSING, TIMEOUT_MS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served():
    with tiny_models() as names, serve(default_models=names, views=(1, 1)) as s:
        yield s


def test_click_a_marker_shows_its_window(browser, served, tmp_path):  # noqa: F811 - the fixture
    if browser is None:
        pytest.fail(MISSING, pytrace=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(served.url)
    page.wait_for_selector("#predict-btn", timeout=TIMEOUT_MS)
    page.set_input_files("#video-input input[type=file]", str(CLIP))
    page.wait_for_selector("#video-input video", timeout=TIMEOUT_MS)
    page.locator("#timeline").get_by_text("Timeline: the model's clip").first.click()
    page.click("#timeline-btn")
    page.wait_for_selector("#timeline-plot .js-plotly-plot", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#timeline-caption').innerText.includes('Window 0:')",
                           timeout=TIMEOUT_MS)
    assert "windows" in page.inner_text("#timeline-status")
    page.wait_for_function("document.querySelector('#timeline-plot .js-plotly-plot').dataset.ulClick === '1'",
                           timeout=TIMEOUT_MS)   # the click bridge is attached
    points = page.locator("#timeline-plot .scatterlayer .trace").last.locator("path.point")
    assert points.count() >= 4
    page.locator("#timeline-plot").scroll_into_view_if_needed()
    box = points.nth(3).bounding_box()
    page.mouse.move(box["x"] - 10, box["y"] - 10)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)  # plotly hovers first
    page.wait_for_selector("#timeline-plot .hoverlayer .hovertext", timeout=TIMEOUT_MS)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('#timeline-caption').innerText.includes('Window 3:')",
                           timeout=TIMEOUT_MS)
    assert page.locator("#timeline-frames img").count() == 8
    assert page.input_value("#timeline-window input[type=number]") == "3"
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    page.close()
