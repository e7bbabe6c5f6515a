"""Small pieces every tab uses: turning errors into one readable line, and HTML snippets.

A handler must never show a traceback in the page: ``friendly`` turns the package's typed errors
(one user-facing sentence each) into ``gr.Error`` with that sentence, and anything unexpected
into a short message that names the exception type and points to the server log, where the full
traceback is written.
"""
from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr
import torch

from uniformer.errors import UniformerLabError

log = logging.getLogger("uniformer_lab.app")
F = TypeVar("F", bound=Callable[..., Any])
Progress = Callable[..., Any]  # gr.Progress, or anything called like it


def no_progress(*_: Any, **__: Any) -> None:
    """The progress callback of a handler called outside a Gradio event (tests, scripts)."""
    return None


def _upload_dirs() -> list[str]:
    from app.state import upload_folder

    root = upload_folder()
    return sorted({root, os.path.realpath(root)}, key=len, reverse=True)


def public_message(text: str) -> str:
    """The message without server folders: ``/tmp/gradio/<hash>/clip.mp4`` → ``clip.mp4``."""
    for root in _upload_dirs():
        text = re.sub(re.escape(root.rstrip("/")) + r"/[^/\s'\"]+/", "", text)
    return text


# The last error of each browser session, for ``error_box``: a toast fades after seconds and leaves
# only red "Error" badges, so the page also shows the sentence in the tab's own text (issue 15.5).
_LAST_ERROR: OrderedDict[str, str] = OrderedDict()
_LAST_ERROR_LOCK = threading.Lock()


def _remember(text: str) -> None:
    from gradio.context import LocalContext

    session = getattr(LocalContext.request.get(None), "session_hash", None)
    if session:
        with _LAST_ERROR_LOCK:
            _LAST_ERROR[session] = text
            _LAST_ERROR.move_to_end(session)
            while len(_LAST_ERROR) > 256:
                _LAST_ERROR.popitem(last=False)


def _error(what: str, message: str) -> gr.Error:
    _remember(message if message.startswith(what) else f"{what} failed: {message}")
    return gr.Error(message, title=f"{what} failed", print_exception=False)


def error_box(request: gr.Request) -> str:
    """``.failure`` listener: the session's last error as a box that stays in the tab until the next
    result replaces it (API callers still get the error itself)."""
    with _LAST_ERROR_LOCK:
        text = _LAST_ERROR.pop(getattr(request, "session_hash", None) or "", None)
    return f"<div class='ul-error'>⚠️ {esc(text or 'The request failed; the details are in the server log.')}</div>"


