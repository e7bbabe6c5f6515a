"""Redundancy tab: is early attention local? (the paper's Figure 1 claim, measured on this clip)

UniFormer and TimeSformer each look at the same video with their own one-view test clip; every
layer's map is read per axis by ``analysis.redundancy`` (spatial locality: mass in the 3×3
neighbourhood in any frame; temporal: within ±1 frame at any position), each against the value a
uniform map would have on that axis, the same computation as ``python -m analysis.redundancy``
over many clips. The curves are drawn against relative depth so a 12-block and a 4-stage model
share one axis, and a few sentences compare each axis with its own floor. Extractions are shared
with the attention tab's cache.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from app.common import Progress, friendly, no_progress
from app.state import FALLBACK_MODELS, AppState, LoadedModel
from app.tab_attention import check_attention_memory, get_record
from uniformer.cost import check_cancelled, request_cost, run_cost
from uniformer.errors import UniformerLabError
from uniformer.models.family import TIMESFORMER, UNIFORMER

TABLE_HEADERS = ["model", "map", "axis", "source", "grid", "locality", "uniform", "ratio", "distance",
                 "entropy", "rel. depth"]


def default_for_family(state: AppState, family: str) -> str:
    """First default model of the family, else the first with weights on disk, else the fallback."""
    from uniformer.zoo import get_entry

    for name in state.default_models:
        if get_entry(name).family == family:
            return name
    for _, name in state.model_choices():
        if get_entry(name).family == family and state.resolve_weights(name).source in ("bundled", "hub cache"):
            return name
    return next(n for n in FALLBACK_MODELS if get_entry(n).family == family)


def _fmt(v: float, digits: int = 3) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _axis_text(rows: Sequence[Any]) -> str:
    """'S% in 3×3 (uniform U%, r×) in space; T% within ±1 frame (uniform V%, q×) in time'."""
    parts = []
    for axis, where in (("spatial", "in the 3×3 neighbourhood in space"), ("temporal", "within ±1 frame in time")):
        rs = [r for r in rows if r.kind == axis]
        if rs:
            loc, floor = _mean([r.locality_mean for r in rs]), _mean([r.uniform_locality for r in rs])
            parts.append(f"{loc:.0%} {where} (uniform {floor:.0%}, {loc / floor:.1f}×)")
    return "; ".join(parts)


def _verdict(rows: Sequence[Any]) -> str:
    ratios = {axis: _mean([r.ratio for r in rows if r.kind == axis]) for axis in ("spatial", "temporal")}
    words = []
    for axis, ratio in ratios.items():
        if math.isnan(ratio):
            continue
        words.append(f"{axis}ly " + ("much more local than uniform" if ratio >= 2 else
                                      "somewhat more local than uniform" if ratio >= 1.2 else "about uniform"))
    return ", ".join(words)


def reading(per_model: Sequence[tuple[LoadedModel, Sequence[Any]]]) -> str:
    """A few plain sentences on what the per-axis curves say about 'shallow attention is local'.

    ``rows`` are ``analysis.redundancy.LayerRow``: one per map and axis, each with its own floor.
    """
    lines = ["### What this shows", ""]
    any_random = False
    for lm, rows in per_model:
        any_random |= lm.weights.random
        shallow = [r for r in rows if r.rel_depth <= 1 / 3] or list(rows[:1])
        deep = [r for r in rows if r.rel_depth >= 2 / 3] or list(rows[-1:])
        # Kernels and attention maps have different floors: each is read on its own.
        shallow_attn = [r for r in shallow if r.source != "kernel"]
        deep_attn = [r for r in deep if r.source != "kernel"]
        if not shallow_attn:  # local MHRA early (UniFormer's L stages)
            text = (f"- **{lm.label}**: its shallow layers are local by construction (a learned 5×5×5 affinity); "
                    f"of the kernel weight, {_axis_text(shallow)}. ")
            if deep_attn:
                text += (f"Its deep global layers put {_axis_text(deep_attn)}, at a fraction of the cost of "
                         "global attention early on.")
            else:
                text += "Its deep layers are local kernels too: this stage layout has no global attention to measure."
            lines.append(text)
            continue
        sources = sorted({"joint" if r.source == "joint" else "divided space/time" for r in shallow_attn})
        deep_text = (f"In the last third: {_axis_text(deep_attn)}." if deep_attn else
                     "Its last third are local affinity kernels (no attention to measure there).")
        lines.append(
            f"- **{lm.label}**: in its first third of layers ({', '.join(sources)} attention), each query puts "
            f"{_axis_text(shallow_attn)}: {_verdict(shallow_attn)}. {deep_text}")
    lines.append("")
    if any_random:
        lines.append(
            "⚠️ At least one model here has **random weights**. Untrained attention is close to uniform, so its "
            "curves sit near the dotted uniform line and say nothing about the claim; load trained weights "
            "(bundled in `assets/checkpoints/` or the published ones in the Hugging Face cache) to test it.")
    else:
        lines.append(
            "The paper's claim holds on this clip when the global-attention model's shallow layers are far above "
            "the dotted uniform line on an axis (each token mostly attends to its neighbours): that global "
            "comparison is then largely redundant, and UniFormer's cheap local affinity does the same job in those "
            "layers. One clip gives no interval: `python -m analysis.redundancy` measures many clips with 95 % CIs.")
    return "\n".join(lines)


def redundancy(
    state: AppState,
    video: Any,
    uniformer_model: str | None = None,
    timesformer_model: str | None = None,
    progress: Progress | None = None,
) -> tuple[Any, str, list[list[Any]]]:
    """Per-layer redundancy curves of both models on ``video``: ``(figure, reading, table_rows)``."""
    from analysis.redundancy import axis_values, summarise
    from analysis.views import axis_curve_plotly
    from uniformer.zoo import get_entry

    progress = progress or no_progress
    path = state.check_path(video, what="video")
    start = time.perf_counter()
    chosen = [(uniformer_model or default_for_family(state, UNIFORMER.name)),
              (timesformer_model or default_for_family(state, TIMESFORMER.name))]
    if str(chosen[0]).lower() == "none":
        chosen[0] = None
    if str(chosen[1]).lower() == "none":
        chosen[1] = None
    chosen = [c for c in chosen if c]
    if not chosen:
        raise UniformerLabError("Choose at least one model to measure.")
    for name in chosen:
        check_attention_memory(state, name)
    state.budget.admit(request_cost(run_cost(name, (1, 1)) for name in chosen))
    per_model: list[tuple[LoadedModel, list[Any]]] = []
    timings = []
    for i, name in enumerate(chosen):
        get_entry(name)
        check_cancelled()
        progress(i / len(chosen), desc=f"Loading {name}")
        lm, _ = state.get_model(name)
        t0 = time.perf_counter()
        cache, cached = get_record(state, lm, path)
        progress((i + 0.7) / len(chosen), desc=f"Measuring {lm.label}")
        if "redundancy_axes" not in cache["extras"]:
            cache["extras"]["redundancy_axes"] = summarise([axis_values(cache["record"])])
        rows = cache["extras"]["redundancy_axes"]
        per_model.append((lm, rows))
        timings.append(f"{lm.label}: {time.perf_counter() - t0:.2f} s{' (cached extraction)' if cached else ''}")
    fig = axis_curve_plotly({lm.label: rows for lm, rows in per_model},
                            title="Locality per axis on this clip (dotted: uniform attention on that axis)")
    fig.update_layout(width=None, autosize=True, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    table = [
        [lm.label, r.name, r.kind, r.source, r.grid, _fmt(r.locality_mean), _fmt(r.uniform_locality), _fmt(r.ratio, 2),
         _fmt(r.distance_mean, 2), _fmt(r.entropy_mean), _fmt(r.rel_depth, 2)]
        for lm, rows in per_model for r in rows
    ]
    md = reading(per_model) + f"\n\n*Time: {'; '.join(timings)}; total {time.perf_counter() - start:.2f} s.*"
    progress(1.0, desc="Done")
    return fig, md, table


redundancy_endpoint = friendly("Redundancy measurement")(redundancy)
