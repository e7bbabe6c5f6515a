"""Train UniFormer / TimeSformer video classifiers on one process or under ``torchrun`` (DDP).

    python -m uniformer.train --config configs/synthetic_uniformer_tiny.toml optim.lr=1e-3
    torchrun --nproc_per_node 2 -m uniformer.train --config configs/synthetic_uniformer_tiny.toml

Every knob lives in a readable TOML file (``configs/``) mapped onto the ``TrainConfig`` dataclass
tree; ``section.key=value`` arguments override it (values are parsed as TOML, so
``model.kwargs.depth=[1,1,2,1]`` and ``run.amp=bf16`` both work). The optimiser, schedule,
mixup/cutmix, losses and EMA are timm's, so the recipe means what it means in timm and in the
official SlowFast-based code (AdamW without decay on 1-D params, per-iteration warm-up + cosine).

Reproducibility: the augmentation of every clip is a function of (seed, epoch, index, copy) only,
the loader never touches the global RNG, and checkpoints carry every RNG state, so a resumed run
repeats the exact next steps of an uninterrupted one (same world size).

Modules, from the bottom up::

    config      TrainConfig dataclasses, TOML load/dump, section.key=value overrides
    dist        DistEnv, device, torchrun process group
    samplers    seeded training clips, epoch/shard samplers
    builders    model (model_factory: family -> constructor), datasets, loaders (shared with evaluate)
    augment     video mixup/cutmix, random erasing
    rng         RNG capture/restore (device and autocast dtype: uniformer.device)
    optim       timm optimiser and per-iteration schedule
    checkpoint  last.pt / best.pt, resume reading, model.safetensors export
    trainer     Trainer: train step, EMA, state_dict
    log         RunLog (CSV + TensorBoard)
    loop        train(): epochs, validation, final evaluation
    cli         python -m uniformer.train
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names below load on first use (PEP 562), so ``python -m uniformer.train --help`` and
# ``uniformer.evaluate`` do not import timm, the data pipeline and the loop before parsing arguments.
_EXPORTS: dict[str, str] = {
    "parse_views": "uniformer.data.sampling",
    "resolve_amp": "uniformer.device",
    "resolve_device": "uniformer.device",
    "ConfigError": "uniformer.errors",
    "VideoMixup": "uniformer.train.augment",
    "VideoRandomErasing": "uniformer.train.augment",
    "build_dataset": "uniformer.train.builders",
    "build_eval_loader": "uniformer.train.builders",
    "build_model": "uniformer.train.builders",
    "build_train_loader": "uniformer.train.builders",
    "dataset_classes": "uniformer.train.builders",
    "import_callable": "uniformer.train.builders",
    "load_finetune_checkpoint": "uniformer.train.builders",
    "loader_kwargs": "uniformer.train.builders",
    "model_factory": "uniformer.train.builders",
    "read_classes": "uniformer.train.builders",
    "CHECKPOINT_FORMAT": "uniformer.train.checkpoint",
    "WEIGHTS_FORMAT": "uniformer.train.checkpoint",
    "export_weights": "uniformer.train.checkpoint",
    "load_training_checkpoint": "uniformer.train.checkpoint",
    "save_checkpoint": "uniformer.train.checkpoint",
    "main": "uniformer.train.cli",
    "AugConfig": "uniformer.train.config",
    "DataConfig": "uniformer.train.config",
    "ModelConfig": "uniformer.train.config",
    "OptimConfig": "uniformer.train.config",
    "RunConfig": "uniformer.train.config",
    "TrainConfig": "uniformer.train.config",
    "apply_overrides": "uniformer.train.config",
    "config_from_dict": "uniformer.train.config",
    "config_to_dict": "uniformer.train.config",
    "dump_toml": "uniformer.train.config",
    "load_config": "uniformer.train.config",
    "DistEnv": "uniformer.train.dist",
    "setup_distributed": "uniformer.train.dist",
    "RunLog": "uniformer.train.log",
    "train": "uniformer.train.loop",
    "train_one_epoch": "uniformer.train.loop",
    "build_optimizer": "uniformer.train.optim",
    "build_scheduler": "uniformer.train.optim",
    "scaled_lr": "uniformer.train.optim",
    "capture_rng": "uniformer.train.rng",
    "restore_rng": "uniformer.train.rng",
    "seed_everything": "uniformer.train.rng",
    "EpochSampler": "uniformer.train.samplers",
    "SeededClips": "uniformer.train.samplers",
    "ShardSampler": "uniformer.train.samplers",
    "StepResult": "uniformer.train.trainer",
    "Trainer": "uniformer.train.trainer",
}

if TYPE_CHECKING:  # pragma: no cover
    from uniformer.data.sampling import parse_views
    from uniformer.device import resolve_amp, resolve_device
    from uniformer.errors import ConfigError
    from uniformer.train.augment import VideoMixup, VideoRandomErasing
    from uniformer.train.builders import (
        build_dataset,
        build_eval_loader,
        build_model,
        build_train_loader,
        dataset_classes,
        import_callable,
        load_finetune_checkpoint,
        loader_kwargs,
        model_factory,
        read_classes,
    )
    from uniformer.train.checkpoint import (
        CHECKPOINT_FORMAT,
        WEIGHTS_FORMAT,
        export_weights,
        load_training_checkpoint,
        save_checkpoint,
    )
    from uniformer.train.cli import main
    from uniformer.train.config import (
        AugConfig,
        DataConfig,
        ModelConfig,
        OptimConfig,
        RunConfig,
        TrainConfig,
        apply_overrides,
        config_from_dict,
        config_to_dict,
        dump_toml,
        load_config,
    )
    from uniformer.train.dist import DistEnv, setup_distributed
    from uniformer.train.log import RunLog
    from uniformer.train.loop import train, train_one_epoch
    from uniformer.train.optim import build_optimizer, build_scheduler, scaled_lr
    from uniformer.train.rng import capture_rng, restore_rng, seed_everything
    from uniformer.train.samplers import EpochSampler, SeededClips, ShardSampler
    from uniformer.train.trainer import StepResult, Trainer

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "AugConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "dump_toml",
    "parse_views",
    "DistEnv",
    "setup_distributed",
    "resolve_device",
    "resolve_amp",
    "build_model",
    "model_factory",
    "import_callable",
    "load_finetune_checkpoint",
    "read_classes",
    "build_dataset",
    "dataset_classes",
    "loader_kwargs",
    "build_train_loader",
    "build_eval_loader",
    "SeededClips",
    "EpochSampler",
    "ShardSampler",
    "VideoMixup",
    "VideoRandomErasing",
    "build_optimizer",
    "build_scheduler",
    "scaled_lr",
    "capture_rng",
    "restore_rng",
    "seed_everything",
    "Trainer",
    "StepResult",
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FORMAT",
    "save_checkpoint",
    "load_training_checkpoint",
    "export_weights",
    "RunLog",
    "train",
    "train_one_epoch",
    "main",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'uniformer.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
