"""Figures from maps: plotly for the browser, matplotlib (Agg) for files.

Every frame-aligned view (anchor attention, CAM / Grad-CAM, rollout, attributions) is first
reduced to an :class:`Overlay` — display frames plus one or more heat volumes on a coarse
``(T', H', W')`` grid — and then drawn by one of two renderers. Heat stays at grid resolution and
is stretched over the frame by the renderer (``extent`` in matplotlib, ``x0/dx`` in plotly), so
figures stay small and nothing is resampled twice. Frame ``i`` of ``F`` shows grid frame
``floor(i·T'/F)`` (UniFormer's stem pairs two frames per token frame).

matplotlib figures are built on ``matplotlib.figure.Figure`` with an explicit Agg canvas (no
pyplot, no global backend state), so they are safe inside a server process.
"""
from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from plotly.subplots import make_subplots
from torch import Tensor

from analysis.attention import AnalysisError, AttentionRecord, anchor_attention

if TYPE_CHECKING:  # pragma: no cover
    from analysis.metrics import RedundancyRow
    from analysis.redundancy import LayerRow

ANCHOR_COLOUR = "#00c853"
HEAT_CMAP = "jet"
_PLOTLY_HEAT = "Jet"


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class Overlay:
    """Frames with heat rows laid over them.

    ``frames``: ``(F, H, W, 3)`` floats in [0, 1]. ``rows``: label → heat ``(T', H', W')`` (any
    grid; each row is scaled to its own min..max). ``boxes``: ``(frame, x0, y0, x1, y1)`` pixel
    rectangles drawn on every row (the anchor token). ``frame_ids``: which frames to show.
    ``smooth``: draw heat bilinearly interpolated (class maps) or as token cells (attention).
    """

    frames: np.ndarray
    rows: dict[str, np.ndarray]
    title: str = ""
    boxes: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    frame_ids: list[int] | None = None
    value_label: str = "value"
    alpha: float = 0.5
    smooth: bool = True  # bilinear heat (CAM-style); False keeps token cells visible

    def shown_frames(self) -> list[int]:
        return list(range(len(self.frames))) if self.frame_ids is None else list(self.frame_ids)


