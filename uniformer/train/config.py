"""The training configuration: a ``TrainConfig`` dataclass tree read from TOML (or JSON).

Every knob lives in a readable TOML file (``configs/``) mapped onto ``TrainConfig``;
``section.key=value`` arguments override it (values are parsed as TOML, so
``model.kwargs.depth=[1,1,2,1]`` and ``run.amp=bf16`` both work). Types are checked on load, so a
typo is one clear ``ConfigError`` sentence instead of a failure deep inside a run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uniformer.errors import ConfigError

__all__ = [
    "ModelConfig", "DataConfig", "OptimConfig", "AugConfig", "RunConfig", "TrainConfig",
    "load_config", "apply_overrides", "config_to_dict", "config_from_dict", "dump_toml",
]


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
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" (uniformer.device.resolve_device)
    amp: str = "auto"  # "auto" (CUDA: bf16 if supported else fp16; CPU: off) | "none" | "bf16" | "fp16"
    dist_backend: str = "auto"  # "auto" (nccl on CUDA, gloo on CPU) | "nccl" | "gloo"
    channels_last: str = "auto"  # "auto" (UniFormer: channels-last 3D, same maths, ~2x faster on CPU) | "on" | "off"
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
