"""Published table loading, measured FLOPs next to it, and the accuracy-vs-GFLOPs figures."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest

from analysis.attention import AnalysisError
from analysis.efficiency import (
    MeasuredPoint,
    efficiency_mpl,
    efficiency_plotly,
    load_published,
    measure_models,
    num_views,
)

HEADER = ("model,variant,pretrain,dataset,frames,input_size,gflops_per_view,views,top1,top5,params_m,source,"
          "gflops_total,sampling_stride,note\n")


def test_num_views():
    assert num_views("4x3") == 12 and num_views("1x1") == 1
    assert num_views("") is None and num_views("n/a") is None and num_views(None) is None


def test_load_published_fills_and_dedups(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text(
        HEADER
        + "A,A-1,IN,K400,8,224,10,4x3,70.0,,5,paper T1,,,\n"  # total missing -> 10 x 12
        + "A,A-1,IN,K400,8,224,10,4x3,70.0,,5,paper T2,120,,\n"  # same result in another table
        + "B,B-1,IN,K400,8,224,,1x3,71.0,,5,paper,90,,\n"  # per-view missing -> 90 / 3
        + "B,B-2,IN,SSv2,8,224,20,1x3,60.0,,5,paper,60,,\n"
        + "C,C-1,IN,K400,8,224,30,1x1,,,5,no accuracy,30,,\n"
    )
    k400 = load_published("k400", csv)
    assert [(p.variant, p.gflops_per_view, p.gflops_total) for p in k400] == [("A-1", 10.0, 120.0), ("B-1", 30.0, 90.0)]
    assert k400[0].label == "A-1 (4x3)" and k400[0].gflops("total") == 120.0
    assert len(load_published(path=csv)) == 3
    with pytest.raises(AnalysisError, match="does not exist"):
        load_published(path=tmp_path / "missing.csv")


def test_real_table():
    k400 = load_published("K400")
    assert k400 and all(p.dataset == "K400" for p in k400)
    b32 = [p for p in k400 if p.variant == "UniFormer-B 32x4" and p.views == "4x1"]
    assert b32 and all(p.gflops_total == pytest.approx(4 * 259, rel=0.01) for p in b32)
    ssv2 = load_published("SSv2")
    assert any(p.model == "TimeSformer" and p.gflops_per_view is None for p in ssv2)  # no GFLOPs printed


def test_measured_uniformer_small_matches_paper():
    (m,) = measure_models(["uniformer_small_k400_16x4"])
    assert m.gflops_per_view == pytest.approx(41.8, rel=0.005)
    assert m.gflops_total == pytest.approx(4 * m.gflops_per_view)
    assert m.params_m == pytest.approx(21.4, rel=0.002)
    assert m.views == "4x1" and m.top1 == 80.8 and m.published_gflops_per_view == 41.8


def _measured() -> list[MeasuredPoint]:
    return [MeasuredPoint("ours", "K400", "1x3", 100.0, 300.0, 10.0, 75.0, 101.0, 10.1),
            MeasuredPoint("no-acc", "K400", "1x1", 5.0, 5.0, 1.0, None, None, None)]


@pytest.mark.parametrize("per", ["view", "total"])
def test_efficiency_figures(per):
    published = load_published("K400")
    fig = efficiency_plotly(published, _measured(), per, "K400")
    assert fig.layout.xaxis.type == "log"
    assert ("per view" if per == "view" else "total") in fig.layout.title.text
    measured = [t for t in fig.data if t.name == "measured here"]
    assert len(measured) == 1 and list(measured[0].x) == [100.0 if per == "view" else 300.0]
    assert measured[0].marker.symbol == "diamond-open"
    uni = next(t for t in fig.data if t.name == "UniFormer (published)")
    expected = [p.gflops(per) for p in published if p.model == "UniFormer" and p.gflops(per) is not None]
    assert list(uni.x) == expected
    mpl = efficiency_mpl(published, _measured(), per, "K400")
    ax = mpl.axes[0]
    assert ax.get_xscale() == "log" and "GFLOPs" in ax.get_xlabel()
    assert any("measured here" in t.get_text() for t in ax.get_legend().get_texts())
    assert isinstance(fig, go.Figure)


@pytest.mark.parametrize("per", ["view", "total"])
def test_measured_point_drawn_without_published_rows_or_accuracy(per):
    """A bundled synthetic model: no published row, no top-1. The figure still shows its cost."""
    m = MeasuredPoint("tiny_synth", "synthetic-motion", "1x1", 0.058, 0.058 * (2 if per == "total" else 1), 1.2,
                      None, None, None)
    x = m.gflops(per)
    fig = efficiency_plotly([], [m], per, "synthetic-motion")
    square = [t for t in fig.data if t.name == "measured here (accuracy not known)"]
    assert len(square) == 1 and list(square[0].x) == [x] and square[0].marker.symbol == "square-open"
    note = " ".join(a.text for a in fig.layout.annotations)
    assert "no published result for synthetic-motion" in note and "accuracy not known for tiny_synth" in note

    ax = efficiency_mpl([], [m], per, "synthetic-motion").axes[0]
    offsets = [o for c in ax.collections for o in c.get_offsets()]
    assert len(offsets) == 1 and offsets[0][0] == pytest.approx(x)
    lo, hi = ax.get_xlim()
    assert lo < x < hi and ax.get_xscale() == "log"
    assert any("accuracy not known" in t.get_text() for t in ax.get_legend().get_texts())
    assert "accuracy not known for tiny_synth" in ax.get_title()


def test_measured_point_with_accuracy_drawn_when_no_published_row_matches():
    m = _measured()[0]
    fig = efficiency_plotly([], [m], "view", "K400")
    assert [list(t.x) for t in fig.data if t.name == "measured here"] == [[100.0]]
    assert "no published result for K400" in fig.layout.annotations[0].text
    ax = efficiency_mpl([], [m], "view", "K400").axes[0]
    assert [tuple(o) for c in ax.collections for o in c.get_offsets()] == [(100.0, 75.0)]


def test_trained_here_points_carry_their_interval(tmp_path):
    from analysis.efficiency import load_trained_here, trained_here_markdown, trained_here_plotly
    from uniformer.ablate import RunResult, write_report

    rows = [RunResult("LLGG", 0, 0.2, 0.6, 0.70, 0.95, 1000, 30.0, steps=3000, batch_size=16),
            RunResult("LLGG", 1, 0.2, 0.6, 0.74, 0.96, 1000, 31.0, steps=3000, batch_size=16),
            RunResult("TS", 0, 0.9, 0.5, 0.60, 0.90, 1000, 80.0, steps=3000, batch_size=16)]
    write_report(rows, tmp_path, {"cpu": "Test CPU", "command": "python -m uniformer.ablate --out x"})
    points, meta = load_trained_here(tmp_path / "ablation.json")
    by = {p.layout: p for p in points}
    assert by["LLGG"].top1 == pytest.approx(72.0) and by["LLGG"].seeds_top1 == pytest.approx((70.0, 74.0))
    assert by["LLGG"].interval == "t over 2 seeds" and by["LLGG"].ci95[0] < 70.0 < 74.0 < by["LLGG"].ci95[1]
    assert by["TS"].interval.startswith("Wilson") and by["TS"].ci95[0] < 60.0 < by["TS"].ci95[1]
    assert by["TS"].family == "timesformer" and by["LLGG"].family == "uniformer"
    fig = trained_here_plotly(points, meta)
    means = [t for t in fig.data if t.error_y.array is not None]
    assert sorted(x for t in means for x in t.text) == ["LLGG", "TS"]
    assert all(min(t.error_y.array) > 0 and min(t.error_y.arrayminus) > 0 for t in means)
    assert "Test CPU" in fig.layout.title.text and "3000 steps of 16 clips" in fig.layout.title.text
    md = trained_here_markdown(points, meta)
    assert "3000 steps of 16 clips" in md
    assert "| LLGG | 0.200 |" in md and "| reference |" in md
    assert "t over 2 seeds" in md and "python -m uniformer.ablate --out x" in md
    assert by["TS"].vs_reference == ("LLGG", pytest.approx(-12.0), None)  # one TS seed: no interval
    assert "| -12.0 vs LLGG |" in md
    rows += [RunResult("LLLL", s, 0.16, 0.6, acc, 0.95, 1000, 30.0, steps=3000, batch_size=16)
             for s, acc in ((0, 0.66), (1, 0.68))]
    write_report(rows, tmp_path, {"cpu": "Test CPU"})
    points, meta = load_trained_here(tmp_path / "ablation.json")
    llll = next(p for p in points if p.layout == "LLLL")
    ref, d, (lo, hi) = llll.vs_reference
    assert (ref, d) == ("LLGG", pytest.approx(-5.0)) and lo < -5.0 < hi  # two seeds each: a Welch interval
    assert f"| -5.0 vs LLGG ({lo:+.1f} to {hi:+.1f}) |" in trained_here_markdown(points, meta)


def test_trained_here_without_an_ablation_says_how_to_run_it(tmp_path):
    from analysis.efficiency import load_trained_here, trained_here_markdown, trained_here_plotly

    points, meta = load_trained_here(tmp_path / "none.json")
    assert points == [] and meta == {}
    assert "python -m uniformer.ablate" in trained_here_markdown(points)
    assert "python -m uniformer.ablate" in trained_here_plotly(points).layout.annotations[0].text


def test_the_committed_ablation_is_shown_in_the_app():
    from analysis.efficiency import ABLATION_JSON, load_trained_here
    from app.tab_efficiency import trained_here

    points, _ = load_trained_here()
    assert ABLATION_JSON.is_file() and points  # docs/reproduction/ablation.json is part of the repository
    fig, md = trained_here()
    assert {p.layout for p in points} <= {x for t in fig.data if t.text is not None for x in t.text}
    assert md.startswith("| layout |")


def test_families_get_distinct_colours_and_shapes():
    from analysis.efficiency import QUALITATIVE, efficiency_plotly, family_styles

    published = load_published("K400")
    fig = efficiency_plotly(published, per="view", dataset="K400")
    looks = [(t.marker.color, t.marker.symbol) for t in fig.data if t.name.endswith("(published)")]
    assert len(looks) == len(set(looks)) >= 10  # no two families look alike
    first_ten = [c for c, _ in looks][:10]
    assert len(set(first_ten)) == 10 and set(first_ten) <= set(QUALITATIVE)  # qualitative, all different
    styles = family_styles(["X3D", "UniFormer", "TimeSformer"])
    assert styles["UniFormer"][0] == QUALITATIVE[0] and styles["TimeSformer"][0] == QUALITATIVE[1]


def test_trained_here_labels_of_nearby_layouts_do_not_share_a_position():
    from analysis.efficiency import TrainedPoint, trained_here_plotly

    def pt(layout: str, gflops: float, top1: float) -> TrainedPoint:
        return TrainedPoint(layout, gflops, 0.6, top1, (top1 - 3, top1 + 3), "Wilson, 1 run", (top1,), 1200, 30.0)

    pts = [pt("LLLL", 0.165, 64.9), pt("LLLG", 0.166, 65.5), pt("LLGG", 0.183, 66.3), pt("GGGG", 0.886, 47.6)]
    fig = trained_here_plotly(pts)
    positions = list(fig.data[0].textposition)
    assert len(set(positions[:3])) == 3  # the crowded three each get their own side
    assert positions[3] == "top center"  # a point far from the others keeps the default
