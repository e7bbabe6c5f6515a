"""Per-axis redundancy over clips (analysis.redundancy) on the bundled tiny models and clips."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from analysis.attention import AnalysisError, AttentionRecord, LayerInfo
from analysis.metrics import axis_chance_locality, chance_locality
from analysis.redundancy import axis_values, expand_clips, main, read_clip_list, summarise, t_interval

CLIPS = Path(__file__).resolve().parents[1] / "assets" / "clips"
TWO = [str(CLIPS / "synthetic_approaching.mp4"), str(CLIPS / "synthetic_parting.mp4")]
FIELDS = {"name", "kind", "grid", "locality_mean", "locality_ci95", "uniform_locality", "distance_mean", "n_clips"}


def _run_json(capsys, args: list[str]) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"])
def test_cli_two_clips(capsys, model):
    doc = _run_json(capsys, [*TWO, "--model", model, "--json"])
    assert torch.is_grad_enabled()  # no global autograd switch leaks out of the CLI
    assert doc["model"] == model and doc["clips"] == TWO and doc["skipped"] == []
    rows = doc["layers"]
    assert rows and all(FIELDS <= set(r) for r in rows)
    assert all(r["n_clips"] == 2 for r in rows)
    assert {r["kind"] for r in rows} == {"spatial", "temporal"}
    for r in rows:
        lo, hi = r["locality_ci95"]
        assert lo <= r["locality_mean"] <= hi
        assert r["ratio"] == pytest.approx(r["locality_mean"] / r["uniform_locality"])
        if r["clip_independent"]:  # kernels: the same for every clip
            assert r["source"] == "kernel" and lo == hi
        else:
            assert hi > lo  # two different clips give different maps
    if model.startswith("uniformer"):
        joint = [r for r in rows if r["source"] == "joint"]
        assert {r["kind"] for r in joint} == {"spatial", "temporal"}
        t, h, w = (int(v) for v in joint[0]["grid"].split("x"))
        sp = next(r for r in joint if r["kind"] == "spatial")
        tm = next(r for r in joint if r["kind"] == "temporal" and r["name"] == sp["name"])
        assert sp["uniform_locality"] == pytest.approx(chance_locality((1, h, w)))
        assert tm["uniform_locality"] == pytest.approx(chance_locality((t, 1, 1)))
        kern = next(r for r in rows if r["source"] == "kernel" and r["kind"] == "spatial")
        assert kern["uniform_locality"] == pytest.approx(9 / 25)
    else:  # divided: spatial rows from spatial attention, temporal rows from temporal attention
        assert all(r["name"].startswith(r["kind"]) for r in rows)
        assert all(r["cls_mass_mean"] is not None for r in rows if r["kind"] == "spatial")


def test_list_file_table_and_skipped(tmp_path, capsys):
    lst = tmp_path / "val.txt"
    lst.write_text("# clips\nsynthetic_approaching.mp4 1\n\nmissing.mp4 3\nsynthetic_parting.mp4\n")
    assert read_clip_list(lst, CLIPS) == [str(CLIPS / n) for n in ("synthetic_approaching.mp4", "missing.mp4",
                                                                   "synthetic_parting.mp4")]
    assert main([str(lst), "--root", str(CLIPS), "--model", "timesformer_tiny_synthetic_8x2"]) == 0
    out, err = capsys.readouterr()
    assert "missing.mp4" in err and "skipped" in err
    assert "spatial_attn_block0" in out and "temporal_attn_block3" in out and "95% CI" in out


def test_one_sentence_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    for args, needle in [([str(empty), "--model", "uniformer_tiny_synthetic_8x2"], "No clips"),
                         ([TWO[0], "--model", "no_such_model"], "no_such_model"),
                         ([str(bad), str(tmp_path / "gone.mp4"), "--model", "uniformer_tiny_synthetic_8x2"],
                          "None of the 2 clips")]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(AnalysisError, match="does not exist"):
        expand_clips([str(tmp_path / "nope.txt")])


def _record(maps: dict[str, torch.Tensor], infos: dict[str, LayerInfo]) -> AttentionRecord:
    return AttentionRecord("uniformer", torch.zeros(1, 2), maps, infos)


def test_uniform_maps_give_ratio_one():
    """A uniform map sits exactly on its per-axis floor, for joint, divided and kernel maps."""
    grid = (4, 5, 6)
    L = 4 * 5 * 6
    maps = {
        "joint": torch.full((1, 2, L, L), 1 / L),
        "spatial": torch.full((1, 4, 2, 1 + 30, 1 + 30), 1 / 31),
        "temporal": torch.full((1, 30, 2, 4, 4), 1 / 4),
        "kernel": torch.ones(8, 1, 5, 5, 5),
    }
    infos = {
        "joint": LayerInfo("joint", 0, 3, 0, grid),
        "spatial": LayerInfo("spatial", 1, 0, 1, grid, has_cls=True),
        "temporal": LayerInfo("temporal", 1, 0, 1, grid),
        "kernel": LayerInfo("local_affinity", 2, 1, 0, grid),
    }
    rows = summarise([axis_values(_record(maps, infos))] * 3)
    assert [(r.name, r.kind) for r in rows] == [("joint", "spatial"), ("joint", "temporal"), ("spatial", "spatial"),
                                                ("temporal", "temporal"), ("kernel", "spatial"), ("kernel", "temporal")]
    for r in rows:
        assert r.ratio == pytest.approx(1.0), r
        assert r.n_clips == 3
    assert rows[0].uniform_locality == pytest.approx(axis_chance_locality("spatial", grid))
    assert rows[0].uniform_locality == pytest.approx((3 * 5 - 2) * (3 * 6 - 2) / 30**2)
    assert rows[1].uniform_locality == pytest.approx((3 * 4 - 2) / 16)
    assert rows[4].uniform_locality == pytest.approx(9 / 25) and rows[5].uniform_locality == pytest.approx(3 / 5)
    assert rows[2].cls_mass_mean == pytest.approx(1 / 31)
    assert rows[0].locality_ci95 == pytest.approx((rows[0].locality_mean,) * 2)  # identical clips: zero width


def test_joint_map_is_read_per_axis():
    """All mass on the query's own spatial position but spread over time: spatially local, temporally not."""
    grid = (8, 6, 6)
    coords = torch.stack(torch.meshgrid(*(torch.arange(g) for g in grid), indexing="ij"), -1).reshape(-1, 3)
    same_pos = (coords[:, None, 1:] == coords[None, :, 1:]).all(-1).float()
    attn = (same_pos / same_pos.sum(-1, keepdim=True))[None, None]
    rows = summarise([axis_values(_record({"g": attn}, {"g": LayerInfo("joint", 0, 3, 0, grid)}))])
    sp, tm = rows
    assert sp.locality_mean == pytest.approx(1.0) and sp.ratio > 2
    assert tm.ratio == pytest.approx(1.0) and sp.locality_ci95 is None and sp.n_clips == 1


