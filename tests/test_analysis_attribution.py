"""CAM / Grad-CAM against closed forms on the golden model, rollout against a dense re-derivation,
captum wrappers against a linear model where the answers are exact."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from analysis.attention import AnalysisError, AttentionRecord, LayerInfo, extract
from analysis.attribution import (
    attention_rollout,
    class_activation_map,
    grad_cam,
    integrated_gradients,
    occlusion,
)
from tests.test_analysis_attention import FIXTURES, _load

pytestmark = pytest.mark.usefixtures("one_thread")

UNIFORMER_FX = next(p for p in FIXTURES if p.name == "uniformer_golden_small.pt")
TIMESFORMER_FX = next(p for p in FIXTURES if p.name == "timesformer_golden_small.pt")


@pytest.fixture(scope="module")
def uniformer():
    return _load(UNIFORMER_FX)


def _min_max(a: torch.Tensor) -> torch.Tensor:
    return (a - a.min()) / (a.max() - a.min())


def test_cam_is_head_row_times_last_block_output(uniformer):
    model, fx = uniformer
    cam = class_activation_map(model, fx["input"])
    assert cam.target.tolist() == fx["logits"].argmax(-1).tolist()
    feats = fx["stage_outputs"][3]  # last stage-4 block, before the final BatchNorm
    for b in range(2):
        raw = torch.einsum("c,cthw->thw", fx["state_dict"]["head.weight"][cam.target[b]], feats[b])
        torch.testing.assert_close(cam.raw[b], raw, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cam.heat[b], _min_max(raw), atol=1e-4, rtol=1e-4)
    assert cam.heat.shape == feats[:, 0].shape
    assert not cam.raw.requires_grad
    other = class_activation_map(model, fx["input"], target=1)
    assert other.target.tolist() == [1, 1]


def test_grad_cam_weights_follow_the_head(uniformer):
    # logit_k = W_k · mean_thw(BN(F)) + b with eval BN, so d logit_k / dF_c = W_kc γ_c / sqrt(var_c + eps) / (T'H'W')
    model, fx = uniformer
    sd = fx["state_dict"]
    k = 4
    g = grad_cam(model, fx["input"], target=k)
    feats = fx["stage_outputs"][3]
    scale = sd["norm.weight"] / torch.sqrt(sd["norm.running_var"] + model.norm.eps)
    w = sd["head.weight"][k] * scale / feats[0, 0].numel()
    for b in range(2):
        raw = torch.relu(torch.einsum("c,cthw->thw", w, feats[b]))
        torch.testing.assert_close(g.raw[b], raw, atol=1e-5, rtol=1e-4)
    assert g.target.tolist() == [k, k]
    with pytest.raises(AnalysisError, match="between 0 and 9"):
        grad_cam(model, fx["input"], target=10)


def test_class_maps_refuse_timesformer():
    model, fx = _load(TIMESFORMER_FX)
    with pytest.raises(AnalysisError, match="rollout"):
        class_activation_map(model, fx["input"])


# ------------------------------------------------------------------------------------ rollout


def _dense_rollout(record: AttentionRecord, start_row: int, residual: float = 0.5) -> torch.Tensor:
    """Build every block's full token-mixing matrix (cls + frame-major patches) and multiply."""
    info = record.layers["spatial_attn_block0"]
    T, Hp, Wp = info.grid
    N = Hp * Wp
    L = 1 + T * N
    a = residual
    total = torch.eye(L, dtype=torch.float64)
    blocks = sorted({i.block for i in record.layers.values()})
    for i in blocks:  # input -> output of block i is M = S @ Tm; rollout multiplies later blocks on the left
        s = record.maps[f"spatial_attn_block{i}"][0].mean(1).double()
        tm = record.maps[f"temporal_attn_block{i}"][0].mean(1).double()
        Tm = torch.zeros(L, L, dtype=torch.float64)
        Tm[0, 0] = 1
        S = torch.zeros(L, L, dtype=torch.float64)
        S[0, 0] = a
        for t in range(T):
            S[0, 0] += (1 - a) * s[t, 0, 0] / T
            for n in range(N):
                row = 1 + t * N + n
                S[0, row] += (1 - a) * s[t, 0, 1 + n] / T
                S[row, 0] = (1 - a) * s[t, 1 + n, 0]
                S[row, 1 + t * N : 1 + (t + 1) * N] = (1 - a) * s[t, 1 + n, 1:]
                S[row, row] += a
                for u in range(T):
                    Tm[row, 1 + u * N + n] = (1 - a) * tm[n, t, u] + (a if u == t else 0.0)
        total = S @ Tm @ total
    return total[start_row]


