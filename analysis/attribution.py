"""Which parts of the clip drive a prediction: CAM / Grad-CAM, attention rollout, captum.

- ``class_activation_map`` (UniFormer): the official ``vis/`` notebooks' CAM — output of the
  last stage-4 block (before the final BatchNorm) weighted channel-wise by the head row of the
  class, min-max normalised. Returned on the stage-4 grid ``(T', H', W')``; the views stretch it
  over the frames (the notebook upsamples ×32 spatially).
- ``grad_cam`` (UniFormer): the same features weighted by the clip-mean gradient of the class
  logit (Selvaraju et al.), ReLU, min-max normalised.
- ``attention_rollout`` (TimeSformer, divided space-time): Abnar & Zuidema's rollout carried
  through the divided block structure — each block is temporal-then-spatial attention, each with
  its residual (``residual·I + (1−residual)·A``, heads averaged), the cls copies of the spatial
  step averaged over frames as in the model. Relevance is pulled back from the cls token (or an
  anchor patch) to the embedding tokens; it sums to 1 over cls + patches.
- ``integrated_gradients`` / ``occlusion``: captum attributions over space-time, reduced over
  colour channels to one heat volume per clip.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from analysis.attention import AnalysisError, AttentionRecord, model_family
from uniformer.models.family import get_family


def _targets(logits: Tensor, target: int | Sequence[int] | Tensor | None) -> Tensor:
    """Per-sample class indices: the prediction when ``target`` is None."""
    if target is None:
        return logits.argmax(-1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(logits.shape[0])
    if t.numel() != logits.shape[0]:
        raise AnalysisError(f"Got {t.numel()} target classes for a batch of {logits.shape[0]} clips.")
    if (t < 0).any() or (t >= logits.shape[-1]).any():
        raise AnalysisError(f"Target class must be between 0 and {logits.shape[-1] - 1}, got {t.tolist()}.")
    return t


def _min_max(heat: Tensor) -> Tensor:
    """Per-sample min-max to [0, 1] over the whole (T, H, W) volume (constant → 0)."""
    flat = heat.flatten(1)
    lo = flat.min(1).values.view(-1, *[1] * (heat.dim() - 1))
    hi = flat.max(1).values.view(-1, *[1] * (heat.dim() - 1))
    return torch.where(hi - lo > 1e-12, (heat - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(heat))


@dataclass
class ClassMap:
    """A class map on the stage-4 grid: ``heat`` in [0, 1] and the ``raw`` values, ``(B, T', H', W')``."""

    method: str
    heat: Tensor
    raw: Tensor
    target: Tensor
    logits: Tensor


def _require_uniformer(model: nn.Module, what: str) -> None:
    model_family(model)  # an unsupported model: one AnalysisError sentence
    if get_family(model).attribution != "cam":
        raise AnalysisError(f"{what} is defined on UniFormer's last stage; use attention rollout for TimeSformer.")


def class_activation_map(model: nn.Module, x: Tensor, target: int | Sequence[int] | None = None) -> ClassMap:
    """CAM as in the official notebooks (no ReLU; min-max over the clip)."""
    _require_uniformer(model, "CAM")
    with torch.no_grad():
        out = model.forward_stages(x)
        feats = out["stage_outputs"][-1]  # last stage-4 block, before the final norm
        t = _targets(out["logits"], target)
        raw = torch.einsum("bc,bcthw->bthw", model.head.weight[t], feats)
    return ClassMap("CAM", _min_max(raw), raw, t, out["logits"])


def grad_cam(model: nn.Module, x: Tensor, target: int | Sequence[int] | None = None) -> ClassMap:
    """Grad-CAM on the output of the last stage-4 block."""
    _require_uniformer(model, "Grad-CAM")
    with torch.enable_grad():
        # an input that needs grad keeps the graph even for a frozen model
        out = model.forward_stages(x.detach().requires_grad_(True))
        feats = out["stage_outputs"][-1]
        logits = out["logits"]
        t = _targets(logits, target)
        score = logits.gather(1, t[:, None]).sum()
        (grads,) = torch.autograd.grad(score, feats)
    weights = grads.mean(dim=(2, 3, 4))  # (B, C)
    raw = torch.relu(torch.einsum("bc,bcthw->bthw", weights, feats.detach()))
    return ClassMap("Grad-CAM", _min_max(raw), raw, t, logits.detach())


# --------------------------------------------------------------------------------------------
# Attention rollout (TimeSformer, divided space-time)


@dataclass
class Rollout:
    """Relevance of the embedding tokens for the start token: ``patches`` ``(T, Hp, Wp)`` and ``cls``."""

    patches: Tensor
    cls: float
    start: str


def attention_rollout(
    record: AttentionRecord,
    start: Sequence[int] | None = None,
    sample: int = 0,
    residual: float = 0.5,
) -> Rollout:
    """Roll attention out through all divided blocks, from the cls token or patch ``start=(t, h, w)``."""
    blocks = sorted({info.block for info in record.layers.values() if info.kind == "temporal"})
    if get_family(record).attribution != "rollout" or not blocks:
        raise AnalysisError("Attention rollout needs a TimeSformer with divided space-time attention.")
    T, Hp, Wp = record.layers[f"spatial_attn_block{blocks[0]}"].grid
    N = Hp * Wp
    a = residual
    r = torch.zeros(T, N, dtype=torch.float64)  # relevance on patch tokens, frame-major
    if start is None:
        rc = torch.tensor(1.0, dtype=torch.float64)
        label = "cls"
    else:
        t, h, w = (int(v) for v in start)
        if not (0 <= t < T and 0 <= h < Hp and 0 <= w < Wp):
            raise AnalysisError(f"Start token {(t, h, w)} lies outside the {T}×{Hp}×{Wp} patch grid.")
        r[t, h * Wp + w] = 1.0
        rc = torch.tensor(0.0, dtype=torch.float64)
        label = f"patch (t={t}, h={h}, w={w})"

    for i in reversed(blocks):
        s = record.maps[f"spatial_attn_block{i}"][sample].mean(1).to(torch.float64)  # (T, 1+N, 1+N)
        tm = record.maps[f"temporal_attn_block{i}"][sample].mean(1).to(torch.float64)  # (N, T, T)
        # spatial step: cls output = mean over frames of the per-frame cls rows
        rc_new = a * rc + (1 - a) * (rc * s[:, 0, 0].mean() + (r * s[:, 1:, 0]).sum())
        r = a * r + (1 - a) * (rc / T * s[:, 0, 1:] + torch.einsum("tn,tnm->tm", r, s[:, 1:, 1:]))
        rc = rc_new
        # temporal step: per patch position, over frames; the cls token is not involved
        r = a * r + (1 - a) * torch.einsum("tn,nts->sn", r, tm)
    return Rollout(patches=r.reshape(T, Hp, Wp).float(), cls=float(rc), start=label)


# --------------------------------------------------------------------------------------------
# captum


@dataclass
class Attribution:
    """captum output: ``raw`` like the input ``(B, 3, T, H, W)``; ``heat`` reduced over channels."""

    method: str
    heat: Tensor
    raw: Tensor
    target: Tensor
    delta: Tensor | None = None


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x)


