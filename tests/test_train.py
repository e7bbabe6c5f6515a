"""Training loop, resume, fine-tuning, mixed precision, configs and the torchrun path (tiny, CPU)."""
from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from uniformer.evaluate import compute_metrics, evaluate_model
from uniformer.train import (
    ConfigError,
    TrainConfig,
    Trainer,
    VideoMixup,
    build_model,
    build_optimizer,
    build_scheduler,
    config_from_dict,
    config_to_dict,
    dump_toml,
    load_config,
    load_training_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY_UNIFORMER = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=32)


def tiny_config(**sections) -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.kwargs = dict(TINY_UNIFORMER)
    cfg.optim.lr = 1e-3
    cfg.optim.epochs = 2
    cfg.optim.warmup_epochs = 0.0
    cfg.run.progress = False
    for name, values in sections.items():
        for k, v in values.items():
            setattr(getattr(cfg, name), k, v)
    return cfg


def fixed_batch(seed: int = 0, n: int = 4, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 32, 32, generator=g), torch.arange(n) % classes


def batch_loss(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> float:
    trainer.model.eval()
    with torch.no_grad():
        return float(nn.functional.cross_entropy(trainer.model(x), y))


# ------------------------------------------------------------------------------------ optimisation
@pytest.mark.slow
def test_one_step_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = build_model(cfg.model, 4)
    trainer = Trainer(cfg, model, num_classes=4, updates_per_epoch=10)
    x, y = fixed_batch()
    # fill BatchNorm running stats with this batch so the eval-mode loss is meaningful
    model.train()
    with torch.no_grad():
        model(x)
    before = batch_loss(trainer, x, y)
    res = trainer.train_step(x, y)
    after = batch_loss(trainer, x, y)
    assert not res.skipped and math.isfinite(res.loss)
    assert trainer.global_step == 1
    assert after < before - 1e-3


def test_lr_schedule_warms_up_then_follows_cosine():
    """The trainer's schedule, stepped per update as ``Trainer.train_step`` steps it: linear
    warm-up from warmup_lr over 1 epoch, then cosine to min_lr over the remaining 3 epochs."""
    o = tiny_config(optim=dict(epochs=4, warmup_epochs=1.0, warmup_lr=1e-6, min_lr=1e-6, lr=1e-3)).optim
    optimizer = build_optimizer(nn.Linear(4, 4), o, o.lr)
    scheduler = build_scheduler(optimizer, o, updates_per_epoch=2)
    lrs = []
    for update in range(9):
        scheduler.step_update(num_updates=update)
        lrs.append(max(g["lr"] for g in optimizer.param_groups))
    assert lrs[0] == pytest.approx(1e-6)  # warm-up starts at warmup_lr
    assert lrs[1] == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)  # linear: half-way after 1 of 2 updates
    assert lrs[2] == pytest.approx(1e-3)  # peak right after warm-up
    cosine = [1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * t / 6)) for t in range(7)]
    assert lrs[2:] == pytest.approx(cosine)  # 6 updates of cosine decay, ending at min_lr
    assert lrs[-1] == pytest.approx(1e-6)


def test_trainer_uses_the_configured_schedule():
    cfg = tiny_config(optim=dict(epochs=4, warmup_epochs=1.0, warmup_lr=1e-6, min_lr=1e-6, lr=1e-3))
    trainer = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=2)
    assert trainer.current_lr() == pytest.approx(1e-6)
    trainer.scheduler.step_update(num_updates=2)
    assert trainer.current_lr() == pytest.approx(1e-3)


def test_lr_scales_linearly_with_global_batch():
    cfg = tiny_config(optim=dict(lr=1e-4, lr_base_batch=32), data=dict(batch_size=8))
    trainer = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=1)
    assert trainer.lr == pytest.approx(1e-4 * 8 / 32)


