"""Per-axis attention redundancy over many clips, with 95 % intervals.

    python -m analysis.redundancy CLIP [CLIP ...] --model NAME [--checkpoint PATH] [--json]
    python -m analysis.redundancy val.txt --root DATA --model NAME      # a list file of clips

The paper's Figure 1 claim (shallow global attention is mostly local) is read per axis: one
row per map and axis, each against the floor a uniform map would give on that axis.

- ``spatial`` rows: share of a patch query's attention in its 3×3 spatial neighbourhood, *in
  any frame* (UniFormer's joint global attention: the spatial marginal of the joint row;
  TimeSformer / split UniFormer: the per-frame spatial attention, class token left out and
  reported as ``cls_mass``). Floor: a uniform map over the frame's ``H×W`` tokens.
- ``temporal`` rows: share within ±1 frame, *at any position* (joint maps: the temporal
  marginal; divided models: the temporal attention). Floor: uniform over the ``T`` frames.
- UniFormer's local affinity (``L`` stages, ``source = "kernel"``): share of |weight| of the
  5×5×5 kernel in its central 3×3 (spatial row) or central 3 of 5 in time (temporal row);
  floor: an even spread over the taps (9/25, 3/5). Kernels do not depend on the clip:
  ``clip_independent`` is true and the interval has zero width.

Joint maps used to be summarised by one 3×3 × ±1-frame locality against one joint floor; that
product mixes a large spatial effect with a small temporal one (a case 9.6× above its floor in
space read 2.2× overall), hence the separate rows.

Clips: each clip contributes one view, the model's own test protocol's middle temporal clip
with a centre crop (``analysis.inputs.one_view``); clips are processed one at a time and only
their per-layer metric values are kept, so memory does not grow with the number of clips.

Interval: the clip is the sampling unit. Each clip's value is already a mean over thousands of
query rows (and heads), so across clips it is close to normal, and the Student-t interval
``mean ± t_{0.975, n-1} · sd / √n`` is the standard interval for a mean over i.i.d. units; it
stays honest at small ``n`` (wide at n = 2, undefined at n = 1 → null), where a bootstrap over
clips has too few distinct resamples to be trusted. ``ratio`` is ``locality / uniform`` and
its interval is the locality interval divided by the (fixed) floor.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from analysis.attention import AnalysisError, AttentionRecord, extract, map_names
from analysis.inputs import load_model, one_view
from analysis.metrics import axis_chance_locality, layer_metrics
from uniformer import jsonsafe
from uniformer.errors import UniformerLabError
from uniformer.metrics import t_interval

__all__ = ["AxisValue", "LayerRow", "axis_values", "measure", "read_clip_list", "summarise", "write_axes_csv", "main"]

AXES = ("spatial", "temporal")
LIST_SUFFIXES = (".txt", ".csv", ".list", ".lst")


@dataclass(frozen=True)
class AxisValue:
    """One map, one axis, one clip: head- and query-averaged values."""

    name: str
    kind: str  # "spatial" | "temporal"
    source: str  # "joint" | "divided" | "kernel"
    layer_index: int
    stage: int
    block: int
    grid: str  # the layer's token grid T x H x W
    locality: float
    uniform: float
    distance: float  # spatial: tokens (kernel: taps); temporal: frames of that grid (kernel: taps)
    entropy: float  # of the whole row (joint / divided map / kernel), normalised by log(#keys)
    cls_mass: float  # TimeSformer spatial maps: mass on the class token; NaN elsewhere


def axis_values(record: AttentionRecord) -> list[AxisValue]:
    """Per-axis values of every map of one extraction (one clip; batch averaged if B > 1)."""
    out: list[AxisValue] = []
    for name, info in record.layers.items():
        attn = record.maps[name]
        m = layer_metrics(info.kind, attn, info.grid, info.has_cls).mean()
        kernel = tuple(attn.shape[2:]) if info.kind == "local_affinity" else None
        source = {"joint": "joint", "local_affinity": "kernel"}.get(info.kind, "divided")
        axes = AXES if info.kind in ("joint", "local_affinity") else (info.kind,)
        for axis in axes:
            key = "space" if axis == "spatial" else "time"
            out.append(AxisValue(
                name=name, kind=axis, source=source, layer_index=info.layer_index, stage=info.stage,
                block=info.block, grid="x".join(str(g) for g in info.grid), locality=m[f"locality_{key}"],
                uniform=axis_chance_locality(axis, info.grid, kernel), distance=m[f"dist_{key}"],
                entropy=m["entropy"], cls_mass=m["cls_mass"]))
    return out


@dataclass(frozen=True)
class LayerRow:
    """One output row: a map's locality on one axis over ``n_clips`` clips."""

    name: str
    kind: str
    source: str
    layer_index: int
    rel_depth: float
    stage: int
    block: int
    grid: str
    locality_mean: float
    locality_ci95: tuple[float, float] | None
    uniform_locality: float
    ratio: float  # locality_mean / uniform_locality
    ratio_ci95: tuple[float, float] | None
    distance_mean: float
    distance_ci95: tuple[float, float] | None
    entropy_mean: float
    cls_mass_mean: float | None
    n_clips: int
    clip_independent: bool  # kernels: the same value for every clip

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and math.isnan(v):
                d[k] = None
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d