def friendly(what: str) -> Callable[[F], F]:
    """Decorator: typed errors → ``gr.Error(str(err))``; other errors → a one-line ``gr.Error``."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error as err:
                _remember(f"{what} failed: {err.message}")
                raise
            except UniformerLabError as err:
                log.info("%s refused: %s", what, err)
                raise _error(what, public_message(str(err))) from None
            except torch.OutOfMemoryError:
                log.exception("%s ran out of memory", what)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise _error(what, f"{what} ran out of memory; try fewer views, fewer models or a smaller "
                                   "model.") from None
            except Exception as err:  # noqa: BLE001 - the page gets one line, the log the traceback
                log.exception("%s failed unexpectedly", what)
                raise _error(what, f"{what} failed unexpectedly ({type(err).__name__}); the details are in the "
                                   f"server log.") from None

        return wrapper  # type: ignore[return-value]

    return deco


@contextlib.contextmanager
def _no_stub_files() -> Any:
    """Gradio writes a ``.pyi`` stub next to the source of every component class it sees defined;
    a subclass defined in this package must not write into the source tree at import time."""
    from gradio import component_meta

    original = getattr(component_meta, "create_or_modify_pyi", None)
    if original is not None:
        component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        if original is not None:
            component_meta.create_or_modify_pyi = original


with _no_stub_files():

    class ClampedSlider(gr.Slider):
        """A slider whose range follows the chosen model (updated per session) but whose API input
        is clamped by the handler instead of refused: an API caller switching to a model with more
        layers must not be stopped by the range of the model it used before."""

        is_template = True  # rendered by the frontend as a plain slider

        def preprocess(self, payload: float | None) -> float | None:
            if payload is None:
                return None
            try:
                return float(payload)
            except (TypeError, ValueError):
                raise gr.Error(f"'{payload}' is not a number.", print_exception=False) from None


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def topk_cards_html(results: list[dict[str, Any]]) -> str:
    """Side-by-side cards, one per model: top-5 bars, weights, views, timings."""
    cards = []
    for r in results:
        bars = []
        for i, item in enumerate(r["top5"], 1):
            pct = 100.0 * float(item["probability"])
            bars.append(
                f'<div class="ul-row"><span class="ul-rank">{i}.</span>'
                f'<span class="ul-label">{esc(item["label"])}</span>'
                f'<span class="ul-pct">{pct:.1f}%</span></div>'
                f'<div class="ul-bar"><div style="width:{max(pct, 0.5):.1f}%"></div></div>'
            )
        t = r["timings"]
        caveats = r.get("notes") or (["random weights: these labels are not a prediction"]
                                     if r.get("random_weights") else [])
        style = "ul-warn" if r.get("random_weights") else "ul-note"  # random weights warn; a class scope informs
        warn = "".join(f'<div class="{style}">{esc(n)}</div>' for n in caveats)
        cards.append(
            f'<div class="ul-card" data-model="{esc(r["model"])}">'
            f'<div class="ul-title">{esc(r["model"])}</div>{warn}'
            f'<div class="ul-meta">weights: {esc(r["weights"])}<br>views {esc(r["views"])} on {esc(r["device"])}'
            f'{", " + esc(r["precision"]) if r.get("precision") else ""}</div>'
            + "".join(bars)
            + f'<div class="ul-meta">decode {t["decode_s"]:.2f} s{" (cached)" if r.get("clip_cached") else ""}, '
              f'preprocess {t["preprocess_s"]:.2f} s, model {t["model_s"]:.2f} s, total {t["total_s"]:.2f} s</div>'
            "</div>"
        )
    return f'<div class="ul-cards">{"".join(cards)}</div>'


CSS = """
.ul-cards {display:flex; flex-wrap:wrap; gap:12px;}
.ul-card {flex:1 1 260px; border:1px solid var(--border-color-primary); border-radius:8px; padding:10px;}
.ul-title {font-weight:600; margin-bottom:4px; word-break:break-all;}
.ul-warn {color:#b71c1c; font-size:0.85em; margin-bottom:4px;}
.ul-note {color:#555; font-size:0.85em; margin-bottom:4px;}
.ul-meta {color:var(--body-text-color-subdued); font-size:0.8em; margin:4px 0;}
.ul-row {display:flex; gap:6px; font-size:0.95em;}
.ul-rank {width:1.6em;}
.ul-label {flex:1;}
.ul-bar {height:6px; background:var(--background-fill-secondary); border-radius:3px; margin-bottom:4px;}
.ul-bar > div {height:6px; background:#e65100; border-radius:3px;}
.ul-banner {border-left:4px solid #b71c1c; padding:4px 10px;}
#redundancy-table th, #redundancy-table th * {word-break:keep-all !important; overflow-wrap:normal !important;
                                             hyphens:none;}
#predict-frames .caption-label {max-width:100%; white-space:normal; overflow:visible; text-overflow:clip;
                                line-height:1.15;}
#predict-frames .grid-container {grid-template-columns:repeat(var(--grid-cols), minmax(0, 1fr)) !important;}
#predict-frames .grid-wrap {height:auto !important; max-height:360px;}
#predict-frames {height:auto !important;}
.ul-error {border:1px solid #b71c1c; border-left:6px solid #b71c1c; border-radius:6px; padding:8px 12px;
           background:rgba(183,28,28,0.08); color:var(--body-text-color); margin:4px 0;}
"""
