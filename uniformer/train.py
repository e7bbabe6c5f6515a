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
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import importlib
import json
import math
import os
import random
import re
import sys
import time
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from uniformer.errors import CheckpointError, UniformerLabError

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
    "load_finetune_checkpoint",
    "build_dataset",
    "dataset_classes",
    "build_train_loader",
    "VideoMixup",
    "VideoRandomErasing",
    "Trainer",
    "StepResult",
    "save_checkpoint",
    "load_training_checkpoint",
    "export_weights",
    "train",
    "main",
]

CHECKPOINT_FORMAT = "uniformer-lab/train-checkpoint/v1"
WEIGHTS_FORMAT = "uniformer-lab/weights/v1"


class ConfigError(UniformerLabError):
    """A training configuration that cannot be used (unknown key, wrong type, impossible combination)."""


# ------------------------------------------------------------------------------------------ config
@dataclass
class ModelConfig:
    """Which network and which starting weights."""

    name: str = ""  # zoo / timm name ("uniformer_small_k400_16x8"); empty: use ``family`` + ``kwargs``
    family: str = "uniformer"  # "uniformer" | "timesformer" | "package.module:callable"
    kwargs: dict[str, Any] = field(default_factory=dict)  # constructor arguments (depth, embed_dim, ...)
    num_classes: int = 0  # 0: as many as the dataset has
    init: str = "random"  # "random" | "checkpoint:PATH" | "inflate:PATH" | "vit:PATH"
    reset_head: bool = False  # with init=checkpoint: re-initialise the head even if the class count fits
    drop_path_rate: float | None = None  # overrides kwargs / the zoo default when set
    grad_checkpointing: bool = False  # recompute block activations in backward (memory for time)
    sync_bn: bool = False  # SyncBatchNorm under DDP on CUDA (UniFormer's local blocks use BatchNorm3d)