def summarise(per_clip: Sequence[Sequence[AxisValue]]) -> list[LayerRow]:
    """Mean and 95 % interval over clips of every (map, axis), in forward order."""
    groups: dict[tuple[str, str], list[AxisValue]] = {}
    for values in per_clip:
        for v in values:
            groups.setdefault((v.name, v.kind), []).append(v)
    n_layers = max((v.layer_index for vs in groups.values() for v in vs), default=0) + 1
    rows = []
    for vs in groups.values():
        first = vs[0]
        kernel = first.source == "kernel"
        loc = [v.locality for v in vs]
        dist = [v.distance for v in vs]
        uniform = sum(v.uniform for v in vs) / len(vs)
        mean = sum(loc) / len(loc)
        ci = (mean, mean) if kernel else t_interval(loc)
        dmean = sum(dist) / len(dist)
        cls = [v.cls_mass for v in vs if not math.isnan(v.cls_mass)]
        rows.append(LayerRow(
            name=first.name, kind=first.kind, source=first.source, layer_index=first.layer_index,
            rel_depth=first.layer_index / max(n_layers - 1, 1), stage=first.stage, block=first.block,
            grid=first.grid, locality_mean=mean, locality_ci95=ci, uniform_locality=uniform,
            ratio=mean / uniform, ratio_ci95=None if ci is None else (ci[0] / uniform, ci[1] / uniform),
            distance_mean=dmean, distance_ci95=(dmean, dmean) if kernel else t_interval(dist),
            entropy_mean=sum(v.entropy for v in vs) / len(vs),
            cls_mass_mean=sum(cls) / len(cls) if cls else None, n_clips=len(vs), clip_independent=kernel))
    return rows


