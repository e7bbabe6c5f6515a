"""Redundancy tab: is early attention local? (the paper's Figure 1 claim, measured on this clip)

UniFormer and TimeSformer each look at the same video with their own one-view test clip; every
layer's map goes through ``analysis.metrics.redundancy_table`` (locality, attention distance,
entropy, with the value a uniform map would have on the same grid). The curves are drawn against
relative depth so a 12-block and a 4-stage model share one axis, and a few sentences say what
the numbers mean for the claim. Extractions are shared with the attention tab's cache.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from app.common import Progress, friendly, no_progress
from app.state import FALLBACK_MODELS, AppState, LoadedModel
from app.tab_attention import get_record
from uniformer.errors import UniformerLabError
from uniformer.models.family import TIMESFORMER, UNIFORMER

TABLE_HEADERS = ["model", "layer", "kind", "grid", "rel. depth", "locality", "uniform", "dist space (patches)",
                 "dist time (frames)", "entropy"]


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


def reading(per_model: Sequence[tuple[LoadedModel, Sequence[Any]]]) -> str:
    """A few plain sentences on what the curves say about 'shallow attention is local'."""
    lines = ["### What this shows", ""]
    any_random = False
    for lm, rows in per_model:
        layer_rows = [r for r in rows if r.head == -1]
        any_random |= lm.weights.random
        shallow = [r for r in layer_rows if r.rel_depth <= 1 / 3] or layer_rows[:1]
        deep = [r for r in layer_rows if r.rel_depth >= 2 / 3] or layer_rows[-1:]
        # Kernels and attention maps measure different neighbourhoods: average each on its own.
        shallow_attn = [r for r in shallow if r.kind != "local_affinity"]
        deep_attn = [r for r in deep if r.kind != "local_affinity"]
        if not shallow_attn:  # local MHRA early (UniFormer's L stages)
            loc, chance = _mean([r.locality for r in shallow]), _mean([r.chance_locality for r in shallow])
            text = (f"- **{lm.label}**: its shallow layers are local by construction (a learned 5×5×5 affinity); "
                    f"{loc:.0%} of the kernel weight sits in the central 3×3×3 (an even spread would give "
                    f"{chance:.0%}). ")
            if deep_attn:
                deep_loc = _mean([r.locality for r in deep_attn])
                deep_chance = _mean([r.chance_locality for r in deep_attn])
                text += (f"Its deep global layers put {deep_loc:.0%} of their attention in the 3×3 × ±1-frame "
                         f"neighbourhood (uniform: {deep_chance:.0%}), at a fraction of the cost of global attention "
                         "early on.")
            else:
                text += "Its deep layers are local kernels too: this stage layout has no global attention to measure."
            lines.append(text)
            continue
        loc, chance = _mean([r.locality for r in shallow_attn]), _mean([r.chance_locality for r in shallow_attn])
        deep_loc, deep_chance = _mean([r.locality for r in deep_attn]), _mean([r.chance_locality for r in deep_attn])
        deep_text = (f"In the last third: {deep_loc:.0%} (uniform {deep_chance:.0%})." if deep_attn else
                     "Its last third are local affinity kernels (no attention to measure there).")
        ratio = loc / chance if chance > 0 else float("nan")
        kinds = sorted({r.kind for r in shallow_attn})
        verdict = ("much more local than uniform" if ratio >= 2 else
                   "somewhat more local than uniform" if ratio >= 1.2 else "about as spread out as uniform attention")
        lines.append(
            f"- **{lm.label}**: in its first third of layers ({', '.join(kinds)} attention), {loc:.0%} of each "
            f"query's attention lands in its immediate neighbourhood, against {chance:.0%} for uniform "
            f"attention ({ratio:.1f}×): {verdict}. {deep_text}")
    lines.append("")
    if any_random:
        lines.append(
            "⚠️ At least one model here has **random weights**. Untrained attention is close to uniform, so its "
            "curves sit near the dotted uniform line and say nothing about the claim; load trained weights "
            "(bundled in `assets/checkpoints/` or the published ones in the Hugging Face cache) to test it.")
    else:
        lines.append(
            "The paper's claim holds on this clip when the global-attention model's shallow layers are far above "
            "the dotted uniform line (each token mostly attends to its neighbours): that global comparison is then "
            "largely redundant, and UniFormer's cheap local affinity does the same job in those layers.")
    return "\n".join(lines)


def redundancy(
    state: AppState,
    video: Any,
    uniformer_model: str | None = None,
    timesformer_model: str | None = None,
    progress: Progress | None = None,
) -> tuple[Any, str, list[list[Any]]]:
    """Per-layer redundancy curves of both models on ``video``: ``(figure, reading, table_rows)``."""
    from analysis.metrics import redundancy_table
    from analysis.views import redundancy_curve_plotly
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
    per_model: list[tuple[LoadedModel, list[Any]]] = []
    timings = []
    for i, name in enumerate(chosen):
        get_entry(name)
        progress(i / len(chosen), desc=f"Loading {name}")
        lm, _ = state.get_model(name)
        t0 = time.perf_counter()
        cache, cached = get_record(state, lm, path)
        progress((i + 0.7) / len(chosen), desc=f"Measuring {lm.label}")
        if "redundancy" not in cache["extras"]:
            cache["extras"]["redundancy"] = redundancy_table(cache["record"], per_head=False, model=lm.label)
        rows = cache["extras"]["redundancy"]
        per_model.append((lm, rows))
        timings.append(f"{lm.label}: {time.perf_counter() - t0:.2f} s{' (cached extraction)' if cached else ''}")
    all_rows = [r for _, rows in per_model for r in rows]
    fig = redundancy_curve_plotly(all_rows,
                                  title="Attention redundancy per layer on this clip (dotted: uniform attention)")
    fig.update_layout(width=None, autosize=True, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    table = [
        [r.model, r.layer, r.kind, r.grid, _fmt(r.rel_depth, 2), _fmt(r.locality), _fmt(r.chance_locality),
         _fmt(r.dist_space, 2), _fmt(r.dist_time, 2), _fmt(r.entropy)]
        for r in all_rows if r.head == -1
    ]
    md = reading(per_model) + f"\n\n*Time: {'; '.join(timings)}; total {time.perf_counter() - start:.2f} s.*"
    progress(1.0, desc="Done")
    return fig, md, table


redundancy_endpoint = friendly("Redundancy measurement")(redundancy)
