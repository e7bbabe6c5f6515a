"""Accuracy vs cost: the published table next to what this project measures for its own models.

Published rows come from ``assets/published_results.csv`` (one row per paper table entry).
GFLOPs there mean multiply-adds; "per view" is one clip × one crop, "total" is per video over
all test views (clips × crops). The project's measured points are FLOPs/params counted by
``uniformer.flops.count_flops`` on the zoo architecture at the zoo input size (no weights
needed, counted on the ``meta`` device); they carry the published top-1 of that checkpoint
(accuracy is not re-measured here) and are drawn hollow so the two are never confused.
A measured model with no published top-1 (a bundled synthetic model, a dataset without a published
table) is still drawn: a hollow square at its GFLOPs on the bottom edge of the accuracy range, a dashed
line up through it, and a note on the figure, so the figure is never empty axes.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import plotly.graph_objects as go
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.attention import AnalysisError
from uniformer.assets import PUBLISHED_CSV
from uniformer.data.sampling import parse_views
from uniformer.errors import UniformerLabError

Per = Literal["view", "total"]
# A qualitative palette (matplotlib's tab10, red first so UniFormer stands out) and marker shapes:
# the families of one figure get distinct (colour, shape) pairs, colours first, in a fixed order
# (UniFormer, TimeSformer, then as they come), so no two families share a look and the colours of
# the first ten are all different.
QUALITATIVE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#7f7f7f", "#bcbd22")
SYMBOLS = ("circle", "square", "triangle-up", "diamond-wide", "star")
MPL_MARKERS = {"circle": "o", "square": "s", "triangle-up": "^", "diamond-wide": "d", "star": "*"}
_FIRST = ("UniFormer", "TimeSformer")


def family_styles(models: Iterable[str]) -> dict[str, tuple[str, str]]:
    """family → (colour, plotly symbol), distinct within one figure."""
    seen = list(dict.fromkeys(models))
    order = [m for m in _FIRST if m in seen] + [m for m in seen if m not in _FIRST]
    n = len(QUALITATIVE)
    return {m: (QUALITATIVE[i % n], SYMBOLS[(i // n) % len(SYMBOLS)]) for i, m in enumerate(order)}


def _num(text: str | None) -> float | None:
    try:
        v = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return v if v is None or math.isfinite(v) else None


def num_views(views: str | None) -> int | None:
    """``"4x3"`` (clips × crops, read by ``uniformer.data.sampling.parse_views``) → 12; empty or malformed → None."""
    try:
        return math.prod(parse_views(views)) if views else None
    except UniformerLabError:
        return None


@dataclass(frozen=True)
class PublishedPoint:
    """One published result (a CSV row with an accuracy)."""

    model: str
    variant: str
    pretrain: str
    dataset: str
    frames: int | None
    views: str
    gflops_per_view: float | None
    gflops_total: float | None
    top1: float
    params_m: float | None
    source: str

    @property
    def label(self) -> str:
        return f"{self.variant} ({self.views})" if self.views else self.variant

    def gflops(self, per: Per) -> float | None:
        return self.gflops_per_view if per == "view" else self.gflops_total


def load_published(dataset: str | None = None, path: str | Path | None = None) -> list[PublishedPoint]:
    """Rows with a top-1, optionally for one dataset (``K400``, ``K600``, ``SSv1``, ``SSv2``).

    A missing total is filled as per-view × views (and vice versa); exact duplicates (the same
    number printed in two tables of one paper) are kept once.
    """
    path = Path(path) if path else PUBLISHED_CSV
    if not path.is_file():
        raise AnalysisError(f"The published results table {path} does not exist.")
    points: list[PublishedPoint] = []
    seen: set[tuple] = set()
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            top1 = _num(row.get("top1"))
            if top1 is None or (dataset and row["dataset"].lower() != dataset.lower()):
                continue
            per_view, total = _num(row.get("gflops_per_view")), _num(row.get("gflops_total"))
            n = num_views(row.get("views"))
            if total is None and per_view is not None and n:
                total = per_view * n
            if per_view is None and total is not None and n:
                per_view = total / n
            frames = _num(row.get("frames"))
            p = PublishedPoint(
                model=row["model"], variant=row["variant"], pretrain=row["pretrain"], dataset=row["dataset"],
                frames=int(frames) if frames else None, views=row.get("views") or "",
                gflops_per_view=per_view, gflops_total=total, top1=top1,
                params_m=_num(row.get("params_m")), source=row.get("source", ""),
            )
            key = (p.model, p.variant, p.pretrain, p.dataset, p.views, p.top1, p.gflops_per_view)
            if key not in seen:
                seen.add(key)
                points.append(p)
    return points


@dataclass(frozen=True)
class MeasuredPoint:
    """This project's count for one zoo model, next to the published numbers of that checkpoint."""

    name: str
    dataset: str
    views: str
    gflops_per_view: float
    gflops_total: float
    params_m: float
    top1: float | None
    published_gflops_per_view: float | None
    published_params_m: float | None

    def gflops(self, per: Per) -> float:
        return self.gflops_per_view if per == "view" else self.gflops_total


