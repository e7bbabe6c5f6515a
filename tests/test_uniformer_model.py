"""UniFormer video model against the official golden fixtures and key manifests.

Every ``tests/fixtures/uniformer_golden*.pt`` (format: shared/reference/uniformer/README.md) is
checked; dropping in another fixture of the same format extends the suite.
"""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

from uniformer.errors import CheckpointError
from uniformer.models.layers import attention_capture, attention_modules
from uniformer.models.uniformer import (
    GlobalBlock,
    LocalBlock,
    SplitGlobalBlock,
    UniFormer,
    checkpoint_filter_fn,
)

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = sorted(FIXTURES.glob("uniformer_golden*.pt"))
ATTN_KEY = re.compile(r"(global|temporal|spatial)_attn_stage(\d)_block(\d+)")


@cache
def _golden(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _model(fix: dict, dtype: torch.dtype = torch.float32) -> UniFormer:
    model = UniFormer(**fix["config"])
    model.load_state_dict(fix["state_dict"], strict=True)
    return model.to(dtype).eval()


@pytest.fixture(scope="module", params=GOLDEN, ids=lambda p: p.stem)
def golden(request) -> tuple[dict, UniFormer, dict]:
    fix = _golden(request.param)
    model = _model(fix)
    with torch.no_grad():
        out = model.forward_stages(fix["input"])
    return fix, model, out


def test_golden_fixtures_present():
    names = {p.name for p in GOLDEN}
    assert {"uniformer_golden_small.pt", "uniformer_golden_small_split_std.pt"} <= names


def test_state_dict_keys_and_order_match_official(golden):
    fix, model, _ = golden
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, tuple(v.shape)) for k, v in fix["state_dict"].items()]


def test_logits_match(golden):
    fix, model, out = golden
    torch.testing.assert_close(out["logits"], fix["logits"], atol=5e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(fix["input"]), fix["logits"], atol=5e-5, rtol=0)
        # SlowFast convention: a one-element list of pathways.
        torch.testing.assert_close(model([fix["input"]]), out["logits"], atol=0, rtol=0)