def as_frames(frames: np.ndarray | Tensor) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 or float frames → float32 in [0, 1]."""
    a = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise AnalysisError(f"Frames must be shaped (frames, height, width, 3), got {a.shape}.")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def frames_from_input(
    x: Tensor,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    sample: int = 0,
    bgr: bool = False,
) -> np.ndarray:
    """Undo normalisation of a model input ``(B, 3, T, H, W)`` to display frames ``(T, H, W, 3)``."""
    clip = x[sample].detach().float().cpu()
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    clip = (clip * s + m).clamp(0, 1).permute(1, 2, 3, 0)
    if bgr:
        clip = clip.flip(-1)
    return clip.numpy()


def even_frames(num_frames: int, max_frames: int | None) -> list[int]:
    """At most ``max_frames`` evenly spaced indices of ``range(num_frames)``."""
    if max_frames is None or num_frames <= max_frames:
        return list(range(num_frames))
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, max_frames)})


def grid_frame(i: int, num_frames: int, grid_t: int) -> int:
    """Grid (token) frame shown on video frame ``i``."""
    return min(i * grid_t // num_frames, grid_t - 1)


def convert_anchor(anchor: Sequence[int], src: Sequence[int], dst: Sequence[int]) -> tuple[int, int, int]:
    """Move a token coordinate between grids of different resolution (through its centre)."""
    return tuple(min(int((a + 0.5) * d / s), d - 1) for a, s, d in zip(anchor, src, dst))  # type: ignore[return-value]


def anchor_boxes(
    anchor: Sequence[int], grid: Sequence[int], num_frames: int, size: tuple[int, int]
) -> list[tuple[int, float, float, float, float]]:
    """Pixel rectangles of a grid token on every video frame it covers."""
    t, h, w = anchor
    T, H, W = grid
    ph, pw = size[0] / H, size[1] / W
    return [
        (i, w * pw, h * ph, (w + 1) * pw, (h + 1) * ph)
        for i in range(num_frames)
        if grid_frame(i, num_frames, T) == t
    ]


def anchor_overlay(
    record: AttentionRecord,
    frames: np.ndarray | Tensor,
    anchor: Sequence[int],
    names: Sequence[str] | None = None,
    sample: int = 0,
    head: int | None = None,
    max_frames: int | None = None,
) -> Overlay:
    """Where one anchor token looks, layer by layer, laid over the video frames.

    ``anchor`` is ``(t, h, w)`` on the grid of the first named layer; other layers get the token
    at the same place on their own grid. Default layers: every attention map (not kernels).
    """
    frames = as_frames(frames)
    names = list(names) if names else [n for n, i in record.layers.items() if i.kind != "local_affinity"]
    if not names:
        raise AnalysisError("The record has no attention maps to show for an anchor.")
    base = record.layers[names[0]].grid
    rows: dict[str, np.ndarray] = {}
    for name in names:
        grid = record.layers[name].grid
        rows[name] = anchor_attention(record, name, convert_anchor(anchor, base, grid), sample, head).numpy()
    F_, H, W = frames.shape[:3]
    head_txt = "mean over heads" if head is None else f"head {head}"
    boxes = anchor_boxes(anchor, base, F_, (H, W))
    ids = even_frames(F_, max_frames)
    if max_frames and boxes and not any(f in ids for f, *_ in boxes):  # always show the anchor's frame
        ids = sorted(set(even_frames(F_, max(max_frames - 1, 1))) | {boxes[0][0]})
    return Overlay(
        frames=frames,
        rows=rows,
        title=f"Attention of anchor token (t={anchor[0]}, h={anchor[1]}, w={anchor[2]}), {head_txt}",
        boxes=boxes,
        frame_ids=ids,
        value_label="attention",
        smooth=False,
    )


# --------------------------------------------------------------------------------------------
# Renderers


def _heat_range(heat: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(heat)), float(np.max(heat))
    return lo, hi if hi > lo else lo + 1e-12


def overlay_mpl(ov: Overlay, panel: float = 1.6) -> Figure:
    """Rows × frames grid of heat over frames (matplotlib, Agg canvas)."""
    ids = ov.shown_frames()
    F_, H, W = ov.frames.shape[:3]
    width, height = panel * len(ids) + 1.4, panel * H / W * len(ov.rows) + 0.7
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    # fixed margins: constrained layout costs seconds on dozens of image axes
    fig.subplots_adjust(left=0.9 / width, right=1 - 1.0 / width, bottom=0.1 / height, top=1 - 0.6 / height,
                        wspace=0.04, hspace=0.08)
    axes = fig.subplots(len(ov.rows), len(ids), squeeze=False)
    for r, (label, heat) in enumerate(ov.rows.items()):
        lo, hi = _heat_range(heat)
        for c, i in enumerate(ids):
            ax = axes[r][c]
            ax.imshow(ov.frames[i], extent=(0, W, H, 0))
            im = ax.imshow(
                heat[grid_frame(i, F_, heat.shape[0])], extent=(0, W, H, 0), cmap=HEAT_CMAP,
                alpha=ov.alpha, vmin=lo, vmax=hi, interpolation="bilinear" if ov.smooth else "nearest",
            )
            for f, x0, y0, x1, y1 in ov.boxes:
                if f == i:
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.5, ec=ANCHOR_COLOUR))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {i}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8, fraction=0.02, pad=0.01,
                     label=ov.value_label if r == 0 else None)
    if ov.title:
        fig.suptitle(ov.title, fontsize=10)
    return fig


def _png_data_uri(img: np.ndarray, max_side: int = 160) -> tuple[str, float, float]:
    """A frame as a small embedded PNG, plus the pixel width/height it must be drawn at."""
    from PIL import Image

    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    w, h = pil.size
    scale = max_side / max(w, h)
    if scale < 1:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, w / pil.size[0], h / pil.size[1]


# Pixel layout of the plotly overlay (the page and the saved HTML draw it at exactly this size).
_GAP = 6            # px between frames
_HEADER = 24        # px above each heat row's block: its label
_TITLE = 48         # px for the figure title
_BAR = 120          # px right of the frames: the colour bars, their values and titles


def _domain(start_px: float, size_px: float, total_px: float, flip: bool = False) -> list[float]:
    a, b = start_px / total_px, (start_px + size_px) / total_px
    return [1 - b, 1 - a] if flip else [a, b]


def overlay_plotly(ov: Overlay, panel: int = 160, columns: int | None = 8) -> go.Figure:
    """Rows × frames grid of heat over frames (plotly; frames embedded as PNGs).

    Every frame is drawn ``panel`` px wide; ``columns`` frames per line (None: all), so a
    heat row with more frames wraps onto several lines. Each heat row has its own colour axis (its
    own min..max) and a colour bar with values beside its block; its label sits above the block
    (no rotated side titles to clip), and the frame number is written inside each frame.
    """
    ids = ov.shown_frames()
    F_, H, W = ov.frames.shape[:3]
    ncol = max(1, min(len(ids), columns or len(ids)))
    lines = -(-len(ids) // ncol)
    ph = panel * H / W
    block = _HEADER + lines * ph + (lines - 1) * _GAP
    plot_w = ncol * panel + (ncol - 1) * _GAP
    plot_h = len(ov.rows) * block + (len(ov.rows) - 1) * _GAP * 2
    fig = go.Figure()
    layout: dict = {}
    k = 0
    for r, (label, heat) in enumerate(ov.rows.items()):
        lo, hi = _heat_range(heat)
        gt, gh, gw = heat.shape
        top = r * (block + 2 * _GAP)
        axis = f"coloraxis{r + 1}" if r else "coloraxis"
        mid = 1 - (top + _HEADER + (block - _HEADER) / 2) / plot_h
        layout[axis] = dict(
            colorscale=_PLOTLY_HEAT, cmin=lo, cmax=hi,
            colorbar=dict(title=dict(text=ov.value_label, side="right"), x=1.0, xanchor="left", xpad=8,
                          y=mid, yanchor="middle", len=max((block - _HEADER) / plot_h, 0.15), lenmode="fraction",
                          thickness=14, tickformat=".2~g", nticks=5))
        fig.add_annotation(text=f"<b>{label}</b>", xref="paper", yref="paper", x=0, xanchor="left",
                           y=1 - top / plot_h, yanchor="top", showarrow=False, font=dict(size=13))
        for c, i in enumerate(ids):
            k += 1
            x0 = (c % ncol) * (panel + _GAP)
            y0 = top + _HEADER + (c // ncol) * (ph + _GAP)
            xa, ya = ("x", "y") if k == 1 else (f"x{k}", f"y{k}")
            layout["xaxis" if k == 1 else f"xaxis{k}"] = dict(domain=_domain(x0, panel, plot_w), anchor=ya,
                                                             range=[0, W], visible=False)
            layout["yaxis" if k == 1 else f"yaxis{k}"] = dict(domain=_domain(y0, ph, plot_h, flip=True), anchor=xa,
                                                             range=[H, 0], visible=False)
            uri, dx, dy = _png_data_uri(ov.frames[i], max_side=max(panel, 64))
            fig.add_trace(go.Image(source=uri, x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, hoverinfo="skip",
                                   xaxis=xa, yaxis=ya))
            fig.add_trace(go.Heatmap(
                z=heat[grid_frame(i, F_, gt)], x0=W / gw / 2, dx=W / gw, y0=H / gh / 2, dy=H / gh,
                coloraxis=axis, opacity=ov.alpha, zsmooth="best" if ov.smooth else False, xaxis=xa, yaxis=ya,
                hovertemplate=f"{label}<br>frame {i}, x=%{{x:.0f}} y=%{{y:.0f}}<br>{ov.value_label}=%{{z:.4g}}"
                              "<extra></extra>",
            ))
            fig.add_annotation(text=f"frame {i}", xref=f"{xa} domain", yref=f"{ya} domain", x=0.02, y=0.98,
                               xanchor="left", yanchor="top", showarrow=False, font=dict(size=11, color="white"),
                               bgcolor="rgba(0,0,0,0.55)", borderpad=2)
            for f, bx0, by0, bx1, by1 in ov.boxes:
                if f == i:
                    fig.add_shape(type="rect", x0=bx0, y0=by0, x1=bx1, y1=by1, xref=xa, yref=ya,
                                  line=dict(color=ANCHOR_COLOUR, width=2))
    margin = dict(l=10, r=_BAR, t=_TITLE if ov.title else 10, b=10)
    fig.update_layout(**layout, title=dict(text=ov.title, x=0, xanchor="left", xref="paper", font=dict(size=15)),
                      width=plot_w + margin["l"] + margin["r"], height=int(plot_h + margin["t"] + margin["b"]),
                      margin=margin, plot_bgcolor="white", paper_bgcolor="white")
    return fig


# --------------------------------------------------------------------------------------------
# Local affinity kernels


def _pick_channels(weight: Tensor, channels: Sequence[int] | None, max_channels: int) -> list[int]:
    if channels is not None:
        return [int(c) for c in channels]
    norms = weight.detach().abs().flatten(1).sum(1)
    return norms.argsort(descending=True)[:max_channels].sort().values.tolist()


def _kernel_rows(weight: Tensor, channels: Sequence[int] | None, max_channels: int) -> dict[str, np.ndarray]:
    if weight.dim() != 5:
        raise AnalysisError(f"A local affinity kernel is shaped (C, 1, kt, kh, kw), got {tuple(weight.shape)}.")
    w = weight.detach().float().cpu()[:, 0]
    rows = {"mean |w|": w.abs().mean(0).numpy()}
    for c in _pick_channels(weight, channels, max_channels):
        rows[f"ch {c}"] = w[c].numpy()
    return rows


def kernels_mpl(weight: Tensor, channels: Sequence[int] | None = None, max_channels: int = 8,
                title: str = "") -> Figure:
    """Small multiples of a depthwise kernel: rows = channels (largest |w| first by default),
    columns = temporal offset dt; the first row is the channel-mean |w|.

    Each row is one image (the kt slices side by side, one blank column between them): a
    fifth of the axes, which keeps rendering fast."""
    rows = _kernel_rows(weight, channels, max_channels)
    kt, kh, kw = next(iter(rows.values())).shape
    width, height = 1.2 * kt + 2.0, 1.15 * len(rows) + 0.7
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.3 / width, bottom=0.1 / height, top=1 - 0.8 / height,
                        hspace=0.08)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    centres = [c * (kw + 1) + (kw - 1) / 2 for c in range(kt)]
    for r, (label, k) in enumerate(rows.items()):
        strip = np.full((kh, kt * (kw + 1) - 1), np.nan, dtype=np.float32)
        for c in range(kt):
            strip[:, c * (kw + 1) : c * (kw + 1) + kw] = k[c]
        lim = float(np.abs(k).max()) or 1.0
        cmap, vmin = ("viridis", 0.0) if r == 0 else ("RdBu_r", -lim)
        ax = axes[r]
        im = ax.imshow(strip, cmap=cmap, vmin=vmin, vmax=lim)
        ax.set_yticks([])
        ax.set_xticks(centres if r == 0 else [])
        if r == 0:
            ax.xaxis.tick_top()
            ax.set_xticklabels([f"dt={c - kt // 2:+d}" for c in range(kt)], fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
        fig.colorbar(im, ax=ax, shrink=0.8, fraction=0.04, pad=0.02)
    fig.suptitle(title or "Local affinity kernels (5×5×5 per channel)", fontsize=10)
    return fig


def kernels_plotly(weight: Tensor, channels: Sequence[int] | None = None, max_channels: int = 8,
                   title: str = "", cell: int = 72) -> go.Figure:
    """Plotly version of :func:`kernels_mpl`: ``cell`` px per 5×5 slice, a colour bar for the
    channel-mean |w| (0..max) and one diverging bar (±max over the shown channels) for the channels,
    so rows can be compared with each other and read in values."""
    rows = _kernel_rows(weight, channels, max_channels)
    kt = next(iter(rows.values())).shape[0]
    n = len(rows)
    gap = 4
    plot_w, plot_h = kt * cell + (kt - 1) * gap, n * cell + (n - 1) * gap
    fig = make_subplots(rows=n, cols=kt, row_titles=list(rows),
                        column_titles=[f"dt={c - kt // 2:+d}" for c in range(kt)],
                        horizontal_spacing=gap / plot_w, vertical_spacing=gap / plot_h)
    mean_lim = float(np.abs(rows["mean |w|"]).max()) or 1.0
    chan = [k for label, k in rows.items() if label != "mean |w|"]
    lim = max((float(np.abs(k).max()) for k in chan), default=0.0) or 1.0
    for r, (label, k) in enumerate(rows.items(), start=1):
        for c in range(kt):
            fig.add_trace(go.Heatmap(
                z=k[c], coloraxis="coloraxis" if r == 1 else "coloraxis2",
                hovertemplate=f"{label} dt={c - kt // 2:+d}<br>dh=%{{y}} dw=%{{x}}<br>w=%{{z:.4g}}<extra></extra>",
                x=list(range(-(k.shape[2] // 2), k.shape[2] - k.shape[2] // 2)),
                y=list(range(-(k.shape[1] // 2), k.shape[1] - k.shape[1] // 2)),
            ), row=r, col=c + 1)
    for a in fig.layout.annotations[kt:]:  # row titles: horizontal, left of the rows (never clipped)
        a.update(x=0, xanchor="right", xshift=-6, textangle=0, font=dict(size=12))
    top = fig.layout.yaxis.domain  # row 1
    bar = dict(x=1.0, xanchor="left", xpad=10, thickness=12, lenmode="fraction", yanchor="middle",
               tickformat=".2~g", nticks=5)
    fig.update_layout(
        coloraxis=dict(colorscale="Viridis", cmin=0.0, cmax=mean_lim,
                       colorbar=dict(**bar, title=dict(text="mean |w|", side="right"), y=(top[0] + top[1]) / 2,
                                     len=max(top[1] - top[0], 0.12))),
        coloraxis2=dict(colorscale="RdBu_r", cmin=-lim, cmax=lim, showscale=bool(chan),
                        colorbar=dict(**bar, title=dict(text="w", side="right"), y=top[0] / 2,
                                      len=max(top[0] - gap / plot_h, 0.12))),
    )
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, autorange="reversed", constrain="domain")
    margin = dict(l=80, r=110, t=90, b=10)
    text = title or "Local affinity kernels (5×5×5 per channel)"
    head, _, rest = text.partition(": ")  # "layer: what" on two lines: the figure is narrow
    fig.update_layout(title=dict(text=f"{head}<br><sup>{rest}</sup>" if rest else text, x=0, xanchor="left",
                                 xref="paper", font=dict(size=14)),
                      height=plot_h + margin["t"] + margin["b"], width=plot_w + margin["l"] + margin["r"],
                      margin=margin)
    return fig


# --------------------------------------------------------------------------------------------
# Redundancy curves

CURVE_METRICS = (
    ("locality", "locality (mass in 3×3 / ±1 frame)"),
    ("dist_space", "mean distance in space (patches)"),
    ("dist_time", "mean distance in time (frames)"),
    ("entropy", "normalised entropy"),
)


def _curve_series(rows: Sequence[RedundancyRow]) -> dict[str, list[RedundancyRow]]:
    series: dict[str, list] = {}
    for row in rows:
        if row.head == -1:
            series.setdefault(f"{row.model} {row.kind}", []).append(row)
    return series


def redundancy_curve_mpl(rows: Sequence[RedundancyRow], title: str = "") -> Figure:
    """Per-layer locality / distances / entropy against relative depth, one line per model×kind.

    Dotted lines: the locality a uniform (maximally redundant) map would have on that layer."""
    series = _curve_series(rows)
    fig = Figure(figsize=(4.2 * len(CURVE_METRICS), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(CURVE_METRICS))
    for label, rs in series.items():
        x = [r.rel_depth for r in rs]
        for ax, (metric, ylabel) in zip(axes, CURVE_METRICS):
            y = [getattr(r, metric) for r in rs]
            if all(np.isnan(v) for v in y):
                continue
            (line,) = ax.plot(x, y, marker="o", ms=3, label=label)
            if metric == "locality":
                ax.plot(x, [r.chance_locality for r in rs], ls=":", color=line.get_color())
            ax.set_xlabel("relative depth (0 = first block)")
            ax.set_ylabel(ylabel)
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "Attention redundancy per layer (dotted: uniform attention)", fontsize=10)
    return fig


def redundancy_curve_plotly(rows: Sequence[RedundancyRow], title: str = "") -> go.Figure:
    """Plotly version of :func:`redundancy_curve_mpl` (hover shows the layer name)."""
    series = _curve_series(rows)
    fig = make_subplots(rows=1, cols=len(CURVE_METRICS), subplot_titles=[t for _, t in CURVE_METRICS])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for s, (label, rs) in enumerate(series.items()):
        colour = palette[s % len(palette)]
        x = [r.rel_depth for r in rs]
        names = [r.layer for r in rs]
        for c, (metric, _) in enumerate(CURVE_METRICS, start=1):
            y = [getattr(r, metric) for r in rs]
            if all(np.isnan(v) for v in y):
                continue
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label, legendgroup=label,
                                     showlegend=c == 1, line=dict(color=colour), text=names,
                                     hovertemplate="%{text}<br>%{y:.3f}<extra>" + label + "</extra>"), row=1, col=c)
            if metric == "locality":
                fig.add_trace(go.Scatter(x=x, y=[r.chance_locality for r in rs], mode="lines", showlegend=False,
                                         legendgroup=label, line=dict(color=colour, dash="dot"), text=names,
                                         hovertemplate="%{text}<br>uniform: %{y:.3f}<extra></extra>"), row=1, col=c)
    fig.update_xaxes(title_text="relative depth")
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_layout(title=title or "Attention redundancy per layer (dotted: uniform attention)",
                      height=420, width=1500)
    return fig


AXIS_PANELS = (
    ("spatial", "spatial locality (mass in 3×3, any frame)"),
    ("temporal", "temporal locality (mass within ±1 frame, any position)"),
)


def _axis_series(series: dict[str, Sequence[LayerRow]]) -> dict[tuple[str, str], list[LayerRow]]:
    """(line label, axis) → rows; kernels and attention maps are separate lines (different floors)."""
    out: dict[tuple[str, str], list] = {}
    for label, rows in series.items():
        for r in rows:
            what = "kernel" if r.source == "kernel" else "attention"
            out.setdefault((f"{label} {what}", r.kind), []).append(r)
    return out


def _half_widths(rs: Sequence[LayerRow]) -> tuple[list[float], list[float]] | None:
    if all(r.locality_ci95 is None or r.clip_independent for r in rs):
        return None
    up = [0.0 if r.locality_ci95 is None else r.locality_ci95[1] - r.locality_mean for r in rs]
    down = [0.0 if r.locality_ci95 is None else r.locality_mean - r.locality_ci95[0] for r in rs]
    return up, down


def axis_curve_mpl(series: dict[str, Sequence[LayerRow]], title: str = "") -> Figure:
    """Per-axis locality against relative depth, one line per model × (attention | kernel),
    with 95 % intervals over clips when there are several; dotted: that axis's uniform floor."""
    fig = Figure(figsize=(5.0 * len(AXIS_PANELS), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = dict(zip((a for a, _ in AXIS_PANELS), fig.subplots(1, len(AXIS_PANELS))))
    for (label, axis), rs in _axis_series(series).items():
        ax = axes[axis]
        x = [r.rel_depth for r in rs]
        err = _half_widths(rs)
        line = ax.errorbar(x, [r.locality_mean for r in rs], yerr=None if err is None else [err[1], err[0]],
                           marker="o", ms=3, capsize=2, label=label)
        ax.plot(x, [r.uniform_locality for r in rs], ls=":", color=line.lines[0].get_color())
    for axis, ylabel in AXIS_PANELS:
        axes[axis].set_xlabel("relative depth (0 = first block)")
        axes[axis].set_ylabel(ylabel, fontsize=8)
        axes[axis].set_ylim(0, 1.02)
        if axes[axis].lines:
            axes[axis].legend(fontsize=7)
    fig.suptitle(title or "Locality per axis (dotted: uniform attention on that axis)", fontsize=10)
    return fig


def axis_curve_plotly(series: dict[str, Sequence[LayerRow]], title: str = "") -> go.Figure:
    """Plotly version of :func:`axis_curve_mpl` (hover: map name, locality, uniform, ratio)."""
    fig = make_subplots(rows=1, cols=len(AXIS_PANELS), subplot_titles=[t for _, t in AXIS_PANELS])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    colours: dict[str, str] = {}
    cols = {axis: i for i, (axis, _) in enumerate(AXIS_PANELS, start=1)}
    for (label, axis), rs in _axis_series(series).items():
        colour = colours.setdefault(label, palette[len(colours) % len(palette)])
        x = [r.rel_depth for r in rs]
        text = [f"{r.name} ({r.grid})<br>uniform {r.uniform_locality:.3f}, ratio {r.ratio:.2f}×" for r in rs]
        err = _half_widths(rs)
        fig.add_trace(go.Scatter(
            x=x, y=[r.locality_mean for r in rs], mode="lines+markers", name=label, legendgroup=label,
            showlegend=axis == "spatial" or not any(k == (label, "spatial") for k in _axis_series(series)),
            line=dict(color=colour), text=text, hovertemplate="%{text}<br>%{y:.3f}<extra>" + label + "</extra>",
            error_y=None if err is None else dict(type="data", array=err[0], arrayminus=err[1], visible=True)),
            row=1, col=cols[axis])
        fig.add_trace(go.Scatter(x=x, y=[r.uniform_locality for r in rs], mode="lines", showlegend=False,
                                 legendgroup=label, line=dict(color=colour, dash="dot"), text=text,
                                 hovertemplate="%{text}<extra>uniform</extra>"), row=1, col=cols[axis])
    fig.update_xaxes(title_text="relative depth")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(title=title or "Locality per axis (dotted: uniform attention on that axis)",
                      height=420, width=1100)
    return fig


# --------------------------------------------------------------------------------------------
# Saving


PLOTLY_JS = "plotly.min.js"


@functools.cache
def _plotly_js() -> bytes:
    import plotly.offline

    return plotly.offline.get_plotlyjs().encode("utf-8")


def write_plotly_js(folder: str | Path) -> Path:
    """The installed plotly's ``plotly.min.js`` in ``folder``, written once (again only if it differs).

    Every HTML figure of a report loads this one local copy (~5 MB) instead of inlining its own:
    still fully offline, as long as the folder is kept together.
    """
    out = Path(folder) / PLOTLY_JS
    js = _plotly_js()
    if not (out.is_file() and out.stat().st_size == len(js) and out.read_bytes() == js):
        out.write_bytes(js)
    return out


def save_figure(fig: go.Figure | Figure, path: str | Path, dpi: int = 110) -> Path:
    """plotly → ``.html`` loading ``plotly.min.js`` from the same folder (written there once by
    :func:`write_plotly_js`; works offline); matplotlib → ``.png``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, go.Figure):
        out = path.with_suffix(".html")
        write_plotly_js(out.parent)
        fig.write_html(out, include_plotlyjs=PLOTLY_JS, full_html=True)
    elif isinstance(fig, Figure):
        out = path.with_suffix(".png")
        if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        fig.savefig(out, dpi=dpi)
    else:
        raise AnalysisError(f"Cannot save a {type(fig).__name__}; expected a plotly or matplotlib figure.")
    return out


def save_figures(out_dir: str | Path, stem: str, *figs: go.Figure | Figure) -> list[Path]:
    """Save the same view from both libraries as ``stem.png`` and ``stem.html``."""
    return [save_figure(f, Path(out_dir) / stem) for f in figs]