@pytest.mark.slow
def test_non_finite_loss_skips_the_step_and_aborts_after_too_many():
    torch.manual_seed(0)
    cfg = tiny_config(run=dict(max_skipped_steps=1))
    trainer = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=10)
    x, y = fixed_batch()
    x[0, 0, 0, 0, 0] = float("nan")
    params = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.warns(UserWarning, match="Non-finite loss"):
        res = trainer.train_step(x, y)
    assert res.skipped and trainer.skipped_steps == 1 and trainer.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters()))
    with pytest.warns(UserWarning), pytest.raises(Exception, match="non-finite losses"):
        trainer.train_step(x, y)


@pytest.mark.slow
def test_bf16_autocast_on_cpu_runs_the_model_in_bfloat16():
    torch.manual_seed(0)
    cfg = tiny_config(run=dict(amp="bf16"), optim=dict(clip_grad=1.0))
    model = build_model(cfg.model, 4)
    trainer = Trainer(cfg, model, num_classes=4, updates_per_epoch=10)
    assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
    seen = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, y = fixed_batch()
    before = [p.detach().clone() for p in model.parameters()]
    res = trainer.train_step(x, y)
    assert seen == [torch.bfloat16]
    assert not res.skipped and torch.isfinite(torch.tensor(res.loss))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fp16_is_refused_on_cpu():
    cfg = tiny_config(run=dict(amp="fp16", device="cpu"))
    with pytest.raises(ConfigError, match="CUDA"):
        Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=1)


# -------------------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_save_then_resume_gives_identical_next_steps(tmp_path):
    """Model, EMA, AdamW moments, schedule position and every RNG (drop-path, mixup/cutmix,
    random erasing) come back: the resumed run repeats the uninterrupted run bit for bit."""
    cfg = tiny_config(
        model=dict(drop_path_rate=0.2),
        aug=dict(mixup=0.8, cutmix=1.0, label_smoothing=0.1, random_erase=0.5),
        run=dict(ema=True, ema_decay=0.9),
        optim=dict(warmup_epochs=1.0, epochs=3, clip_grad=5.0),
    )
    torch.manual_seed(0)
    a = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=2)
    x1, y1 = fixed_batch(1)
    x2, y2 = fixed_batch(2)
    a.train_step(x1, y1)
    a.train_step(x2, y2)
    path = tmp_path / "last.pt"
    save_checkpoint(a, path, classes=[f"c{i}" for i in range(4)], metrics={"train_loss": 1.0})

    cont = [a.train_step(x1, y1), a.train_step(x2, y2)]

    torch.manual_seed(123)  # a different init and RNG position: everything must come from the file
    b = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=2)
    state = load_training_checkpoint(path)  # weights_only=True inside
    b.load_state_dict(state)
    assert b.global_step == 2 and state["classes"] == ["c0", "c1", "c2", "c3"]
    resumed = [b.train_step(x1, y1), b.train_step(x2, y2)]

    for r_a, r_b in zip(cont, resumed):
        assert r_a.loss == r_b.loss and r_a.lr == r_b.lr
    for (k, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), k
    for pa, pb in zip(a.ema.module.state_dict().values(), b.ema.module.state_dict().values()):
        assert torch.equal(pa, pb)


def test_checkpoint_loads_with_weights_only_and_holds_plain_config(tmp_path):
    cfg = tiny_config()
    trainer = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=1)
    save_checkpoint(trainer, tmp_path / "c.pt", classes=list("abcd"), metrics={})
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])
    assert config_from_dict(state["config"]) == cfg
    with pytest.raises(Exception, match="not a training checkpoint"):
        torch.save({"model": state["model"]}, tmp_path / "plain.pt")
        load_training_checkpoint(tmp_path / "plain.pt")


