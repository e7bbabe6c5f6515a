"""TimeSformer equals the official ``VisionTransformer`` (golden fixtures from the official code)."""
from __future__ import annotations

import json

import pytest
import timm
import torch

from uniformer.errors import CheckpointError
from uniformer.models.checkpoint import load_checkpoint
from uniformer.models.layers import Attention, attention_capture
from uniformer.models.timesformer import (
    TimeSformer,
    checkpoint_filter_fn,
    hf_to_official_key,
    load_imagenet_vit,
)

TINY = dict(img_size=32, patch_size=16, num_classes=5, embed_dim=32, depth=2, num_heads=2, num_frames=3,
            drop_path_rate=0.0)


@pytest.fixture(scope="module")
def golden(fixtures_dir):
    return torch.load(fixtures_dir / "timesformer_golden_small.pt")


@pytest.fixture(scope="module")
def keys_json(fixtures_dir):
    return json.loads((fixtures_dir / "timesformer_keys_base_divst_8x224_k400.json").read_text())


@pytest.fixture(scope="module")
def model(golden):
    m = TimeSformer(**golden["config"])
    m.load_state_dict(golden["state_dict"], strict=True)
    return m.eval()


def _meta_model(**kwargs) -> TimeSformer:
    with torch.device("meta"):
        return TimeSformer(**kwargs)


# ------------------------------------------------------------------------------ golden values
def test_state_dict_keys_and_order_match_fixture(model, golden):
    assert list(model.state_dict()) == list(golden["state_dict"])


