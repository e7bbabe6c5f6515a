"""Attention maps of one forward pass, named and laid out for analysis.

``extract(model, x)`` runs the model once with the shared attention layers switched to their
explicit-softmax path (``uniformer.models.layers.attention_capture``) and returns the logits plus
every map, reshaped from the modules' internal batch layouts to a per-sample layout:

UniFormer (stages count from 1, blocks from 0)
    ``local_affinity_stage{s}_block{b}``  ``(C, 1, 5, 5, 5)``  learned depthwise kernel
    ``global_attn_stage{s}_block{b}``     ``(B, heads, L, L)``, L = T'·H'·W' in (t, h, w) order
    with ``split=True``:
    ``temporal_attn_stage{s}_block{b}``   ``(B, H'·W', heads, T', T')``
    ``spatial_attn_stage{s}_block{b}``    ``(B, T', heads, H'·W', H'·W')``
TimeSformer
    ``spatial_attn_block{i}``   ``(B, T, heads, 1+N, 1+N)`` (token 0 = the frame's cls copy,
                                 1+n = patch n = h·Wp + w)
    ``temporal_attn_block{i}``  ``(B, N, heads, T, T)``
    ``joint_attn_block{i}``     ``(B, heads, 1+T·N, 1+T·N)`` for ``joint_space_time`` models,
                                 re-ordered to cls then (t, h, w)

The normal forward is untouched: the capture switch and the shape hooks exist only inside
``extract`` and are removed on exit, so ``model(x)`` keeps the fused SDPA path.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from uniformer.errors import UniformerLabError, UnknownModelError
from uniformer.models.family import TIMESFORMER, UNIFORMER, get_family
from uniformer.models.layers import attention_capture

Kind = Literal["local_affinity", "joint", "spatial", "temporal"]
Grid = tuple[int, int, int]


class AnalysisError(UniformerLabError, ValueError):
    """An analysis request that does not fit the model or the data (one-sentence message)."""


@dataclass(frozen=True)
class LayerInfo:
    """Where a map sits and what it is over.

    ``grid`` is the ``(T, H, W)`` token grid of that layer; ``layer_index`` counts blocks in
    forward order across stages (TimeSformer's spatial and temporal maps of block i share i).
    """

    kind: Kind
    layer_index: int
    stage: int
    block: int
    grid: Grid
    has_cls: bool = False


@dataclass
class AttentionRecord:
    """Output of :func:`extract`: logits, maps by name (forward order) and their geometry."""

    model: str
    logits: Tensor
    maps: dict[str, Tensor]
    layers: dict[str, LayerInfo]
    input_shape: tuple[int, ...] = field(default=())

    @property
    def frames_per_token(self) -> float:
        """Input frames per token-grid frame (2 for UniFormer's stem, 1 for TimeSformer)."""
        if not self.layers or not self.input_shape:
            return 1.0
        return self.input_shape[2] / next(iter(self.layers.values())).grid[0]


def model_family(model: nn.Module) -> str:
    """The family name (``uniformer.models.FAMILIES``); other models are not supported here."""
    try:
        return get_family(model).name
    except UnknownModelError:
        raise AnalysisError(
            f"Attention analysis supports UniFormer and TimeSformer models, not {type(model).__name__}."
        ) from None


@dataclass(frozen=True)
class _Slot:
    """One map ``extract`` can return: where it is computed and what it will be called."""

    name: str
    kind: Kind
    stage: int
    block: int
    index: int
    module: nn.Module  # the Attention that computes it, or the depthwise Conv3d (kernel)
    grid_module: nn.Module  # whose input (UniFormer: the block) or output (TimeSformer: the patch embed) fixes the grid
    has_cls: bool = False
    grid_from_output: bool = False


def _uniformer_slots(model: nn.Module) -> list[_Slot]:
    from uniformer.models.uniformer import GlobalBlock, LocalBlock, SplitGlobalBlock

    slots = []
    index = 0
    for s, stage in enumerate(model.stages, start=1):
        for b, blk in enumerate(stage):
            if isinstance(blk, LocalBlock):
                slots.append(_Slot(f"local_affinity_stage{s}_block{b}", "local_affinity", s, b, index, blk.attn, blk))
            elif isinstance(blk, SplitGlobalBlock):
                slots.append(_Slot(f"temporal_attn_stage{s}_block{b}", "temporal", s, b, index, blk.t_attn, blk))
                slots.append(_Slot(f"spatial_attn_stage{s}_block{b}", "spatial", s, b, index, blk.attn, blk))
            elif isinstance(blk, GlobalBlock):
                slots.append(_Slot(f"global_attn_stage{s}_block{b}", "joint", s, b, index, blk.attn, blk))
            else:  # pragma: no cover - a block type this module does not know
                raise AnalysisError(f"Unknown UniFormer block type {type(blk).__name__} in stage {s}.")
            index += 1
    return slots


def _timesformer_slots(model: nn.Module) -> list[_Slot]:
    slots = []
    embed = model.patch_embed
    for i, blk in enumerate(model.blocks):
        if model.attention_type == "divided_space_time":
            slots.append(_Slot(f"temporal_attn_block{i}", "temporal", 0, i, i, blk.temporal_attn, embed,
                               grid_from_output=True))
        if model.attention_type == "joint_space_time":
            slots.append(_Slot(f"joint_attn_block{i}", "joint", 0, i, i, blk.attn, embed, has_cls=True,
                               grid_from_output=True))
        else:
            slots.append(_Slot(f"spatial_attn_block{i}", "spatial", 0, i, i, blk.attn, embed, has_cls=True,
                               grid_from_output=True))
    return slots


_SLOTS = {UNIFORMER.name: _uniformer_slots, TIMESFORMER.name: _timesformer_slots}


def _slots(model: nn.Module) -> list[_Slot]:
    return _SLOTS[model_family(model)](model)


def map_slots(model: nn.Module) -> list[_Slot]:
    """Every map of the model with the module computing it and the module fixing its grid
    (shared with ``analysis.intervention``, which masks the same modules)."""
    return _slots(model)


def map_names(model: nn.Module) -> list[str]:
    """Names of the maps :func:`extract` returns for this model, in forward order (no forward)."""
    return [slot.name for slot in _slots(model)]


def extract(model: nn.Module, x: Tensor, layers: Sequence[str] | None = None) -> AttentionRecord:
    """One forward pass of ``x`` ``(B, 3, T, H, W)`` returning logits and the attention maps.

    ``layers`` keeps only the named maps (see :func:`map_names`); the other attention modules
    stay on the fused path, which saves memory on large models (UniFormer-B 32×224 holds about
    4 GB of stage-3 maps). Runs under ``torch.no_grad``; the model's train/eval mode is left as
    it is (call ``model.eval()`` first for deterministic maps).
    """
    if not isinstance(x, Tensor) or x.ndim != 5:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise AnalysisError(f"Attention extraction needs a clip tensor shaped (B, 3, T, H, W), got {got}.")
    family = model_family(model)
    slots = _slots(model)
    if layers is not None:
        unknown = sorted(set(layers) - {slot.name for slot in slots})
        if unknown:
            raise AnalysisError(f"The model has no map named {', '.join(unknown)}; see "
                                "analysis.attention.map_names(model).")
        slots = [slot for slot in slots if slot.name in set(layers)]

    grids: dict[int, tuple[int, int, int]] = {}

    def block_grid(module: nn.Module, args: tuple) -> None:  # UniFormer block input (B, C, T, H, W)
        grids[id(module)] = tuple(int(v) for v in args[0].shape[2:])

    def patch_grid(module: nn.Module, _args: tuple, out: tuple[Tensor, int, int]) -> None:  # TimeSformer
        grids[id(module)] = (int(x.shape[2]), int(out[1]), int(out[2]))

    B = x.shape[0]
    with ExitStack() as stack, torch.no_grad():
        for slot in {id(slot.grid_module): slot for slot in slots}.values():
            if slot.grid_from_output:
                handle = slot.grid_module.register_forward_hook(patch_grid)
            else:
                handle = slot.grid_module.register_forward_pre_hook(block_grid)
            stack.callback(handle.remove)
        modules = stack.enter_context(attention_capture(model))
        wanted = {id(slot.module) for slot in slots}
        for module in modules.values():  # only the requested maps leave the fused path
            module.capture = id(module) in wanted
        logits = model(x)

        maps: dict[str, Tensor] = {}
        infos: dict[str, LayerInfo] = {}
        for slot in slots:
            grid = grids[id(slot.grid_module)]
            if slot.kind == "local_affinity":
                m = slot.module.weight.detach().clone()
            else:
                m = slot.module.attn_map
                if slot.kind in ("temporal", "spatial"):  # (B * sites, heads, q, k) -> (B, sites, heads, q, k)
                    m = m.reshape(B, -1, *m.shape[1:])
                elif slot.has_cls:  # TimeSformer joint: token 1 + n*T + t -> cls, then (t, h, w)
                    T, N = grid[0], grid[1] * grid[2]
                    order = torch.arange(N * T, device=m.device).reshape(N, T).t().reshape(-1) + 1
                    order = torch.cat([order.new_zeros(1), order])
                    m = m[:, :, order][:, :, :, order]
            maps[slot.name] = m
            infos[slot.name] = LayerInfo(slot.kind, slot.index, slot.stage, slot.block, grid, slot.has_cls)
    return AttentionRecord(family, logits, maps, infos, tuple(x.shape))


# --------------------------------------------------------------------------------------------
# Reading a map from one anchor token


def anchor_attention(
    record: AttentionRecord,
    name: str,
    anchor: Sequence[int],
    sample: int = 0,
    head: int | None = None,
) -> Tensor:
    """Where the token at ``anchor = (t, h, w)`` of that layer's grid looks, as a ``(T, H, W)`` map.

    Joint maps give the full row; a spatial map fills only the anchor's frame, a temporal map
    only the anchor's position in every frame (the other cells are 0); a local affinity gives
    the channel-mean |kernel| centred on the anchor (clipped at the borders). ``head=None``
    averages heads (channels). Class-token keys are left out (see ``cls_mass`` in the metrics).
    """
    if name not in record.maps:
        raise AnalysisError(f"The record has no map named {name!r}; available: {', '.join(record.maps)}.")
    info = record.layers[name]
    T, H, W = info.grid
    t, h, w = (int(a) for a in anchor)
    if not (0 <= t < T and 0 <= h < H and 0 <= w < W):
        raise AnalysisError(f"Anchor {(t, h, w)} lies outside the {T}×{H}×{W} token grid of {name}.")
    m = record.maps[name]
    out = torch.zeros(T, H, W, dtype=torch.float32)

    def pick(a: Tensor) -> Tensor:  # a: (heads, ...) -> (...)
        return (a.mean(0) if head is None else a[head]).float()

    c = 1 if info.has_cls else 0
    if info.kind == "joint":
        row = pick(m[sample][:, c + (t * H + h) * W + w, c:])
        out[:] = row.reshape(T, H, W)
    elif info.kind == "spatial":
        row = pick(m[sample, t][:, c + h * W + w, c:])
        out[t] = row.reshape(H, W)
    elif info.kind == "temporal":
        out[:, h, w] = pick(m[sample, h * W + w][:, t, :])
    else:  # local affinity: |kernel| centred on the anchor
        k = m.detach().abs().float()[:, 0]
        k = k.mean(0) if head is None else k[head]
        kt, kh, kw = k.shape
        for dt in range(kt):
            for dh in range(kh):
                for dw in range(kw):
                    tt, hh, ww = t + dt - kt // 2, h + dh - kh // 2, w + dw - kw // 2
                    if 0 <= tt < T and 0 <= hh < H and 0 <= ww < W:
                        out[tt, hh, ww] = k[dt, dh, dw]
    return out