@dataclass
class DataConfig:
    """Where the clips come from and how a clip is cut (train: random; val/test: official views)."""

    format: str = "list"  # "list" (VideoListDataset) | "folder" (VideoFolderDataset) | "ssv2" | "module:callable"
    root: str = ""  # directory the list entries are relative to (ssv2: the video folder)
    train_list: str = ""  # list file (folder: the split's folder; ssv2: the JSON list)
    val_list: str = ""
    test_list: str = ""  # full-protocol evaluation at the end; empty: val_list
    classes: str = ""  # label file, one class name per line (ssv2: the labels JSON); empty: from the dataset
    num_frames: int = 16
    sampling_rate: int = 8
    sampler: str = "uniformer_dense"  # TestProtocol sampler; training uses its dense/segment counterpart
    size: int = 224  # crop size
    short_side: int = 0  # test-time short-side resize; 0: = size
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # train random-resized-crop area
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333333333333333])  # and aspect range
    flip: bool = True  # random horizontal flip in training (off for Something-Something)
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    batch_size: int = 8  # clips per process and step (before ``aug.num_sample`` copies)
    eval_batch_size: int = 0  # videos per process in evaluation; 0: = batch_size
    num_workers: int = 2
    val_views: str = "1x1"  # clips x crops for the quick validation during training
    test_views: str = "4x1"  # clips x crops for the final, official-protocol evaluation
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)  # passed through to the dataset class


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (timm factories)."""

    opt: str = "adamw"  # any timm optimiser name ("adamw", "momentum" = SGD with momentum, ...)
    lr: float = 1e-4  # learning rate at ``lr_base_batch`` clips per step (global)
    lr_base_batch: int = 0  # scale lr linearly by global_batch / lr_base_batch; 0: no scaling
    weight_decay: float = 0.05
    momentum: float = 0.9
    betas: list[float] | None = None
    eps: float | None = None
    filter_bias_and_bn: bool = True  # no weight decay on 1-D params (norms, biases) and no_weight_decay()
    sched: str = "cosine"  # timm scheduler name: "cosine", "multistep", "step", "constant", ...
    epochs: int = 30
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    decay_milestones: list[int] = field(default_factory=lambda: [30, 60, 90])  # multistep
    decay_rate: float = 0.1  # multistep / step
    clip_grad: float = 0.0  # 0: off
    clip_mode: str = "norm"  # "norm" | "value" | "agc"


@dataclass
class AugConfig:
    """Batch-level augmentation and the loss it implies."""

    mixup: float = 0.0  # mixup alpha (0: off)
    cutmix: float = 0.0  # cutmix alpha (0: off)
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    mix_mode: str = "batch"  # "batch" | "pair" | "elem"
    label_smoothing: float = 0.0
    random_erase: float = 0.0  # probability per clip; same box in every frame
    num_sample: int = 1  # augmented copies of each clip per step (official AUG.NUM_SAMPLE)


@dataclass
class RunConfig:
    """Everything about the run itself: output, devices, precision, checkpoints, evaluation."""

    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: str = "auto"  # "auto" (CUDA: bf16 if supported else fp16; CPU: off) | "none" | "bf16" | "fp16"
    dist_backend: str = "auto"  # "auto" (nccl on CUDA, gloo on CPU) | "nccl" | "gloo"
    ema: bool = False
    ema_decay: float = 0.9998
    eval_every: int = 1  # quick (val_views) evaluation every N epochs; 0: never during training
    final_eval: bool = True  # full test_views protocol on the best weights at the end
    save_every: int = 1  # write last.pt every N epochs (and always after the last one)
    resume: str = ""  # "" | "auto" (out_dir/last.pt when present) | PATH
    steps_per_epoch: int = 0  # cap on steps per epoch (quick runs, benchmarks); 0: full epoch
    max_skipped_steps: int = 50  # abort after this many non-finite losses
    log_every: int = 10  # refresh the progress bar postfix every N steps
    progress: bool = True  # tqdm bars (rank 0 only)
    tensorboard: bool = True  # when torch.utils.tensorboard imports
    export: bool = True  # write model.safetensors (weights + metadata) for bundling


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; ints are accepted where floats are expected."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. run.resume=123 is still a path
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(hint) or (Any,)
            return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    raise ConfigError(f"Config value {where} = {value!r} should be of type {getattr(hint, '__name__', hint)}.")


def _section_from_dict(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    hints = _field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(
            f"Unknown config key {prefix}.{unknown[0]}; the [{prefix}] section accepts: {', '.join(sorted(hints))}."
        )
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from nested plain values (a parsed TOML/JSON file or a checkpoint)."""
    hints = _field_types(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"Unknown config section [{unknown[0]}]; sections are: {', '.join(hints)}.")
    sections = {}
    for name, cls in hints.items():
        sec = values.get(name, {})
        if not isinstance(sec, Mapping):
            raise ConfigError(f"Config section [{name}] must be a table, got {sec!r}.")
        sections[name] = _section_from_dict(cls, sec, name)
    return TrainConfig(**sections)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (safe for ``torch.load(weights_only=True)`` and JSON)."""
    return dataclasses.asdict(cfg)


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a ``.toml`` (or ``.json``) config file, then apply ``section.key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"The config file {p} does not exist.")
        try:
            if p.suffix == ".json":
                values = json.loads(p.read_text())
            else:
                values = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"The config file {p} is not valid {p.suffix[1:].upper() or 'TOML'}: {err}.") from err
    values = apply_overrides(values, overrides)
    return config_from_dict(values)


def _parse_value(text: str) -> Any:
    """A TOML literal (number, bool, array, inline table, quoted string) or else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with ``a.b[.c]=value`` overrides applied (``c`` for dict fields)."""
    out = json.loads(json.dumps(values))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like section.key=value.")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"Override key {key!r} must name a section and a key, like optim.lr.")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {key!r} goes inside a value that is not a table.")
        node[parts[-1]] = _parse_value(text.strip())
    return out


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = [f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    raise ConfigError(f"Cannot write {value!r} to TOML.")


def dump_toml(cfg: TrainConfig | Mapping[str, Any]) -> str:
    """The config as TOML text that ``load_config`` reads back to the same ``TrainConfig``."""
    values = config_to_dict(cfg) if isinstance(cfg, TrainConfig) else cfg
    lines: list[str] = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is None:
                continue  # TOML has no null; absent means the default (None)
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def parse_views(text: str) -> tuple[int, int]:
    """``"4x1"`` -> (4 clips, 1 crop)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"Views {text!r} must look like CLIPSxCROPS, e.g. 4x1 or 1x3.")
    return int(m.group(1)), int(m.group(2))