# ------------------------------------------------------------------------------------- fine-tune
def test_finetune_from_official_uniformer_checkpoint_resets_the_head(tmp_path):
    torch.manual_seed(1)
    src = build_model(tiny_config().model, 10)
    # SlowFast training-checkpoint layout: weights under model_state, plus optimiser and cfg text
    torch.save({"epoch": 3, "model_state": src.state_dict(), "optimizer_state": {}, "cfg": "MODEL: {}"},
               tmp_path / "official.pyth")
    cfg = tiny_config(model=dict(init=f"checkpoint:{tmp_path / 'official.pyth'}"))
    torch.manual_seed(2)
    fresh_head = build_model(tiny_config().model, 4).head.weight.detach().clone()
    torch.manual_seed(2)
    model = build_model(cfg.model, 4)
    assert model.head.weight.shape == (4, 64)
    assert torch.equal(model.head.weight, fresh_head)  # the fresh init, not a slice of the old head
    src_sd = src.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, src_sd[k]), k

    # same class count: the head is kept (continue training), unless reset_head is asked for
    cfg.model.init = f"checkpoint:{tmp_path / 'official.pyth'}"
    kept = build_model(cfg.model, 10)
    assert torch.equal(kept.head.weight, src.head.weight)
    cfg.model.reset_head = True
    assert not torch.equal(build_model(cfg.model, 10).head.weight, src.head.weight)


def test_finetune_timesformer_from_official_pyth_fixture(fixtures_dir):
    path = fixtures_dir / "timesformer_checkpoint_small_official_format.pyth"
    official = torch.load(path, weights_only=True)["model_state"]
    cfg = tiny_config(model=dict(
        family="timesformer", init=f"checkpoint:{path}",
        kwargs=dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_frames=4),
    ))
    model = build_model(cfg.model, 3)
    assert model.head.weight.shape == (3, 64)
    assert torch.equal(model.blocks[1].temporal_fc.weight, official["model.blocks.1.temporal_fc.weight"])
    assert torch.equal(model.pos_embed, official["model.pos_embed"])


def test_init_inflate_from_2d_imagenet_weights(fixtures_dir, tmp_path):
    fx = torch.load(fixtures_dir / "uniformer_inflation_small.pt", weights_only=True)
    torch.save({"model": fx["state_dict_2d"]}, tmp_path / "in1k.pth")  # ImageNet checkpoints wrap in 'model'
    kwargs = {k: fx["config_3d"][k] for k in ("depth", "embed_dim", "head_dim")}
    cfg = tiny_config(model=dict(kwargs=kwargs, init=f"inflate:{tmp_path / 'in1k.pth'}"))
    model = build_model(cfg.model, fx["config_3d"]["num_classes"])
    expected = fx["state_dict_3d_expected"]
    for k, v in model.state_dict().items():
        if k.startswith("head.") or k.endswith("num_batches_tracked"):
            continue
        assert torch.allclose(v, expected[k]), k


