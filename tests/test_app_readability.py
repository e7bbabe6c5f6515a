"""The attention tab's controls follow the chosen view, and errors stay on the page (issue 15.5)."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from app import tab_attention
from app.common import error_box, friendly
from app.state import AppConfig, AppState
from uniformer.errors import UniformerLabError


@pytest.fixture(scope="module")
def state(tiny):
    return AppState(AppConfig(default_models=tuple(tiny), preload=False))


def test_controls_match_the_view(state, tiny):
    def visible(view, layer, model=tiny[0]):
        a, b = tab_attention.controls(state, model, view, layer)
        return a["visible"], b["visible"]

    assert visible(tab_attention.VIEW_ATTENTION, 3) == (True, True)     # global layer: layer, head and anchor
    assert visible(tab_attention.VIEW_ATTENTION, 0) == (True, False)    # local kernels: channels, no anchor
    for view in tab_attention.WHOLE_MODEL:
        assert visible(view, 3) == (False, False)                        # rollout, CAM, occlusion: neither
    assert visible(tab_attention.VIEW_ATTENTION, 0, tiny[1]) == (True, True)  # TimeSformer: attention from layer 0


def test_an_error_stays_as_a_box_for_its_session(monkeypatch):
    from gradio.context import LocalContext

    @friendly("Attention view")
    def fails() -> None:
        raise UniformerLabError("This layer has 3 heads; choose 0 to 2 or 'average'.")

    token = LocalContext.request.set(SimpleNamespace(session_hash="s1"))
    try:
        with pytest.raises(gr.Error):
            fails()
    finally:
        LocalContext.request.reset(token)
    other = error_box(SimpleNamespace(session_hash="s2"))
    assert "3 heads" not in other  # another session does not see it
    box = error_box(SimpleNamespace(session_hash="s1"))
    assert "class='ul-error'" in box and "Attention view failed: This layer has 3 heads" in box
    assert "3 heads" not in error_box(SimpleNamespace(session_hash="s1"))  # shown once, then the next result
