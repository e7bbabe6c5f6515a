"""UniFormer's stage layout (``layout="LLGG"``: local or global MHRA per stage), on tiny models.

The default layout's exactness is covered by the golden fixtures in ``test_uniformer_model.py``;
here every other layout must build, train, round-trip its weights, and be understood by the
attention extraction, the metrics, the FLOP counter, the app and the trainer/evaluator.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from analysis.attention import anchor_attention, extract, map_names
from analysis.metrics import chance_locality, redundancy_table
from analysis.report import default_anchor_layers
from uniformer.errors import CheckpointError, ModelConfigError
from uniformer.flops import count_flops
from uniformer.models.uniformer import GlobalBlock, LocalBlock, SplitGlobalBlock, UniFormer

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUTS = ["LLLL", "LLLG", "LLGG", "LGGG", "GGGG", "GLGL"]
TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 48, 64), head_dim=16, num_classes=5)
CLIP = (2, 3, 4, 32, 32)  # token grids per stage: 2x8x8, 2x4x4, 2x2x2, 2x1x1




def _model(layout: str, seed: int = 0, **kw) -> UniFormer:
    torch.manual_seed(seed)
    return UniFormer(**{**TINY, **kw}, layout=layout)


def _clip(seed: int = 1) -> torch.Tensor:
    return torch.randn(*CLIP, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_builds_the_block_kind_of_each_stage(layout):
    model = _model(layout)
    assert model.layout == layout
    for letter, stage in zip(layout, model.stages):
        assert all(type(b) is (LocalBlock if letter == "L" else GlobalBlock) for b in stage)
    assert model(_clip()).shape == (2, 5)


def test_split_global_blocks_in_any_stage():
    model = _model("GGLG", split=True).eval()
    assert [type(s[0]) for s in model.stages] == [SplitGlobalBlock, SplitGlobalBlock, LocalBlock, SplitGlobalBlock]
    assert model(_clip()).shape == (2, 5)


def test_default_layout_is_llgg_with_the_same_keys():
    default, explicit = UniFormer(**TINY), UniFormer(**TINY, layout="LLGG")
    assert default.layout == "LLGG"
    assert list(default.state_dict()) == list(explicit.state_dict())
    assert any(k.startswith("blocks1.0.conv1.") for k in default.state_dict())
    assert any(k.startswith("blocks3.0.attn.qkv.") for k in default.state_dict())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_step_reaches_every_parameter(layout):
    model = _model(layout).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = nn.functional.cross_entropy(model(_clip()), torch.tensor([0, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    opt.step()
    assert not torch.equal(before["blocks1.0.pos_embed.weight"], model.blocks1[0].pos_embed.weight)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_state_dict_round_trip_is_exact(layout, tmp_path):
    from safetensors.torch import load_file, save_file

    src = _model(layout, seed=0)
    src.train()(_clip(2))  # move the BatchNorm running statistics away from their init
    src.eval()
    x = _clip()
    with torch.no_grad():
        want = src(x)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    for sd in (torch.load(path, weights_only=True), load_file(str(tmp_path / "w.safetensors"))):
        dst = _model(layout, seed=1)
        dst.load_state_dict(sd, strict=True)
        with torch.no_grad():
            assert torch.equal(dst.eval()(x), want)


def test_weights_of_another_layout_are_refused_with_the_layout_named():
    from uniformer.models.checkpoint import load_checkpoint, uniformer_layout
    from uniformer.models.uniformer import checkpoint_filter_fn

    sd = _model("GGGG").state_dict()
    assert uniformer_layout(sd) == "GGGG" and uniformer_layout(_model("GLLG").state_dict()) == "GLLG"
    with pytest.raises(CheckpointError, match="stage layout is GGGG but the model's is LLGG.*layout='GGGG'"):
        load_checkpoint(_model("LLGG"), sd, filter_fn=checkpoint_filter_fn)


@pytest.mark.parametrize("bad", ["LLG", "LLGGG", "LLGX", "", "L L G", None, 4, ["L", "L", "G", "G"]])
def test_bad_layout_is_one_clear_sentence(bad):
    with pytest.raises(ModelConfigError) as err:
        UniFormer(**TINY, layout=bad)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0
    assert "layout" in msg and repr(bad) in msg


def test_lower_case_layout_is_accepted():
    assert _model("gggg").layout == "GGGG"


def test_global_stage_width_must_fit_head_dim():
    UniFormer(depth=(1, 1, 1, 1), embed_dim=(8, 16, 32, 64), head_dim=16, layout="LLGG")  # local stage 1: fine
    with pytest.raises(ModelConfigError, match="stage 1 is global in layout 'GGGG'"):
        UniFormer(depth=(1, 1, 1, 1), embed_dim=(8, 16, 32, 64), head_dim=16, layout="GGGG")


# ------------------------------------------------------------------------------ analysis
def test_global_stage1_gives_maps_over_the_stage1_grid():
    model = _model("GGGG").eval()
    x = _clip()
    seen: dict[str, torch.Tensor] = {}
    hook = model.blocks1[0].attn.register_forward_pre_hook(lambda m, a: seen.setdefault("in", a[0].detach()))
    record = extract(model, x)
    hook.remove()
    assert map_names(model) == list(record.maps) == [f"global_attn_stage{s}_block0" for s in (1, 2, 3, 4)]
    name = "global_attn_stage1_block0"
    info = record.layers[name]
    assert (info.kind, info.stage, info.grid) == ("joint", 1, (2, 8, 8))
    attn = record.maps[name]
    assert attn.shape == (2, 1, 128, 128)  # 16 channels / head_dim 16 = 1 head, L = 2*8*8
    # the same softmax(q k^T) recomputed from the attention module's input
    mod = model.blocks1[0].attn
    q, k, _ = mod.qkv(seen["in"]).reshape(2, 128, 3, 1, 16).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(attn, (q @ k.transpose(-2, -1) * mod.scale).softmax(-1))
    with torch.no_grad():
        torch.testing.assert_close(record.logits, model(x))  # extraction does not change the output
    row = anchor_attention(record, name, (1, 7, 0))
    assert row.shape == (2, 8, 8) and row.sum().item() == pytest.approx(1.0)


def test_local_stage3_exposes_its_kernel():
    model = _model("LLLL").eval()
    record = extract(model, _clip())
    assert list(record.maps) == [f"local_affinity_stage{s}_block0" for s in (1, 2, 3, 4)]
    name = "local_affinity_stage3_block0"
    assert record.layers[name].grid == (2, 2, 2) and record.layers[name].kind == "local_affinity"
    assert record.maps[name].shape == (48, 1, 5, 5, 5)
    assert torch.equal(record.maps[name], model.local_affinity(3, 0))
    assert default_anchor_layers(record) == []  # no attention map to anchor


def test_metrics_per_layer_for_gggg():
    model = _model("GGGG").eval()
    attn = model.blocks1[0].attn
    with torch.no_grad():  # q = k = 0 in stage 1: exactly uniform attention there
        attn.qkv.weight[:32].zero_()
        attn.qkv.bias[:32].zero_()
    rows = redundancy_table(extract(model, _clip()))
    assert [(r.stage, r.kind, r.grid) for r in rows] == [
        (1, "joint", "2x8x8"), (2, "joint", "2x4x4"), (3, "joint", "2x2x2"), (4, "joint", "2x1x1")]
    assert [r.rel_depth for r in rows] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    first = rows[0]
    assert first.chance_locality == pytest.approx(chance_locality((2, 8, 8)))
    assert first.locality == pytest.approx(first.chance_locality)  # uniform map = uniform baseline
    assert first.entropy == pytest.approx(1.0)
    assert all(0.0 <= r.locality <= 1.0 for r in rows)
    assert rows[3].locality == pytest.approx(1.0)  # a 2x1x1 grid is all neighbourhood


def test_metrics_per_layer_for_llll():
    rows = redundancy_table(extract(_model("LLLL").eval(), _clip()))
    assert [(r.stage, r.kind) for r in rows] == [(s, "local_affinity") for s in (1, 2, 3, 4)]
    assert all(r.chance_locality == pytest.approx(27 / 125) for r in rows)
    assert all(0.0 < r.locality < 1.0 and not math.isnan(r.dist_space) for r in rows)


# ------------------------------------------------------------------------------------ FLOPs
def _analytic_macs(model: UniFormer, shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-adds of a UniFormer forward (batch 1, eval), fvcore's convention, by kind."""
    _, cin, t, h, w = shape
    C = model.embed_dim
    out = dict(conv=0, linear=0, matmul=0, layer_norm=0, batch_norm=0)
    grid = (t // 2, h // 4, w // 4)  # stem: temporal stride 2, spatial 4
    prev = cin
    for s in range(4):
        if s:
            grid = (grid[0], grid[1] // 2, grid[2] // 2)
        L, c = math.prod(grid), C[s]
        out["conv"] += L * c * prev * (3 * 4 * 4 if s == 0 else 2 * 2)  # patch embed (std=False: kt=1)
        out["layer_norm"] += 5 * L * c
        for blk in model.stages[s]:
            out["conv"] += L * c * 27  # DPE
            if isinstance(blk, LocalBlock):
                out["batch_norm"] += 2 * 2 * L * c
                out["conv"] += L * c * (c + c + 125 + 2 * 4 * c)  # conv1, conv2, 5x5x5 dw, 1x1x1 MLP
            else:
                out["layer_norm"] += 2 * 5 * L * c
                out["linear"] += L * (3 * c * c + c * c + 2 * 4 * c * c)  # qkv, proj, MLP
                out["matmul"] += 2 * L * L * c  # q k^T and attn v over all heads
        prev = c
    out["batch_norm"] += 2 * L * C[3]
    out["linear"] += C[3] * model.num_classes
    return out


@pytest.mark.parametrize("layout", ["GGGG", "LLGG", "LLLL"])
def test_flops_match_the_analytic_count(layout):
    model = _model(layout)
    shape = (1, 3, 4, 32, 32)
    report = count_flops(model, shape)
    want = _analytic_macs(model, shape)
    assert report.macs == sum(want.values())
    for kind, macs in want.items():
        assert report.by_kind.get(kind, 0.0) * 1e9 == pytest.approx(macs, abs=0.5), kind


def test_global_attention_early_costs_more():
    shape = (1, 3, 8, 64, 64)
    macs = {lay: count_flops(_model(lay), shape).macs for lay in ("LLLL", "LLGG", "GGGG")}
    assert macs["GGGG"] > macs["LLGG"]
    stage1 = count_flops(_model("GGGG"), shape).by_module["blocks1"]
    assert stage1 > count_flops(_model("LLGG"), shape).by_module["blocks1"]


# --------------------------------------------------------------------------------------- app
@pytest.mark.parametrize("layout", ["GGGG", "LLLL", "LGGG"])
def test_app_layer_list_follows_the_layout(layout):
    model = _model(layout).eval()  # the app sizes its layer slider with map_names, before any forward pass
    assert map_names(model) == list(extract(model, _clip()).layers)


def test_app_reading_handles_all_local_and_all_global_models():
    from analysis.redundancy import axis_values, summarise
    from app.tab_redundancy import reading

    readings = {}
    for layout in ("LLLL", "GGGG", "LLGG"):
        lm = SimpleNamespace(label=f"tiny {layout}", family="uniformer", weights=SimpleNamespace(random=True))
        rows = summarise([axis_values(extract(_model(layout).eval(), _clip()))])
        readings[layout] = reading([(lm, rows)])
    assert "no global attention" in readings["LLLL"] and "deep global layers" not in readings["LLLL"]
    assert "joint attention" in readings["GGGG"] and "by construction" not in readings["GGGG"]
    assert "by construction" in readings["LLGG"] and "deep global layers" in readings["LLGG"]


# ------------------------------------------------------------------- trainer -> evaluator
def test_trained_layout_is_rebuilt_by_the_evaluator(tmp_path, capsys):
    """A GGGG run saved by the trainer is rebuilt as GGGG by ``uniformer.evaluate --checkpoint``."""
    from uniformer.data.synthetic import SynthConfig, generate_dataset
    from uniformer.evaluate import main as evaluate_main
    from uniformer.train import build_model
    from uniformer.train import main as train_main
    from uniformer.train.checkpoint import stored_config

    data = tmp_path / "data"
    generate_dataset(data, num_train=2, num_val=2, seed=0, config=SynthConfig(size=32, num_frames=4), workers=1)
    out = tmp_path / "run"
    overrides = [
        "model.family=uniformer", "model.kwargs.depth=[1,1,1,1]", "model.kwargs.embed_dim=[16,32,48,64]",
        "model.kwargs.head_dim=16", "model.kwargs.layout=GGGG",
        f"data.root={data}", f"data.train_list={data / 'train.txt'}", f"data.val_list={data / 'val.txt'}",
        f"data.classes={data / 'classes.txt'}", "data.num_frames=4", "data.sampling_rate=1", "data.size=32",
        "data.short_side=32", "data.batch_size=2", "data.num_workers=0", 'data.val_views="1x1"',
        'data.test_views="1x1"', "optim.epochs=1", f"run.out_dir={out}", "run.device=cpu", "run.progress=false",
        "run.tensorboard=false", "run.final_eval=false",
    ]
    assert train_main(overrides) == 0
    for ckpt in (out / "best.pt", out / "model.safetensors"):
        cfg, _ = stored_config(ckpt)
        assert cfg.model.kwargs["layout"] == "GGGG"
        assert build_model(cfg.model, 2).layout == "GGGG"
    capsys.readouterr()
    assert evaluate_main(["--checkpoint", str(out / "best.pt"), "--data", str(data / "val.txt"),
                          "--root", str(data), "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["num_videos"] == 2
    # the same weights forced into the default layout: one sentence naming the layouts, no traceback
    (tmp_path / "llgg.toml").write_text(
        '[model]\nfamily = "uniformer"\nkwargs = '
        '{ depth = [1, 1, 1, 1], embed_dim = [16, 32, 48, 64], head_dim = 16 }\n')
    assert evaluate_main(["--model", str(tmp_path / "llgg.toml"), "--checkpoint", str(out / "best.pt"), "--data",
                          str(data / "val.txt"), "--root", str(data), "--json", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "stage layout is GGGG but the model's is LLGG" in err and "Traceback" not in err
