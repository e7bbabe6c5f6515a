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


def overlay_plotly(ov: Overlay, panel: int = 150) -> go.Figure:
    """Rows × frames grid of heat over frames (plotly; frames embedded as small PNGs)."""
    ids = ov.shown_frames()
    F_, H, W = ov.frames.shape[:3]
    nrows = len(ov.rows)
    fig = make_subplots(
        rows=nrows, cols=len(ids), horizontal_spacing=0.004, vertical_spacing=0.04,
        column_titles=[f"frame {i}" for i in ids],
        # rows have their own colour range (one colour bar only): say it in the row title
        row_titles=[f"{label}<br>{_heat_range(h)[0]:.3g}–{_heat_range(h)[1]:.3g}" for label, h in ov.rows.items()],
    )
    for r, (label, heat) in enumerate(ov.rows.items(), start=1):
        lo, hi = _heat_range(heat)
        gt, gh, gw = heat.shape
        for c, i in enumerate(ids, start=1):
            uri, dx, dy = _png_data_uri(ov.frames[i])
            fig.add_trace(go.Image(source=uri, x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, hoverinfo="skip"), row=r, col=c)
            fig.add_trace(
                go.Heatmap(
                    z=heat[grid_frame(i, F_, gt)], x0=W / gw / 2, dx=W / gw, y0=H / gh / 2, dy=H / gh,
                    zmin=lo, zmax=hi, colorscale=_PLOTLY_HEAT, opacity=ov.alpha, zsmooth="best" if ov.smooth else False,
                    showscale=(r == 1 and c == len(ids)), colorbar=dict(title=ov.value_label, len=0.5, x=1.0, xpad=110),
                    hovertemplate=f"{label}<br>x=%{{x:.0f}} y=%{{y:.0f}}<br>{ov.value_label}=%{{z:.4g}}<extra></extra>",
                ),
                row=r, col=c,
            )
            for f, x0, y0, x1, y1 in ov.boxes:
                if f == i:
                    fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=ANCHOR_COLOUR, width=2),
                                  row=r, col=c)
    # go.Image already anchors each y axis to its x axis (square pixels) and reverses it
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(title=ov.title, height=panel * H / W * nrows + 120, width=panel * len(ids) + 300,
                      margin=dict(l=10, r=190, t=70, b=10))
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
                   title: str = "") -> go.Figure:
    """Plotly version of :func:`kernels_mpl`."""
    rows = _kernel_rows(weight, channels, max_channels)
    kt = next(iter(rows.values())).shape[0]
    fig = make_subplots(rows=len(rows), cols=kt, row_titles=list(rows),
                        column_titles=[f"dt={c - kt // 2:+d}" for c in range(kt)],
                        horizontal_spacing=0.01, vertical_spacing=0.01)
    for r, (label, k) in enumerate(rows.items(), start=1):
        lim = float(np.abs(k).max()) or 1.0
        for c in range(kt):
            fig.add_trace(go.Heatmap(
                z=k[c], zmin=0.0 if r == 1 else -lim, zmax=lim,
                colorscale="Viridis" if r == 1 else "RdBu_r", reversescale=False, showscale=False,
                hovertemplate=f"{label} dt={c - kt // 2:+d}<br>dh=%{{y}} dw=%{{x}}<br>w=%{{z:.4g}}<extra></extra>",
                x=list(range(-(k.shape[2] // 2), k.shape[2] - k.shape[2] // 2)),
                y=list(range(-(k.shape[1] // 2), k.shape[1] - k.shape[1] // 2)),
            ), row=r, col=c + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(title=title or "Local affinity kernels (5×5×5 per channel)",
                      height=90 * len(rows) + 100, width=90 * kt + 200, margin=dict(l=10, r=10, t=70, b=10))
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