def measure_models(names: Iterable[str]) -> list[MeasuredPoint]:
    """FLOPs/params of zoo models at their test input size, built on the ``meta`` device."""
    import torch

    from uniformer import zoo
    from uniformer.flops import count_flops

    out = []
    for name in names:
        entry = zoo.get_entry(name)
        with torch.device("meta"):
            model = zoo.create_model(name, device="meta")
        report = count_flops(model, (1, *entry.input_size))
        views = f"{entry.protocol.num_clips}x{entry.protocol.num_crops}"
        pub = entry.published
        out.append(MeasuredPoint(
            name=name, dataset=entry.dataset, views=views, gflops_per_view=report.gflops,
            gflops_total=report.gflops * entry.protocol.num_views, params_m=report.params_m,
            top1=pub.top1 if pub else None,
            published_gflops_per_view=pub.gflops_per_view if pub else None,
            published_params_m=pub.params_m if pub else None,
        ))
    return out


def _axis_title(per: Per) -> str:
    return "GFLOPs per view (one clip × one crop)" if per == "view" else "GFLOPs per video (total over all test views)"


def _title(dataset: str | None, per: Per) -> str:
    where = dataset or "all datasets"
    return f"Accuracy vs cost on {where} — {'per view' if per == 'view' else 'total over views'}"


def _unknown_accuracy_span(published: Sequence[PublishedPoint], measured: Sequence[MeasuredPoint],
                           per: Per) -> tuple[float, float]:
    """Accuracy range of the points that have one (a dashed line spans it); 0-100 % when none do."""
    ys = [p.top1 for p in published if p.gflops(per) is not None] + [m.top1 for m in measured if m.top1 is not None]
    return (min(ys), max(ys)) if ys else (0.0, 100.0)


def _figure_note(published: Sequence[PublishedPoint], measured: Sequence[MeasuredPoint], per: Per,
                 dataset: str | None) -> str:
    """One line under the title saying what is missing, or "" when every point has an accuracy."""
    parts = []
    if not any(p.gflops(per) is not None for p in published):
        parts.append(f"no published result for {dataset or 'this dataset'}")
    unknown = [m.name for m in measured if m.top1 is None]
    if unknown:
        parts.append(f"accuracy not known for {', '.join(unknown)}: drawn at its measured cost "
                     "(square on the dashed line)")
    return "; ".join(parts)


