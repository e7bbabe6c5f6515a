"""The training run: epochs of ``Trainer.train_step``, validation, checkpoints, final evaluation.

``train(cfg)`` is what ``python -m uniformer.train`` runs: it joins the process group, builds the
data and the model, resumes when asked, trains ``optim.epochs`` epochs (validating every
``run.eval_every`` and keeping ``best.pt`` by top-1 of the model or its EMA), then evaluates the
best weights with the full ``test_views`` protocol (``uniformer.metrics.evaluate_model``, the same
function ``python -m uniformer.evaluate`` uses) and writes ``model.safetensors``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from uniformer.data.sampling import parse_views
from uniformer.errors import ConfigError
from uniformer.metrics import EvalResult, evaluate_model
from uniformer.train.builders import (
    build_dataset,
    build_eval_loader,
    build_model,
    build_train_loader,
    dataset_classes,
)
from uniformer.train.checkpoint import export_weights, load_on_main, resume_from, save_checkpoint
from uniformer.train.config import TrainConfig, dump_toml
from uniformer.train.dist import DistEnv, barrier, setup_distributed
from uniformer.train.log import RunLog
from uniformer.train.rng import seed_everything
from uniformer.train.samplers import EpochSampler
from uniformer.train.trainer import Trainer

__all__ = ["train", "train_one_epoch"]


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    """A tqdm bar over ``iterable`` when ``enabled`` (rank 0 with run.progress), else ``iterable``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


