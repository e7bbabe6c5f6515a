"""Inference-time rewrites of a trained model (nothing here is used by training).

:func:`optimize_for_inference` is what the predict and evaluate CLIs, the app and the benchmarks
run (``--precision fp32`` by default): a copy of the model with BatchNorm folded, channels-last 3D
weights, fed channels-last clips (UniFormer then runs channels-last end to end, see
``uniformer.models.uniformer_blocks``), optionally under bf16 autocast. It takes and returns what
the plain model does: ``(B, 3, T, H, W)`` in, float32 logits out. fp32 is exact (within 1e-4 of
the plain model, in practice 1e-6); bf16 is allowed only where ``uniformer.device.resolve_precision``
says the hardware runs it fast, and its accuracy is measured by ``python -m benchmarks.precision``.
Under bf16 only ``forward_features`` runs in autocast; ``forward_head`` (pooling + classifier, a
negligible share of the FLOPs) runs in fp32, because bf16 logits keep 8 bits of mantissa and
round near-ties: with the head in bf16, top-1 agreed with fp32 on 99.00 % / 99.17 % of 1200
held-out lab clips (``uniformer_lab`` / ``timesformer_lab``), with it in fp32 on 99.92 % / 99.75 %
(keeping the stem in fp32 as well changed nothing). A compiled bf16 model keeps the whole forward
in autocast (the split would bypass the compiled graph).
The attention-capture path (``analysis.attention``) keeps using the plain fp32 model.

* :func:`fold_batchnorm` — a UniFormer local block computes ``conv1(BN1(x))`` and
  ``mlp.fc1(BN2(x))``. In eval mode BatchNorm is a fixed per-channel affine map
  ``a * x + b`` and both consumers are 1x1x1 convolutions, so the affine map folds exactly into
  the conv's weight and bias: ``W' = W * a`` (per input channel), ``c' = c + W @ b``. Two full
  passes over the activation map per block disappear; logits agree with the unfolded model to
  float rounding (max abs difference 2e-6 on the golden fixture). The maps the analysis views read are
  untouched: the BN layers feed only these two convs.
* :func:`to_channels_last_3d` — ``torch.channels_last_3d`` memory format for the Conv3d-heavy
  stages. Whether it helps depends on the backend (oneDNN on CPU, cuDNN on GPU); measure first.
* ``compile=True`` in :func:`optimize_for_inference` — ``torch.compile`` of the folded
  channels-last model; pays a one-off compilation (tens of seconds on a small CPU, again for every
  new input shape), which one CLI prediction never earns back, so it is off by default. Inductor
  needs a C++ compiler on CPU; without one the request is refused in one sentence rather than
  failing inside the first forward.
* Fused bias + GELU: the pointwise layers already run as GEMMs with the bias fused (``addmm``);
  oneDNN's fused linear+GELU was not a reliable win on the CPU measured (between 0.6x and 1.2x
  of ``addmm`` then ``gelu`` under load), so it is not used.

:func:`optimize_for_inference` combines them on a *copy* in eval mode; the caller's model is
never modified. A folded model is for inference only: it has no BatchNorm statistics left to
train, and its ``state_dict`` no longer matches released checkpoints (it lacks the folded
``norm1``/``norm2`` keys), so load weights first and optimise afterwards.
"""
from __future__ import annotations

import copy
import shutil
from typing import Any

import torch
from torch import nn

from uniformer.device import autocast, resolve_precision
from uniformer.errors import ConfigError

__all__ = ["InferenceModel", "fold_batchnorm", "fold_bn_into_conv", "optimize_for_inference", "runs_channels_last",
           "to_channels_last_3d"]

_CARRIED = ("zoo_entry", "label_names", "folded_batchnorms", "num_classes")


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