def test_init_timesformer_from_imagenet_vit(tmp_path):
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_classes=7)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    cfg = tiny_config(model=dict(family="timesformer", init=f"vit:{tmp_path / 'vit.pth'}", kwargs=dict(
        img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=4, num_frames=4)))
    model = build_model(cfg.model, 5)
    vsd = vit.state_dict()
    assert torch.equal(model.blocks[0].attn.qkv.weight, vsd["blocks.0.attn.qkv.weight"])
    assert torch.equal(model.blocks[0].temporal_attn.qkv.weight, vsd["blocks.0.attn.qkv.weight"])
    assert torch.equal(model.blocks[1].temporal_fc.weight, torch.zeros(64, 64))
    assert model.head.weight.shape == (5, 64)


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_step():
    cfg = tiny_config()
    torch.manual_seed(0)
    plain = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=4)
    cfg_ckpt = tiny_config(model=dict(grad_checkpointing=True))
    torch.manual_seed(0)
    ckpt = Trainer(cfg_ckpt, build_model(cfg_ckpt.model, 4), num_classes=4, updates_per_epoch=4)
    assert ckpt.model.grad_checkpointing
    x, y = fixed_batch()
    assert plain.train_step(x, y).loss == pytest.approx(ckpt.train_step(x, y).loss, abs=1e-6)
    for a, b in zip(plain.model.parameters(), ckpt.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_channels_last_training_is_the_same_step_in_another_layout():
    """``run.channels_last`` (auto: on for UniFormer) changes strides only: same gradients, same losses.

    Weights are not compared after an AdamW step: its first update is lr * sign(grad), so a
    parameter whose gradient is rounding noise moves either way in either layout."""
    x, y = fixed_batch()
    runs = {}
    for setting in ("off", "auto"):
        cfg = tiny_config(run=dict(channels_last=setting))
        torch.manual_seed(0)
        trainer = Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=4)
        conv_weight = next(p for p in trainer.model.parameters() if p.ndim == 5)
        assert conv_weight.is_contiguous(memory_format=torch.channels_last_3d) == (setting == "auto")
        trainer.model.train()
        nn.functional.cross_entropy(trainer.model(x.contiguous(memory_format=trainer._clip_format(x))), y).backward()
        grads = [p.grad.detach().clone() for p in trainer.model.parameters()]
        trainer.optimizer.zero_grad()
        runs[setting] = grads, [trainer.train_step(x, y).loss for _ in range(3)]
    for a, b in zip(runs["off"][0], runs["auto"][0]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert runs["auto"][1] == pytest.approx(runs["off"][1], abs=1e-4)
    with pytest.raises(ConfigError, match="run.channels_last"):
        cfg = tiny_config(run=dict(channels_last="sometimes"))
        Trainer(cfg, build_model(cfg.model, 4), num_classes=4, updates_per_epoch=4)


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    from uniformer.train import main

    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The config file") and err.count("\n") == 1
    assert main(["--config", str(CONFIGS / "synthetic_uniformer_tiny.toml"), "--print-config", "optim.lr=0.5"]) == 0
    assert "lr = 0.5" in capsys.readouterr().out


def test_init_from_wrong_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, tmp_path / "bad.pth")
    cfg = tiny_config(model=dict(init=f"checkpoint:{tmp_path / 'bad.pth'}"))
    from uniformer.errors import CheckpointError

    with pytest.raises(CheckpointError):
        build_model(cfg.model, 4)


# --------------------------------------------------------------------------------- augmentation
def test_video_cutmix_cuts_the_same_box_in_every_frame():
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, num_classes=3, label_smoothing=0.0)
    x = torch.stack([torch.full((3, 4, 16, 16), float(i)) for i in range(2)])
    y = torch.tensor([0, 1])
    torch.manual_seed(0)
    import numpy as np

    np.random.seed(3)
    out, target = mix(x.clone(), y)
    changed = out[0] != 0  # clip 0 received pixels of clip 1 inside the box
    assert changed.any()
    assert torch.equal(changed, changed[:, :1].expand_as(changed))  # same box in every frame
    assert torch.equal(changed, changed[:1].expand_as(changed))  # and every channel
    area = changed[0, 0].float().mean()
    assert target[0, 1] == pytest.approx(float(area), abs=1e-6)  # label weight = pasted area


# ------------------------------------------------------------------------------------ evaluation
def test_views_are_combined_by_summing_raw_logits():
    """Three views whose softmax average picks class 1 but whose logit sum picks class 0."""

    class ViewLogits(nn.Module):
        def forward(self, x):  # logits are stored in the first pixels of each view
            return x[:, 0, 0, 0, :3]

    views = torch.zeros(1, 3, 3, 1, 1, 3)
    views[0, 0, 0, 0, 0] = torch.tensor([8.0, 0.0, 0.0])
    views[0, 1, 0, 0, 0] = torch.tensor([0.0, 2.0, 0.0])
    views[0, 2, 0, 0, 0] = torch.tensor([0.0, 2.0, 0.0])
    loader = [(views, torch.tensor([0]))]
    res = evaluate_model(ViewLogits(), loader, num_classes=3)
    assert torch.allclose(res.logits, torch.tensor([[8.0, 4.0, 0.0]]))
    assert res.top1 == 1.0
    soft = views[0, :, 0, 0, 0].softmax(-1).mean(0)
    assert soft.argmax() == 1  # the protocol matters for this example