def efficiency_plotly(
    published: Sequence[PublishedPoint], measured: Sequence[MeasuredPoint] = (), per: Per = "view",
    dataset: str | None = None,
) -> go.Figure:
    """Scatter of top-1 vs GFLOPs (log x): filled = published, hollow diamonds = measured here."""
    fig = go.Figure()
    by_model: dict[str, list[PublishedPoint]] = {}
    for p in published:
        if p.gflops(per) is not None:
            by_model.setdefault(p.model, []).append(p)
    styles = family_styles(by_model)
    for model, pts in by_model.items():
        colour, symbol = styles[model]
        fig.add_trace(go.Scatter(
            x=[p.gflops(per) for p in pts], y=[p.top1 for p in pts], mode="markers", name=f"{model} (published)",
            marker=dict(size=10, color=colour, symbol=symbol, line=dict(width=0.5, color="white")),
            text=[f"{p.label}<br>{p.pretrain} pretrain<br>{p.source}" for p in pts],
            hovertemplate="%{text}<br>%{x:.1f} GFLOPs, top-1 %{y:.1f}<extra>published</extra>",
        ))
    pts = [m for m in measured if m.top1 is not None]
    if pts:
        fig.add_trace(go.Scatter(
            x=[m.gflops(per) for m in pts], y=[m.top1 for m in pts], mode="markers+text", name="measured here",
            marker=dict(size=13, symbol="diamond-open", line=dict(width=2), color="#000000"),
            text=[m.name for m in pts], textposition="bottom center", textfont=dict(size=9),
            customdata=[[m.params_m, m.published_gflops_per_view or float("nan")] for m in pts],
            hovertemplate=("%{text}<br>measured %{x:.1f} GFLOPs, %{customdata[0]:.2f} M params"
                           "<br>published %{customdata[1]} GFLOPs/view; top-1 is the published "
                           "one<extra>measured</extra>"),
        ))
    lo, hi = _unknown_accuracy_span(published, measured, per)
    for i, m in enumerate(m for m in measured if m.top1 is None):
        fig.add_trace(go.Scatter(
            x=[m.gflops(per), m.gflops(per)], y=[lo, hi], mode="lines", line=dict(dash="dash", color="#000000"),
            hoverinfo="skip", showlegend=False,
        ))
        fig.add_trace(go.Scatter(
            x=[m.gflops(per)], y=[lo], mode="markers+text", name="measured here (accuracy not known)",
            showlegend=i == 0, marker=dict(size=13, symbol="square-open", line=dict(width=2), color="#000000"),
            text=[f"{m.name}: {m.gflops(per):.3g} G, {m.params_m:.2f} M"], textposition="top right",
            textfont=dict(size=9),
            hovertemplate=f"{m.name}<br>measured %{{x:.3g}} GFLOPs, {m.params_m:.2f} M params<br>no published "
                          "top-1: the height means nothing<extra>measured</extra>",
        ))
    note = _figure_note(published, measured, per, dataset)
    if note:
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=1.0, yanchor="bottom", showarrow=False,
                           font=dict(size=11), align="left", xanchor="left")
    fig.update_xaxes(type="log", title_text=_axis_title(per))
    fig.update_yaxes(title_text="top-1 accuracy (%)")
    fig.update_layout(title=_title(dataset, per), height=560, width=900, legend=dict(font=dict(size=10)))
    return fig