class InferenceModel(nn.Module):
    """The optimised model behind the plain model's interface: ``(B, 3, T, H, W)`` in, float32 logits out.

    Converts the clip to channels-last 3D when the core runs that way and opens bf16 autocast for
    ``precision="bf16"``. ``core`` is the rewritten copy; :meth:`with_precision` gives a second
    wrapper sharing it (the app switches precision without another copy of the weights).
    """

    def __init__(self, core: nn.Module, *, precision: str = "fp32", dtype: torch.dtype | None = None,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.core = core
        self.precision = precision
        self.dtype = dtype
        self.channels_last = channels_last
        for attr in _CARRIED:
            if hasattr(core, attr):
                setattr(self, attr, getattr(core, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and isinstance(x, torch.Tensor) and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
        split = (self.dtype is not None and hasattr(self.core, "forward_head")
                 and not hasattr(self.core, "_orig_mod"))  # a torch.compile wrapper: keep its one graph
        with autocast(device, self.dtype):
            out = self.core.forward_features(x) if split else self.core(x)
        if split:
            out = self.core.forward_head(out.float())  # fp32 logits (module docstring)
        return out.float()

    def with_precision(self, precision: str) -> InferenceModel:
        """The same rewritten weights run at another precision (checked by ``resolve_precision``)."""
        dtype = resolve_precision(precision, _device_of(self.core))
        out = InferenceModel(self.core, precision=_canonical(precision), dtype=dtype, channels_last=self.channels_last)
        return out.train(self.training)

    def extra_repr(self) -> str:
        return f"precision={self.precision}, channels_last={self.channels_last}"


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _canonical(precision: str) -> str:
    return "bf16" if str(precision).strip().lower() in ("bf16", "bfloat16") else "fp32"


def runs_channels_last(model: nn.Module) -> bool:
    """Models whose blocks keep a channels-last clip channels-last (UniFormer); others gain nothing.

    The one policy for inference and training: UniFormer's Conv3d (patch embeds, the CPE and the
    local aggregator's depthwise kernel) runs oneDNN's channels-last kernels, whose backward is
    about 2x faster on CPU than the default layout's (the lab recipe: 677 -> 305 ms a step).
    """
    from uniformer.models.uniformer import UniFormer

    return isinstance(model, UniFormer)


def optimize_for_inference(
    model: nn.Module,
    precision: str = "fp32",
    *,
    fold_bn: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    compile_kwargs: dict[str, Any] | None = None,
) -> InferenceModel:
    """An optimised **copy** of ``model`` for inference, as an :class:`InferenceModel` (eval mode).

    ``precision``: ``fp32`` (exact) or ``bf16`` (autocast; refused in one sentence, a
    ``ConfigError``, where the model's device has no fast bf16). ``fold_bn``: :func:`fold_batchnorm`.
    ``channels_last``: channels-last 3D weights and inputs (None: for UniFormer, whose blocks keep
    the layout; TimeSformer would only pay a copy). ``compile``: ``torch.compile(**compile_kwargs)``
    of the rewritten core. The caller's model is never modified; zoo attributes (``zoo_entry``,
    ``label_names``) are carried over.
    """
    dtype = resolve_precision(precision, _device_of(model))  # refuse before copying anything
    if channels_last is None:
        channels_last = runs_channels_last(model)
    core = copy.deepcopy(model).eval()
    if fold_bn:
        core = fold_batchnorm(core, inplace=True)
    if channels_last:
        core, _ = to_channels_last_3d(core)
    if compile:
        kwargs = dict(compile_kwargs or {})
        backend = kwargs.get("backend", "inductor")
        if backend == "inductor" and _device_of(core).type == "cpu" and shutil.which("c++") is None \
                and shutil.which("g++") is None:
            raise ConfigError("torch.compile needs a C++ compiler on CPU and none was found; leave compile off.")
        compiled = torch.compile(core, **kwargs)
        for attr in _CARRIED:
            if hasattr(core, attr):
                setattr(compiled, attr, getattr(core, attr))
        core = compiled
    return InferenceModel(core, precision=_canonical(precision), dtype=dtype, channels_last=channels_last).eval()