def test_compute_metrics_top5_per_class_and_confusion():
    logits = torch.tensor([
        [5.0, 1, 0, 0, 0, 0], [0, 5.0, 1, 0, 0, 0], [5.0, 0, 1, 0, 0, 0], [-1.0, 0, 0, 0, 0, 5.0],
    ])
    labels = torch.tensor([0, 1, 2, 0])
    m = compute_metrics(logits, labels)
    assert m.top1 == pytest.approx(0.5)
    assert m.top5 == pytest.approx(0.75)  # video 3: class 0 is sixth
    assert m.support == [2, 1, 1, 0, 0, 0]
    assert m.per_class_acc[:3] == [0.5, 1.0, 0.0]
    assert m.mean_class_acc == pytest.approx(0.5)
    assert m.confusion[2, 0] == 1 and m.confusion[0, 5] == 1 and int(m.confusion.sum()) == 4
    d = m.to_dict(["a", "b", "c", "d", "e", "f"], confusion=True)
    assert d["per_class"][3]["top1"] is None and len(d["confusion"]) == 6


def test_time_reversal_pair_found_and_order():
    from uniformer.metrics import time_reversal

    classes = ["left", "right", "up", "down", "slow"]
    c = torch.zeros(5, 5, dtype=torch.long)
    c[0, 0], c[0, 1], c[0, 4] = 6, 2, 2  # left: 6 right, 2 called its reversal, 2 outside the pair
    c[1, 1], c[1, 0] = 5, 5  # right: the pair always, the order half the time
    c[2, 2] = 4  # up: perfect; its twin "down" has no clip
    r = time_reversal(c, classes, [("left", "right"), ("up", "down"), ("up", "down"), ("fast", "slow")])
    assert [p["pair"] for p in r["pairs"]] == [["left", "right"], ["up", "down"]]  # absent names, repeats: skipped
    lr, ud = r["pairs"]
    assert (lr["n"], lr["pair_found"], lr["order_given_pair"]) == (20, 18 / 20, 11 / 18)
    assert (ud["n"], ud["pair_found"], ud["order_given_pair"]) == (4, 1.0, 1.0)
    assert (r["n"], r["pair_found"], r["order_given_pair"]) == (24, 22 / 24, 15 / 22)
    assert time_reversal(c, classes, [("fast", "slow")]) is None
    empty = time_reversal(torch.zeros(2, 2, dtype=torch.long), ["a", "b"], [("a", "b")])
    assert empty["pair_found"] is None and empty["order_given_pair"] is None and empty["n"] == 0


# ---------------------------------------------------------------------------------------- configs
def test_overrides_and_toml_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "synthetic_uniformer_tiny.toml", [
        "optim.lr=3e-3", "model.kwargs.depth=[2,2,2,1]", "run.out_dir=runs/x y", "run.amp=bf16", "aug.mixup=0",
    ])
    assert cfg.optim.lr == 3e-3 and cfg.model.kwargs["depth"] == [2, 2, 2, 1]
    assert cfg.run.out_dir == "runs/x y" and cfg.run.amp == "bf16" and cfg.aug.mixup == 0.0
    (tmp_path / "c.toml").write_text(dump_toml(cfg))
    assert load_config(tmp_path / "c.toml") == cfg
    assert json.loads(json.dumps(config_to_dict(cfg))) == config_to_dict(cfg)


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "Unknown config key optim.lrr"),
    ("optim.lr=fast", "should be of type float"),
    ("lr=1", "must name a section"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "synthetic_uniformer_tiny.toml", [override])