def efficiency_mpl(
    published: Sequence[PublishedPoint], measured: Sequence[MeasuredPoint] = (), per: Per = "view",
    dataset: str | None = None,
) -> Figure:
    """matplotlib version of :func:`efficiency_plotly` (labels on every point)."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done: set[str] = set()
    styles = family_styles(p.model for p in published if p.gflops(per) is not None)
    for p in published:
        x = p.gflops(per)
        if x is None:
            continue
        colour, symbol = styles[p.model]
        ax.scatter([x], [p.top1], s=30, color=colour, marker=MPL_MARKERS[symbol],
                   label=None if p.model in done else f"{p.model} (published)")
        done.add(p.model)
        ax.annotate(p.label, (x, p.top1), fontsize=5.5, xytext=(3, 2), textcoords="offset points", color=colour)
    first = True
    for m in measured:
        if m.top1 is None:
            continue
        ax.scatter([m.gflops(per)], [m.top1], s=90, marker="D", facecolors="none", edgecolors="black", linewidths=1.5,
                   label="measured here (published top-1)" if first else None)
        first = False
        ax.annotate(f"{m.name}\n{m.gflops(per):.1f} G, {m.params_m:.1f} M", (m.gflops(per), m.top1), fontsize=6,
                    xytext=(4, -12), textcoords="offset points")
    lo, hi = _unknown_accuracy_span(published, measured, per)
    first = True
    for m in measured:
        if m.top1 is not None:
            continue
        x = m.gflops(per)
        ax.plot([x, x], [lo, hi], ls="--", lw=1, color="black", alpha=0.6)
        ax.scatter([x], [lo], s=90, marker="s", facecolors="none", edgecolors="black", linewidths=1.5, zorder=3,
                   label="measured here (accuracy not known)" if first else None)
        first = False
        ax.annotate(f"{m.name}\n{x:.3g} G, {m.params_m:.2f} M", (x, lo), fontsize=6, xytext=(6, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    if not any(p.gflops(per) is not None for p in published) and measured:
        xs = [m.gflops(per) for m in measured]
        ax.set_xlim(min(xs) / 3, max(xs) * 3)  # one or two points: autoscale would pin a log axis to them
        if lo == hi:
            ax.set_ylim(lo - 5, hi + 5)
    ax.set_xlabel(_axis_title(per))
    ax.set_ylabel("top-1 accuracy (%)")
    note = _figure_note(published, measured, per, dataset)
    ax.set_title(_title(dataset, per) + (f"\n{note}" if note else ""), fontsize=10 if not note else 9, wrap=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return fig


# ===================================================================== trained here (issue 13)
#: Written by ``python -m uniformer.ablate`` after every finished run (committed with the repository).
ABLATION_JSON = Path(__file__).resolve().parents[1] / "docs" / "reproduction" / "ablation.json"
_TRAINED_FAMILIES = {"uniformer": "UniFormer", "timesformer": "TimeSformer"}  # their colours in the published plot


@dataclass(frozen=True)
class TrainedPoint:
    """One layout of the lab ablation: own GFLOPs per clip against own held-out top-1 (%)."""

    layout: str
    gflops: float
    params_m: float
    top1: float  # mean over seeds, %
    ci95: tuple[float, float]  # %, see ``interval``
    interval: str  # "t over N seeds" or "Wilson, 1 run" (evaluation noise only)
    seeds_top1: tuple[float, ...]  # %, one per seed
    n_eval: int
    train_minutes: float
    vs_reference: tuple[str, float, tuple[float, float] | None] | None = None  # (layout, points, Welch 95 %)

    @property
    def family(self) -> str:
        return "timesformer" if self.layout == "TS" else "uniformer"


def load_trained_here(path: str | Path | None = None) -> tuple[list[TrainedPoint], dict]:
    """The ablation's layouts (empty when it has not run) and its ``meta`` (CPU, command, date)."""
    path = Path(path) if path is not None else ABLATION_JSON
    if not path.is_file():
        return [], {}
    doc = json.loads(path.read_text())
    runs: dict[str, list[dict]] = {}
    for r in doc.get("runs", []):
        runs.setdefault(r["layout"], []).append(r)
    diffs = {d["layout"]: d for d in doc.get("differences", [])}
    points = []
    for s in doc.get("layouts", []):
        rs = runs.get(s["layout"], [])
        if not rs:
            continue
        if s.get("top1_ci95"):
            ci, how = tuple(s["top1_ci95"]), f"t over {s['n_seeds']} seeds"
        else:
            ci, how = tuple(rs[0]["top1_wilson95"]), "Wilson, 1 seed"
        points.append(TrainedPoint(
            layout=s["layout"], gflops=s["gflops"], params_m=s["params_m"], top1=100 * s["top1_mean"],
            ci95=(100 * ci[0], 100 * ci[1]), interval=how, seeds_top1=tuple(100 * r["top1"] for r in rs),
            n_eval=min(int(r["n_eval"]) for r in rs), train_minutes=s["train_minutes_mean"],
            vs_reference=_difference(diffs.get(s["layout"]))))
    return points, doc.get("meta", {})


def _difference(d: dict | None) -> tuple[str, float, tuple[float, float] | None] | None:
    if d is None:
        return None
    ci = None if d.get("ci95") is None else (100 * d["ci95"][0], 100 * d["ci95"][1])
    return d["reference"], 100 * d["diff"], ci


_LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left")


def _text_positions(points: Sequence[TrainedPoint]) -> list[str]:
    """A label position per point that differs from those of nearby points already labelled
    (LLLL, LLLG and LLGG sit within 0.05 decades and a few points of each other)."""
    placed: list[tuple[float, float, str]] = []
    for p in points:
        x = math.log10(max(p.gflops, 1e-9))
        taken = {pos for px, py, pos in placed if abs(px - x) < 0.08 and abs(py - p.top1) < 8}
        placed.append((x, p.top1, next((pos for pos in _LABEL_POSITIONS if pos not in taken), _LABEL_POSITIONS[0])))
    return [pos for _, _, pos in placed]


