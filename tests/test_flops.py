"""FLOPs / params in the papers' convention (``uniformer.flops``).

Full-size models are built on the ``meta`` device, so every count here takes well under a
second. Reference numbers come from the fixtures (official code + fvcore / FlopCounterMode).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from uniformer.errors import UniformerLabError
from uniformer.flops import FlopsError, count_flops, count_params
from uniformer.models.layers import Attention

FIXTURES = Path(__file__).parent / "fixtures"
UNIFORMER_REF = json.loads((FIXTURES / "uniformer_flops_params.json").read_text())["entries"]
TIMESFORMER_REF = json.loads((FIXTURES / "timesformer_flops_params.json").read_text())["rows"]
DEPTHS = {"uniformer_small": [3, 4, 8, 3], "uniformer_base": [5, 8, 20, 7]}


def _uniformer(model_name: str) -> nn.Module:
    from uniformer.models.uniformer import UniFormer

    with torch.device("meta"):
        return UniFormer(depth=DEPTHS[model_name], num_classes=400)


def _timesformer(img: int, frames: int, num_classes: int = 400) -> nn.Module:
    from uniformer.models.timesformer import TimeSformer

    with torch.device("meta"):
        return TimeSformer(img_size=img, num_frames=frames, num_classes=num_classes)


def _ref_uniformer(model_name: str, frames: int) -> dict:
    return next(e for e in UNIFORMER_REF if e["model"] == model_name and e["input_shape"][2] == frames)


def _ref_timesformer(shape: list[int], num_classes: int = 400) -> dict:
    return next(r for r in TIMESFORMER_REF if r["input_per_view"] == shape and r["num_classes"] == num_classes)


# ------------------------------------------------------------------------- hand-checked cases
class _Tokens(nn.Module):
    """(1, C, T, H, W) clip -> tokens -> ``inner`` -> mean, to feed token modules a 5-D input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.flatten(2).transpose(1, 2)).mean()


def test_linear_multiply_adds_by_hand():
    # 2*4*4 = 32 tokens of width 3 through Linear(3, 5): 32 * 3 * 5 multiply-adds.
    report = count_flops(_Tokens(nn.Linear(3, 5)), (1, 3, 2, 4, 4))
    assert report.macs == 32 * 3 * 5
    assert report.flop_counter_raw == 2 * 32 * 3 * 5
    assert report.params == 3 * 5 + 5
    assert report.by_kind == {"linear": pytest.approx(480e-9)}


def test_conv3d_multiply_adds_by_hand():
    # Output 4 x (2 x 2 x 2) = 32 values, each a 3 x 1 x 2 x 2 = 12-term dot product.
    conv = nn.Conv3d(3, 4, kernel_size=(1, 2, 2), stride=(1, 2, 2))
    report = count_flops(conv, (1, 3, 2, 4, 4))
    assert report.macs == 32 * 12
    assert count_params(conv) == 4 * 12 + 4


def test_attention_sdpa_and_capture_paths_count_the_same_by_hand():
    # 8 tokens, dim 4, 2 heads of width 2: qkv 8*4*12, q.k^T and attn.v 2 * (2*8*8*2), proj 8*4*4.
    expected = 8 * 4 * 12 + 2 * (2 * 8 * 8 * 2) + 8 * 4 * 4
    model = _Tokens(Attention(4, num_heads=2, qkv_bias=True))
    fast = count_flops(model, (1, 4, 2, 2, 2))
    model.inner.capture = True
    captured = count_flops(model, (1, 4, 2, 2, 2))
    assert fast.macs == captured.macs == expected
    assert fast.by_kind["matmul"] == pytest.approx(2 * (2 * 8 * 8 * 2) / 1e9)


