"""Figure builders: geometry helpers, what each figure contains (built, not rendered)."""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import views
from analysis.attention import AnalysisError, anchor_attention, extract
from analysis.metrics import redundancy_table
from tests.test_analysis_attention import FIXTURES, _load

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def uni():
    model, fx = _load(next(p for p in FIXTURES if p.name == "uniformer_golden_small.pt"))
    return extract(model, fx["input"]), fx


@pytest.fixture(scope="module")
def tsf():
    model, fx = _load(next(p for p in FIXTURES if p.name == "timesformer_golden_small.pt"))
    return extract(model, fx["input"]), fx


def test_geometry_helpers():
    assert [views.grid_frame(i, 8, 4) for i in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [views.grid_frame(i, 3, 3) for i in range(3)] == [0, 1, 2]
    assert views.convert_anchor((1, 2, 3), (4, 4, 4), (4, 2, 2)) == (1, 1, 1)
    assert views.convert_anchor((3, 3, 3), (4, 4, 4), (8, 8, 8)) == (7, 7, 7)
    assert views.even_frames(16, 4) == [0, 5, 10, 15]
    assert views.even_frames(3, 8) == [0, 1, 2]
    boxes = views.anchor_boxes((1, 0, 2), (4, 2, 4), 8, (64, 128))
    assert boxes == [(2, 64.0, 0.0, 96.0, 32.0), (3, 64.0, 0.0, 96.0, 32.0)]


def test_frames_from_input_undoes_the_normalisation():
    x = torch.rand(1, 3, 2, 4, 4)
    norm = (x - 0.45) / 0.225
    back = views.frames_from_input(norm)
    assert back.shape == (2, 4, 4, 3)
    assert np.allclose(back, x[0].permute(1, 2, 3, 0).numpy(), atol=1e-6)
    assert views.as_frames(np.full((1, 2, 2, 3), 255, np.uint8)).max() == 1.0
    with pytest.raises(AnalysisError, match="frames, height, width, 3"):
        views.as_frames(np.zeros((2, 2, 3)))


def test_anchor_overlay_uniformer(uni):
    record, fx = uni
    frames = views.frames_from_input(fx["input"])
    ov = views.anchor_overlay(record, frames, (1, 2, 3))
    assert list(ov.rows) == [n for n in record.maps if n.startswith("global")]
    torch.testing.assert_close(torch.from_numpy(ov.rows["global_attn_stage3_block0"]),
                               anchor_attention(record, "global_attn_stage3_block0", (1, 2, 3)))
    # stage 4 has a 2×2 grid: the same place is token (1, 1, 1) there
    torch.testing.assert_close(torch.from_numpy(ov.rows["global_attn_stage4_block0"]),
                               anchor_attention(record, "global_attn_stage4_block0", (1, 1, 1)))
    # two input frames per token frame; a stage-3 token is 16 px
    assert ov.boxes == [(2, 48.0, 32.0, 64.0, 48.0), (3, 48.0, 32.0, 64.0, 48.0)]

    fig = views.overlay_plotly(ov)
    n_frames = len(frames)
    assert sum(isinstance(t, go.Image) for t in fig.data) == len(ov.rows) * n_frames
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == len(ov.rows) * n_frames
    # frame 5 of row 0 shows token frame 2 of the first map
    assert np.allclose(np.asarray(heatmaps[5].z), ov.rows["global_attn_stage3_block0"][2])
    assert len(fig.layout.shapes) == len(ov.rows) * len(ov.boxes)

    mpl = views.overlay_mpl(ov)
    assert isinstance(mpl, Figure) and isinstance(mpl.canvas, FigureCanvasAgg)
    image_axes = [ax for ax in mpl.axes if ax.images]
    assert len(image_axes) == len(ov.rows) * n_frames


def test_anchor_overlay_timesformer_divided(tsf):
    record, fx = tsf
    frames = views.frames_from_input(fx["input"])
    ov = views.anchor_overlay(record, frames, (2, 1, 3), max_frames=2,
                              names=["temporal_attn_block0", "spatial_attn_block0"])
    assert ov.shown_frames() == [0, 2]  # evenly spaced would be [0, 3]: the anchor's frame is kept
    assert views.anchor_overlay(record, frames, (3, 1, 3), max_frames=2).shown_frames() == [0, 3]
    temporal, spatial = ov.rows.values()
    assert (temporal != 0).sum() == 4  # one cell per frame
    assert (spatial[[0, 1, 3]] == 0).all() and (spatial[2] > 0).all()
    assert len([t for t in views.overlay_plotly(ov).data if isinstance(t, go.Heatmap)]) == 4


def test_kernel_small_multiples(uni):
    record, _ = uni
    k = record.maps["local_affinity_stage1_block0"]
    fig = views.kernels_plotly(k, max_channels=3)
    assert len(fig.data) == (1 + 3) * 5
    strongest = k.abs().flatten(1).sum(1).argsort(descending=True)[:3].sort().values.tolist()
    assert list(fig.layout.annotations[i].text for i in range(5, 9)) == ["mean |w|"] + [f"ch {c}" for c in strongest]
    assert np.allclose(np.asarray(fig.data[5 + 2].z), k[strongest[0], 0, 2].numpy())  # ch row 1, dt=0
    chosen = views.kernels_plotly(k, channels=[0, 7])
    assert len(chosen.data) == 3 * 5
    mpl = views.kernels_mpl(k, channels=[0])
    strips = [ax for ax in mpl.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(strips) == 2  # mean |w| and channel 0, the 5 dt slices side by side
    strip = strips[1].images[0].get_array()
    assert strip.shape == (5, 5 * 6 - 1)
    assert np.allclose(strip[:, 12:17], k[0, 0, 2].numpy())  # dt = 0 is the third slice
    with pytest.raises(AnalysisError, match="C, 1, kt, kh, kw"):
        views.kernels_mpl(k[:, 0])


def test_redundancy_curves(uni, tsf):
    rows = redundancy_table(uni[0], model="u") + redundancy_table(tsf[0], per_head=True, model="t")
    fig = views.redundancy_curve_plotly(rows)
    names = {t.name for t in fig.data if t.showlegend}
    assert names == {"u local_affinity", "u joint", "t temporal", "t spatial"}
    # per-head rows are not plotted; 4 series x 4 panels minus NaN panels, plus one dotted chance line each
    lines = [t for t in fig.data if t.line.dash != "dot"]
    assert len(lines) == 2 * 4 + 2 * 3
    assert len([t for t in fig.data if t.line.dash == "dot"]) == 4
    first = next(t for t in fig.data if t.name == "u joint")
    assert list(first.y) == [r.locality for r in rows if r.model == "u" and r.kind == "joint" and r.head == -1]
    mpl = views.redundancy_curve_mpl(rows)
    assert len(mpl.axes) == 4 and mpl.axes[0].get_ylim()[1] == pytest.approx(1.02)


def test_save_figure_rejects_other_objects(tmp_path):
    with pytest.raises(AnalysisError, match="plotly or matplotlib"):
        views.save_figure(object(), tmp_path / "x")


def test_html_figures_share_one_local_plotly_js(tmp_path):
    """One ``plotly.min.js`` per folder, loaded by relative path: offline, and not 5 MB per figure."""
    import plotly.offline

    figs = [go.Figure(go.Scatter(x=[1, 2], y=[i, 3])) for i in range(2)]
    outs = [views.save_figure(f, tmp_path / f"fig{i}") for i, f in enumerate(figs)]
    js = tmp_path / "plotly.min.js"
    assert js.read_text(encoding="utf-8") == plotly.offline.get_plotlyjs()
    for out in outs:
        text = out.read_text(encoding="utf-8")
        scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", text)
        assert scripts == ["plotly.min.js"] and "Plotly.newPlot" in text and len(text) < 100_000
    stamp = js.stat().st_mtime_ns
    views.save_figure(figs[0], tmp_path / "fig0")  # an up-to-date copy is not rewritten
    assert js.stat().st_mtime_ns == stamp
    js.write_text("stale", encoding="utf-8")  # another plotly version: replaced
    views.save_figure(figs[0], tmp_path / "fig0")
    assert js.read_text(encoding="utf-8") == plotly.offline.get_plotlyjs()


# ------------------------------------------------------------------------ readability (issue 15.5)
def _axis_px(fig: go.Figure, k: int) -> tuple[float, float, float, float]:
    """(x0, y0_from_top, width, height) in px of subplot ``k`` (1-based) of a laid-out figure."""
    lay = fig.layout
    m = lay.margin
    pw, ph = lay.width - m.l - m.r, lay.height - m.t - m.b
    xd = lay["xaxis" if k == 1 else f"xaxis{k}"].domain
    yd = lay["yaxis" if k == 1 else f"yaxis{k}"].domain
    return m.l + xd[0] * pw, m.t + (1 - yd[1]) * ph, (xd[1] - xd[0]) * pw, (yd[1] - yd[0]) * ph


def test_overlay_frames_are_large_and_wrap_into_rows():
    frames = np.random.default_rng(0).random((8, 224, 224, 3)).astype(np.float32)
    heat = np.random.default_rng(1).random((4, 14, 14)).astype(np.float32) * 0.05
    ov = views.Overlay(frames=frames, rows={"global_attn_stage3_block0": heat}, title="t", value_label="attention",
                       boxes=[(4, 80.0, 80.0, 96.0, 96.0)], smooth=False)
    fig = views.overlay_plotly(ov, panel=160, columns=4)
    cells = [_axis_px(fig, k) for k in range(1, 9)]
    assert all(w >= 159.5 and abs(h - w) < 1 for _, _, w, h in cells)  # ≥ 160 px, square pixels kept
    assert len({round(y) for _, y, _, _ in cells}) == 2 and len({round(x) for x, _, _, _ in cells}) == 4  # 2 × 4
    # frames cover most of the figure: no large empty plot
    area = sum(w * h for *_, w, h in cells)
    assert area / (fig.layout.width * fig.layout.height) > 0.55
    # a real colour bar with values for the heat row, labelled, and no rotated (clipped) side title
    heat_traces = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert {t.coloraxis for t in heat_traces} == {"coloraxis"}
    ca = fig.layout.coloraxis
    assert ca.cmin == pytest.approx(float(heat.min())) and ca.cmax == pytest.approx(float(heat.max()))
    assert ca.colorbar.title.text == "attention" and ca.colorbar.tickformat and ca.colorbar.thickness >= 12
    assert all(a.textangle in (None, 0) for a in fig.layout.annotations)
    texts = [a.text for a in fig.layout.annotations]
    assert "<b>global_attn_stage3_block0</b>" in texts and all(f"frame {i}" in texts for i in range(8))


def test_overlay_rows_each_get_their_own_colour_bar():
    frames = np.zeros((4, 32, 64, 3), np.float32)
    rows = {"a": np.ones((2, 2, 4)) * [[[0, 1, 2, 3]]], "b": np.arange(16.0).reshape(2, 2, 4)}
    ov = views.Overlay(frames=frames, rows=rows)
    fig = views.overlay_plotly(ov, panel=160)
    assert (fig.layout.coloraxis.cmax, fig.layout.coloraxis2.cmax) == (3, 15)
    ya, yb = fig.layout.coloraxis.colorbar.y, fig.layout.coloraxis2.colorbar.y
    assert ya > yb  # each bar beside its own row
    assert all(_axis_px(fig, k)[2] >= 159.5 for k in range(1, 9))


def test_kernel_view_has_colour_scales_with_values(uni):
    record, _ = uni
    k = record.maps["local_affinity_stage1_block0"]
    fig = views.kernels_plotly(k, max_channels=3)
    axes = {t.coloraxis for t in fig.data}
    assert axes == {"coloraxis", "coloraxis2"}
    mean_bar, chan = fig.layout.coloraxis, fig.layout.coloraxis2
    assert mean_bar.showscale is not False and chan.showscale
    assert mean_bar.cmin == 0 and mean_bar.cmax == pytest.approx(float(k.abs().mean(0).max()))
    shown = k[k.abs().flatten(1).sum(1).argsort(descending=True)[:3]]
    assert chan.cmax == pytest.approx(float(shown.abs().max())) and chan.cmin == -chan.cmax  # one scale for all rows
    assert mean_bar.colorbar.title.text and chan.colorbar.title.text
    row_titles = fig.layout.annotations[5:]
    assert all(a.textangle == 0 and a.xanchor == "right" for a in row_titles)  # horizontal, left of the rows
