"""The Predict tab's timeline: one model's test clip slid over the whole video, plotted over time.

``timeline`` (``/timeline``) runs :func:`uniformer.timeline.predict_timeline` with at most
:data:`MAX_WINDOWS` windows per request (a longer video gets a wider stride, said in one
sentence) and returns a plotly figure: the smoothed tracks of the top classes, and one marker
per window at its top-1 probability (hover: its top 3). ``window_frames``
(``/timeline_window``) returns the thumbnails of one window's frames; the page calls it when a
marker is clicked (a small script forwards plotly's click to a hidden textbox) or the window
slider moves. ``build_timeline_ui`` adds the section to the Predict tab (``app/layout.py`` calls it).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import gradio as gr
import numpy as np

from app.common import Progress, friendly, no_progress
from app.state import THUMB_FORMAT, AppState, thumbnails
from uniformer.cost import request_cost, run_cost
from uniformer.errors import UniformerLabError

MAX_WINDOWS = 120       # windows per request: each one is a forward pass on the server
DEFAULT_STRIDE = 0.0    # seconds; 0 = half a window (the timeline module's default)

# plotly_click on the timeline plot -> the hidden textbox's value -> its .input event.
CLICK_JS = """
() => {
  if (window.ulTimelineBridge) { return []; }
  window.ulTimelineBridge = setInterval(() => {   // the plot is (re)drawn after the event returns
    const plot = document.querySelector('#timeline-plot .js-plotly-plot');
    if (!plot || !plot.on || plot.dataset.ulClick) { return; }
    plot.dataset.ulClick = '1';
    plot.on('plotly_click', (ev) => {
      const p = ev.points && ev.points.find((q) => q.customdata !== undefined);
      const box = document.querySelector('#timeline-click textarea, #timeline-click input');
      if (!p || !box) { return; }
      box.value = String(p.customdata) + ':' + Date.now();
      box.dispatchEvent(new Event('input', { bubbles: true }));
    });
  }, 300);
  return [];
}
"""


def _stride(stride: float | None) -> float | None:
    if stride is None or stride == "" or float(stride) == 0:
        return None
    value = float(stride)
    if not math.isfinite(value) or value < 0:
        raise UniformerLabError(f"The window stride must be a positive number of seconds (or 0 for half a window), "
                                f"got {stride}.")
    return value


def timeline_figure(tl: Any) -> Any:
    """Smoothed tracks of the top classes plus one clickable marker per window (its top-1)."""
    import plotly.graph_objects as go

    d = tl.to_dict()
    t = d["tracks"]["time"]
    fig = go.Figure()
    for track in d["tracks"]["classes"]:
        fig.add_trace(go.Scatter(x=t, y=track["smoothed"], mode="lines", name=track["label"],
                                 customdata=list(range(len(t))),  # a click on a line opens that window too
                                 hovertemplate="%{y:.1%} at %{x:.2f} s<extra>" + track["label"] + "</extra>"))
    top1 = [row["topk"][0] for row in d["timeline"]]
    hover = ["<br>".join(f"{k['label']}: {100 * k['probability']:.1f}%" for k in row["topk"][:3])
             + f"<br>{row['start']:.2f}–{row['end']:.2f} s" for row in d["timeline"]]
    fig.add_trace(go.Scatter(x=t, y=[k["probability"] for k in top1], mode="markers", name="window top-1",
                             customdata=list(range(len(t))), text=hover, hovertemplate="%{text}<extra></extra>",
                             marker=dict(size=9, symbol="circle-open")))
    fig.update_layout(xaxis_title="time (s), window centre", yaxis_title="probability", yaxis_range=[0, 1],
                      height=340, margin=dict(l=50, r=20, t=30, b=40), legend=dict(orientation="h", y=1.12),
                      clickmode="event", hovermode="closest")
    return fig


def timeline(state: AppState, video: Any, model: str | None, stride: float | None = None,
             progress: Progress | None = None) -> tuple[Any, dict[str, Any], str, Any]:
    """Run the timeline. Returns ``(figure, json payload, status markdown, window slider update)``."""
    from uniformer.timeline import predict_timeline

    progress = progress or no_progress
    path = state.check_path(video, what="video")
    if not model:
        raise UniformerLabError("Choose a model for the timeline.")
    start = time.perf_counter()
    progress(0.0, desc=f"Loading {model}")
    lm, _ = state.get_model(model)
    predictor = lm.with_views(None)   # the checkpoint's own clip and crops; one clip per window

    def report(done: int, total: int) -> None:
        progress(done / max(total, 1), desc=f"Window {done} of {total}")

    def admit(n_windows: int) -> None:  # priced once planned, before decoding: app/budget.py
        state.budget.admit(request_cost([run_cost(model, (n_windows, predictor.protocol.num_crops))]))

    with lm.lock:
        tl = predict_timeline(predictor, path, stride_s=_stride(stride), max_windows=MAX_WINDOWS, progress=report,
                              admit=admit)
    payload = tl.to_dict()
    total = time.perf_counter() - start
    status = [f"**{len(tl.windows)} windows** of {tl.window_s:.2f} s every {tl.stride_s:.2f} s with {lm.label}, "
              f"{tl.frames_decoded} frames decoded, in {total:.1f} s. Click a marker to see that window's frames."]
    status.extend(f"- {n}" for n in tl.notes)
    slider = gr.update(maximum=max(len(tl.windows) - 1, 0), value=0)
    return timeline_figure(tl), payload, "\n\n".join(status), slider


def window_frames(state: AppState, video: Any, model: str | None, stride: float | None,
                  window: Any) -> tuple[list[tuple[np.ndarray, str]], str]:
    """Thumbnails of window ``window`` of the timeline ``timeline(video, model, stride)`` would plan."""
    from uniformer.data.video import VideoReader
    from uniformer.predict import default_max_side
    from uniformer.timeline import plan_windows

    path = state.check_path(video, what="video")
    if not model:
        raise UniformerLabError("Choose a model for the timeline.")
    try:
        index = int(str(window).split(":")[0]) if window not in (None, "") else 0
    except ValueError:
        raise UniformerLabError(f"The window must be a number, got {str(window)[:40]!r}.") from None
    lm, _ = state.get_model(model)
    protocol = lm.with_views(None).protocol
    with VideoReader(path, max_side=default_max_side(protocol)) as reader:
        info = reader.info
        windows, _, _ = plan_windows(protocol, info.num_frames, info.fps, stride_s=_stride(stride),
                                     max_windows=MAX_WINDOWS)
        if not 0 <= index < len(windows):
            raise UniformerLabError(f"Window {index} does not exist; this timeline has windows 0 to "
                                    f"{len(windows) - 1}.")
        w = windows[index]
        thumbs = thumbnails(reader.get_frames(w.frames))
    items = [(thumbs[i], f"f{int(f)} ({f / info.fps:.2f} s)") for i, f in enumerate(w.frames.tolist())]
    caption = (f"Window {index}: {w.start_frame / info.fps:.2f}–{min(w.end_frame / info.fps, info.duration):.2f} s, "
               f"frames {w.frames.tolist()}")
    return items, caption


timeline_endpoint = friendly("Timeline")(timeline)
window_endpoint = friendly("Showing the window")(window_frames)


def build_timeline_ui(state: AppState, video: Any, choices: list[tuple[str, str]], heavy: dict[str, Any],
                      guard: Callable[[Any], AbstractContextManager[None]]) -> None:
    """The timeline section, inside the Predict tab's Blocks context (events included); ``guard(request)``
    is the server's request scope (budget lanes and cancellation, ``app/budget.py``)."""
    with gr.Accordion("Timeline: the model's clip slid over the whole video", open=False, elem_id="timeline"):
        with gr.Row():
            model = gr.Dropdown(choices=choices, value=state.default_models[0], label="Model", elem_id="timeline-model")
            stride = gr.Number(value=DEFAULT_STRIDE, minimum=0, label="Stride between windows (s; 0 = half a window)",
                               elem_id="timeline-stride")
            run = gr.Button("Timeline", variant="primary", elem_id="timeline-btn")
        status = gr.Markdown(elem_id="timeline-status")
        plot = gr.Plot(label="Top classes over time (click a marker)", elem_id="timeline-plot")
        window = gr.Slider(0, MAX_WINDOWS - 1, step=1, value=0, label="Window", elem_id="timeline-window")
        click = gr.Textbox(visible="hidden", elem_id="timeline-click")
        caption = gr.Markdown(elem_id="timeline-caption")
        frames = gr.Gallery(label="That window's frames", columns=8, height=200, object_fit="contain",
                            elem_id="timeline-frames", format=THUMB_FORMAT)
        with gr.Accordion("Timeline as JSON (what the /timeline API returns)", open=False):
            payload = gr.JSON(elem_id="timeline-json")

    def on_run(v, m, s, request: gr.Request, progress=gr.Progress()):
        with guard(request):
            return timeline_endpoint(state, v, m, s, progress=progress)

    def on_window(v, m, s, w):
        return window_endpoint(state, v, m, s, w)

    def on_click(v, m, s, c):
        items, text = window_endpoint(state, v, m, s, c)
        return items, text, int(str(c).split(":")[0])

    run.click(on_run, [video, model, stride], [plot, payload, status, window], api_name="timeline", **heavy).then(
        on_window, [video, model, stride, window], [frames, caption], api_visibility="private").then(
        None, None, None, js=CLICK_JS)
    window.release(on_window, [video, model, stride, window], [frames, caption], api_name="timeline_window")
    click.change(on_click, [video, model, stride, click], [frames, caption, window], api_visibility="private")
