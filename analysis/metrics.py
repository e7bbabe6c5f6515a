"""How local is the attention? Redundancy metrics per layer and head.

The paper's Figure 1 claim is that early video-transformer layers spend a global token-to-token
comparison on a very local result. These metrics measure that on any attention map laid out on
a ``(T, H, W)`` token grid, on TimeSformer's divided maps (space of one frame / time at one
position), and on UniFormer's learned local affinity (a 5×5×5 kernel per channel), with the
same columns so the three fit one table:

- ``locality``: attention mass inside the query's own neighbourhood — 3×3 spatial × ±1 frame
  for a joint map, 3×3 for a spatial map, ±1 frame for a temporal map, the central 3×3×3 of a
  kernel (mass = |weight|).
- ``locality_space`` / ``locality_time``: the same split into its spatial (3×3, any frame) and
  temporal (±1 frame, any position) marginals; not applicable (NaN) to the axis a divided map
  does not cover.
- ``dist_space``: mean Euclidean distance to the keys, in patches (tokens of that grid);
  ``dist_time``: mean |Δt| in frames of that grid.
- ``entropy``: Shannon entropy of the row divided by ``log(number of keys)`` (0 = one key,
  1 = uniform).
- ``cls_mass``: for maps with a class token (TimeSformer spatial), the mass patch queries put
  on it; the other metrics are computed on the patch keys renormalised to sum to 1.
- ``chance_locality``: ``locality`` of a uniform map on the same grid, the floor to compare to.

Everything is averaged over the batch and the queries and reported per head (per channel for
kernels).
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from analysis.attention import AttentionRecord

Grid = tuple[int, int, int]

METRIC_NAMES = (
    "locality",
    "locality_space",
    "locality_time",
    "dist_space",
    "dist_time",
    "entropy",
    "cls_mass",
)


@dataclass(frozen=True)
class AttentionMetrics:
    """Per-head values (1-D tensors of length heads); NaN where a metric does not apply."""

    locality: Tensor
    locality_space: Tensor
    locality_time: Tensor
    dist_space: Tensor
    dist_time: Tensor
    entropy: Tensor
    cls_mass: Tensor

    @property
    def num_heads(self) -> int:
        return int(self.locality.numel())

    def mean(self) -> dict[str, float]:
        """Head-averaged value of every metric."""
        return {name: float(getattr(self, name).mean()) for name in METRIC_NAMES}

    def head(self, i: int) -> dict[str, float]:
        return {name: float(getattr(self, name)[i]) for name in METRIC_NAMES}


# --------------------------------------------------------------------------------------------
# Geometry


def grid_coords(grid: Sequence[int]) -> Tensor:
    """``(L, 3)`` integer (t, h, w) coordinates of a row-major token grid (index t·H·W+h·W+w)."""
    t, h, w = (int(g) for g in grid)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([tt.reshape(-1), hh.reshape(-1), ww.reshape(-1)], dim=1)


def _offsets(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """|Δt|, |Δh|, |Δw| between every query coordinate and every key coordinate, ``(Lq, Lk)``."""
    d = (q[:, None, :] - k[None, :, :]).abs().to(torch.float64)
    return d[..., 0], d[..., 1], d[..., 2]


def chance_locality(grid: Sequence[int]) -> float:
    """Locality (mass within ±1 on every axis) of a uniform map on ``grid``.

    On an axis of length n, the number of (i, j) pairs with |i−j| ≤ 1 is 3n−2, and the axes are
    independent, so the mean neighbourhood size is Π(3nₐ−2)/nₐ out of L = Π nₐ keys.
    """
    num = 1.0
    size = 1
    for n in grid:
        n = int(n)
        num *= (3 * n - 2) / n
        size *= n
    return num / size


# --------------------------------------------------------------------------------------------
# Core


def _check_rows(attn: Tensor, what: str) -> None:
    if attn.dim() < 3:
        raise ValueError(f"{what} must have at least 3 dims (…, heads, queries, keys), got {tuple(attn.shape)}.")


def _reduce(per_query: Tensor) -> Tensor:
    """(…, heads, Lq) → (heads,): mean over everything except the head axis."""
    heads = per_query.shape[-2]
    return per_query.movedim(-2, 0).reshape(heads, -1).mean(dim=1)


_CHUNK = 1 << 22  # attention entries handled at once (float64): bounds memory on 3136×3136 maps


def _metrics_from_offsets(attn: Tensor, dt: Tensor, dh: Tensor, dw: Tensor) -> dict[str, Tensor]:
    """Core: ``attn`` (…, heads, Lq, Lk) rows summing to 1; offsets (Lq, Lk).

    Per-query values are computed a few matrices at a time in float64, then averaged per head.
    """
    lq, lk = attn.shape[-2:]
    weights = {
        "locality": ((dt <= 1) & (dh <= 1) & (dw <= 1)).double(),
        "locality_space": ((dh <= 1) & (dw <= 1)).double(),
        "locality_time": (dt <= 1).double(),
        "dist_space": torch.sqrt(dh**2 + dw**2).double(),
        "dist_time": dt.double(),
    }
    flat = attn.reshape(-1, lq, lk)
    per_query: dict[str, list[Tensor]] = {k: [] for k in (*weights, "entropy")}
    step = max(1, _CHUNK // (lq * lk))
    for start in range(0, flat.shape[0], step):
        a = flat[start : start + step].to(torch.float64)
        for name, w in weights.items():
            per_query[name].append((a * w).sum(-1))
        ent = -torch.special.xlogy(a, a).sum(-1)
        per_query["entropy"].append(ent / math.log(lk) if lk > 1 else torch.zeros_like(ent))
    lead = attn.shape[:-1]  # (…, heads, Lq)
    return {name: _reduce(torch.cat(parts).reshape(lead)) for name, parts in per_query.items()}


def _finish(values: dict[str, Tensor], nan: Iterable[str] = (), cls_mass: Tensor | None = None) -> AttentionMetrics:
    heads = values["locality"].shape[0]
    out = {k: v.to(torch.float64) for k, v in values.items()}
    for k in nan:
        out[k] = torch.full((heads,), float("nan"), dtype=torch.float64)
    out["cls_mass"] = cls_mass if cls_mass is not None else torch.full((heads,), float("nan"), dtype=torch.float64)
    return AttentionMetrics(**out)


def _drop_cls(attn: Tensor, has_cls: bool) -> tuple[Tensor, Tensor | None]:
    """Patch queries over patch keys (renormalised) and the per-head mass put on the cls key."""
    if not has_cls:
        return attn, None
    a = attn[..., 1:, :]
    cls_mass = _reduce(a[..., 0].double())
    a = a[..., 1:]
    return a / a.sum(-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny), cls_mass


def joint_attention_metrics(attn: Tensor, grid: Sequence[int], has_cls: bool = False) -> AttentionMetrics:
    """Metrics of a joint space-time map ``(…, heads, [1+]L, [1+]L)``, L = T·H·W in (t, h, w) order.

    With ``has_cls`` the class token (index 0) is left out of queries and keys and its share is
    reported as ``cls_mass``; the patch keys are renormalised.
    """
    _check_rows(attn, "attention")
    coords = grid_coords(grid)
    L = coords.shape[0] + (1 if has_cls else 0)
    if attn.shape[-1] != L or attn.shape[-2] != L:
        raise ValueError(f"attention of shape {tuple(attn.shape)} does not fit a {tuple(grid)} grid (cls={has_cls}).")
    a, cls_mass = _drop_cls(attn, has_cls)
    return _finish(_metrics_from_offsets(a, *_offsets(coords, coords)), cls_mass=cls_mass)


def spatial_attention_metrics(attn: Tensor, grid_hw: Sequence[int], has_cls: bool = True) -> AttentionMetrics:
    """Metrics of per-frame spatial attention ``(…, heads, [1+]N, [1+]N)``, N = H·W.

    Patch queries only; the class token's share is reported as ``cls_mass`` and removed (patch
    keys renormalised) so that locality/distance/entropy are about where in the frame it looks.
    """
    _check_rows(attn, "spatial attention")
    h, w = (int(g) for g in grid_hw)
    n = h * w + (1 if has_cls else 0)
    if attn.shape[-1] != n or attn.shape[-2] != n:
        raise ValueError(f"spatial attention of shape {tuple(attn.shape)} does not fit a {h}×{w} grid (cls={has_cls}).")
    a, cls_mass = _drop_cls(attn, has_cls)
    coords = grid_coords((1, h, w))
    values = _metrics_from_offsets(a, *_offsets(coords, coords))
    values["locality"] = values["locality_space"]
    return _finish(values, nan=("locality_time", "dist_time"), cls_mass=cls_mass)


def temporal_attention_metrics(attn: Tensor) -> AttentionMetrics:
    """Metrics of temporal attention at one position ``(…, heads, T, T)``."""
    _check_rows(attn, "temporal attention")
    t = attn.shape[-1]
    coords = grid_coords((t, 1, 1))
    values = _metrics_from_offsets(attn, *_offsets(coords, coords))
    values["locality"] = values["locality_time"]
    return _finish(values, nan=("locality_space", "dist_space"))


def kernel_metrics(weight: Tensor) -> AttentionMetrics:
    """The same view of a depthwise kernel ``(C, 1, kt, kh, kw)``: how |weight| spreads over the tube.

    Each channel is one "head"; its |weight| normalised to sum 1 plays the role of the attention
    row of the centre token (entry (dt, dh, dw) weights the neighbour at offset minus the centre).
    """
    if weight.dim() != 5:
        raise ValueError(f"expected a depthwise Conv3d weight (C, 1, kt, kh, kw), got {tuple(weight.shape)}.")
    c = weight.shape[0]
    kt, kh, kw = weight.shape[2:]
    mass = weight.detach().abs().to(torch.float64).reshape(c, -1)
    p = mass / mass.sum(-1, keepdim=True).clamp_min(1e-300)
    coords = grid_coords((kt, kh, kw))
    centre = torch.tensor([[kt // 2, kh // 2, kw // 2]])
    values = _metrics_from_offsets(p[:, None, :], *_offsets(centre, coords))
    return _finish(values)


# --------------------------------------------------------------------------------------------
# Per-layer table


@dataclass(frozen=True)
class RedundancyRow:
    """One line of the redundancy table: a layer (``head`` = -1: mean over heads) or one head."""

    model: str
    layer: str
    kind: str
    layer_index: int
    rel_depth: float
    stage: int
    block: int
    head: int
    grid: str
    locality: float
    locality_space: float
    locality_time: float
    dist_space: float
    dist_time: float
    entropy: float
    cls_mass: float
    chance_locality: float


def layer_metrics(kind: str, attn: Tensor, grid: Sequence[int], has_cls: bool = False) -> AttentionMetrics:
    """Dispatch on the map kind recorded by :func:`analysis.attention.extract`."""
    if kind == "joint":
        return joint_attention_metrics(attn, grid, has_cls=has_cls)
    if kind == "spatial":
        return spatial_attention_metrics(attn, grid[1:], has_cls=has_cls)
    if kind == "temporal":
        return temporal_attention_metrics(attn)
    if kind == "local_affinity":
        return kernel_metrics(attn)
    raise ValueError(f"unknown attention kind {kind!r}.")


def kind_chance_locality(kind: str, grid: Sequence[int], kernel_shape: Sequence[int] = (5, 5, 5)) -> float:
    """Locality of a uniform map for the neighbourhood this kind measures."""
    t, h, w = (int(g) for g in grid)
    if kind == "joint":
        return chance_locality((t, h, w))
    if kind == "spatial":
        return chance_locality((1, h, w))
    if kind == "temporal":
        return chance_locality((t, 1, 1))
    if kind == "local_affinity":
        kt, kh, kw = (int(k) for k in kernel_shape)
        return min(3, kt) * min(3, kh) * min(3, kw) / (kt * kh * kw)
    raise ValueError(f"unknown attention kind {kind!r}.")


def axis_chance_locality(axis: str, grid: Sequence[int], kernel_shape: Sequence[int] | None = None) -> float:
    """Locality of a uniform map along one axis: the floor for a per-axis locality.

    ``axis`` is ``"spatial"`` (3×3, any frame) or ``"temporal"`` (±1 frame, any position). For a
    joint map the uniform map's marginal on that axis is uniform too, so the floor is that of the
    frame (``H×W``) or of the time axis (``T``) alone. With ``kernel_shape`` ``(kt, kh, kw)`` the
    floor is an even spread of |weight| over the taps: central 3×3 of kh×kw, central 3 of kt.
    """
    if axis not in ("spatial", "temporal"):
        raise ValueError(f"axis must be 'spatial' or 'temporal', got {axis!r}.")
    if kernel_shape is not None:
        kt, kh, kw = (int(k) for k in kernel_shape)
        return min(3, kh) * min(3, kw) / (kh * kw) if axis == "spatial" else min(3, kt) / kt
    t, h, w = (int(g) for g in grid)
    return chance_locality((1, h, w)) if axis == "spatial" else chance_locality((t, 1, 1))


def redundancy_table(record: AttentionRecord, per_head: bool = False, model: str = "") -> list[RedundancyRow]:
    """Per-layer (and optionally per-head) metrics of every map in an extraction record."""
    rows: list[RedundancyRow] = []
    num_layers = max((info.layer_index for info in record.layers.values()), default=0) + 1
    for name, info in record.layers.items():
        attn = record.maps[name]
        m = layer_metrics(info.kind, attn, info.grid, info.has_cls)
        chance = kind_chance_locality(info.kind, info.grid, attn.shape[2:])
        common = dict(
            model=model or record.model,
            layer=name,
            kind=info.kind,
            layer_index=info.layer_index,
            rel_depth=info.layer_index / max(num_layers - 1, 1),
            stage=info.stage,
            block=info.block,
            grid="x".join(str(g) for g in info.grid),
            chance_locality=chance,
        )
        rows.append(RedundancyRow(head=-1, **common, **m.mean()))
        if per_head:
            rows.extend(RedundancyRow(head=i, **common, **m.head(i)) for i in range(m.num_heads))
    return rows


def write_csv(rows: Sequence[RedundancyRow], path: str | Path) -> Path:
    """Write table rows to CSV (floats with 6 significant digits, NaN as empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(RedundancyRow)]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            d = asdict(row)
            for k, v in d.items():
                if isinstance(v, float):
                    d[k] = "" if math.isnan(v) else f"{v:.6g}"
            writer.writerow(d)
    return path
