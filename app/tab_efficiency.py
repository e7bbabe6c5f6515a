"""Efficiency tab: accuracy against GFLOPs, published and measured here.

Published points come from ``assets/published_results.csv`` (``analysis.efficiency``); the
project's own numbers for every model loaded in this server are GFLOPs and parameters counted on
the ``meta`` device (no weights, about a second per model, cached) and the forward latency per
view — observed during predictions, or measured on demand on a random clip of the model's input
size. The table is sortable by any column in the page.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import torch

from app.common import Progress, friendly, no_progress
from app.state import AppState
from uniformer.cost import request_cost, run_cost
from uniformer.errors import UniformerLabError

DATASETS = ["K400", "K600", "SSv1", "SSv2", "all"]
PER_CHOICES = ["per view", "total over views"]
TABLE_HEADERS = ["source", "model", "variant", "dataset", "pretrain", "frames", "views", "GFLOPs/view",
                 "GFLOPs total", "params (M)", "top-1 (%)", "latency (s/view)"]

_MEASURED: dict[str, Any] = {}
_MEASURED_LOCK = threading.Lock()


def measured_point(name: str) -> Any:
    """FLOPs/params of a zoo model at its test input size (cached; counted on the meta device)."""
    from analysis.efficiency import measure_models

    with _MEASURED_LOCK:
        if name not in _MEASURED:
            _MEASURED[name] = measure_models([name])[0]
        return _MEASURED[name]


def measure_latency(state: AppState, name: str, repeats: int = 2) -> float:
    """Seconds per view of one forward on a random clip of the model's input size (after a warm-up)."""
    lm, _ = state.get_model(name)
    x = torch.randn(1, *lm.entry.input_size, device=lm.device)
    times = []
    with lm.lock, torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            lm.model(x)
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    state.record_latency(name, seconds)
    return seconds


def _r(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(float(v), digits)


def efficiency(
    state: AppState,
    dataset: str | None = "K400",
    per: str | None = "per view",
    latency: bool = False,
    progress: Progress | None = None,
) -> tuple[Any, list[list[Any]], str]:
    """``(figure, table_rows, measured_markdown)`` for one dataset (``all`` for every dataset)."""
    from analysis.efficiency import efficiency_plotly, load_published

    progress = progress or no_progress
    ds = None if not dataset or str(dataset).lower() == "all" else str(dataset)
    if ds is not None and ds not in DATASETS:
        raise UniformerLabError(f"Unknown dataset '{dataset}'; choose one of {', '.join(DATASETS)}.")
    mode = "total" if per and str(per).lower().startswith("total") else "view"
    published = load_published(ds)

    names: list[str] = []
    for n in [*state.default_models, *(m.name for m in state.loaded_models())]:
        if n not in names:
            names.append(n)
    if latency:  # 1 warm-up + 2 timed forwards of one view per model: priced like any model run
        state.budget.admit(request_cost(run_cost(n, (1, 1), passes=3) for n in names))
    measured = []
    lines = ["| model (loaded here) | views | GFLOPs/view measured | published | params (M) | latency (s/view) | "
             "device |",
             "|---|---|---|---|---|---|---|"]
    for i, name in enumerate(names):
        progress(i / max(1, len(names)), desc=f"Counting FLOPs of {name}")
        m = measured_point(name)
        if latency:
            progress((i + 0.5) / max(1, len(names)), desc=f"Timing {name}")
            measure_latency(state, name)
        lat = state.latency(name)
        measured.append((m, lat))
        pub = "–" if m.published_gflops_per_view is None else f"{m.published_gflops_per_view:g}"
        lines.append(f"| {name} | {m.views} | {m.gflops_per_view:.2f} | {pub} | {m.params_m:.2f} | "
                     f"{'–' if lat is None else f'{lat:.3f}'} | {state.device} |")
    shown = [m for m, _ in measured if ds is None or m.dataset.lower() == ds.lower()]
    fig = efficiency_plotly(published, shown, per=mode, dataset=ds)
    fig.update_layout(width=None, autosize=True)

    rows = [["published", p.model, p.variant, p.dataset, p.pretrain, p.frames, p.views, _r(p.gflops_per_view, 1),
             _r(p.gflops_total, 1), _r(p.params_m, 1), p.top1, None] for p in published]
    rows += [["measured here", m.name, m.name, m.dataset, "", None, m.views, _r(m.gflops_per_view), _r(m.gflops_total),
              _r(m.params_m), m.top1, _r(lat, 4)]
             for m, lat in measured if ds is None or m.dataset.lower() == ds.lower()]
    md = "\n".join(lines) + (
        "\n\nGFLOPs are multiply-adds per view, counted here on the architecture (weights do not matter); latency is "
        "the median forward time per view seen by this server (tick *measure latency* to time every loaded model "
        "now). Measured points are drawn hollow with the *published* top-1 of that checkpoint; models without a "
        "published accuracy (bundled small models) are only in the table.")
    progress(1.0, desc="Done")
    return fig, rows, md


efficiency_endpoint = friendly("Efficiency view")(efficiency)


def trained_here(state: AppState | None = None) -> tuple[Any, str]:
    """``(figure, markdown)`` of the lab ablation: layouts trained here, own GFLOPs vs own held-out top-1."""
    from analysis.efficiency import load_trained_here, trained_here_markdown, trained_here_plotly

    points, meta = load_trained_here()
    fig = trained_here_plotly(points, meta)
    fig.update_layout(width=None, autosize=True)
    return fig, trained_here_markdown(points, meta)


trained_here_endpoint = friendly("Trained-here view")(trained_here)