def write_axes_csv(rows: Sequence[LayerRow], path: str | Path) -> Path:
    """Rows as CSV (intervals as ``*_low`` / ``*_high`` columns, missing values empty)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = []
    for r in rows:
        d = r.to_dict()
        for key in ("locality_ci95", "ratio_ci95", "distance_ci95"):
            ci = d.pop(key)
            d[f"{key}_low"], d[f"{key}_high"] = (None, None) if ci is None else ci
        flat.append({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in d.items()})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(flat[0]) if flat else ["name"])
        writer.writeheader()
        writer.writerows(flat)
    return path


# -------------------------------------------------------------------------------------------- clips
_LABEL = re.compile(r"^(?P<path>.*?\S)\s*[\s,]\s*[+-]?\d+$")


def read_clip_list(list_file: str | Path, root: str | Path | None = None) -> list[str]:
    """Clip paths of a list file: ``path label`` (Kinetics) / ``path,label`` or one path per
    line; blank and ``#`` lines skipped; relative paths joined to ``root`` (default: the list's
    folder)."""
    list_file = Path(list_file)
    base = Path(root) if root else list_file.parent
    out = []
    for raw in list_file.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LABEL.match(line)
        path = (m.group("path") if m else line).strip().strip("\"'")
        if path.lower() in ("path", "video", "filename"):  # a CSV header
            continue
        out.append(str(base / path))
    return out


def expand_clips(items: Sequence[str], root: str | None = None) -> list[str]:
    """Command-line items → clip paths: list files (by suffix) are read, videos kept as given."""
    clips: list[str] = []
    for item in items:
        p = Path(item)
        if p.suffix.lower() in LIST_SUFFIXES:
            if not p.is_file():
                raise AnalysisError(f"The clip list '{item}' does not exist.")
            clips.extend(read_clip_list(p, root))
        else:
            clips.append(str(Path(root) / item) if root and not p.is_absolute() else item)
    if not clips:
        raise AnalysisError("No clips to measure: pass video files or a non-empty list file.")
    return clips


@dataclass
class Measurement:
    """Result of :func:`measure`: rows plus which clips were used and which were skipped."""

    rows: list[LayerRow]
    clips: list[str]
    skipped: list[tuple[str, str]]


def measure(model: nn.Module, clips: Sequence[str], maps_per_pass: int | None = None) -> Measurement:
    """Per-axis redundancy of ``model`` over ``clips`` (one test view each, one clip at a time).

    ``maps_per_pass`` bounds how many maps one forward materialises (more forwards, less memory
    on large grids). An unreadable clip is skipped and listed; none readable is an error.
    """
    from uniformer.data.video import VideoError

    protocol = model.zoo_entry.protocol
    names = map_names(model)
    step = maps_per_pass or len(names) or 1
    per_clip, used, skipped = [], [], []
    for clip in clips:
        try:
            x = one_view(clip, protocol).x
        except (VideoError, OSError) as err:
            skipped.append((clip, str(err)))
            continue
        values: list[AxisValue] = []
        for start in range(0, len(names), step):
            record = extract(model, x, layers=names[start:start + step])
            values.extend(axis_values(record))
            del record
        per_clip.append(values)
        used.append(clip)
    if not used:
        first = skipped[0][1] if skipped else "no clip given"
        raise AnalysisError(f"None of the {len(clips)} clips could be read (first: {first}).")
    return Measurement(summarise(per_clip), used, skipped)


# -------------------------------------------------------------------------------------------- CLI
def _ci(ci: Sequence[float] | None, digits: int = 3) -> str:
    return "–" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def format_table(rows: Sequence[LayerRow]) -> str:
    """A readable fixed-width table of the rows."""
    head = (f"{'map':<30} {'axis':<8} {'source':<7} {'grid':<9} {'locality':>8} {'95% CI':>16} "
            f"{'uniform':>7} {'ratio':>6} {'distance':>8} {'entropy':>7} {'n':>4}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<30} {r.kind:<8} {r.source:<7} {r.grid:<9} {r.locality_mean:>8.3f} "
            f"{_ci(r.locality_ci95) if not r.clip_independent else '(fixed kernel)':>16} {r.uniform_locality:>7.3f} "
            f"{r.ratio:>5.2f}× {r.distance_mean:>8.2f} {r.entropy_mean:>7.3f} {r.n_clips:>4}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.redundancy",
                                description="Per-axis attention locality of a model over clips, with 95 % intervals.")
    p.add_argument("clips", nargs="+",
                   help="video files and/or list files (.txt/.csv: 'path label' or one path a line)")
    p.add_argument("--model", required=True, help="zoo model name")
    p.add_argument("--checkpoint", help="weights file (default: the zoo's bundled or cached weights)")
    p.add_argument("--random", action="store_true", help="random weights (a control: close to uniform)")
    p.add_argument("--root", help="folder the clip paths of list files (and relative clips) are relative to")
    p.add_argument("--maps-per-pass", type=int, default=None, help="maps materialised per forward (memory bound)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        clips = expand_clips(args.clips, args.root)
        model, weights = load_model(args.model, args.checkpoint, pretrained=not args.random)
        result = measure(model, clips, args.maps_per_pass)
    except (UniformerLabError, AnalysisError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for clip, why in result.skipped:
        print(f"warning: skipped unreadable clip {clip}: {why}", file=sys.stderr)
    if args.json:
        doc = {"model": args.model, "layout": getattr(model, "layout", None), "weights": weights or "random",
               "view": "one test view per clip "
               "(middle temporal clip, centre crop of the model's protocol)", "clips": result.clips,
               "skipped": [{"clip": c, "error": e} for c, e in result.skipped],
               "layers": [r.to_dict() for r in result.rows]}
        print(jsonsafe.dumps(doc, indent=2))
    else:
        print(f"{args.model} ({weights or 'random weights'}), {len(result.clips)} clip(s), one test view each")
        print(format_table(result.rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
