"""Reproducible data order: clips keyed by ``(index, epoch)``, rank-sharded samplers.

Every augmented copy is seeded from (seed, epoch, index, copy) only, so augmentation does not
depend on the worker count, on worker reuse across epochs, or on where a run was resumed; and
evaluation shards videos ``rank::world`` so each is counted exactly once over all ranks.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from uniformer.errors import UniformerLabError
from uniformer.train.dist import DistEnv

__all__ = ["SeededClips", "EpochSampler", "ShardSampler"]


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
