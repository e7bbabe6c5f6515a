"""FLOPs and parameters counted the way the papers count them.

Both papers report **multiply-adds** ("FLOPs" in the fvcore sense: one fused multiply-add = 1)
per view, batch 1, eval mode:

- UniFormer's figures are fvcore ``FlopCountAnalysis`` totals: conv + linear + matmul
  multiply-adds **plus BatchNorm/LayerNorm** (eval BatchNorm: 2 per element with affine,
  1 without; LayerNorm: 5 per element with affine, 4 without). S16 = 41.76 G, of which norms
  are 0.094 G.
- TimeSformer's figures are conv + linear + matmul multiply-adds only (no LayerNorm): base
  195.83 G / view (0.59 T for 3 views).

The counting itself is ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add)
with two additions registered through its ``custom_mapping``: the norm operators (at twice
fvcore's per-element cost, so the single halving at the end lands on fvcore's number) and the
CPU fused attention op ``_scaled_dot_product_flash_attention_for_cpu``, which the stock
registry leaves uncounted (on meta tensors SDPA takes the math path, whose two ``bmm`` are
counted; the CUDA fused kernels are in the stock registry). Nothing is computed for real: the forward runs
on the ``meta`` device (parameters are swapped for meta tensors with ``functional_call``, the model itself is
untouched), falling back to ``FakeTensorMode`` for models that create CPU tensors inside
forward. Even TimeSformer-L (96×224, 2.4 TMACs) counts in about a second.

CLI: ``python -m uniformer.flops [NAME ...] [--frames T --size S] [--json]``.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from uniformer import jsonsafe
from uniformer.errors import UniformerLabError, UnknownModelError
from uniformer.models.family import get_family

__all__ = [
    "FlopsError",
    "FlopsReport",
    "DEFAULT_MODELS",
    "ModelFlops",
    "count_flops",
    "count_params",
    "flops_for",
    "format_table",
    "main",
]

aten = torch.ops.aten


class FlopsError(UniformerLabError, ValueError):
    """The FLOPs request cannot be served (bad input shape, model that cannot be traced)."""


# ---------------------------------------------------------------------------------------------
# Extra formulas for FlopCounterMode. FlopCounterMode counts 2 per multiply-add, so every
# formula here returns 2 × (fvcore's cost); the report halves the total once.
# ---------------------------------------------------------------------------------------------


def _numel(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _layer_norm_flop(input_shape, normalized_shape, weight_shape=None, bias_shape=None, *args,
                     out_shape=None, **kwargs) -> int:
    # fvcore: 5 per element with an affine transform, 4 without.
    return 2 * _numel(input_shape) * (5 if weight_shape is not None else 4)


def _group_norm_flop(input_shape, weight_shape=None, bias_shape=None, *args, out_shape=None,
                     **kwargs) -> int:
    return 2 * _numel(input_shape) * (5 if weight_shape is not None else 4)


def _batch_norm_cost(input_shape, weight_shape, training: bool) -> int:
    # fvcore: eval BN is a per-channel affine map (2 per element, 1 without weight);
    # training BN also computes statistics (5 / 4 per element, like LayerNorm).
    if training:
        per = 5 if weight_shape is not None else 4
    else:
        per = 2 if weight_shape is not None else 1
    return 2 * _numel(input_shape) * per


def _native_batch_norm_flop(input_shape, weight_shape=None, bias_shape=None, running_mean=None,
                            running_var=None, training=False, *args, out_shape=None,
                            **kwargs) -> int:
    # native_batch_norm / cudnn_batch_norm / _native_batch_norm_legit(..., training, ...)
    return _batch_norm_cost(input_shape, weight_shape, bool(training))


def _legit_batch_norm_flop(input_shape, weight_shape=None, bias_shape=None, *args,
                           out_shape=None, **kwargs) -> int:
    # overloads: (input, w, b, running_mean, running_var, training, momentum, eps) and
    # .no_stats (input, w, b, training, momentum, eps)
    training = next((a for a in args if isinstance(a, bool)), True)
    return _batch_norm_cost(input_shape, weight_shape, training)


def _bn_no_training_flop(input_shape, weight_shape=None, *args, out_shape=None, **kwargs) -> int:
    return _batch_norm_cost(input_shape, weight_shape, False)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # The stock registry covers the CUDA fused kernels but not the CPU one; same cost
    # (q·kᵀ and attn·v, 2 per multiply-add).
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_NORM_OPS: dict[Any, Callable[..., int]] = {
    aten.native_layer_norm: _layer_norm_flop,
    aten.native_group_norm: _group_norm_flop,
    aten.native_batch_norm: _native_batch_norm_flop,
    aten.cudnn_batch_norm: _native_batch_norm_flop,
    aten._native_batch_norm_legit: _legit_batch_norm_flop,
    aten._native_batch_norm_legit_no_training: _bn_no_training_flop,
}

_ATTENTION_OPS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
}

_NORM_OP_NAMES = frozenset(str(op) for op in _NORM_OPS)

def _default_include_norms(model: nn.Module) -> bool:
    """The family's published convention (``ModelFamily.flops_include_norms``: UniFormer's numbers
    are fvcore totals, norms in; TimeSformer's are not); fvcore's default for other models."""
    try:
        return get_family(model).flops_include_norms
    except UnknownModelError:
        return True


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

# fvcore's operator categories (the names in its ``by_operator`` output).
_KIND: dict[str, str] = {
    "aten.convolution": "conv",
    "aten.addmm": "linear",
    "aten.mm": "linear",
    "aten.bmm": "matmul",
    "aten.baddbmm": "matmul",
    "aten._scaled_dot_product_flash_attention_for_cpu": "matmul",
    "aten._scaled_dot_product_flash_attention": "matmul",
    "aten._scaled_dot_product_efficient_attention": "matmul",
    "aten._scaled_dot_product_cudnn_attention": "matmul",
    "aten.native_layer_norm": "layer_norm",
    "aten.native_group_norm": "group_norm",
    "aten.native_batch_norm": "batch_norm",
    "aten.cudnn_batch_norm": "batch_norm",
    "aten._native_batch_norm_legit": "batch_norm",
    "aten._native_batch_norm_legit_no_training": "batch_norm",
}


@dataclass
class FlopsReport:
    """Cost of one forward pass (one view) in the papers' convention.

    ``macs`` / ``gflops``: multiply-adds (conv, linear, attention matmuls, plus norms when
    ``include_norms``) — the number the papers print as "GFLOPs". ``flop_counter_raw``: the
    plain ``FlopCounterMode`` total (2 per multiply-add, never norms) for cross-checking.
    ``by_operator``: GMACs per aten operator; ``by_kind``: the same in fvcore's categories
    (conv / linear / matmul / layer_norm / batch_norm); ``by_module``: GMACs per top-level child
    (UniFormer: ``patch_embed1`` = stem, ``patch_embed2..4``, ``blocks1..4``, ``norm``, ``head``;
    TimeSformer: ``patch_embed``, ``blocks``, ``norm``, ``head``), with ``(other)`` for work done
    outside any child; ``by_module_tree``: GMACs of every called module by qualified name.
    """

    input_shape: tuple[int, ...]
    include_norms: bool
    macs: int
    flop_counter_raw: int
    params: int
    by_operator: dict[str, float]
    by_kind: dict[str, float]
    by_module: dict[str, float]
    by_module_tree: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def gflops(self) -> float:
        """Multiply-adds in G (the papers' "GFLOPs")."""
        return self.macs / 1e9

    @property
    def gmacs_raw(self) -> float:
        """``FlopCounterMode`` total / 2 in G: conv + linear + matmul, never norms."""
        return self.flop_counter_raw / 2e9

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(gflops=self.gflops, gmacs_raw=self.gmacs_raw, params_m=self.params_m)
        return d


def count_params(model: nn.Module) -> int:
    """Number of parameters; buffers (BatchNorm running statistics) are not counted, as in the papers."""
    return sum(p.numel() for p in model.parameters())


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise FlopsError(
            f"Input shape {input_shape!r} must be a sequence of integers such as (1, 3, 16, 224, 224)."
        ) from None
    if len(shape) != 5 or any(s <= 0 for s in shape):
        raise FlopsError(
            f"Input shape {shape} must be five positive sizes (batch, channels, frames, height, width)."
        )
    return shape


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Count in eval mode (the papers' setting; no BatchNorm statistics updates), then restore."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def _run_on_meta(model: nn.Module, shape: tuple[int, ...], counter: FlopCounterMode) -> None:
    """Forward with every parameter and buffer swapped for a meta tensor; the model is untouched."""
    state = {k: v.to("meta") for k, v in model.state_dict(keep_vars=True).items()}
    x = torch.empty(shape, device="meta")
    with torch.no_grad(), counter:
        torch.func.functional_call(model, state, (x,), strict=False)


def _run_on_fake(model: nn.Module, shape: tuple[int, ...], counter: FlopCounterMode) -> None:
    """Fallback for models that create CPU tensors inside forward: fake (shape-only) tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(shape)  # a fake tensor under the mode
        with torch.no_grad(), counter:
            model(x)


def _new_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={**_ATTENTION_OPS, **_NORM_OPS})


# Errors through which a model rejects the input itself: reported, not retried on fake tensors.
_INPUT_REJECTED = (ValueError, TypeError, UniformerLabError)


def _trace(model: nn.Module, shape: tuple[int, ...]) -> FlopCounterMode:
    name = type(model).__name__
    counter = _new_counter()
    try:
        _run_on_meta(model, shape, counter)
        return counter
    except _INPUT_REJECTED as err:
        raise FlopsError(f"{name} rejected an input of shape {shape}: {err}") from err
    except Exception:  # e.g. a CPU tensor created in forward meets meta ones: use fake tensors
        pass
    counter = _new_counter()
    try:
        _run_on_fake(model, shape, counter)
    except Exception as err:
        raise FlopsError(
            f"{name} could not be traced for FLOP counting on input {shape} ({type(err).__name__}: {err})."
        ) from err
    return counter


def _module_raw(module: nn.Module, name: str, tree: dict[str, int]) -> int | None:
    """Raw count of a module; containers that are never called (``ModuleList``) sum their children."""
    if name in tree:
        return tree[name]
    parts = [_module_raw(m, f"{name}.{n}", tree) for n, m in module.named_children()]
    parts = [p for p in parts if p is not None]
    return sum(parts) if parts else None


def count_flops(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 16, 224, 224),
    *,
    include_norms: bool | None = None,
) -> FlopsReport:
    """Count one forward pass of ``model`` on an ``input_shape`` clip without computing anything.

    ``include_norms=None`` picks the family's published convention (UniFormer: fvcore totals,
    BatchNorm/LayerNorm included; TimeSformer: conv/linear/matmul only). Counted in eval mode on
    meta tensors; the model keeps its weights, device and train/eval flags.
    """
    shape = _check_shape(input_shape)
    if include_norms is None:
        include_norms = _default_include_norms(model)
    with _eval_mode(model):
        counter = _trace(model, shape)
    counts = counter.get_flop_counts()

    def kept(per_op: dict[Any, int]) -> dict[str, int]:
        return {str(op): v for op, v in per_op.items() if include_norms or str(op) not in _NORM_OP_NAMES}

    global_counts = kept(counts.get("Global", {}))
    total = sum(global_counts.values())
    raw = sum(v for op, v in global_counts.items() if op not in _NORM_OP_NAMES)
    by_operator = {op: v / 2e9 for op, v in global_counts.items()}
    by_kind: dict[str, float] = {}
    for op, v in global_counts.items():
        kind = _KIND.get(op, op)
        by_kind[kind] = by_kind.get(kind, 0.0) + v / 2e9

    # ModuleTracker names modules "<RootClass>.<child>..."; strip the root.
    root = next((k for k in counts if k != "Global" and "." not in k), None)
    tree: dict[str, int] = {}
    if root is not None:
        for name, per_op in counts.items():
            if name.startswith(root + "."):
                tree[name[len(root) + 1:]] = sum(kept(per_op).values())
    module_raw: dict[str, int] = {}
    for child, module in model.named_children():
        value = _module_raw(module, child, tree)
        if value is not None:
            module_raw[child] = value
    rest = total - sum(module_raw.values())
    if rest:
        module_raw["(other)"] = rest

    return FlopsReport(
        input_shape=shape,
        include_norms=bool(include_norms),
        macs=total // 2,
        flop_counter_raw=raw,
        params=count_params(model),
        by_operator=by_operator,
        by_kind=by_kind,
        by_module={k: v / 2e9 for k, v in module_raw.items()},
        by_module_tree={k: v / 2e9 for k, v in tree.items()},
    )


# ---------------------------------------------------------------------------------------------
# Zoo models at their test protocol
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelFlops:
    """Cost of a zoo model at its test protocol: per view and for all views of one video.

    ``published_*`` come from the zoo entry (``assets/published_results.csv``) and are ``None``
    when the paper gives none or when the input was overridden away from the protocol's.
    """

    name: str
    family: str
    input_shape: tuple[int, ...]
    num_views: int
    views: str  # "clips x crops"
    report: FlopsReport
    published_gflops_per_view: float | None
    published_gflops_total: float | None

    @property
    def gflops_per_view(self) -> float:
        return self.report.gflops

    @property
    def gflops_total(self) -> float:
        return self.report.gflops * self.num_views

    @property
    def diff_pct(self) -> float | None:
        """Measured vs published per view, in percent of the published figure."""
        pub = self.published_gflops_per_view
        return None if not pub else 100.0 * (self.gflops_per_view / pub - 1.0)

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "name": self.name, "family": self.family, "input_shape": list(self.input_shape),
            "num_views": self.num_views, "views": self.views, "include_norms": r.include_norms,
            "params": r.params, "params_m": r.params_m,
            "gflops_per_view": self.gflops_per_view, "gflops_total": self.gflops_total,
            "gmacs_raw_per_view": r.gmacs_raw,
            "published_gflops_per_view": self.published_gflops_per_view,
            "published_gflops_total": self.published_gflops_total, "diff_pct": self.diff_pct,
            "by_kind": r.by_kind, "by_module": r.by_module, "by_operator": r.by_operator,
        }


def _meta_zoo_model(name: str) -> tuple[nn.Module, Any]:
    """Build zoo model ``name`` on the meta device (no memory, no init cost) with its entry."""
    from uniformer import zoo

    entry = zoo.get_entry(name)  # UnknownModelError with suggestions
    with torch.device("meta"):
        model = zoo.create_model(name, device="meta")
    return model, entry


def flops_for(
    name: str,
    *,
    frames: int | None = None,
    size: int | None = None,
    include_norms: bool | None = None,
) -> ModelFlops:
    """FLOPs of zoo model ``name`` at its test protocol's input (one view = ``1 x 3 x T x S x S``),
    or at ``frames`` / ``size`` when given, with the protocol's number of views."""
    model, entry = _meta_zoo_model(name)
    c, t, h, w = entry.input_size
    for label, value in (("frames", frames), ("size", size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise FlopsError(f"--{label} must be a positive integer, got {value!r}.")
    shape = (1, c, frames or t, size or h, size or w)
    report = count_flops(model, shape, include_norms=include_norms)
    protocol = entry.protocol
    pub = entry.published
    at_protocol = shape == (1, c, t, h, w)
    return ModelFlops(
        name=entry.name,
        family=entry.family,
        input_shape=shape,
        num_views=protocol.num_views,
        views=f"{protocol.num_clips}x{protocol.num_crops}",
        report=report,
        published_gflops_per_view=pub.gflops_per_view if pub is not None and at_protocol else None,
        published_gflops_total=pub.gflops_total if pub is not None and at_protocol else None,
    )


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

# One zoo entry per architecture x input the papers report (S 32-frame has no K400 release).
DEFAULT_MODELS: tuple[str, ...] = (
    "uniformer_small_k400_8x8",
    "uniformer_small_k400_16x8",
    "uniformer_small_sthv2_32_prek400",
    "uniformer_base_k400_8x8",
    "uniformer_base_k400_16x8",
    "uniformer_base_k400_32x4",
    "timesformer_base_k400_8x32",
    "timesformer_hr_k400_16x16",
    "timesformer_large_k400_96x4",
)


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_table(rows: Sequence[ModelFlops]) -> str:
    """Plain-text table: model, input, params, measured vs published GFLOPs per view, views."""
    header = ("model", "input (T×S)", "params (M)", "GFLOPs/view", "published/view", "diff %",
              "views", "GFLOPs total", "published total")
    body = []
    for r in rows:
        _, _, t, h, w = r.input_shape
        size = f"{h}" if h == w else f"{h}×{w}"
        body.append((
            r.name, f"{t}×{size}", f"{r.report.params_m:.2f}", f"{r.gflops_per_view:.2f}",
            _fmt(r.published_gflops_per_view, ".2f"), _fmt(r.diff_pct, "+.2f"), r.views,
            f"{r.gflops_total:.1f}", _fmt(r.published_gflops_total, ".1f"),
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(wd) if i == 0 else str(x).rjust(wd) for i, (x, wd) in enumerate(zip(row, widths)))
             for row in (header, *body)]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m uniformer.flops",
        description="Count GFLOPs (multiply-adds, as the papers print them) and parameters of zoo models "
                    "at their test protocol, without running them.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="zoo model names (default: one per published architecture and input)")
    parser.add_argument("--all", action="store_true", help="every model in the zoo")
    parser.add_argument("--frames", type=int, help="override the number of frames per view")
    parser.add_argument("--size", type=int, help="override the crop size (pixels)")
    norms = parser.add_mutually_exclusive_group()
    norms.add_argument("--norms", dest="include_norms", action="store_const", const=True,
                       help="count BatchNorm/LayerNorm (fvcore; UniFormer's default)")
    norms.add_argument("--no-norms", dest="include_norms", action="store_const", const=False,
                       help="count conv/linear/matmul only (TimeSformer's default)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    try:
        if args.all:
            from uniformer import zoo

            names = zoo.list_models()
        else:
            names = args.names or list(DEFAULT_MODELS)
        rows = [flops_for(n, frames=args.frames, size=args.size, include_norms=args.include_norms) for n in names]
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(jsonsafe.dumps([r.to_dict() for r in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