def test_every_shipped_config_parses():
    files = sorted(CONFIGS.glob("*.toml"))
    names = {f.stem for f in files}
    assert {"uniformer_small_k400_16x8", "uniformer_base_k400_32x4", "uniformer_small_ssv2_16",
            "timesformer_base_k400_8x32", "synthetic_uniformer_tiny", "synthetic_timesformer_tiny"} <= names
    for f in files:
        cfg = load_config(f)
        assert cfg.optim.epochs > 0 and cfg.data.num_frames > 0, f.name
    k400 = load_config(CONFIGS / "uniformer_small_k400_16x8.toml")
    optim = k400.optim
    assert (optim.opt, optim.lr, optim.lr_base_batch, optim.weight_decay) == ("adamw", 1e-4, 32, 0.05)
    assert (k400.optim.epochs, k400.optim.warmup_epochs, k400.optim.clip_grad) == (110, 10.0, 20.0)
    assert (k400.aug.mixup, k400.aug.cutmix, k400.aug.label_smoothing) == (0.8, 1.0, 0.1)
    assert k400.data.test_views == "4x1"
    ssv2 = load_config(CONFIGS / "uniformer_small_ssv2_16.toml")
    assert not ssv2.data.flip and ssv2.data.test_views == "1x3" and ssv2.optim.lr == 2e-4
    tsf = load_config(CONFIGS / "timesformer_base_k400_8x32.toml")
    assert (tsf.optim.opt, tsf.optim.sched, tsf.optim.decay_milestones) == ("momentum", "multistep", [11, 14])


@pytest.mark.parametrize("name", ["synthetic_uniformer_tiny", "synthetic_timesformer_tiny"])
def test_synthetic_configs_build_small_models(name):
    cfg = load_config(CONFIGS / f"{name}.toml")
    model = build_model(cfg.model, 12)
    n = sum(p.numel() for p in model.parameters())
    assert 0.2e6 < n < 2e6
    x = torch.randn(2, 3, cfg.data.num_frames, cfg.data.size, cfg.data.size)
    assert model(x).shape == (2, 12)


# ------------------------------------------------------------------------------ end to end (DDP)
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory) -> Path:
    from uniformer.data.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(out, num_train=8, num_val=4, seed=0, config=SynthConfig(size=32, num_frames=8), workers=1)
    return out


def _write_tiny_run_config(path: Path, data: Path, out_dir: Path) -> Path:
    path.write_text(f"""
[model]
family = "uniformer"
kwargs = {{ depth = [1, 1, 1, 1], embed_dim = [16, 32, 64, 64], head_dim = 32 }}
drop_path_rate = 0.1

[data]
root = {json.dumps(str(data))}
train_list = {json.dumps(str(data / "train.txt"))}
val_list = {json.dumps(str(data / "val.txt"))}
classes = {json.dumps(str(data / "classes.txt"))}
num_frames = 4
sampling_rate = 2
size = 32
short_side = 32
flip = false
batch_size = 2
num_workers = 1
val_views = "1x1"
test_views = "2x1"

[optim]
lr = 1e-3
epochs = 1

[aug]
mixup = 0.8
cutmix = 1.0
label_smoothing = 0.1

[run]
out_dir = {json.dumps(str(out_dir))}
device = "cpu"
ema = true
ema_decay = 0.5
progress = false
tensorboard = false
""")
    return path


@pytest.mark.slow
def test_training_clips_depend_only_on_seed_epoch_and_index(tiny_videos):
    from uniformer.train import DistEnv, build_dataset, build_train_loader

    def batches(workers: int, epoch: int) -> list[torch.Tensor]:
        cfg = tiny_config(data=dict(root=str(tiny_videos), train_list=str(tiny_videos / "train.txt"),
                                    num_frames=4, sampling_rate=1, size=32, flip=True, scale=[0.3, 1.0],
                                    batch_size=4, num_workers=workers))
        loader, sampler = build_train_loader(build_dataset(cfg.data, "train"), cfg, DistEnv())
        sampler.set_epoch(epoch)
        return [x for x, _ in loader]

    torch.manual_seed(0)
    in_process = batches(0, epoch=1)
    torch.manual_seed(1)  # the global RNG plays no part
    with_worker = batches(1, epoch=1)
    assert len(in_process) == 2 and in_process[0].shape == (4, 1, 3, 4, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_worker))
    assert not torch.equal(torch.cat(in_process), torch.cat(batches(0, epoch=2)))  # new epoch, new clips


