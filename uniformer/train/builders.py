"""Builders shared by training and evaluation: the model, the datasets and their loaders.

``uniformer.train`` and ``uniformer.evaluate`` both build from a ``TrainConfig`` through these
functions, so a checkpoint is evaluated with exactly the model and the test protocol it was
trained and validated with. ``model_factory`` is the one place that maps a family name to a
constructor.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from uniformer.errors import ConfigError
from uniformer.models.family import FAMILIES
from uniformer.train.config import DataConfig, ModelConfig, TrainConfig
from uniformer.train.dist import DistEnv
from uniformer.train.samplers import EpochSampler, SeededClips, ShardSampler

__all__ = [
    "model_factory", "import_callable", "build_model", "load_finetune_checkpoint", "read_classes",
    "build_dataset", "dataset_classes", "loader_kwargs", "build_train_loader", "build_eval_loader",
]


# ------------------------------------------------------------------------------------------ model
def model_factory(family: str) -> Callable[..., nn.Module]:
    """The constructor for ``model.family``: a known family name or ``package.module:callable``.

    Family names come from the one family table (``uniformer.models.family.FAMILIES``).
    """
    if family in FAMILIES:
        return FAMILIES[family].build
    return import_callable(family)


def import_callable(spec: str) -> Any:
    """``package.module:attr.path`` -> the object (a user-supplied model or dataset factory)."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"model.family {spec!r} must be one of {', '.join(map(repr, FAMILIES))} or "
                          "'package.module:callable'.")
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
        factory = model_factory(mcfg.family)
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
            raise ConfigError(f"{type(model).__name__} has no set_grad_checkpointing(); turn model.grad_checkpointing "
                              "off.")
        model.set_grad_checkpointing(True)
    return model


def load_finetune_checkpoint(model: nn.Module, path: str, reset_head: bool = False) -> bool:
    """Start from an official (or our own) checkpoint, strictly except for the classifier, which
    keeps its fresh initialisation when the class count differs (or with ``reset_head``).
    Returns whether the head was reset."""
    from uniformer.models.checkpoint import apply_filter, classifier_prefix, head_fits, load_checkpoint

    filter_fn = getattr(importlib.import_module(type(model).__module__), "checkpoint_filter_fn", None)
    state = apply_filter(_read_state(path), model, filter_fn)
    reset = bool(reset_head or not head_fits(model, state))
    load_checkpoint(model, state, ignore_head=reset and classifier_prefix(model) is not None)
    return reset


# ------------------------------------------------------------------------------------------- data
def read_classes(path: str) -> list[str]:
    """Class names from a label file, one per line (blank lines ignored)."""
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
        return import_callable(fmt)(list_file, dcfg.root, **kwargs)
    except TypeError as err:  # an unknown dataset_kwargs entry, typically
        raise ConfigError(f"Cannot build the {split} dataset ({fmt}): {err}.") from err


def dataset_classes(dataset: Dataset, dcfg: DataConfig, num_classes: int = 0) -> list[str]:
    """Class names: the dataset's own (from ``data.classes`` or its folders/labels), else
    ``data.classes`` read as a text list, else ``class_<i>``."""
    names = getattr(dataset, "classes", None)
    if names:
        return list(names)
    if dcfg.classes and dcfg.format != "ssv2":
        return read_classes(dcfg.classes)
    n = num_classes or int(getattr(dataset, "num_classes", 0))
    if not n:
        raise ConfigError(
            "Set data.classes (a label file) or model.num_classes: the dataset does not name its classes.")
    return [f"class_{i}" for i in range(n)]



def loader_kwargs(dcfg: DataConfig, device: torch.device, seed: int) -> dict[str, Any]:
    """DataLoader settings for ``dcfg``: workers, pinning, and a private generator for worker seeds."""
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
    """Shuffled, rank-sharded batches of ``aug.num_sample`` seeded copies per clip (last batch dropped)."""
    seeded = SeededClips(dataset, cfg.run.seed, cfg.aug.num_sample)
    sampler = EpochSampler(dataset, env, cfg.run.seed)
    loader = DataLoader(
        seeded,
        batch_size=cfg.data.batch_size,
        sampler=sampler,
        drop_last=True,
        **loader_kwargs(cfg.data, env.device, cfg.run.seed),
    )
    return loader, sampler


def build_eval_loader(dataset: Dataset, dcfg: DataConfig, env: DistEnv, seed: int = 0) -> DataLoader:
    """Every video once over all ranks, ``data.eval_batch_size`` (else ``batch_size``) per batch."""
    kw = loader_kwargs(dcfg, env.device, seed)
    kw.pop("persistent_workers", None)  # evaluation runs rarely; don't keep its workers alive
    return DataLoader(
        dataset, batch_size=dcfg.eval_batch_size or dcfg.batch_size,
        sampler=ShardSampler(len(dataset), env), **kw,  # type: ignore[arg-type]
    )
