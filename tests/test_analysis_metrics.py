"""Redundancy metrics on constructed maps whose answers are known in closed form."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from analysis.attention import AttentionRecord, LayerInfo
from analysis.metrics import (
    chance_locality,
    joint_attention_metrics,
    kernel_metrics,
    redundancy_table,
    spatial_attention_metrics,
    temporal_attention_metrics,
    write_csv,
)


def _uniform(heads: int, L: int, batch: int = 1) -> torch.Tensor:
    return torch.full((batch, heads, L, L), 1.0 / L)


def _identity(heads: int, L: int, batch: int = 1) -> torch.Tensor:
    return torch.eye(L).expand(batch, heads, L, L).clone()


def _axis_pairs_within_one(n: int) -> int:
    return sum(1 for i in range(n) for j in range(n) if abs(i - j) <= 1)


def _mean_abs_diff(n: int) -> float:
    """E|i − j| for i, j uniform on 0..n−1 = (n² − 1) / (3n)."""
    return (n * n - 1) / (3 * n)


GRID = (4, 3, 5)


def test_identity_attention_is_perfectly_local():
    m = joint_attention_metrics(_identity(2, math.prod(GRID), batch=2), GRID)
    for name in ("locality", "locality_space", "locality_time"):
        assert torch.allclose(getattr(m, name), torch.ones(2, dtype=torch.float64))
    for name in ("dist_space", "dist_time", "entropy"):
        assert torch.allclose(getattr(m, name), torch.zeros(2, dtype=torch.float64))
    assert torch.isnan(m.cls_mass).all()


def test_uniform_attention_closed_forms():
    T, H, W = GRID
    L = T * H * W
    m = joint_attention_metrics(_uniform(3, L), GRID)
    # locality: pairs within ±1 on every axis factorise: (3n−2) pairs per axis out of n² pairs
    expected = (3 * T - 2) * (3 * H - 2) * (3 * W - 2) / (L * L)
    assert m.mean()["locality"] == pytest.approx(expected)
    assert m.mean()["locality_time"] == pytest.approx((3 * T - 2) / T**2)
    assert m.mean()["locality_space"] == pytest.approx((3 * H - 2) * (3 * W - 2) / (H * W) ** 2)
    assert m.mean()["dist_time"] == pytest.approx(_mean_abs_diff(T))
    assert m.mean()["entropy"] == pytest.approx(1.0)
    # 1-D grids: the Euclidean spatial distance is |Δw|
    m1 = joint_attention_metrics(_uniform(1, 7), (1, 1, 7))
    assert m1.mean()["dist_space"] == pytest.approx(_mean_abs_diff(7))
    assert m1.mean()["dist_time"] == pytest.approx(0.0)


def test_uniform_spatial_distance_matches_brute_force():
    H, W = 3, 4
    coords = [(h, w) for h in range(H) for w in range(W)]
    brute = sum(math.dist(a, b) for a in coords for b in coords) / len(coords) ** 2
    m = joint_attention_metrics(_uniform(1, H * W), (1, H, W))
    assert m.mean()["dist_space"] == pytest.approx(brute)


@pytest.mark.parametrize("grid", [(1, 1, 1), (2, 2, 2), (4, 3, 5), (8, 14, 14)])
def test_chance_locality_is_uniform_locality(grid):
    pairs = math.prod(_axis_pairs_within_one(n) for n in grid)
    assert chance_locality(grid) == pytest.approx(pairs / math.prod(grid) ** 2)


def test_heads_are_reported_separately():
    L = math.prod(GRID)
    attn = torch.cat([_identity(1, L), _uniform(1, L)], dim=1)  # head 0 local, head 1 uniform
    m = joint_attention_metrics(attn, GRID)
    assert m.locality[0] == pytest.approx(1.0)
    assert m.locality[1] == pytest.approx(chance_locality(GRID))
    assert m.mean()["locality"] == pytest.approx((1 + chance_locality(GRID)) / 2)
    assert m.entropy.tolist() == pytest.approx([0.0, 1.0])


def test_shifted_attention_is_not_local():
    # every query attends to the token two frames later (cyclic): |Δt| = 2 everywhere
    T, H, W = GRID
    idx = torch.arange(T * H * W).reshape(T, H, W)
    target = idx.roll(-2, dims=0).reshape(-1)
    attn = torch.zeros(1, 1, T * H * W, T * H * W)
    attn[0, 0, torch.arange(T * H * W), target] = 1.0
    m = joint_attention_metrics(attn, GRID).mean()
    assert m["locality"] == 0 and m["locality_time"] == 0
    assert m["locality_space"] == 1 and m["dist_space"] == 0
    assert m["dist_time"] == pytest.approx(2.0)


def test_spatial_map_with_cls_token():
    H, W = 3, 4
    N = H * W
    attn = torch.zeros(2, 5, 2, 1 + N, 1 + N)  # (B, T, heads, 1+N, 1+N)
    attn[..., 0] = 0.25  # every query puts a quarter on cls …
    attn[..., 1:, 1:] += 0.75 * torch.eye(N)  # … and the rest on itself
    attn[..., 0, :] = 1.0 / (1 + N)  # cls query row (not a patch query, ignored)
    m = spatial_attention_metrics(attn, (H, W), has_cls=True)
    assert torch.allclose(m.cls_mass, torch.full((2,), 0.25, dtype=torch.float64))
    assert torch.allclose(m.locality, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(m.dist_space, torch.zeros(2, dtype=torch.float64))
    assert torch.isnan(m.locality_time).all() and torch.isnan(m.dist_time).all()

    uniform = torch.full((1, 1, 1, 1 + N, 1 + N), 1.0 / (1 + N))
    u = spatial_attention_metrics(uniform, (H, W)).mean()
    assert u["cls_mass"] == pytest.approx(1 / (1 + N))
    assert u["locality"] == pytest.approx(chance_locality((1, H, W)))
    assert u["entropy"] == pytest.approx(1.0)  # renormalised over the N patch keys


def test_temporal_map():
    T = 6
    eye = torch.eye(T).expand(1, 3, 2, T, T)  # (B, N, heads, T, T)
    m = temporal_attention_metrics(eye).mean()
    assert m["locality"] == 1 and m["dist_time"] == 0 and m["entropy"] == 0
    assert math.isnan(m["dist_space"]) and math.isnan(m["locality_space"])
    u = temporal_attention_metrics(torch.full((1, 1, 1, T, T), 1.0 / T)).mean()
    assert u["locality"] == pytest.approx((3 * T - 2) / T**2)
    assert u["dist_time"] == pytest.approx(_mean_abs_diff(T))


def test_kernel_metrics():
    delta = torch.zeros(3, 1, 5, 5, 5)
    delta[:, 0, 2, 2, 2] = -1.5  # sign does not matter, only |weight|
    m = kernel_metrics(delta).mean()
    assert m["locality"] == 1 and m["dist_space"] == 0 and m["dist_time"] == 0 and m["entropy"] == 0

    u = kernel_metrics(torch.randn(1).sign() * torch.ones(2, 1, 5, 5, 5)).mean()
    assert u["locality"] == pytest.approx(27 / 125)
    assert u["locality_time"] == pytest.approx(3 / 5)
    assert u["dist_time"] == pytest.approx(6 / 5)  # mean of |−2..2|
    assert u["entropy"] == pytest.approx(1.0)

    corner = torch.zeros(1, 1, 5, 5, 5)
    corner[0, 0, 0, 0, 0] = 2.0  # offset (−2, −2, −2)
    c = kernel_metrics(corner).mean()
    assert c["locality"] == 0 and c["dist_time"] == pytest.approx(2.0)
    assert c["dist_space"] == pytest.approx(math.sqrt(8))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="does not fit"):
        joint_attention_metrics(_uniform(1, 10), GRID)
    with pytest.raises(ValueError, match="depthwise"):
        kernel_metrics(torch.zeros(3, 5, 5))


def _toy_record() -> AttentionRecord:
    grid = (2, 2, 3)
    L = math.prod(grid)
    kernel = torch.zeros(4, 1, 5, 5, 5)
    kernel[:, 0, 2, 2, 2] = 1
    maps = {
        "local_affinity_stage1_block0": kernel,
        "global_attn_stage3_block0": _identity(2, L, batch=2),
        "global_attn_stage3_block1": _uniform(2, L, batch=2),
    }
    layers = {
        "local_affinity_stage1_block0": LayerInfo("local_affinity", 0, 1, 0, (2, 8, 8)),
        "global_attn_stage3_block0": LayerInfo("joint", 1, 3, 0, grid),
        "global_attn_stage3_block1": LayerInfo("joint", 2, 3, 1, grid),
    }
    return AttentionRecord("uniformer", torch.zeros(2, 5), maps, layers, (2, 3, 4, 32, 48))


def test_redundancy_table_and_csv(tmp_path: Path):
    record = _toy_record()
    rows = redundancy_table(record, per_head=True)
    layer_rows = [r for r in rows if r.head == -1]
    assert [r.layer for r in layer_rows] == list(record.maps)
    assert len(rows) == 3 + 4 + 2 + 2  # layer rows + one per channel / head
    assert [r.rel_depth for r in layer_rows] == [0.0, 0.5, 1.0]
    assert layer_rows[0].locality == 1 and layer_rows[0].chance_locality == pytest.approx(27 / 125)
    assert layer_rows[1].locality == 1
    assert layer_rows[2].locality == pytest.approx(chance_locality((2, 2, 3)))

    path = write_csv(rows, tmp_path / "t" / "redundancy.csv")
    with path.open() as fh:
        read = list(csv.DictReader(fh))
    assert len(read) == len(rows)
    last = next(r for r in read if r["layer"] == "global_attn_stage3_block1" and r["head"] == "-1")
    assert float(last["locality"]) == pytest.approx(layer_rows[2].locality, rel=1e-5)
    assert read[0]["cls_mass"] == ""  # NaN written as empty