@pytest.mark.slow
def test_torchrun_two_processes_gloo_one_epoch_then_evaluate(tiny_videos, tmp_path):
    out = tmp_path / "run"
    cfg_file = _write_tiny_run_config(tmp_path / "tiny.toml", tiny_videos, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "uniformer.train", "--config", str(cfg_file)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for name in ("last.pt", "best.pt", "config.toml", "log.csv", "model.safetensors", "test_metrics.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert rows[0]["step"] == "2"  # 8 clips / (2 per process x 2 processes)
    assert float(rows[0]["clips_per_s"]) > 0 and 0.0 <= float(rows[0]["val_top1"]) <= 1.0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # every rank's RNG stream is kept
    assert state["classes"] == (tiny_videos / "classes.txt").read_text().split()
    assert rows[0]["ema_top1"] != ""  # the EMA weights were validated too
    report = json.loads((out / "test_metrics.json").read_text())
    assert report["test_videos"] == 4 and report["test_views"] == "2x1"
    which = report["best_weights"]
    assert which in ("model", "ema")
    best = torch.load(out / "best.pt", weights_only=True)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:  # the slim export for bundling
        assert json.loads(f.metadata()["classes"]) == state["classes"]
        assert json.loads(f.metadata()["config"])["model"]["kwargs"]["depth"] == [1, 1, 1, 1]
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), best[which][k]), k

    # the stand-alone evaluator reads the config from the checkpoint and reproduces the final metrics
    ev = subprocess.run(
        [sys.executable, "-m", "uniformer.evaluate", "--checkpoint", str(out / "best.pt"), "--data",
         str(tiny_videos / "val.txt"), "--root", str(tiny_videos), "--views", "2x1", "--json", "--workers", "0"]
        + (["--ema"] if which == "ema" else []),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    metrics = json.loads(ev.stdout)
    assert metrics["num_videos"] == 4
    assert metrics["top1"] == pytest.approx(report["top1"])
    assert metrics["loss"] == pytest.approx(report["loss"], rel=1e-4)

    # resume with one process for a second epoch: continues at epoch 2, appends to the log
    resume = subprocess.run(
        [sys.executable, "-m", "uniformer.train", "--config", str(cfg_file), "optim.epochs=2", "run.resume=auto",
         "run.final_eval=false"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert "Resumed from" in resume.stdout
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_train_step_benchmark_runs_a_shipped_recipe_and_checks_that_it_fits():
    from benchmarks.train_step import StepCase, markdown, run_step_case

    rec = run_step_case(StepCase(config="synthetic_uniformer_tiny", batch=4, warmup=1, steps=2, fit_steps=6))
    assert "error" not in rec, rec.get("error")
    assert rec["fits"] and rec["fit_loss_last"] < rec["fit_loss_first"]
    assert rec["skipped_steps"] == 0 and rec["clips_per_s"] > 0 and rec["num_classes"] == 12
    assert rec["master_weights"] == "{torch.float32}" and rec["amp_dtype"] == "none"
    table = markdown({"meta": {"device_name": "CPU", "torch": torch.__version__}, "steps": [rec], "parity": []})
    assert "| synthetic_uniformer_tiny | none | off | 4×1 |" in table


def test_train_step_benchmark_names_a_missing_recipe_and_a_missing_gpu(capsys, monkeypatch):
    from benchmarks.train_step import main

    assert main(["--configs", "no_such_recipe", "--amp", "none", "--device", "cpu"]) == 1
    assert "error: ConfigError: The config file" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == "No CUDA device is available; run with --device cpu."