def test_logits_features_hidden_states_match_official(model, golden):
    x = golden["input"]
    with torch.inference_mode():
        torch.testing.assert_close(model(x), golden["logits"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.forward_features(x), golden["features"], atol=1e-4, rtol=1e-4)
        hidden = model.forward_hidden_states(x)
    assert len(hidden) == len(golden["hidden_states"]) == golden["config"]["depth"] + 1
    for ours, ref in zip(hidden, golden["hidden_states"]):
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["frames_8", "frames_3", "size_96"])
def test_resized_embeddings_match_official(model, golden, case):
    c = golden["extra_cases"][case]
    with torch.inference_mode():
        torch.testing.assert_close(model(c["input"]), c["logits"], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_float64_matches_official_float64(golden):
    m = TimeSformer(**golden["config"]).double().eval()
    m.load_state_dict(golden["state_dict"], strict=True)
    cases = [(golden["input"], golden["logits_float64"])]
    cases += [(c["input"], c["logits_float64"]) for c in golden["extra_cases"].values()]
    with torch.inference_mode():
        for x, ref in cases:
            torch.testing.assert_close(m(x.double()), ref, atol=1e-9, rtol=1e-9)


# --------------------------------------------------------------------------- attention maps
def test_captured_maps_match_official_sample0(model, golden):
    cfg = golden["config"]
    T = cfg["num_frames"]
    N = (cfg["img_size"] // cfg["patch_size"]) ** 2
    B = golden["input"].shape[0]
    with torch.inference_mode(), attention_capture(model) as mods:
        model(golden["input"])
        for i in range(cfg["depth"]):
            spatial = mods[f"blocks.{i}.attn"].attn_map
            temporal = mods[f"blocks.{i}.temporal_attn"].attn_map
            assert spatial.shape == (B * T, cfg["num_heads"], 1 + N, 1 + N)  # row b*T + t
            assert temporal.shape == (B * N, cfg["num_heads"], T, T)  # row b*N + n
            torch.testing.assert_close(spatial[:T], golden["spatial_attn"][i], atol=1e-5, rtol=0)
            torch.testing.assert_close(temporal[:N], golden["temporal_attn"][i], atol=1e-5, rtol=0)


def test_sdpa_and_capture_paths_agree_and_no_map_is_kept(model, golden):
    x = golden["input"]
    with torch.inference_mode():
        fast = model(x)
        assert all(m.attn_map is None for m in model.modules() if isinstance(m, Attention))
        with attention_capture(model):
            slow = model(x)
        assert all(m.attn_map is None for m in model.modules() if isinstance(m, Attention))
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- checkpoints
def test_hf_names_load_through_filter(model, golden, keys_json):
    hf = keys_json["hf_transformers_port"]
    to_hf = {ours: theirs for ours, theirs in hf["key_map"]}
    # Rename the small golden weights with the base model's map (block indices 0..depth-1 exist in it).
    hf_sd = {to_hf[k]: v for k, v in golden["state_dict"].items()}
    order = {k: i for i, k in enumerate(hf["hf_state_dict_order"])}
    hf_sd = dict(sorted(hf_sd.items(), key=lambda kv: order[kv[0]]))  # HF's own order
    m = TimeSformer(**golden["config"]).eval()
    sd = checkpoint_filter_fn(hf_sd, m)
    assert list(sd) == list(golden["state_dict"])
    m.load_state_dict(sd, strict=True)
    with torch.inference_mode():
        torch.testing.assert_close(m(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)


def test_hf_rename_table_covers_full_base_map(keys_json):
    for ours, theirs in keys_json["hf_transformers_port"]["key_map"]:
        assert hf_to_official_key(theirs) == ours


def test_official_pyth_checkpoint_gives_golden_logits(fixtures_dir, golden):
    ckpt = torch.load(fixtures_dir / "timesformer_checkpoint_small_official_format.pyth", weights_only=True)
    m = TimeSformer(**golden["config"]).eval()
    m.load_state_dict(checkpoint_filter_fn(ckpt, m), strict=True)
    with torch.inference_mode():
        torch.testing.assert_close(m(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)


def test_pyth_through_project_loader_and_frame_mismatch_is_explained(fixtures_dir, golden):
    path = fixtures_dir / "timesformer_checkpoint_small_official_format.pyth"
    m = load_checkpoint(TimeSformer(**golden["config"]), path, filter_fn=checkpoint_filter_fn).eval()
    with torch.inference_mode():
        torch.testing.assert_close(m(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)
    with pytest.raises(CheckpointError, match="trained on 4 frames"):
        load_checkpoint(TimeSformer(**{**golden["config"], "num_frames": 8}), path, filter_fn=checkpoint_filter_fn)


@pytest.mark.parametrize("wrap", ["module", "model", "state_dict"])
def test_other_containers_unwrap(golden, wrap):
    sd = golden["state_dict"]
    obj = {f"module.{k}": v for k, v in sd.items()} if wrap == "module" else {wrap: dict(sd), "epoch": 3}
    out = checkpoint_filter_fn(obj, TimeSformer(**golden["config"]))
    assert list(out) == list(sd)
    assert all(torch.equal(out[k], sd[k]) for k in sd)


def test_filter_adds_nothing(golden):
    sd = dict(golden["state_dict"])
    del sd["blocks.1.temporal_fc.weight"]
    m = TimeSformer(**golden["config"])
    out = checkpoint_filter_fn(sd, m)
    assert "blocks.1.temporal_fc.weight" not in out
    with pytest.raises(RuntimeError, match="temporal_fc"):
        m.load_state_dict(out, strict=True)


# -------------------------------------------------------------------------- full-size shapes
def test_base_on_meta_matches_manifest(keys_json):
    m = _meta_model()
    assert [[k, list(v.shape)] for k, v in m.state_dict().items()] == keys_json["keys"]
    assert sum(p.numel() for p in m.parameters()) == keys_json["num_params"] == 121_566_352
    assert not list(m.buffers())


@pytest.mark.slow
def test_released_variants_shapes_and_params(keys_json):
    for name, v in keys_json["variants"].items():
        m = _meta_model(**v["constructor_overrides"])
        sd = m.state_dict()
        for key, shape in v["shape_overrides"].items():
            assert list(sd[key].shape) == shape, (name, key)
        assert sum(p.numel() for p in m.parameters()) == v["num_params"], name


@pytest.mark.parametrize("attention_type", ["space_only", "joint_space_time"])
def test_other_attention_types_keys_and_params(keys_json, attention_type):
    ref = keys_json["other_attention_types"][attention_type]
    m = _meta_model(attention_type=attention_type)
    absent = {k.replace("{i}", str(i)) for k in ref["keys_absent_vs_divided"] for i in range(12)}
    expected = [k for k, _ in keys_json["keys"] if k not in absent]
    assert list(m.state_dict()) == expected
    assert len(expected) == ref["num_keys"]
    assert sum(p.numel() for p in m.parameters()) == ref["num_params"]


# ------------------------------------------------------------------------ other behaviour
def test_space_only_and_joint_run_on_tiny_input():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 32, 32)
    for attention_type in ("space_only", "joint_space_time"):
        m = TimeSformer(attention_type=attention_type, **TINY).eval()
        for p in m.parameters():  # non-trivial weights (LayerNorms stay 1/0) so frame order can matter
            if p.ndim > 1:
                torch.nn.init.normal_(p, std=0.5)
        with torch.inference_mode():
            out = m(x)
            reversed_out = m(x.flip(2))
            hidden = m.forward_hidden_states(x)
        assert out.shape == (2, 5) and torch.isfinite(out).all()
        assert len(hidden) == TINY["depth"] + 1
        if attention_type == "space_only":  # frames are averaged, no time embedding
            assert hidden[0].shape == (2 * 3, 1 + 4, 32)
            torch.testing.assert_close(out, reversed_out, atol=1e-5, rtol=1e-5)
        else:  # one sequence over all tokens, time embedding makes order matter
            assert hidden[0].shape == (2, 1 + 4 * 3, 32)
            assert (out - reversed_out).abs().max() > 0.05


def test_official_init():
    torch.manual_seed(0)
    m = TimeSformer(embed_dim=64, depth=3, num_heads=4, img_size=64, num_frames=4, num_classes=7)
    assert torch.count_nonzero(m.time_embed) == 0
    for blk in m.blocks:
        assert torch.count_nonzero(blk.temporal_fc.weight) == 0
        assert torch.count_nonzero(blk.temporal_fc.bias) == 0
        assert torch.count_nonzero(blk.attn.qkv.bias) == 0
        assert torch.equal(blk.norm1.weight, torch.ones(64))
    w = m.blocks[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002
    assert abs(m.pos_embed.std().item() - 0.02) < 0.004
    assert m.no_weight_decay() == {"pos_embed", "cls_token", "time_embed"}
    assert all(b.norm1.eps == 1e-6 and b.temporal_norm1.eps == 1e-6 for b in m.blocks)


@pytest.mark.slow
def test_gradient_checkpointing_gives_same_gradients(golden):
    x = golden["input"]
    grads = []
    for enable in (False, True):
        m = TimeSformer(**golden["config"])
        m.load_state_dict(golden["state_dict"], strict=True)
        m.set_grad_checkpointing(enable)
        m(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-5)


def test_classifier_api(golden):
    m = TimeSformer(**golden["config"]).eval()
    assert m.get_classifier() is m.head
    assert (m.num_classes, m.num_features, m.embed_dim, m.patch_size) == (10, 64, 64, 16)
    x = golden["input"][:1]
    with torch.inference_mode():
        feats = m.forward_features(x)
        assert torch.equal(m.forward_head(feats, pre_logits=True), feats)
        m.reset_classifier(3)
        assert m(x).shape == (1, 3) and m.num_classes == 3
        m.reset_classifier(0)
        assert torch.equal(m(x), feats)


def test_bad_arguments_raise_clear_errors():
    m = TimeSformer(**TINY)
    with pytest.raises(ValueError, match="frames, height, width"):
        m(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="smaller than one"):
        m(torch.randn(1, 3, 2, 8, 8))
    with pytest.raises(TypeError, match="num_frame"):
        TimeSformer(num_frame=8, **TINY)
    with pytest.raises(ValueError, match="attention_type"):
        TimeSformer(attention_type="divided", **{k: v for k, v in TINY.items()})
    TimeSformer(global_pool="token", drop_block_rate=None, **TINY)  # timm pass-through is tolerated


# -------------------------------------------------------------------------- ImageNet init
def _tiny_vit(img_size: int, num_classes: int) -> torch.nn.Module:
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=img_size, embed_dim=32, depth=2,
                            num_heads=2, num_classes=num_classes)
    for p in vit.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return vit.eval()


def test_imagenet_vit_init_equals_2d_vit_on_a_static_clip():
    """With temporal_fc and time_embed at zero, a clip of one repeated frame must give the ViT's logits."""
    torch.manual_seed(0)
    vit = _tiny_vit(32, num_classes=5)
    m = TimeSformer(**TINY).eval()
    result = load_imagenet_vit(m, vit.state_dict())
    assert set(result.missing_keys) == {"time_embed"} | {
        f"blocks.{i}.temporal_fc.{p}" for i in range(2) for p in ("weight", "bias")}
    assert result.unexpected_keys == []
    for blk, vblk in zip(m.blocks, vit.blocks):
        assert torch.equal(blk.temporal_attn.qkv.weight, vblk.attn.qkv.weight)
        assert torch.equal(blk.temporal_norm1.weight, vblk.norm1.weight)
    frame = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(m(frame.unsqueeze(2).expand(-1, -1, 3, -1, -1)), vit(frame),
                                   atol=1e-5, rtol=1e-5)


def test_imagenet_vit_init_drops_head_and_resizes_pos_embed_1d():
    torch.manual_seed(0)
    vit_sd = _tiny_vit(32, num_classes=9).state_dict()  # 2x2 grid -> 5 positions, 9 classes
    m = TimeSformer(**{**TINY, "img_size": 64})  # 4x4 grid -> 17 positions, 5 classes
    head_before = m.head.weight.clone()
    result = load_imagenet_vit(m, vit_sd)
    assert {"head.weight", "head.bias"} <= set(result.missing_keys)
    assert torch.equal(m.head.weight, head_before)
    src = vit_sd["pos_embed"][0]
    # 1-D legacy nearest over the flattened 4 patches -> 16: index floor(i * 4 / 16) = i // 4.
    expected = torch.cat([src[:1], src[1:][torch.arange(16) // 4]])
    assert torch.equal(m.pos_embed.data[0], expected)


def test_imagenet_vit_init_rejects_wrong_width():
    vit_sd = _tiny_vit(32, num_classes=5).state_dict()
    with pytest.raises(CheckpointError):
        load_imagenet_vit(TimeSformer(**{**TINY, "embed_dim": 48, "num_heads": 2}), vit_sd)


def test_time_embed_std_for_training_from_scratch():
    """A non-zero time embedding makes frame order visible from the first step (from-scratch runs)."""
    torch.manual_seed(0)
    m = TimeSformer(embed_dim=64, depth=2, num_heads=4, img_size=64, num_frames=8, num_classes=3,
                    time_embed_std=0.02)
    assert abs(m.time_embed.std().item() - 0.02) < 0.006
    assert torch.count_nonzero(m.blocks[0].temporal_fc.weight) == 0  # the rest stays official
    x = torch.randn(1, 3, 8, 64, 64)
    m.eval()
    m.blocks[0].temporal_fc.weight.data.normal_(std=0.02)  # let the temporal branch reach the output
    with torch.no_grad():
        assert (m(x) - m(x.flip(2))).abs().max() > 1e-4
    torch.manual_seed(0)
    zero = TimeSformer(embed_dim=64, depth=2, num_heads=4, img_size=64, num_frames=8, num_classes=3)
    assert torch.count_nonzero(zero.time_embed) == 0
    zero.load_state_dict(m.state_dict())  # same keys: checkpoints of either init load in both