class _MakesCpuTensor(nn.Module):
    """Creates a CPU tensor inside forward, so the meta path fails and fake tensors are used."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = Attention(4, num_heads=2, qkv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x.flatten(2).transpose(1, 2)).mean() + torch.zeros(())


def test_fake_tensor_fallback_counts_the_same():
    report = count_flops(_MakesCpuTensor(), (1, 4, 2, 2, 2))
    assert report.macs == 8 * 4 * 12 + 2 * (2 * 8 * 8 * 2) + 8 * 4 * 4


def test_cpu_fused_attention_kernel_is_counted():
    # On real CPU tensors SDPA runs the fused CPU kernel, which the stock registry leaves at 0.
    from uniformer.flops import _new_counter

    q = torch.randn(1, 2, 8, 2)
    with _new_counter() as ours:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    ops = {str(k) for k in ours.get_flop_counts()["Global"]}
    assert ops == {"aten._scaled_dot_product_flash_attention_for_cpu"}
    assert ours.get_total_flops() == 2 * (2 * (2 * 8 * 8 * 2))


def test_norm_costs_follow_fvcore_and_can_be_switched_off():
    # 32 tokens x 4 channels = 128 elements. LayerNorm with affine: 5 per element; eval
    # BatchNorm with affine: 2 per element (fvcore's rules).
    ln = _Tokens(nn.LayerNorm(4))
    assert count_flops(ln, (1, 4, 2, 4, 4), include_norms=True).macs == 5 * 128
    assert count_flops(ln, (1, 4, 2, 4, 4), include_norms=False).macs == 0
    bn = nn.BatchNorm3d(4)
    report = count_flops(bn, (1, 4, 2, 4, 4), include_norms=True)
    assert report.macs == 2 * 128
    assert report.flop_counter_raw == 0  # FlopCounterMode itself never counts norms
    assert bn.training  # counted in eval mode, flag restored


def test_real_model_is_left_untouched():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, (1, 3, 2, 4, 4))
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())
    assert model.training


@pytest.mark.parametrize("shape", [(1, 3, 8, 224), (1, 3, 0, 224, 224), ("a", 3, 8, 224, 224)])
def test_bad_input_shape_is_a_typed_error(shape):
    with pytest.raises(FlopsError) as info:
        count_flops(nn.Conv3d(3, 4, 1), shape)
    assert isinstance(info.value, UniformerLabError)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_input_rejected_by_the_model_is_a_typed_error():
    with pytest.raises(FlopsError):
        count_flops(_uniformer("uniformer_small"), (1, 3, 8, 16, 16))  # smaller than 32 px


# --------------------------------------------------------------------------- full-size models
@pytest.mark.parametrize("model_name", ["uniformer_small", "uniformer_base"])
@pytest.mark.parametrize("frames", [8, 16, 32])
def test_uniformer_matches_fvcore_exactly(model_name, frames):
    ref = _ref_uniformer(model_name, frames)
    report = count_flops(_uniformer(model_name), ref["input_shape"])  # family default: norms in
    assert report.include_norms
    assert report.gflops == pytest.approx(ref["gflops_fvcore_FlopCountAnalysis"], abs=1e-6)
    assert report.gmacs_raw == pytest.approx(ref["gflops_torch_FlopCounterMode_div2"], abs=1e-6)
    assert report.by_kind == pytest.approx(ref["gflops_fvcore_by_operator"], abs=1e-6)
    assert report.params == ref["params_400cls"]
    if "gflops_fvcore_by_top_module" in ref:
        expected = {k: v for k, v in ref["gflops_fvcore_by_top_module"].items() if v}
        got = {k: v for k, v in report.by_module.items() if v}
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("model_name", "frames", "published"),
    [("uniformer_small", 16, 41.8), ("uniformer_base", 16, 96.7), ("uniformer_base", 32, 259.0)],
)
def test_uniformer_reproduces_published_gflops(model_name, frames, published):
    ref = _ref_uniformer(model_name, frames)
    assert ref["published_gflops_per_view"] == pytest.approx(published, abs=0.05)
    report = count_flops(_uniformer(model_name), (1, 3, frames, 224, 224))
    assert abs(report.gflops / published - 1) < 0.005


@pytest.mark.parametrize(
    ("img", "frames", "paper_tflops_3_views"), [(224, 8, 0.59), (448, 16, 5.11), (224, 96, 7.14)]
)
def test_timesformer_reproduces_published_gflops(img, frames, paper_tflops_3_views):
    shape = [1, 3, frames, img, img]
    ref = _ref_timesformer(shape)
    assert ref["paper_total_TFLOPs_3_views"] == paper_tflops_3_views
    model = _timesformer(img, frames)
    report = count_flops(model, shape)  # family default: no LayerNorm
    assert not report.include_norms
    assert report.gflops == pytest.approx(ref["fvcore_without_layer_norm_GMAC"], abs=0.006)
    assert abs(report.gflops / ref["paper_per_view_G"] - 1) < 0.005
    assert round(3 * report.gflops / 1000, 2) == paper_tflops_3_views
    with_ln = count_flops(model, shape, include_norms=True)
    assert with_ln.gflops == pytest.approx(ref["fvcore_FlopCountAnalysis_total_GMAC"], abs=0.006)
    assert report.params == ref["params"]


def test_timesformer_breakdown_matches_reference():
    ref = _ref_timesformer([1, 3, 8, 224, 224])
    report = count_flops(_timesformer(224, 8), (1, 3, 8, 224, 224), include_norms=True)
    for name, value in ref["fvcore_by_module_G_block0"].items():
        assert report.by_module_tree[name] == pytest.approx(value, abs=1e-4), name
    assert set(report.by_module) == {"patch_embed", "blocks", "norm", "head"}
    assert sum(report.by_module.values()) == pytest.approx(report.gflops, rel=1e-12)
    assert report.by_kind == pytest.approx(ref["fvcore_by_operator_G"], abs=1e-3)


@pytest.mark.parametrize(
    ("model_name", "expected"), [("uniformer_small", 21_400_400), ("uniformer_base", 49_813_200)]
)
def test_uniformer_params(model_name, expected):
    assert count_params(_uniformer(model_name)) == expected


def test_timesformer_params():
    assert count_params(_timesformer(224, 8)) == 121_566_352
    assert count_params(_timesformer(224, 8, num_classes=174)) == _ref_timesformer([1, 3, 8, 224, 224], 174)["params"]


# ------------------------------------------------------------------------------ zoo and CLI
def test_flops_for_zoo_model_at_its_protocol():
    from uniformer.flops import flops_for

    result = flops_for("uniformer_small_k400_16x8")
    ref = _ref_uniformer("uniformer_small", 16)
    assert result.input_shape == (1, 3, 16, 224, 224)
    assert result.num_views == 4 and result.views == "4x1"
    assert result.gflops_per_view == pytest.approx(ref["gflops_fvcore_FlopCountAnalysis"], abs=1e-6)
    assert result.gflops_total == pytest.approx(4 * ref["gflops_fvcore_FlopCountAnalysis"], abs=1e-5)
    assert result.published_gflops_per_view == pytest.approx(41.8)
    assert abs(result.diff_pct) < 0.5
    assert result.report.params == ref["params_400cls"]


@pytest.mark.slow
def test_flops_for_timesformer_three_views_and_overrides():
    from uniformer.flops import flops_for

    result = flops_for("timesformer_base_k400_8x32")
    assert result.num_views == 3
    assert round(result.gflops_total / 1000, 2) == 0.59  # the paper's 0.59 TFLOPs for 3 views
    override = flops_for("timesformer_base_k400_8x32", frames=16)
    assert override.input_shape == (1, 3, 16, 224, 224)
    assert override.published_gflops_per_view is None and override.diff_pct is None
    assert override.gflops_per_view > 2 * result.gflops_per_view  # more tokens, longer temporal attention


def test_flops_for_unknown_model_is_a_typed_error():
    from uniformer.errors import UnknownModelError
    from uniformer.flops import flops_for

    with pytest.raises(UnknownModelError):
        flops_for("uniformer_tiny_k400")


@pytest.mark.slow
def test_cli_table_and_json(capsys):
    from uniformer.flops import main

    assert main(["uniformer_base_k400_32x4"]) == 0
    table = capsys.readouterr().out
    assert "uniformer_base_k400_32x4" in table and "32×224" in table and "258.63" in table and "259.00" in table
    assert main(["timesformer_large_k400_96x4", "--json", "--norms"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    ref = _ref_timesformer([1, 3, 96, 224, 224])
    assert row["include_norms"] is True
    assert row["gflops_per_view"] == pytest.approx(ref["fvcore_FlopCountAnalysis_total_GMAC"], abs=0.006)
    assert row["input_shape"] == [1, 3, 96, 224, 224] and row["params"] == ref["params"]


def test_cli_reports_bad_names_in_one_line(capsys):
    from uniformer.flops import main

    assert main(["not_a_model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
