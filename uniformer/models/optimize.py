"""Opt-in inference-time rewrites of a trained model (nothing here is used by training).

Why each one exists, and what the benchmark (``python -m benchmarks.run``, ``docs/BENCHMARKS.md``)
says about it. On the 2-core CPU measured so far none of them is a clear win: BatchNorm folding
and channels-last were within ±3 % of the plain model at batch 1 (S-16, B-16) and folding was
10 % slower at batch 8 (S-8); ``torch.compile`` gave 1.07× after 40 s of compilation. They stay
opt-in tools to re-measure on other hardware (GPUs especially), not defaults of the predictor.

* :func:`fold_batchnorm` — a UniFormer local block computes ``conv1(BN1(x))`` and
  ``mlp.fc1(BN2(x))``. In eval mode BatchNorm is a fixed per-channel affine map
  ``a * x + b`` and both consumers are 1x1x1 convolutions, so the affine map folds exactly into
  the conv's weight and bias: ``W' = W * a`` (per input channel), ``c' = c + W @ b``. Two full
  passes over the activation map per block disappear; logits agree with the unfolded model to
  float rounding (max abs difference 2e-6 on the golden fixture). The maps the analysis views read are
  untouched: the BN layers feed only these two convs.
* :func:`to_channels_last_3d` — ``torch.channels_last_3d`` memory format for the Conv3d-heavy
  stages. Whether it helps depends on the backend (oneDNN on CPU, cuDNN on GPU); measure first.
* ``compile=True`` in :func:`optimize_for_inference` — ``torch.compile``; pays a one-off
  compilation (tens of seconds on a small CPU) and recompiles per input shape.

:func:`optimize_for_inference` combines them on a *copy* in eval mode; the caller's model is
never modified. A folded model is for inference only: it has no BatchNorm statistics left to
train, and its ``state_dict`` no longer matches released checkpoints (it lacks the folded
``norm1``/``norm2`` keys), so load weights first and optimise afterwards.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["fold_batchnorm", "fold_bn_into_conv", "optimize_for_inference", "to_channels_last_3d"]


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` with ``bn(x) == a * x + b`` per channel, from the running statistics (eval mode)."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("BatchNorm without running statistics (track_running_stats=False) cannot be folded.")
    var = bn.running_var.double()
    a = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight.double()
    b = -bn.running_mean.double() * a
    if bn.bias is not None:
        b = b + bn.bias.double()
    return a, b


@torch.no_grad()
def fold_bn_into_conv(bn: nn.modules.batchnorm._BatchNorm, conv: nn.Module) -> None:
    """Rewrite ``conv`` (pointwise Conv/Linear, ungrouped) in place so ``conv(x) == old_conv(bn(x))``.

    Computed in float64 and cast back, so folding adds no error beyond the final rounding.
    """
    if isinstance(conv, nn.modules.conv._ConvNd):
        padded = not isinstance(conv.padding, str) and any(p != 0 for p in conv.padding)
        if conv.groups != 1 or any(k != 1 for k in conv.kernel_size) or padded:
            raise ValueError("Only ungrouped 1x1 convolutions without padding can absorb a preceding BatchNorm.")
    elif not isinstance(conv, nn.Linear):
        raise TypeError(f"Cannot fold BatchNorm into a {type(conv).__name__}.")
    a, b = _bn_affine(bn)
    w = conv.weight
    w64 = w.double().reshape(w.shape[0], w.shape[1])          # (out, in)
    if w64.shape[1] != a.numel():
        raise ValueError(f"BatchNorm has {a.numel()} channels but the conv expects {w64.shape[1]} inputs.")
    new_w = (w64 * a[None, :]).reshape(w.shape)
    new_b = w64 @ b
    if conv.bias is not None:
        new_b = new_b + conv.bias.double()
    w.copy_(new_w.to(w.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_b.to(dtype=w.dtype, device=w.device), requires_grad=w.requires_grad)
    else:
        conv.bias.copy_(new_b.to(conv.bias.dtype))


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fold every UniFormer local block's ``norm1`` into ``conv1`` and ``norm2`` into ``mlp.fc1``.

    Returns the folded model (a deep copy unless ``inplace``) in eval mode; the folded
    BatchNorms become ``nn.Identity``. Models without local blocks (TimeSformer) come back
    unchanged. The number of folded layers is recorded in ``model.folded_batchnorms``.
    """
    from uniformer.models.uniformer import LocalBlock

    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    folded = 0
    for block in model.modules():
        if not isinstance(block, LocalBlock):
            continue
        for norm_name, conv in (("norm1", block.conv1), ("norm2", block.mlp.fc1)):
            bn = getattr(block, norm_name)
            if isinstance(bn, nn.Identity):
                continue  # already folded
            fold_bn_into_conv(bn, conv)
            setattr(block, norm_name, nn.Identity())
            folded += 1
    model.folded_batchnorms = getattr(model, "folded_batchnorms", 0) + folded
    return model


def to_channels_last_3d(model: nn.Module, x: torch.Tensor | None = None) -> tuple[nn.Module, torch.Tensor | None]:
    """Put 5-D parameters (Conv3d weights) and the input in ``torch.channels_last_3d``.

    Converts ``model`` in place (as ``nn.Module.to`` does) and returns ``(model, x)`` with ``x``
    converted too (``None`` stays ``None``). Values are unchanged; only strides differ.
    """
    model = model.to(memory_format=torch.channels_last_3d)
    if x is not None and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return model, x


def optimize_for_inference(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = False,
    compile: bool = False,
    compile_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """An optimised **copy** of ``model`` for inference (eval mode, no grad needed).

    ``fold_bn``: :func:`fold_batchnorm`; ``channels_last``: channels-last 3D weights (feed inputs
    with :func:`to_channels_last_3d` or ``x.contiguous(memory_format=torch.channels_last_3d)``);
    ``compile``: wrap in ``torch.compile(**compile_kwargs)``. Folding is on by default because it is
    exact and never changes results; whether any of the three pays off depends on the hardware
    (docs/BENCHMARKS.md has the measured ratios). Zoo attributes (``zoo_entry``, ``label_names``)
    are carried over to the returned module.
    """
    out = copy.deepcopy(model).eval()
    if fold_bn:
        out = fold_batchnorm(out, inplace=True)
    if channels_last:
        out, _ = to_channels_last_3d(out)
    if compile:
        compiled = torch.compile(out, **(compile_kwargs or {}))
        for attr in ("zoo_entry", "label_names", "folded_batchnorms"):
            if hasattr(out, attr):
                setattr(compiled, attr, getattr(out, attr))
        return compiled
    return out