def train_one_epoch(
    trainer: Trainer, loader: DataLoader, sampler: EpochSampler, epoch: int, steps: int, show: bool
) -> dict[str, float]:
    """Run ``steps`` updates of epoch ``epoch``; returns mean loss, clips/s and time."""
    sampler.set_epoch(epoch)
    total_loss, counted, clips_seen, last_lr = 0.0, 0, 0, trainer.current_lr()
    start = time.perf_counter()
    bar = _progress(range(steps), show, desc=f"epoch {epoch + 1}", leave=False)
    it = iter(loader)
    for i in bar:
        try:
            clips, targets = next(it)
        except StopIteration:
            break
        res = trainer.train_step(clips, targets)
        clips_seen += clips.shape[0] * (clips.shape[1] if clips.ndim == 6 else 1)
        last_lr = res.lr
        if not res.skipped:
            total_loss += res.loss
            counted += 1
        if show and (i % max(1, trainer.cfg.run.log_every) == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{res.loss:.4f}", lr=f"{res.lr:.2e}")
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    elapsed = time.perf_counter() - start
    stats = torch.tensor([total_loss, counted, clips_seen], dtype=torch.float64)
    if trainer.env.distributed:
        stats = stats.to(trainer.device) if dist.get_backend() == "nccl" else stats
        dist.all_reduce(stats)
        stats = stats.cpu()
    loss_sum, n, seen = stats.tolist()
    return {
        "lr": last_lr,  # of the epoch's last update
        "train_loss": loss_sum / n if n else float("nan"),
        "clips_per_s": seen / elapsed if elapsed > 0 else float("nan"),
        "epoch_time_s": elapsed,
    }


def _evaluate(trainer: Trainer, model: nn.Module, loader: DataLoader, show: bool, desc: str) -> EvalResult:
    return evaluate_model(
        model, loader, device=trainer.device, num_classes=trainer.num_classes,
        amp_dtype=trainer.amp_dtype, env=trainer.env, progress=show, desc=desc,
    )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns the final metrics (on every rank)."""
    env = setup_distributed(cfg.run)
    try:
        return _train(cfg, env)
    finally:
        if env.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, env: DistEnv) -> dict[str, Any]:
    out_dir = Path(cfg.run.out_dir)
    show = cfg.run.progress and env.is_main
    resume_path = resume_from(cfg.run.resume, out_dir, env)

    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        text = dump_toml(cfg)
        print(f"# effective config ({env.world_size} process(es), device {env.device})\n{text}", flush=True)
        (out_dir / "config.toml").write_text(text)

    seed_everything(cfg.run.seed)  # same model init on every rank (DDP also broadcasts it)
    train_set = build_dataset(cfg.data, "train")
    classes = dataset_classes(train_set, cfg.data, cfg.model.num_classes)
    num_classes = cfg.model.num_classes or len(classes)
    if len(classes) != num_classes:
        raise ConfigError(f"model.num_classes = {num_classes} but the class list has {len(classes)} names.")
    if cfg.aug.mixup > 0 or cfg.aug.cutmix > 0:
        if (cfg.data.batch_size * cfg.aug.num_sample) % 2:
            raise ConfigError("mixup/cutmix need an even number of clips per step; change data.batch_size.")

    model = build_model(cfg.model, num_classes)
    loader, sampler = build_train_loader(train_set, cfg, env)
    steps = len(loader)
    if steps == 0:
        raise ConfigError(
            f"The training set ({len(train_set)} clips) is smaller than one global batch "
            f"({cfg.data.batch_size} x {env.world_size}); lower data.batch_size."
        )
    if cfg.run.steps_per_epoch:
        steps = min(steps, cfg.run.steps_per_epoch)
    trainer = Trainer(cfg, model, num_classes, steps, env)
    seed_everything(cfg.run.seed + env.rank)  # per-rank streams for drop-path, mixup, erasing

    if resume_path:
        state = load_on_main(Path(resume_path), env)
        trainer.load_state_dict(state)
        del state
        if env.is_main:
            print(f"Resumed from {resume_path} at epoch {trainer.epoch} (step {trainer.global_step}).", flush=True)

    val_loader = None
    if cfg.data.val_list and cfg.run.eval_every > 0:
        val_loader = build_eval_loader(
            build_dataset(cfg.data, "val", parse_views(cfg.data.val_views)), cfg.data, env, cfg.run.seed
        )

    log = RunLog(out_dir, env.is_main, cfg.run.tensorboard)
    metrics: dict[str, Any] = {}
    try:
        epochs = cfg.optim.epochs
        bar = _progress(range(trainer.epoch, epochs), show, desc="training", initial=trainer.epoch, total=epochs)
        for epoch in bar:
            stats = train_one_epoch(trainer, loader, sampler, epoch, steps, show)
            trainer.epoch = epoch + 1
            row: dict[str, Any] = {"epoch": epoch + 1, "step": trainer.global_step,
                                   "skipped_steps": trainer.skipped_steps, **stats}
            is_best = False
            last_epoch = epoch + 1 == epochs
            if val_loader is not None and ((epoch + 1) % cfg.run.eval_every == 0 or last_epoch):
                res = _evaluate(trainer, trainer.model, val_loader, show, "val")
                row.update(val_loss=res.loss, val_top1=res.top1, val_top5=res.top5)
                candidates = [("model", res.top1)]
                if trainer.ema is not None:
                    ema_res = _evaluate(trainer, trainer.ema.module, val_loader, show, "val (EMA)")
                    row.update(ema_top1=ema_res.top1, ema_top5=ema_res.top5)
                    candidates.append(("ema", ema_res.top1))
                which, top1 = max(candidates, key=lambda c: c[1])
                if top1 > trainer.best["top1"]:
                    trainer.best = {"top1": top1, "epoch": epoch + 1, "which": which}
                    is_best = True
            elif val_loader is None:
                trainer.best = {"top1": float("nan"), "epoch": epoch + 1, "which": "ema" if trainer.ema else "model"}
                is_best = True  # without validation the latest weights are the best we know
            metrics = {k: v for k, v in row.items()}
            log.write(row)
            if show:
                bar.set_postfix(loss=f"{row['train_loss']:.4f}", top1=f"{row.get('val_top1', float('nan')):.3f}")
            if env.is_main:
                print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            if (epoch + 1) % max(1, cfg.run.save_every) == 0 or last_epoch:
                save_checkpoint(trainer, out_dir / "last.pt", classes, metrics)
            if is_best:
                save_checkpoint(trainer, out_dir / "best.pt", classes, metrics)
            barrier(env)

        final = _finish(cfg, env, trainer, out_dir, classes, show)
        metrics.update(final)
    finally:
        log.close()
    return metrics


def _finish(
    cfg: TrainConfig, env: DistEnv, trainer: Trainer, out_dir: Path, classes: Sequence[str], show: bool
) -> dict[str, Any]:
    """Best weights: full-protocol evaluation and the slim export."""
    best_path = out_dir / "best.pt"
    result: dict[str, Any] = {}
    exists = [best_path.is_file()]
    if env.distributed:
        dist.broadcast_object_list(exists, src=0)
    if not exists[0]:
        return result
    state = load_on_main(best_path, env)
    which = state["best"].get("which", "model")
    weights = state["ema"] if which == "ema" and state.get("ema") is not None else state["model"]
    if cfg.run.final_eval and (cfg.data.test_list or cfg.data.val_list):
        model = build_model(dataclasses.replace(cfg.model, init="random"), trainer.num_classes)
        model.load_state_dict(weights)
        model.to(trainer.device)
        test_set = build_dataset(cfg.data, "test", parse_views(cfg.data.test_views))
        test_loader = build_eval_loader(test_set, cfg.data, env, cfg.run.seed)
        res = _evaluate(trainer, model, test_loader, show, f"test {cfg.data.test_views}")
        result = {"test_top1": res.top1, "test_top5": res.top5, "test_views": cfg.data.test_views,
                  "test_videos": res.num_videos, "best_epoch": state["best"].get("epoch"), "best_weights": which}
        if env.is_main:
            report = res.to_dict(classes)
            report.update(result)
            (out_dir / "test_metrics.json").write_text(json.dumps(report, indent=2))
            print(json.dumps(result), flush=True)
    if cfg.run.export and env.is_main:
        export_weights(weights, out_dir / "model.safetensors", cfg, classes, {**state.get("metrics", {}), **result})
    barrier(env)
    return result