@pytest.mark.slow
def test_logits_match_float64(golden):
    fix, _, _ = golden
    model = _model(fix, torch.float64)
    with torch.no_grad():
        logits = model(fix["input"].double())
    torch.testing.assert_close(logits, fix["logits_float64"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("key", ["stage_outputs", "patch_embed_outputs"])
def test_intermediate_outputs_match(golden, key):
    fix, _, out = golden
    assert len(out[key]) == len(fix[key]) == 4
    for ours, ref in zip(out[key], fix[key]):
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_features_and_pooled_match(golden):
    fix, model, out = golden
    torch.testing.assert_close(out["features"], fix["features"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["pooled"], fix["pooled"], atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        feats = model.forward_features(fix["input"])
        torch.testing.assert_close(feats, out["features"], atol=0, rtol=0)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), out["pooled"], atol=0, rtol=0)


def test_local_affinity_accessors(golden):
    fix, model, _ = golden
    keys = [k for k in fix if k.startswith("local_affinity_")]
    assert keys
    for k in keys:
        s, i = map(int, re.fullmatch(r"local_affinity_stage(\d)_block(\d+)", k).groups())
        kernel = model.local_affinity(s, i)
        assert kernel.shape[1:] == (1, 5, 5, 5)
        torch.testing.assert_close(kernel, fix[k], atol=0, rtol=0)
        assert model.local_blocks()[f"blocks{s}.{i}"].local_affinity is kernel
    with pytest.raises(ValueError):
        model.local_affinity(3, 0)


def _sample0_map(kind: str, attn_map: torch.Tensor, batch: int) -> torch.Tensor:
    """Sample 0 of a captured map, in the fixture's layout."""
    if kind == "global":  # (B, heads, L, L)
        return attn_map[0]
    # temporal: (B*H'W', heads, T', T'); spatial: (B*T', heads, H'W', H'W'): batch-major.
    return attn_map.reshape(batch, -1, *attn_map.shape[1:])[0]


def test_attention_maps_match(golden):
    fix, model, out = golden
    keys = [k for k in fix if ATTN_KEY.fullmatch(k)]
    assert keys
    batch = fix["input"].shape[0]
    with torch.no_grad(), attention_capture(model) as modules:
        logits = model(fix["input"])
        for k in keys:
            kind, s, i = ATTN_KEY.fullmatch(k).groups()
            name = f"blocks{s}.{i}.{'t_attn' if kind == 'temporal' else 'attn'}"
            ours = _sample0_map(kind, modules[name].attn_map, batch)
            assert ours.shape == fix[k].shape, k
            torch.testing.assert_close(ours, fix[k], atol=1e-5, rtol=0)
            torch.testing.assert_close(ours.sum(-1), torch.ones_like(ours.sum(-1)))
        # every attention module of the model is covered by the fixture
        assert len(keys) == len(modules)
    # the explicit-softmax path and the SDPA path compute the same function
    torch.testing.assert_close(logits, out["logits"], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_no_attention_map_kept_without_capture(golden):
    fix, model, _ = golden
    with torch.no_grad():
        model(fix["input"])
    modules = dict(attention_modules(model))
    assert modules and all(m.attn_map is None and not m.capture for m in modules.values())
    with torch.no_grad(), attention_capture(model):
        model(fix["input"])
        assert all(m.attn_map is not None for m in modules.values())
    assert all(m.attn_map is None and not m.capture for m in modules.values())


@pytest.mark.slow
def test_checkpoint_filter_fn_unwraps_and_fills_buffers(golden):
    fix, _, out = golden
    wrapped = {
        "epoch": 3,
        "model_state": {
            f"module.{k}": v for k, v in fix["state_dict"].items() if not k.endswith("num_batches_tracked")
        },
    }
    model = UniFormer(**fix["config"])
    model.load_state_dict(checkpoint_filter_fn(wrapped, model), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(fix["input"]), out["logits"], atol=0, rtol=0)
    with pytest.raises(CheckpointError):
        checkpoint_filter_fn({"epoch": 3}, model)


# --------------------------------------------------------------------------- full-size models
@pytest.mark.parametrize(
    "depth, manifest, params",
    [
        ([3, 4, 8, 3], "uniformer_keys_small_k400.json", 21_400_400),
        ([5, 8, 20, 7], "uniformer_keys_base_k400.json", 49_813_200),
    ],
    ids=["S", "B"],
)
def test_full_size_keys_shapes_and_params(depth, manifest, params):
    with torch.device("meta"):
        model = UniFormer(depth=depth, num_classes=400)
    expected = [(k, tuple(shape)) for k, shape in json.loads((FIXTURES / manifest).read_text())]
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.num_features == 512 and model.embed_dim == [64, 128, 320, 512]
    assert model.num_heads[2:] == [5, 8]
    kinds = [type(b) for s in model.stages for b in s]
    assert kinds == [LocalBlock] * sum(depth[:2]) + [GlobalBlock] * sum(depth[2:])


# --------------------------------------------------------------------------- tiny-config behaviour
TINY = dict(depth=[1, 1, 1, 1], embed_dim=[8, 16, 32, 64], head_dim=16, num_classes=3)


def test_any_clip_size_and_std_keeps_time():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 40, 72)
    for std in (False, True):
        model = UniFormer(**TINY, std=std).eval()
        with torch.no_grad():
            out = model.forward_stages(x)
        # time halved once (ceil), spatial /4 then /2 per stage (floored)
        assert [tuple(t.shape[2:]) for t in out["stage_outputs"]] == [(3, 10, 18), (3, 5, 9), (3, 2, 4), (3, 1, 2)]
        assert out["logits"].shape == (1, 3)


def test_bad_input_raises_clear_errors():
    model = UniFormer(**TINY).eval()
    for bad in (torch.randn(3, 8, 64, 64), torch.randn(1, 1, 8, 64, 64), torch.randn(1, 3, 4, 16, 16),
                [torch.randn(1, 3, 4, 64, 64)] * 2):
        with pytest.raises(ValueError, match="UniFormer"):
            model(bad)


def test_constructor_kwargs():
    UniFormer(**TINY, pretrained_cfg={"num_classes": 3}, global_pool="avg", cache_dir=None)
    with pytest.raises(TypeError, match="drop_path"):
        UniFormer(**TINY, drop_path=0.1)
    with pytest.raises(ValueError):
        UniFormer(**TINY, global_pool="max")
    with pytest.raises(ValueError):
        UniFormer(depth=[1, 1, 1, 1], embed_dim=[8, 16, 24, 64], head_dim=16)


def test_drop_path_is_linearly_spaced():
    model = UniFormer(**{**TINY, "depth": [1, 1, 2, 1]}, drop_path_rate=0.4)
    blocks = [b for s in model.stages for b in s]
    assert isinstance(blocks[0].drop_path, nn.Identity)
    rates = [b.drop_path.drop_prob for b in blocks[1:]]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_init():
    torch.manual_seed(0)
    model = UniFormer(**TINY, split=True)
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
        elif isinstance(m, nn.Linear) and ".t_attn." not in name:
            # trunc_normal_(std=0.02) as in the official init (timm's bounds are absolute, +-2)
            assert torch.all(m.bias == 0) and m.weight.std().item() == pytest.approx(0.02, rel=0.25), name
    # official split init: the temporal branch starts as qkv = 0 and proj.weight = 1
    t_attn = model.blocks3[0].t_attn
    assert isinstance(model.blocks3[0], SplitGlobalBlock)
    assert torch.all(t_attn.qkv.weight == 0) and torch.all(t_attn.qkv.bias == 0)
    assert torch.all(t_attn.proj.weight == 1) and torch.all(t_attn.proj.bias == 0)


def _checkpointed_grads(model: UniFormer, x: torch.Tensor, monkeypatch) -> tuple[int, torch.Tensor]:
    """(number of blocks run under torch.utils.checkpoint, flattened parameter gradients)."""
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    model.zero_grad()
    model(x).sum().backward()
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", real)
    return len(calls), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.slow
def test_gradient_checkpointing(monkeypatch):
    torch.manual_seed(0)
    model = UniFormer(**{**TINY, "depth": [2, 1, 2, 1]}, use_checkpoint=True, checkpoint_num=[1, 0, 2, 0])
    x = torch.randn(2, 3, 2, 32, 32)
    n_official, g_official = _checkpointed_grads(model, x, monkeypatch)
    assert n_official == 3  # first checkpoint_num[i] blocks of stage i
    model.set_grad_checkpointing(True)
    n_all, g_all = _checkpointed_grads(model, x, monkeypatch)
    assert n_all == 6
    model.set_grad_checkpointing(False)
    n_none, g_none = _checkpointed_grads(model, x, monkeypatch)
    assert n_none == 0
    # memory only: identical gradients
    torch.testing.assert_close(g_official, g_none)
    torch.testing.assert_close(g_all, g_none)


def test_classifier_reset():
    model = UniFormer(**TINY).eval()
    x = torch.randn(1, 3, 2, 32, 32)
    assert model.get_classifier() is model.head and model.no_weight_decay() == set()
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.head.weight.shape == (7, 64)
    model.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x), pre_logits=True))
    assert model(x).shape == (1, 64)


def test_representation_size_pre_logits():
    model = UniFormer(**TINY, representation_size=24).eval()
    assert model.num_features == 24 and model.head.weight.shape == (3, 24)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(torch.randn(1, 3, 2, 32, 32)), pre_logits=True)
    assert pooled.shape == (1, 24) and pooled.abs().max() <= 1  # tanh
