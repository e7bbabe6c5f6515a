"""Inference-time rewrites (``uniformer.models.optimize``): same logits, caller's model untouched."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from benchmarks.inference import randomise_bn  # the one randomiser: benchmarks and tests
from tests.conftest import FIXTURES
from uniformer.models.layers import attention_capture
from uniformer.models.optimize import (
    fold_batchnorm,
    fold_bn_into_conv,
    optimize_for_inference,
    to_channels_last_3d,
)
from uniformer.models.timesformer import TimeSformer
from uniformer.models.uniformer import LocalBlock, UniFormer


@pytest.fixture(scope="module")
def golden() -> tuple[dict, UniFormer]:
    fix = torch.load(FIXTURES / "uniformer_golden_small.pt", map_location="cpu", weights_only=True)
    model = UniFormer(**fix["config"]).eval()
    model.load_state_dict(fix["state_dict"])
    return fix, model


_randomise_bn = randomise_bn  # non-trivial BatchNorm statistics, so folding has work to do


def _tiny(**kw) -> UniFormer:
    torch.manual_seed(0)
    return _randomise_bn(UniFormer(depth=[2, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16,
                                   num_classes=7, **kw).eval())


@pytest.mark.slow
def test_folding_matches_the_golden_logits(golden):
    fix, model = golden
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    with torch.no_grad():
        ref = model(fix["input"])
        out = folded(fix["input"])
    assert (out - ref).abs().max() < 1e-4
    assert (out - fix["logits"]).abs().max() < 1e-4
    n_local = len(model.local_blocks())
    assert folded.folded_batchnorms == 2 * n_local
    for name, blk in folded.local_blocks().items():
        assert isinstance(blk.norm1, nn.Identity) and isinstance(blk.norm2, nn.Identity), name
    # the caller's model is untouched (a copy was folded)
    assert all(isinstance(b.norm1, nn.BatchNorm3d) for b in model.local_blocks().values())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [{}, {"split": True, "std": True}])
def test_folding_is_exact_with_nontrivial_statistics(kw):
    model = _tiny(**kw)
    x = torch.randn(2, 3, 8, 64, 64)
    folded = fold_batchnorm(model)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert ref.abs().max() > 0.1  # the statistics really matter for these logits
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # folding twice is a no-op, not a double application
    again = fold_batchnorm(folded)
    with torch.no_grad():
        torch.testing.assert_close(again(x), ref, rtol=1e-4, atol=1e-4)
    assert again.folded_batchnorms == folded.folded_batchnorms


def test_inplace_folding_and_eval_mode():
    model = _tiny().train()
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        ref = model.eval()(x)
    model.train()
    same = fold_batchnorm(model, inplace=True)
    assert same is model and not model.training  # folded with running stats, so eval semantics
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)


def test_attention_maps_survive_folding():
    model = _tiny()
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad(), attention_capture(model) as a, attention_capture(folded) as b:
        model(x)
        folded(x)
        assert a.keys() == b.keys() and a
        for name in a:
            torch.testing.assert_close(b[name].attn_map, a[name].attn_map, rtol=1e-4, atol=1e-5)


def test_models_without_local_blocks_are_unchanged():
    torch.manual_seed(0)
    ts = TimeSformer(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_frames=2,
                     num_classes=5).eval()
    x = torch.randn(1, 3, 2, 32, 32)
    folded = fold_batchnorm(ts)
    assert folded.folded_batchnorms == 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ts(x))


def test_fold_bn_into_conv_handles_missing_bias_and_rejects_the_rest():
    torch.manual_seed(0)
    bn = _randomise_bn(nn.Sequential(nn.BatchNorm3d(6)))[0].eval()
    conv = nn.Conv3d(6, 4, 1, bias=False)
    x = torch.randn(2, 6, 3, 5, 5)
    with torch.no_grad():
        ref = conv(bn(x))
        fold_bn_into_conv(bn, conv)
        torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)
    assert conv.bias is not None
    linear = nn.Linear(6, 3)
    with torch.no_grad():
        ref = linear(bn(x).movedim(1, -1))
        fold_bn_into_conv(bn, linear)
        torch.testing.assert_close(linear(x.movedim(1, -1)), ref, rtol=1e-5, atol=1e-5)
    for bad in (nn.Conv3d(6, 6, 3, padding=1), nn.Conv3d(6, 6, 1, groups=6), nn.Conv3d(6, 6, 1, padding=1)):
        with pytest.raises(ValueError):
            fold_bn_into_conv(bn, bad)
    with pytest.raises(TypeError):
        fold_bn_into_conv(bn, nn.GELU())
    with pytest.raises(ValueError, match="channels"):
        fold_bn_into_conv(bn, nn.Conv3d(5, 4, 1))


def test_channels_last_gives_the_same_logits():
    model = _tiny()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        ref = model(x)
    cl, xcl = to_channels_last_3d(copy.deepcopy(model), x)
    assert xcl.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous(
        memory_format=torch.channels_last_3d)
    blk = next(iter(cl.local_blocks().values()))
    assert blk.attn.weight.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(cl(xcl), ref, rtol=1e-4, atol=1e-4)
    assert to_channels_last_3d(cl)[1] is None


@pytest.mark.slow
@pytest.mark.parametrize("fold_bn,channels_last", [(True, False), (False, True), (True, True), (False, False)])
def test_optimize_for_inference_returns_an_equivalent_copy(fold_bn, channels_last):
    model = _tiny().train()
    model.zoo_entry, model.label_names = "entry", ["a"] * 7
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        ref = copy.deepcopy(model).eval()(x)
    out_model = optimize_for_inference(model, fold_bn=fold_bn, channels_last=channels_last)
    assert out_model is not model and not out_model.training
    assert model.training and all(isinstance(b, LocalBlock) and isinstance(b.norm1, nn.BatchNorm3d)
                                  for b in model.local_blocks().values())
    assert out_model.zoo_entry == "entry" and out_model.label_names == ["a"] * 7
    with torch.no_grad():
        torch.testing.assert_close(out_model(x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compile_option_wraps_a_folded_copy():
    model = _tiny()
    model.label_names = ["x"] * 7
    x = torch.randn(1, 3, 8, 64, 64)
    compiled = optimize_for_inference(model, compile=True, compile_kwargs={"backend": "eager"})
    assert isinstance(compiled.core, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.label_names == ["x"] * 7 and compiled.folded_batchnorms == 2 * 3
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