def test_rollout_matches_dense_matrices():
    model, fx = _load(TIMESFORMER_FX)
    record = extract(model, fx["input"])
    ro = attention_rollout(record)
    dense = _dense_rollout(record, 0)
    assert ro.cls == pytest.approx(float(dense[0]), abs=1e-6)
    torch.testing.assert_close(ro.patches.flatten().double(), dense[1:], atol=1e-6, rtol=1e-5)
    assert ro.cls + float(ro.patches.sum()) == pytest.approx(1.0, abs=1e-5)

    t, h, w = 2, 1, 3
    rp = attention_rollout(record, start=(t, h, w))
    _, Hp, Wp = record.layers["spatial_attn_block0"].grid
    dense = _dense_rollout(record, 1 + t * Hp * Wp + h * Wp + w)
    torch.testing.assert_close(rp.patches.flatten().double(), dense[1:], atol=1e-6, rtol=1e-5)


def test_rollout_with_identity_attention_stays_on_the_start():
    T, Hp, Wp, heads = 3, 2, 2, 2
    N = Hp * Wp
    maps, layers = {}, {}
    for i in range(2):
        maps[f"temporal_attn_block{i}"] = torch.eye(T).expand(1, N, heads, T, T)
        maps[f"spatial_attn_block{i}"] = torch.eye(1 + N).expand(1, T, heads, 1 + N, 1 + N)
        layers[f"temporal_attn_block{i}"] = LayerInfo("temporal", i, 0, i, (T, Hp, Wp))
        layers[f"spatial_attn_block{i}"] = LayerInfo("spatial", i, 0, i, (T, Hp, Wp), has_cls=True)
    record = AttentionRecord("timesformer", torch.zeros(1, 2), maps, layers, (1, 3, T, 32, 32))
    ro = attention_rollout(record)
    assert ro.cls == pytest.approx(1.0) and float(ro.patches.abs().sum()) == pytest.approx(0.0)
    rp = attention_rollout(record, start=(1, 0, 1))
    assert rp.cls == pytest.approx(0.0) and float(rp.patches[1, 0, 1]) == pytest.approx(1.0)
    with pytest.raises(AnalysisError, match="outside"):
        attention_rollout(record, start=(3, 0, 0))


def test_rollout_needs_divided_timesformer(uniformer):
    model, fx = uniformer
    with pytest.raises(AnalysisError, match="divided"):
        attention_rollout(extract(model, fx["input"]))


# ------------------------------------------------------------------------------------- captum


class _Linear(nn.Module):
    """f(x) = W · flatten(x): Integrated Gradients and Occlusion are exact here."""

    def __init__(self, shape: tuple[int, ...], classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(int(torch.tensor(shape).prod()), classes, bias=False)
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_integrated_gradients_on_a_linear_model():
    shape = (3, 2, 4, 4)
    model = _Linear(shape)
    x = torch.randn(2, *shape)
    a = integrated_gradients(model, x, target=1, n_steps=4)
    expected = x * model.fc.weight[1].view(shape)
    torch.testing.assert_close(a.raw, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.heat, expected.abs().sum(1), atol=1e-5, rtol=1e-4)
    assert a.delta.abs().max() < 1e-4


def test_occlusion_windows_on_a_linear_model():
    shape = (3, 2, 4, 4)
    model = _Linear(shape)
    x = torch.randn(1, *shape)
    a = occlusion(model, x, target=2, window=(1, 2, 2))
    contrib = (x * model.fc.weight[2].view(shape))[0].sum(0)  # (T, H, W) per-pixel logit share
    windows = contrib.reshape(2, 2, 2, 2, 2).sum(dim=(2, 4))  # (t, hb, wb) sums over 2×2 windows
    expected = windows.repeat_interleave(2, 1).repeat_interleave(2, 2)
    torch.testing.assert_close(a.heat[0], expected, atol=1e-5, rtol=1e-4)


def test_captum_runs_on_the_golden_uniformer(uniformer):
    model, fx = uniformer
    x = fx["input"][:1]
    ig = integrated_gradients(model, x, n_steps=2, internal_batch_size=2)
    assert ig.heat.shape == (1, 8, 64, 64) and torch.isfinite(ig.heat).all()
    occ = occlusion(model, x, window=(8, 32, 32))
    assert occ.heat.shape == (1, 8, 64, 64)
    assert occ.heat.unique().numel() <= 4  # one value per occluded window
