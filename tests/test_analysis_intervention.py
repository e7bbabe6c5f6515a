"""The local-attention intervention (analysis.intervention) and its evaluation CLI (analysis.local_mask)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from analysis.attention import AnalysisError, extract
from analysis.intervention import layer_groups, local_attention, neighbourhood_mask
from analysis.local_mask import main as local_mask_main
from analysis.local_mask import paired_drop_interval
from uniformer import zoo
from uniformer.models.layers import attention_modules
from uniformer.models.timesformer import TimeSformer
from uniformer.models.uniformer import UniFormer

CLIPS = Path(__file__).resolve().parents[1] / "assets" / "clips"
TINY = ["uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"]


def _gggg() -> UniFormer:
    torch.manual_seed(0)
    return UniFormer(depth=[1, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16, num_classes=5, img_size=32,
                     layout="GGGG").eval()


def _joint_timesformer() -> TimeSformer:
    torch.manual_seed(0)
    return TimeSformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_frames=4, num_classes=5,
                       attention_type="joint_space_time").eval()


def _models():
    return [(n, zoo.create_model(n, pretrained=True), torch.randn(1, 3, 8, 64, 64)) for n in TINY] + [
        ("GGGG", _gggg(), torch.randn(1, 3, 4, 32, 32)), ("joint", _joint_timesformer(), torch.randn(1, 3, 4, 32, 32))]


def _outside(record, space_radius: int, time_radius: int) -> float:
    """Largest attention mass any query puts outside its neighbourhood, over the record's maps."""
    worst = 0.0
    for name, info in record.layers.items():
        if info.kind == "local_affinity":
            continue
        allowed = neighbourhood_mask(info.kind, info.grid, info.has_cls, space_radius, time_radius)
        worst = max(worst, float(record.maps[name].masked_fill(allowed, 0).abs().max()))
    return worst


