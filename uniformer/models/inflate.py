"""Inflate a 2D (ImageNet) UniFormer state dict into a 3D video UniFormer.

The official video models start from the image checkpoints. Image and video models have the same
key set; only conv kernels gain a time axis. Each 2D kernel ``[O, I, kh, kw]`` is repeated ``kt``
times along a new dim 2 and divided by ``kt`` (mean-preserving, as in the official
``get_pretrained_model``): on a temporally constant clip the 3D conv then responds as the 2D conv
does on one frame, away from the zero-padded first and last frames.
Everything else (norms, Linear layers) is copied; the classifier is dropped when the class count
differs, and the result is loaded with ``strict=False``.
"""
from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch
from torch import nn

from uniformer.errors import CheckpointError
from uniformer.models.checkpoint import classifier_prefix, head_fits, read_checkpoint, unwrap_state_dict

__all__ = ["inflate_weight", "inflate_2d_state_dict", "load_inflated"]


def inflate_weight(weight_2d: torch.Tensor, time_dim: int, center: bool = False) -> torch.Tensor:
    """``[O, I, kh, kw]`` -> ``[O, I, time_dim, kh, kw]``.

    Default: repeat and divide by ``time_dim`` (what the official code uses). ``center=True``:
    the 2D kernel in the middle time slice, zeros elsewhere (the unused official variant).
    """
    if center:
        weight_3d = weight_2d.new_zeros(weight_2d.shape[:2] + (time_dim,) + weight_2d.shape[2:])
        weight_3d[:, :, time_dim // 2] = weight_2d
        return weight_3d
    return weight_2d.unsqueeze(2).repeat(1, 1, time_dim, 1, 1) / time_dim


def inflate_2d_state_dict(state_dict_2d: Mapping[str, Any], model_3d: nn.Module) -> dict[str, torch.Tensor]:
    """Return a state dict for ``model_3d`` built from a 2D (image) UniFormer state dict.

    ``state_dict_2d`` may be plain or wrapped in ``model`` / ``model_state`` / ``state_dict``
    (unwrapped, and a shared ``module.`` prefix stripped, by ``checkpoint.unwrap_state_dict``).
    Keys the 3D model does not have are dropped, as is ``head.*`` when the class count differs.
    A shape that inflation cannot reconcile raises ``CheckpointError``.
    """
    source = unwrap_state_dict(state_dict_2d)
    target = model_3d.state_dict()
    head = f"{classifier_prefix(model_3d) or 'head'}."
    keep_head = head_fits(model_3d, source)
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key not in target or not isinstance(value, torch.Tensor):
            continue
        if key.startswith(head) and not keep_head:
            continue
        want = target[key].shape
        if value.shape != want and len(want) > 2 and value.ndim == len(want) - 1:
            value = inflate_weight(value, want[2])
        if value.shape != want:
            raise CheckpointError(
                f"Cannot inflate '{key}': the 2D checkpoint has shape {tuple(value.shape)} "
                f"but the video model needs {tuple(want)}."
            )
        out[key] = value
    return out


def load_inflated(model_3d: nn.Module, source: Mapping[str, Any] | str | PathLike) -> list[str]:
    """Inflate ``source`` (a state dict, a wrapped one, or a file path) into ``model_3d``.

    Loads with ``strict=False`` and returns the keys the model did not receive (normally just
    ``head.weight`` / ``head.bias`` when the class counts differ).
    """
    if isinstance(source, (str, PathLike)):
        source = read_checkpoint(source)  # safe read; bad files raise CheckpointError
    result = model_3d.load_state_dict(inflate_2d_state_dict(source, model_3d), strict=False)
    return list(result.missing_keys)