# ------------------------------------------------------------------------------------ distributed
@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("run.device is 'cuda' but no CUDA device is available; use --device cpu.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"run.device must be auto, cpu or cuda, got {name!r}.")


def setup_distributed(run: RunConfig) -> DistEnv:
    """Join the process group torchrun describes in the environment (one process: no group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(run.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = run.dist_backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=device)


def _all_gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def _load_on_main(path: Path, env: DistEnv) -> dict[str, Any]:
    """Rank 0 reads a training checkpoint and hands it to every rank (nodes need no shared disk)."""
    box: list[Any] = [load_training_checkpoint(path) if env.is_main else None]
    if env.distributed:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


# ------------------------------------------------------------------------------------------ model
_FAMILIES = {
    "uniformer": "uniformer.models.uniformer:UniFormer",
    "timesformer": "uniformer.models.timesformer:TimeSformer",
}


def _import_callable(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"model.family {spec!r} must be 'uniformer', 'timesformer' or 'package.module:callable'.")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"Cannot import {spec!r}: {err}.") from err
    return obj


def _split_init(init: str) -> tuple[str, str]:
    kind, _, path = init.partition(":")
    kind = kind.strip().lower()
    if kind not in ("random", "checkpoint", "inflate", "vit"):
        raise ConfigError(f"model.init {init!r} must be random, checkpoint:PATH, inflate:PATH or vit:PATH.")
    if kind != "random" and not path:
        raise ConfigError(f"model.init {init!r} needs a file path after the colon.")
    return kind, path


def _read_state(path: str) -> dict[str, torch.Tensor]:
    """Read and unwrap a weights file safely (the shared checkpoint reader: never runs pickles)."""
    from uniformer.models.checkpoint import read_checkpoint, unwrap_state_dict

    return unwrap_state_dict(read_checkpoint(path))


def build_model(mcfg: ModelConfig, num_classes: int) -> nn.Module:
    """Construct the network (zoo name or family + kwargs) and load the starting weights."""
    kwargs = dict(mcfg.kwargs)
    if mcfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = mcfg.drop_path_rate
    if mcfg.name:
        from uniformer import zoo

        model = zoo.create_model(mcfg.name, num_classes=num_classes, **kwargs)
    else:
        factory = _import_callable(_FAMILIES.get(mcfg.family, mcfg.family))
        try:
            model = factory(num_classes=num_classes, **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"Cannot build {mcfg.family} with {kwargs}: {err}") from err

    kind, path = _split_init(mcfg.init)
    if kind == "checkpoint":
        load_finetune_checkpoint(model, path, reset_head=mcfg.reset_head)
    elif kind == "inflate":
        from uniformer.models.inflate import load_inflated

        load_inflated(model, path)
    elif kind == "vit":
        from uniformer.models.timesformer import load_imagenet_vit

        load_imagenet_vit(model, _read_state(path))
    if mcfg.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ConfigError(f"{type(model).__name__} has no set_grad_checkpointing(); turn model.grad_checkpointing off.")
        model.set_grad_checkpointing(True)
    return model


def load_finetune_checkpoint(model: nn.Module, path: str, reset_head: bool = False) -> bool:
    """Start from an official (or our own) checkpoint, strictly except for the classifier, which
    keeps its fresh initialisation when the class count differs (or with ``reset_head``).
    Returns whether the head was reset."""
    from uniformer.models.checkpoint import apply_filter, classifier_prefix, load_checkpoint

    filter_fn = getattr(importlib.import_module(type(model).__module__), "checkpoint_filter_fn", None)
    state = apply_filter(_read_state(path), model, filter_fn)
    prefix = classifier_prefix(model)
    own = {k: v for k, v in model.state_dict().items() if prefix and k.startswith(prefix + ".")}
    fits = bool(own) and all(k in state and tuple(state[k].shape) == tuple(v.shape) for k, v in own.items())
    reset = bool(reset_head or not fits)
    load_checkpoint(model, state, ignore_head=reset and prefix is not None)
    return reset


# ------------------------------------------------------------------------------------------- data
def _read_classes(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"The class list {p} does not exist.")
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


_TRAIN_SAMPLER = {"uniformer_dense": "dense", "timesformer_dense": "dense",
                  "uniformer_segment": "segment", "timesformer_segment": "segment"}


def build_dataset(dcfg: DataConfig, split: str, views: tuple[int, int] = (1, 1)) -> Dataset:
    """A dataset for ``split`` in ("train", "val", "test"); val/test use the official protocol
    named by ``data.sampler`` with ``views`` = (clips, crops).

    ``format = "list"``: ``*_list`` are ``path label`` files (paths relative to ``root``);
    ``"folder"``: ``*_list`` are split folders with one sub-folder per class (relative to
    ``root``); ``"ssv2"``: ``*_list`` are the official JSON lists, ``classes`` the labels JSON,
    ``root`` the video folder; ``"module:callable"``: called like ``VideoListDataset``.
    """
    from uniformer.data import datasets as D
    from uniformer.data.sampling import TestProtocol

    list_file = {"train": dcfg.train_list, "val": dcfg.val_list, "test": dcfg.test_list or dcfg.val_list}[split]
    if not list_file:
        raise ConfigError(f"data.{split}_list is empty, so there is no {split} set.")
    if dcfg.sampler not in _TRAIN_SAMPLER:
        raise ConfigError(f"data.sampler must be one of {', '.join(_TRAIN_SAMPLER)}, got {dcfg.sampler!r}.")
    mode = "train" if split == "train" else "test"
    short_side = dcfg.short_side or dcfg.size
    kwargs: dict[str, Any] = dict(
        mode=mode, num_frames=dcfg.num_frames, sampling_rate=dcfg.sampling_rate,
        sampler=_TRAIN_SAMPLER[dcfg.sampler], size=dcfg.size, short_side=short_side,
        scale=tuple(dcfg.scale), ratio=tuple(dcfg.ratio), flip=dcfg.flip,
        mean=tuple(dcfg.mean), std=tuple(dcfg.std),
    )
    if mode == "test":
        kwargs["protocol"] = TestProtocol(
            sampler=dcfg.sampler, num_frames=dcfg.num_frames, sampling_rate=dcfg.sampling_rate,  # type: ignore[arg-type]
            num_clips=views[0], num_crops=views[1], short_side=short_side, crop_size=dcfg.size,
            mean=tuple(dcfg.mean), std=tuple(dcfg.std),  # type: ignore[arg-type]
        )
        kwargs.update(num_clips=views[0], num_crops=views[1])
    kwargs.update(dcfg.dataset_kwargs)
    fmt = dcfg.format
    try:
        if fmt == "list":
            return D.VideoListDataset(list_file, dcfg.root or None, classes=dcfg.classes or None, **kwargs)
        if fmt == "folder":
            folder = Path(dcfg.root) / list_file if dcfg.root else Path(list_file)
            return D.VideoFolderDataset(folder, **kwargs)
        if fmt == "ssv2":
            if not dcfg.classes:
                raise ConfigError("data.classes must name the SSv2 labels JSON for format = \"ssv2\".")
            return D.SSv2Dataset(list_file, dcfg.classes, dcfg.root, **kwargs)
        return _import_callable(fmt)(list_file, dcfg.root, **kwargs)
    except TypeError as err:  # an unknown dataset_kwargs entry, typically
        raise ConfigError(f"Cannot build the {split} dataset ({fmt}): {err}.") from err


def dataset_classes(dataset: Dataset, dcfg: DataConfig, num_classes: int = 0) -> list[str]:
    """Class names: the dataset's own (from ``data.classes`` or its folders/labels), else
    ``data.classes`` read as a text list, else ``class_<i>``."""
    names = getattr(dataset, "classes", None)
    if names:
        return list(names)
    if dcfg.classes and dcfg.format != "ssv2":
        return _read_classes(dcfg.classes)
    n = num_classes or int(getattr(dataset, "num_classes", 0))
    if not n:
        raise ConfigError("Set data.classes (a label file) or model.num_classes: the dataset does not name its classes.")
    return [f"class_{i}" for i in range(n)]


def _split_item(item: Any) -> tuple[torch.Tensor, int]:
    """(clip, label) from whatever a dataset item is: a tuple/list or a dict."""
    if isinstance(item, Mapping):
        clip = item.get("clip", item.get("video", item.get("frames")))
        label = item.get("label", item.get("target"))
    else:
        clip, label = item[0], item[1]
    if clip is None or label is None:
        raise UniformerLabError("A dataset item has no clip or no label.")
    return clip, int(label)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with python/numpy/torch RNGs seeded, restoring the outer states afterwards."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _item_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) % 2**32 for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SeededClips(Dataset):
    """Training view of a dataset: key ``(index, epoch)`` -> ``num_sample`` augmented copies.

    Every copy's randomness is seeded from (seed, epoch, index, copy), so augmentation does not
    depend on the worker count, on worker reuse across epochs, or on where a run was resumed.
    """

    def __init__(self, dataset: Dataset, seed: int, num_sample: int = 1) -> None:
        self.dataset = dataset
        self.seed = seed
        self.num_sample = num_sample

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        clips, labels = [], []
        for copy in range(self.num_sample):
            with _seeded(_item_seed(self.seed, epoch, index, copy)):
                clip, label = _split_item(self.dataset[index])
            clips.append(torch.as_tensor(clip))
            labels.append(label)
        return torch.stack(clips), torch.tensor(labels)


class EpochSampler(Sampler):
    """Shuffled, rank-sharded indices (``DistributedSampler``) yielded as ``(index, epoch)`` keys."""

    def __init__(self, dataset: Dataset, env: DistEnv, seed: int, drop_last: bool = True) -> None:
        self.inner = DistributedSampler(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=drop_last
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, self.epoch) for i in self.inner)


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...``: every video evaluated exactly once over all ranks."""

    def __init__(self, n: int, env: DistEnv) -> None:
        self.indices = list(range(env.rank, n, env.world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def _loader_kwargs(dcfg: DataConfig, device: torch.device, seed: int) -> dict[str, Any]:
    workers = max(0, dcfg.num_workers)
    kw: dict[str, Any] = dict(
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),  # never draw worker seeds from the global RNG
    )
    if workers > 0:
        kw.update(persistent_workers=True, prefetch_factor=2)
    return kw


def build_train_loader(dataset: Dataset, cfg: TrainConfig, env: DistEnv) -> tuple[DataLoader, EpochSampler]:
    seeded = SeededClips(dataset, cfg.run.seed, cfg.aug.num_sample)
    sampler = EpochSampler(dataset, env, cfg.run.seed)
    loader = DataLoader(
        seeded,
        batch_size=cfg.data.batch_size,
        sampler=sampler,
        drop_last=True,
        **_loader_kwargs(cfg.data, env.device, cfg.run.seed),
    )
    return loader, sampler


# ----------------------------------------------------------------------------------- augmentation
class VideoMixup:
    """timm ``Mixup`` for clips ``(B, C, T, H, W)``: frames are folded into channels so the cutmix
    box (timm cuts the last two dims) is the same in every frame; mixup is unaffected."""

    def __init__(self, **kwargs: Any) -> None:
        from timm.data import Mixup

        self.mixup = Mixup(**kwargs)

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-2], shape[-1])  # a view for contiguous clips
        flat, target = self.mixup(flat, target)
        return flat.reshape(shape), target


