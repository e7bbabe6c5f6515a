"""The Predict tab's timeline: the handler, its bound on windows, and the /timeline endpoints."""
from __future__ import annotations

import json

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app import tab_timeline
from app.state import AppConfig, AppState
from app.testing import serve
from tests.media import write_moving_clip
from uniformer.errors import UniformerLabError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return write_moving_clip(tmp_path_factory.mktemp("app_timeline") / "long.mp4", seconds=24, fps=10, size=(96, 64))


@pytest.fixture(scope="module")
def state(tiny, long_clip):
    return AppState(AppConfig(default_models=tuple(tiny), preload=False, extra_allowed_dirs=(str(long_clip.parent),)))


def test_timeline_is_bounded_and_its_markers_open_windows(state, tiny, long_clip, monkeypatch):
    monkeypatch.setattr(tab_timeline, "MAX_WINDOWS", 12)
    fig, payload, status, slider = tab_timeline.timeline(state, str(long_clip), tiny[0], 0.2)
    rows = payload["timeline"]
    assert len(rows) == 12 and rows[0]["start"] == 0 and rows[-1]["end"] == pytest.approx(24, abs=0.11)
    note = [n for n in payload["notes"] if "allowed per request" in n]
    assert len(note) == 1 and note[0].endswith(".") and note[0] in status
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(markers) == 1 and list(markers[0].customdata) == list(range(12))
    assert len([t for t in fig.data if t.mode == "lines"]) == 3 and slider["maximum"] == 11
    # a click (the hidden textbox carries "index:timestamp") shows that window's frames
    items, caption = tab_timeline.window_frames(state, str(long_clip), tiny[0], 0.2, "11:1733")
    assert [c for _, c in items][0].startswith(f"f{rows[11]['frames'][0]} ")
    assert len(items) == 8 and f"frames {rows[11]['frames']}" in caption
    with pytest.raises(UniformerLabError, match=r"^Window 12 does not exist; .*11\.$"):
        tab_timeline.window_frames(state, str(long_clip), tiny[0], 0.2, 12)
    with pytest.raises(UniformerLabError, match="positive number"):
        tab_timeline.timeline(state, str(long_clip), tiny[0], -1)


def test_timeline_endpoints(tiny, long_clip):
    with serve(default_models=tiny, views=(1, 1), preload=False) as served:
        from gradio_client import Client

        client = Client(served.url, verbose=False, analytics_enabled=False)
        video = handle_file(str(long_clip))
        plot, payload, status, slider = client.predict(video, tiny[1], 0, api_name="/timeline")
        fig = json.loads(plot["plot"])
        assert plot["type"] == "plotly" and len(payload["timeline"]) == len(fig["data"][-1]["customdata"])
        assert payload["timeline"][-1]["end"] == pytest.approx(24, abs=0.11) and "windows" in status
        frames, caption = client.predict(video, tiny[1], 0, 2, api_name="/timeline_window")
        assert len(frames) == 4 and caption.startswith("Window 2: ")
        with pytest.raises(AppError) as exc:
            client.predict(video, tiny[1], 0, 10_000, api_name="/timeline_window")
        msg = str(exc.value)   # the slider's own bound (Gradio) or the handler's sentence
        assert ("does not exist" in msg or "greater than maximum" in msg) and "Traceback" not in msg


def test_building_the_app_warns_of_no_handler_whose_inputs_do_not_match(tiny):
    """Gradio counts a ``request: gr.Request`` parameter as an input when it cannot resolve the
    annotation (``gr`` imported inside a function under postponed annotations) and warns."""
    import warnings

    from app.layout import build_app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_app(default_models=tiny, preload=False).close()
    assert not [str(w.message) for w in caught if "arguments for function" in str(w.message)]