def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: int | Sequence[int] | None = None,
    baseline: Tensor | float = 0.0,
    n_steps: int = 16,
    internal_batch_size: int | None = None,
) -> Attribution:
    """Integrated Gradients from ``baseline`` (default: zeros = the dataset-mean grey clip after
    normalisation); ``heat`` = |attribution| summed over colour channels; ``delta`` = captum's
    completeness error per clip. ``internal_batch_size`` (default: the batch size, i.e. one
    interpolation step per forward) bounds memory on full-size models."""
    from captum.attr import IntegratedGradients

    t = _targets(_logits(model, x), target)
    ig = IntegratedGradients(model)
    with torch.enable_grad():
        raw, delta = ig.attribute(
            x.detach(), baselines=baseline, target=t, n_steps=n_steps,
            internal_batch_size=internal_batch_size or x.shape[0], return_convergence_delta=True,
        )
    return Attribution("Integrated Gradients", raw.abs().sum(1).detach(), raw.detach(), t, delta.detach())


def occlusion(
    model: nn.Module,
    x: Tensor,
    target: int | Sequence[int] | None = None,
    window: tuple[int, int, int] = (2, 32, 32),
    stride: tuple[int, int, int] | None = None,
    baseline: float = 0.0,
    perturbations_per_eval: int = 1,
) -> Attribution:
    """Occlusion with a ``(t, h, w)`` space-time window over all channels: ``heat`` is the drop
    in the class logit when that window is replaced by ``baseline`` (averaged over windows)."""
    from captum.attr import Occlusion

    if len(window) != 3:
        raise AnalysisError(f"The occlusion window is (frames, height, width), got {tuple(window)}.")
    stride = tuple(stride or window)
    t = _targets(_logits(model, x), target)
    occ = Occlusion(model)
    with torch.no_grad():
        raw = occ.attribute(
            x.detach(), sliding_window_shapes=(x.shape[1], *window), strides=(x.shape[1], *stride),
            baselines=baseline, target=t, perturbations_per_eval=perturbations_per_eval,
        )
    return Attribution("Occlusion", raw.mean(1), raw, t)
