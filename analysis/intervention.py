"""A causal redundancy test: restrict chosen attention layers to their local neighbourhood.

If a layer's global comparison is redundant (its attention is mostly local anyway), cutting the
keys outside the query's 3×3 spatial / ±1-frame neighbourhood at inference should cost little
accuracy. :func:`local_attention` does that cut, without touching any weight:

    with local_attention(model, layers=[0, 1], space_radius=1, time_radius=1):
        logits = model(x)

For every chosen layer it sets the optional boolean ``mask`` of the shared
``uniformer.models.layers.Attention`` modules (True = the key may be attended); ``Attention``
then takes the softmax over the allowed keys only (renormalised), on the fused SDPA path and on
the capture path alike, so ``analysis.attention.extract`` inside the block shows the masked maps.
The token grid is only known at run time, so the masks are built by hooks on the modules that
fix the grid (UniFormer: each block's input; TimeSformer: the patch embedding) and cached per
grid. On exit the hooks are removed and every mask is reset to ``None``.

Neighbourhood per map kind (|Δ| in tokens of that layer's grid):

- UniFormer joint global attention (``G`` stages): |Δh|, |Δw| ≤ ``space_radius`` and
  |Δt| ≤ ``time_radius`` (3×3 × ±1 frame by default);
- divided spatial attention (TimeSformer, UniFormer ``split``): |Δh|, |Δw| ≤ ``space_radius``
  within the frame. TimeSformer's class-token key stays allowed for every patch query (it is
  the block's summary, not a position), and the class-token query keeps all keys;
- divided temporal attention: |Δt| ≤ ``time_radius`` at the same position;
- TimeSformer joint space-time attention: as UniFormer's joint, class token allowed as above.

A "layer" is one block (``LayerInfo.layer_index``); masking a TimeSformer block restricts both
its temporal and its spatial attention. UniFormer's local (``L``) blocks have no attention and
are never masked. A radius that covers the whole grid leaves every key allowed, which gives the
unmasked model's logits (up to float rounding of the masked kernel).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from analysis.attention import AnalysisError, map_slots, model_family
from analysis.metrics import grid_coords

__all__ = ["attention_layers", "layer_groups", "local_attention", "neighbourhood_mask"]


def attention_layers(model: nn.Module) -> list[int]:
    """Layer indices (blocks, forward order) that hold attention, i.e. can be masked."""
    return sorted({s.index for s in map_slots(model) if s.kind != "local_affinity"})


def layer_groups(model: nn.Module) -> dict[str, list[int]]:
    """``first`` / ``middle`` / ``last`` third of the attention layers and ``all`` of them.

    Thirds as ``numpy.array_split`` cuts them (the first thirds take the remainder); a third
    that gets no layer (fewer than three attention layers) is left out.
    """
    layers = attention_layers(model)
    if not layers:
        return {}
    thirds = [list(map(int, part)) for part in np.array_split(np.array(layers), 3)]
    groups = {name: part for name, part in zip(("first", "middle", "last"), thirds) if part}
    groups["all"] = layers
    return groups


def _check_radius(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise AnalysisError(f"The {what} radius must be a whole number of tokens ≥ 0, got {value!r}.")
    return int(value)


def neighbourhood_mask(
    kind: str,
    grid: Sequence[int],
    has_cls: bool = False,
    space_radius: int = 1,
    time_radius: int = 1,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Boolean ``(queries, keys)`` mask of a map of ``kind`` on the ``(T, H, W)`` grid.

    Token order is that of the module's input: (t, h, w) for UniFormer joint maps, h·W+w for
    spatial maps, t for temporal maps, and cls then ``n·T + t`` for TimeSformer joint maps.
    """
    t, h, w = (int(g) for g in grid)
    if kind == "joint":
        coords = grid_coords((t, h, w))
        if has_cls:  # TimeSformer joint: token 1 + n*T + tt
            idx = torch.arange(t * h * w)
            n, tt = idx // t, idx % t
            coords = torch.stack([tt, n // w, n % w], dim=1)
    elif kind == "spatial":
        coords = grid_coords((1, h, w))
    elif kind == "temporal":
        coords = grid_coords((t, 1, 1))
    else:
        raise AnalysisError(f"Only attention maps can be masked, not {kind!r}.")
    d = (coords[:, None, :] - coords[None, :, :]).abs()
    allowed = (d[..., 0] <= time_radius) & (d[..., 1] <= space_radius) & (d[..., 2] <= space_radius)
    if has_cls:
        full = torch.ones(allowed.shape[0] + 1, allowed.shape[1] + 1, dtype=torch.bool)
        full[1:, 1:] = allowed
        allowed = full
    return allowed.to(device)


def _resolve_layers(model: nn.Module, layers: Sequence[int | str] | None) -> set[int]:
    available = attention_layers(model)
    if layers is None:
        return set(available)
    by_name = {s.name: s.index for s in map_slots(model)}
    chosen: set[int] = set()
    for layer in layers:
        if isinstance(layer, str):
            if layer not in by_name:
                raise AnalysisError(f"The model has no map named {layer!r}; see analysis.attention.map_names(model).")
            index = by_name[layer]
        else:
            index = int(layer)
        if index not in available:
            raise AnalysisError(
                f"Layer {layer!r} has no attention to mask; attention layers are {available or 'none'}.")
        chosen.add(index)
    return chosen


@contextmanager
def local_attention(
    model: nn.Module,
    layers: Sequence[int | str] | None = None,
    space_radius: int = 1,
    time_radius: int = 1,
) -> Iterator[list[str]]:
    """Restrict the attention of ``layers`` (indices or map names; None = all) to the local
    neighbourhood while the block is active; yields the names of the masked maps."""
    family = model_family(model)
    rs, rt = _check_radius(space_radius, "space"), _check_radius(time_radius, "time")
    chosen = _resolve_layers(model, layers)
    slots = [s for s in map_slots(model) if s.index in chosen and s.kind != "local_affinity"]
    by_grid_module: dict[int, tuple[nn.Module, list]] = {}
    for s in slots:
        by_grid_module.setdefault(id(s.grid_module), (s.grid_module, []))[1].append(s)
    cache: dict[tuple, Tensor] = {}

    def set_masks(group: list, grid: tuple[int, int, int], device: torch.device) -> None:
        for s in group:
            key = (s.kind, grid, s.has_cls, device)
            if key not in cache:
                cache[key] = neighbourhood_mask(s.kind, grid, s.has_cls, rs, rt, device)
            s.module.mask = cache[key]

    with ExitStack() as stack:
        for module, group in by_grid_module.values():
            if family == "uniformer":  # block input (B, C, T, H, W)
                def pre(_m: nn.Module, args: tuple, group: list = group) -> None:
                    set_masks(group, tuple(int(v) for v in args[0].shape[2:]), args[0].device)

                handle = module.register_forward_pre_hook(pre)
            else:  # TimeSformer patch embedding: input (B, C, T, H, W) -> (tokens, Hp, Wp)
                def post(_m: nn.Module, args: tuple, out: tuple, group: list = group) -> None:
                    set_masks(group, (int(args[0].shape[2]), int(out[1]), int(out[2])), args[0].device)

                handle = module.register_forward_hook(post)
            stack.callback(handle.remove)
        for s in slots:
            stack.callback(setattr, s.module, "mask", None)
        yield [s.name for s in slots]