def test_t_interval():
    lo, hi = t_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0) and (hi - lo) / 2 == pytest.approx(4.303 * 1 / math.sqrt(3))
    assert t_interval([0.5]) is None


def test_maps_per_pass_and_axis_curves():
    from analysis import views
    from analysis.inputs import load_model
    from analysis.redundancy import measure

    model, _ = load_model("uniformer_tiny_synthetic_8x2")
    one = measure(model, TWO)
    split = measure(model, TWO, maps_per_pass=1)  # one map per forward: same numbers, less memory
    assert [(r.name, r.kind) for r in one.rows] == [(r.name, r.kind) for r in split.rows]
    for a, b in zip(one.rows, split.rows):
        assert a.locality_mean == pytest.approx(b.locality_mean, rel=1e-5)
    fig = views.axis_curve_plotly({"u": one.rows})
    lines = [t for t in fig.data if t.line.dash != "dot"]
    assert {t.name for t in lines} == {"u kernel", "u attention"} and len(lines) == 4  # x 2 axes
    attention = next(t for t in lines if t.name == "u attention" and t.error_y.array is not None)
    assert len(attention.error_y.array) == len(attention.y)  # 95 % intervals over the 2 clips
    assert len(views.axis_curve_mpl({"u": one.rows}).axes) == 2