@pytest.mark.parametrize("name,model,x", _models(), ids=[*TINY, "GGGG", "ts_joint"])
def test_full_neighbourhood_is_the_unmasked_model(name, model, x):
    with torch.no_grad():
        base = model(x)
        with local_attention(model, space_radius=64, time_radius=64) as masked:
            full = model(x)
        assert masked and all(m.mask is None for _, m in attention_modules(model))  # removed on exit
        torch.testing.assert_close(full, base, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name,model,x", _models(), ids=[*TINY, "GGGG", "ts_joint"])
@pytest.mark.parametrize("radius", [0, 1])
def test_local_mask_changes_logits_and_leaves_no_mass_outside(name, model, x, radius):
    with torch.no_grad():
        base = model(x)
        with local_attention(model, space_radius=radius, time_radius=radius):
            local = model(x)
            record = extract(model, x)  # capture path honours the mask too
        assert float((local - base).abs().max()) > 1e-5  # above the full-neighbourhood tolerance
        torch.testing.assert_close(record.logits, local, rtol=1e-4, atol=1e-4)
        assert _outside(record, radius, radius) == 0.0
        assert _outside(extract(model, x), radius, radius) > 0.01  # unmasked again after exit
        torch.testing.assert_close(model(x), base)


def test_masks_removed_after_an_error_and_layer_choice():
    model = zoo.create_model(TINY[1], pretrained=True)
    groups = layer_groups(model)
    assert groups == {"first": [0, 1], "middle": [2], "last": [3], "all": [0, 1, 2, 3]}
    with pytest.raises(RuntimeError):
        with local_attention(model, layers=["spatial_attn_block2"]) as names:
            assert names == ["temporal_attn_block2", "spatial_attn_block2"]
            raise RuntimeError("boom")
    assert all(m.mask is None for _, m in attention_modules(model))
    with torch.no_grad(), local_attention(model, layers=[3]):
        model(torch.randn(1, 3, 8, 64, 64))
        masked = {n for n, m in attention_modules(model) if m.mask is not None}
    assert masked == {"blocks.3.attn", "blocks.3.temporal_attn"}
    uni = zoo.create_model(TINY[0], pretrained=True)
    with pytest.raises(AnalysisError, match="no attention"):
        with local_attention(uni, layers=[0]):
            pass
    with pytest.raises(AnalysisError, match="radius"):
        with local_attention(uni, space_radius=-1):
            pass


def test_neighbourhood_masks():
    m = neighbourhood_mask("spatial", (4, 3, 3), has_cls=True, space_radius=0)
    assert m.shape == (10, 10) and m[0].all() and m[:, 0].all()  # class token: always allowed
    assert torch.equal(m[1:, 1:], torch.eye(9, dtype=torch.bool))
    t = neighbourhood_mask("temporal", (5, 2, 2), time_radius=1)
    assert t.sum(1).tolist() == [2, 3, 3, 3, 2]
    j = neighbourhood_mask("joint", (3, 4, 4))
    assert j.shape == (48, 48) and int(j[0].sum()) == 2 * 2 * 2 and int(j[16 + 5].sum()) == 27
    # TimeSformer joint order (cls, then n*T + t) is the same neighbourhood re-indexed
    jt = neighbourhood_mask("joint", (3, 4, 4), has_cls=True)
    order = torch.arange(48).reshape(3, 16).t().reshape(-1)  # (t, h, w) index of token n*T + t
    assert torch.equal(jt[1:, 1:], j[order][:, order]) and jt[0].all()


def test_paired_drop_interval():
    base = torch.tensor([1] * 80 + [0] * 20)
    same = paired_drop_interval(base, base)
    assert same[0] == 0 and same[1] < 0 < same[2]  # no discordant clip: still a non-zero width
    worse = base.clone()
    worse[:30] = 0
    drop, lo, hi = paired_drop_interval(base, worse)
    assert drop == pytest.approx(0.3) and 0.19 < lo < 0.3 < hi < 0.41
    with pytest.raises(AnalysisError):
        paired_drop_interval(base, base[:5])


@pytest.mark.slow
def test_local_mask_cli(tmp_path, capsys):
    lst = tmp_path / "val.txt"
    lst.write_text("synthetic_approaching.mp4 1\nsynthetic_moving_left.mp4 5\nsynthetic_parting.mp4 8\n")
    out = tmp_path / "local_mask.csv"
    args = ["--model", TINY[0], "--data", str(lst), "--root", str(CLIPS), "--out", str(out), "--json",
            "--space-radius", "0", "--time-radius", "0", "--label", "tiny/seed1"]
    assert local_mask_main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert torch.is_grad_enabled()
    rows = {r["layers"]: r for r in doc["rows"]}
    assert set(rows) == {"first", "middle", "last", "all"} and rows["all"]["n_layers"] == 3
    assert all(r["n_eval"] == 3 and r["top1_unmasked"] == rows["all"]["top1_unmasked"] for r in rows.values())
    for r in rows.values():
        assert r["drop"] == pytest.approx(r["top1_unmasked"] - r["top1"])
        assert r["drop_ci95_low"] <= r["drop"] <= r["drop_ci95_high"]
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    assert [g["layers"] for g in got] == ["first", "middle", "last", "all"]
    assert {g["model"] for g in got} == {"tiny/seed1"}
    assert {"model", "layers", "n_layers", "top1", "top1_unmasked", "drop", "drop_ci95_low", "drop_ci95_high",
            "n_eval"} <= set(got[0])
    assert local_mask_main(["--model", TINY[0], "--data", str(tmp_path / "nope.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ablation_checkpoint_loads_in_its_own_layout_and_csv_keeps_other_models(tmp_path):
    """An ablation run's weights (``uniformer.train`` export carrying ``layout="GGGG"``) load as GGGG
    under a LLGG zoo entry's labels and protocol, are labelled apart, and join the CSV's other rows."""
    from analysis.inputs import load_model
    from analysis.local_mask import MaskRow, model_label, write_csv
    from uniformer.train.checkpoint import export_weights
    from uniformer.train.config import TrainConfig

    name = TINY[0]
    entry = zoo.get_entry(name)
    cfg = TrainConfig()
    cfg.model.kwargs = {**entry.arch, "layout": "GGGG"}
    gggg = zoo.create_model(name, layout="GGGG")
    ckpt = export_weights(gggg.state_dict(), tmp_path / "model.safetensors", cfg, [])
    model, weights = load_model(name, str(ckpt))
    assert model.layout == "GGGG" and "layout GGGG" in weights
    assert torch.equal(model.state_dict()["head.weight"], gggg.state_dict()["head.weight"])
    assert model_label(name, model) == f"{name}/GGGG" and model_label(name, zoo.create_model(name)) == name
    plain = tmp_path / "plain.pth"  # weights without a training config: the entry's own layout
    torch.save(zoo.create_model(name).state_dict(), plain)
    assert load_model(name, str(plain))[0].layout == "LLGG"

    def row(model_name: str, top1: float) -> MaskRow:
        return MaskRow(model_name, "first", "0", 1, 1, 1, top1, 0.5, 0.5 - top1, 0.0, 0.1, 10)

    out = tmp_path / "local_mask.csv"
    write_csv([row(name, 0.4)], out)
    write_csv([row(f"{name}/GGGG", 0.3)], out)
    write_csv([row(name, 0.2)], out)  # a re-run replaces that model's rows only
    with out.open() as fh:
        got = {(r["model"], r["top1"]) for r in csv.DictReader(fh)}
    assert got == {(f"{name}/GGGG", "0.3"), (name, "0.2")}


def test_stored_config_never_opens_a_fifo(tmp_path):
    """The config probe runs before the guarded weights read: it must not block on a FIFO (it
    returns None, and the weights loader then names the problem in one sentence)."""
    import os

    from analysis.inputs import load_model
    from uniformer.errors import CheckpointError
    from uniformer.train.checkpoint import stored_config

    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    assert stored_config(fifo) is None
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model(TINY[0], str(fifo))