def trained_here_plotly(points: Sequence[TrainedPoint], meta: dict | None = None) -> go.Figure:
    """Held-out top-1 (mean, 95 % CI) against GFLOPs per clip for the layouts trained here."""
    fig = go.Figure()
    if not points:
        fig.add_annotation(text="No lab ablation run yet: python -m uniformer.ablate --out runs/ablation",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    for family in ("uniformer", "timesformer"):
        pts = [p for p in points if p.family == family]
        if not pts:
            continue
        colour = family_styles(_TRAINED_FAMILIES.values())[_TRAINED_FAMILIES[family]][0]
        fig.add_trace(go.Scatter(
            x=[p.gflops for p in pts], y=[p.top1 for p in pts], mode="markers+text",
            name="UniFormer layouts" if family == "uniformer" else "TimeSformer (TS)",
            marker=dict(size=12, color=colour), text=[p.layout for p in pts], textposition=_text_positions(pts),
            error_y=dict(type="data", symmetric=False, array=[p.ci95[1] - p.top1 for p in pts],
                         arrayminus=[p.top1 - p.ci95[0] for p in pts], color=colour, thickness=1.5),
            customdata=[[p.ci95[0], p.ci95[1], p.interval, p.params_m, p.n_eval, p.train_minutes] for p in pts],
            hovertemplate=("%{text}: %{x:.3f} GFLOPs/clip, %{customdata[3]:.2f} M params<br>held-out top-1 "
                           "%{y:.1f} % (95 % CI %{customdata[0]:.1f}-%{customdata[1]:.1f}, %{customdata[2]})"
                           "<br>n=%{customdata[4]} clips, %{customdata[5]:.0f} min training<extra>trained here"
                           "</extra>"),
        ))
        fig.add_trace(go.Scatter(
            x=[p.gflops for p in pts for _ in p.seeds_top1], y=[v for p in pts for v in p.seeds_top1],
            mode="markers", marker=dict(size=5, color=colour, opacity=0.45), showlegend=False,
            hovertemplate="one seed: %{y:.1f} %<extra></extra>",
        ))
    meta = meta or {}
    where = ", ".join(v for v in (meta.get("step_budget"), meta.get("cpu"), meta.get("written")) if v)
    fig.update_xaxes(type="log", title_text="GFLOPs per clip (8x112x112, measured here)")
    fig.update_yaxes(title_text="held-out top-1 on the lab set (%)")
    fig.update_layout(
        title=dict(text="Trained here: stage-layout ablation, same recipe (mean, 95 % CI)"
                        + (f"<br><sup>{where}</sup>" if where else ""), font=dict(size=14)),
        height=460, legend=dict(font=dict(size=10), orientation="h", y=-0.2))
    return fig


def trained_here_markdown(points: Sequence[TrainedPoint], meta: dict | None = None) -> str:
    """A table of the same points, and how they were made."""
    if not points:
        return "No lab ablation has been run in this checkout yet (`python -m uniformer.ablate --out runs/ablation`)."
    lines = ["| layout | GFLOPs/clip | params (M) | held-out top-1 (%) | 95 % CI | difference (points, Welch 95 %) "
             "| seeds | training (min) |", "|---|---:|---:|---:|---|---|---:|---:|"]
    for p in points:
        if p.vs_reference is None:
            diff = "reference" if any(q.vs_reference and q.vs_reference[0] == p.layout for q in points) else "—"
        else:
            ref, d, ci = p.vs_reference
            diff = f"{d:+.1f} vs {ref}" + ("" if ci is None else f" ({ci[0]:+.1f} to {ci[1]:+.1f})")
        lines.append(f"| {p.layout} | {p.gflops:.3f} | {p.params_m:.2f} | {p.top1:.1f} | {p.ci95[0]:.1f}–"
                     f"{p.ci95[1]:.1f} ({p.interval}) | {diff} | {len(p.seeds_top1)} | {p.train_minutes:.0f} |")
    meta = meta or {}
    lines.append(f"\nOwn GFLOPs against own held-out accuracy ({points[0].n_eval} lab clips of an unseen seed), "
                 f"every layout trained with one recipe and step budget ({meta.get('step_budget', 'see the runs')}) "
                 f"on {meta.get('cpu', 'this CPU')}; "
                 "see docs/reproduction/README.md. Made by `" + meta.get("command", "python -m uniformer.ablate")
                 + "`")  # no full stop after the code: Gradio wraps a long code span onto its own block
    return "\n".join(lines)