class VideoRandomErasing:
    """timm ``RandomErasing`` per clip with the same box in every frame (frames folded into channels)."""

    def __init__(self, probability: float, device: torch.device) -> None:
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode="pixel", max_count=1, device=str(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.erase(x.reshape(shape[0], -1, shape[-2], shape[-1]).contiguous()).reshape(shape)


# --------------------------------------------------------------------------------------- precision
def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (None: fp32). CUDA auto: bf16 where supported, else fp16 (+ GradScaler)."""
    amp = amp.lower()
    if amp in ("none", "off", "fp32", "false"):
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16", "half"):
        if device.type != "cuda":
            raise ConfigError("run.amp = fp16 needs CUDA; on CPU use bf16 or none.")
        return torch.float16
    raise ConfigError(f"run.amp must be auto, none, bf16 or fp16, got {amp!r}.")


# --------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """All RNG states as tensors / plain numbers (loadable with ``weights_only=True``)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py[1], dtype=torch.int64),
        "python_version": py[0],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python"].tolist()), None))
    np.random.set_state((
        "MT19937",
        state["numpy_keys"].numpy().astype(np.uint32),
        int(state["numpy_pos"]),
        int(state["numpy_has_gauss"]),
        float(state["numpy_gauss"]),
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------- trainer
@dataclass
class StepResult:
    loss: float
    skipped: bool
    lr: float


class Trainer:
    """Model + DDP wrapper + optimiser + schedule + scaler + EMA + loss: one object whose
    ``state_dict()`` is everything a resume needs."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        num_classes: int,
        updates_per_epoch: int,
        env: DistEnv | None = None,
    ) -> None:
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3

        self.cfg = cfg
        self.env = env or DistEnv(device=resolve_device(cfg.run.device))
        self.device = self.env.device
        self.num_classes = num_classes
        model = model.to(self.device)
        if cfg.model.sync_bn and self.env.distributed:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                warnings.warn("model.sync_bn is ignored on CPU: SyncBatchNorm needs a GPU.", stacklevel=2)
        self.model = model
        self.ddp: nn.Module | None = None
        if self.env.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

        o = cfg.optim
        self.global_batch = cfg.data.batch_size * self.env.world_size
        self.lr = o.lr * (self.global_batch / o.lr_base_batch if o.lr_base_batch else 1.0)
        opt_kwargs: dict[str, Any] = {}
        if o.betas is not None:
            opt_kwargs["betas"] = tuple(o.betas)
        if o.eps is not None:
            opt_kwargs["eps"] = o.eps
        self.optimizer = create_optimizer_v2(
            model, opt=o.opt, lr=self.lr, weight_decay=o.weight_decay, momentum=o.momentum,
            filter_bias_and_bn=o.filter_bias_and_bn, **opt_kwargs,
        )
        # Per-iteration schedule as in SlowFast: linear warm-up, then the decay spans the remaining
        # ``epochs - warmup_epochs`` (cosine after warm-up); step milestones stay absolute epochs.
        decays_after_warmup = o.sched not in ("step", "multistep", "plateau") and o.warmup_epochs > 0
        if decays_after_warmup and o.warmup_epochs >= o.epochs:
            raise ConfigError("optim.warmup_epochs must be smaller than optim.epochs.")
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=o.sched,
            num_epochs=o.epochs - o.warmup_epochs if decays_after_warmup else o.epochs,
            warmup_epochs=o.warmup_epochs, warmup_prefix=decays_after_warmup,
            warmup_lr=o.warmup_lr, min_lr=o.min_lr, decay_milestones=list(o.decay_milestones),
            decay_rate=o.decay_rate, step_on_epochs=False, updates_per_epoch=max(1, updates_per_epoch),
        )
        self.amp_dtype = resolve_amp(cfg.run.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.ema = ModelEmaV3(model, decay=cfg.run.ema_decay) if cfg.run.ema else None

        a = cfg.aug
        self.mixup: VideoMixup | None = None
        if a.mixup > 0 or a.cutmix > 0:
            self.mixup = VideoMixup(
                mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mix_prob, switch_prob=a.switch_prob,
                mode=a.mix_mode, label_smoothing=a.label_smoothing, num_classes=num_classes,
            )
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        elif a.label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=a.label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()
        self.erase = VideoRandomErasing(a.random_erase, self.device) if a.random_erase > 0 else None

        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimiser updates
        self.skipped_steps = 0
        self.best: dict[str, Any] = {"top1": -1.0, "epoch": -1, "which": "model"}

    # ---------------------------------------------------------------------------------- steps
    @property
    def train_module(self) -> nn.Module:
        return self.ddp if self.ddp is not None else self.model

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        flag = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if self.env.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # every rank must skip together
        return bool(flag.item() > 0)

    def current_lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def train_step(self, clips: torch.Tensor, targets: torch.Tensor) -> StepResult:
        """One optimiser update on a batch ``(B[, k], C, T, H, W)`` with labels ``(B[, k])``."""
        module = self.train_module
        module.train()
        source_ptr = clips.data_ptr()
        clips = clips.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if clips.ndim == 6:  # (B, num_sample, C, T, H, W): copies become batch entries
            clips = clips.flatten(0, 1)
            targets = targets.flatten(0, 1)
        clips = clips.float().contiguous()
        if (self.erase is not None or self.mixup is not None) and clips.data_ptr() == source_ptr:
            clips = clips.clone()  # mixup / erasing work in place: never touch the caller's batch
        if self.erase is not None:
            clips = self.erase(clips)
        soft = targets
        if self.mixup is not None:
            if clips.shape[0] % 2:
                raise ConfigError("mixup/cutmix need an even number of clips per step; change data.batch_size.")
            clips, soft = self.mixup(clips, targets)
        lr = self.current_lr()
        with self.autocast():
            logits = module(clips)
        loss = self.criterion(logits.float(), soft)
        if not self._all_finite(loss):
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(f"Non-finite loss at step {self.global_step}; the step was skipped.", stacklevel=2)
            if self.skipped_steps > self.cfg.run.max_skipped_steps:
                raise UniformerLabError(
                    f"Training stopped after {self.skipped_steps} non-finite losses; lower optim.lr or turn off run.amp."
                )
            return StepResult(float("nan"), True, lr)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.clip_grad > 0:
            from timm.utils import dispatch_clip_grad

            self.scaler.unscale_(self.optimizer)
            dispatch_clip_grad(self.model.parameters(), self.cfg.optim.clip_grad, mode=self.cfg.optim.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        self.scheduler.step_update(num_updates=self.global_step)
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step)
        return StepResult(float(loss.item()), False, lr)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (this rank's RNG states included)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": _plain(self.scheduler.state_dict()),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "skipped_steps": self.skipped_steps,
            "best": dict(self.best),
            "rng": [capture_rng()],
            "world_size": self.env.world_size,
            "config": config_to_dict(self.cfg),
        }

    def load_state_dict(self, state: Mapping[str, Any], restore_rng_state: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.module.load_state_dict(state["ema"])
            else:
                self.ema.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved_optim = dict(state.get("config", {}).get("optim", {}))
        if saved_optim == config_to_dict(self.cfg)["optim"]:
            self.scheduler.load_state_dict(dict(state["scheduler"]))
        elif self.env.is_main:
            # e.g. more epochs to extend a finished run: the schedule follows the new settings
            warnings.warn("The [optim] settings differ from the checkpoint's; the learning-rate schedule "
                          "follows the new ones from the resumed step on.", stacklevel=2)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.best = dict(state.get("best", self.best))
        if restore_rng_state and state.get("rng"):
            rngs = state["rng"]
            if len(rngs) == self.env.world_size:
                restore_rng(rngs[self.env.rank])
            else:
                if self.env.is_main:
                    warnings.warn(
                        f"The checkpoint was written by {len(rngs)} process(es), this run has "
                        f"{self.env.world_size}: RNG streams restart from rank 0's state.",
                        stacklevel=2,
                    )
                restore_rng(rngs[0])
        # the scheduler state already holds the right lr; make sure the optimiser agrees
        self.scheduler.step_update(num_updates=self.global_step)


def _plain(obj: Any) -> Any:
    """Scheduler states hold only numbers/lists; turn tuples into lists for weights_only loading."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------------- checkpoints
def save_checkpoint(trainer: Trainer, path: Path, classes: Sequence[str], metrics: Mapping[str, Any]) -> None:
    """Write a full training checkpoint (rank 0 writes; every rank must call it: RNGs are gathered)."""
    state = trainer.state_dict()
    state["rng"] = _all_gather_objects(capture_rng(), trainer.env)
    if not trainer.env.is_main:
        return
    state["classes"] = list(classes)
    state["metrics"] = _plain(dict(metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"The checkpoint file {p} does not exist.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"The checkpoint file {p} cannot be read safely: {err}.") from err
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a training checkpoint written by uniformer.train; use model.init=checkpoint:{p} to fine-tune from it.")
    return dict(state)


def export_weights(
    state_dict: Mapping[str, torch.Tensor], path: Path, cfg: TrainConfig, classes: Sequence[str],
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Slim weights file for bundling: ``.safetensors`` with the config and classes as metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    meta = {
        "format": WEIGHTS_FORMAT,
        "config": json.dumps(config_to_dict(cfg)),
        "classes": json.dumps(list(classes)),
        "metrics": json.dumps(_plain(dict(metrics or {}))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


# ----------------------------------------------------------------------------------------- logging
class RunLog:
    """CSV log (always) and TensorBoard (when available); rank 0 only."""

    FIELDS = [
        "epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5",
        "ema_top1", "ema_top5", "clips_per_s", "epoch_time_s", "skipped_steps",
    ]

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = out_dir / "log.csv"
        self.tb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except Exception:  # tensorboard not installed: the CSV is enough
                self.tb = None

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k)) for k in self.FIELDS])
        if self.tb is not None:
            step = int(row.get("step", 0))
            for k in self.FIELDS[2:]:
                v = row.get(k)
                if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# ------------------------------------------------------------------------------------------ train
def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
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


def _eval_loader(dataset: Dataset, cfg: TrainConfig, env: DistEnv) -> DataLoader:
    kw = _loader_kwargs(cfg.data, env.device, cfg.run.seed)
    kw.pop("persistent_workers", None)  # evaluation runs rarely; don't keep its workers alive
    return DataLoader(
        dataset, batch_size=cfg.data.eval_batch_size or cfg.data.batch_size,
        sampler=ShardSampler(len(dataset), env), **kw,  # type: ignore[arg-type]
    )


def _evaluate(trainer: Trainer, model: nn.Module, loader: DataLoader, show: bool, desc: str) -> Any:
    from uniformer.evaluate import evaluate_model

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
    resume_path = ""
    if cfg.run.resume == "auto":
        found = [(out_dir / "last.pt").is_file()] if env.is_main else [False]
        if env.distributed:
            dist.broadcast_object_list(found, src=0)  # rank 0's disk decides
        resume_path = str(out_dir / "last.pt") if found[0] else ""
    elif cfg.run.resume:
        resume_path = cfg.run.resume

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
        state = _load_on_main(Path(resume_path), env)
        trainer.load_state_dict(state)
        del state
        if env.is_main:
            print(f"Resumed from {resume_path} at epoch {trainer.epoch} (step {trainer.global_step}).", flush=True)

    val_loader = None
    if cfg.data.val_list and cfg.run.eval_every > 0:
        val_loader = _eval_loader(build_dataset(cfg.data, "val", parse_views(cfg.data.val_views)), cfg, env)

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
            _barrier(env)

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
    state = _load_on_main(best_path, env)
    which = state["best"].get("which", "model")
    weights = state["ema"] if which == "ema" and state.get("ema") is not None else state["model"]
    if cfg.run.final_eval and (cfg.data.test_list or cfg.data.val_list):
        model = build_model(dataclasses.replace(cfg.model, init="random"), trainer.num_classes)
        model.load_state_dict(weights)
        model.to(trainer.device)
        test_set = build_dataset(cfg.data, "test", parse_views(cfg.data.test_views))
        res = _evaluate(trainer, model, _eval_loader(test_set, cfg, env), show, f"test {cfg.data.test_views}")
        result = {"test_top1": res.top1, "test_top5": res.top5, "test_views": cfg.data.test_views,
                  "test_videos": res.num_videos, "best_epoch": state["best"].get("epoch"), "best_weights": which}
        if env.is_main:
            report = res.to_dict(classes)
            report.update(result)
            (out_dir / "test_metrics.json").write_text(json.dumps(report, indent=2))
            print(json.dumps(result), flush=True)
    if cfg.run.export and env.is_main:
        export_weights(weights, out_dir / "model.safetensors", cfg, classes, {**state.get("metrics", {}), **result})
    _barrier(env)
    return result


# -------------------------------------------------------------------------------------------- CLI
def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python -m uniformer.train",
        description="Train a video classifier (single process or torchrun/DDP).",
        epilog="Overrides: section.key=value, e.g. optim.lr=1e-3 data.num_frames=8 model.kwargs.depth=[1,1,2,1]",
    )
    p.add_argument("--config", help="TOML (or JSON) config file")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shortcut for run.device")
    p.add_argument("--out-dir", help="shortcut for run.out_dir")
    p.add_argument("--resume", help="shortcut for run.resume (auto or a checkpoint path)")
    p.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    p.add_argument("overrides", nargs="*", help="section.key=value")
    return p.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = _parse_args(argv)
    try:
        if unknown:
            raise ConfigError(f"Unknown option {unknown[0]}; overrides look like section.key=value.")
        overrides = list(args.overrides)
        if args.device:
            overrides.append(f"run.device={args.device}")
        if args.out_dir:
            overrides.append(f"run.out_dir={json.dumps(args.out_dir)}")
        if args.resume:
            overrides.append(f"run.resume={json.dumps(args.resume)}")
        cfg = load_config(args.config, overrides)
        if args.print_config:
            print(dump_toml(cfg))
            return 0
        train(cfg)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
