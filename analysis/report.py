"""``python -m analysis.report VIDEO --model NAME [--checkpoint PATH] --out DIR``

One clip of the video (the model's own test protocol: the middle temporal clip, centre crop)
goes through the model once with attention capture. The report writes:

- ``redundancy_per_layer.csv`` / ``redundancy_per_head.csv``: locality, distances, entropy per
  layer (and per head / kernel channel), with the uniform-attention floor;
- figures, each as ``.png`` (matplotlib) and ``.html`` (plotly; every page loads the one
  ``plotly.min.js`` written next to them from the installed plotly, so the folder works offline):
  ``redundancy_curve``, ``anchor_attention``, ``efficiency_per_view``, ``efficiency_total`` and,
  per family, ``local_affinity_stage{s}`` + ``cam`` (UniFormer) or ``rollout`` (TimeSformer),
  plus ``attribution`` when ``--attribution`` asks for it;
- ``summary.md``: prediction, the per-layer table, what it says about the paper's Figure 1
  claim, extraction cost, measured vs published FLOPs, the list of files, and last a verdict
  per axis (spatial, temporal) on the first third of the attention layers.

Without ``--model`` the report is of the bundled lab UniFormer (``uniformer.assets.DEFAULT_MODEL``).
Bundled models use their own weights; any other model without ``--checkpoint`` (or
``--pretrained``) has random weights, and the report says so: random attention is close to
uniform, so the redundancy numbers are only meaningful with trained weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from analysis import attribution as attr
from analysis import efficiency, views
from analysis.attention import AnalysisError, AttentionRecord, extract
from analysis.inputs import load_model, one_view
from analysis.metrics import RedundancyRow, redundancy_table, write_csv
from analysis.redundancy import LayerRow, axis_values, summarise, write_axes_csv
from uniformer.assets import DEFAULT_MODEL
from uniformer.data.sampling import TestProtocol
from uniformer.data.video import VideoInfo
from uniformer.errors import UniformerLabError
from uniformer.models.family import get_family
from uniformer.predict import model_notes, video_notes


def _parse_triple(text: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected three integers 't,h,w', got {text!r}") from err
    return t, h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[1])
    p.add_argument("video", help="video file to analyse")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"zoo model name (default {DEFAULT_MODEL}, bundled; see uniformer.zoo.list_models())")
    p.add_argument("--checkpoint", help="weights file; without it (and without --pretrained) the weights are the "
                   "bundled ones for bundled models, random for the others")
    p.add_argument("--pretrained", action="store_true",
                   help="use the zoo's weights: bundled file, or the published ones (cache or download)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--anchor", type=_parse_triple, help="anchor token 't,h,w' on the grid of the first anchor "
                   "layer (default: the centre token of the middle frame)")
    p.add_argument("--anchor-layers", type=lambda t: [n for n in t.split(",") if n],
                   help="comma-separated map names for the anchor view (default: first, third and last "
                   "attention layers)")
    p.add_argument("--attribution", choices=("none", "occlusion", "ig"), default="none",
                   help="captum attribution over space-time (slow on full-size models; default none)")
    p.add_argument("--ig-steps", type=int, default=16, help="Integrated Gradients steps")
    p.add_argument("--occlusion-window", type=_parse_triple, default=None,
                   help="occlusion window 't,h,w' in input frames/pixels (default: 2 frames, 1/4 of the crop)")
    p.add_argument("--max-frames", type=int, default=8, help="frames shown per figure row")
    p.add_argument("--measure-all", action="store_true",
                   help="count FLOPs for every zoo model of the dataset, not only the chosen one")
    return p


@dataclasses.dataclass
class ReportInput:
    """The analysed clip: model input ``(1, 3, T, S, S)``, display frames and where they came from."""

    x: torch.Tensor
    frames: np.ndarray  # (T, S, S, 3) floats in [0, 1]: what the model saw, de-normalised
    frame_indices: list[int]
    video_info: VideoInfo


def load_clip(video: str, protocol: TestProtocol) -> ReportInput:
    """The middle temporal clip of the protocol, centre crop, preprocessed as at test time."""
    view = one_view(video, protocol)
    frames = views.frames_from_input(view.x, protocol.mean, protocol.std, bgr=protocol.bgr)
    return ReportInput(x=view.x, frames=frames, frame_indices=view.frame_indices, video_info=view.video_info)


def default_anchor(record: AttentionRecord, name: str) -> tuple[int, int, int]:
    """The centre token of the middle frame of that map's grid."""
    t, h, w = record.layers[name].grid
    return t // 2, h // 2, w // 2


def default_anchor_layers(record: AttentionRecord) -> list[str]:
    """Maps of the first, third (the layer of the paper's Figure 1) and last attention layers;
    none for a model without attention (a UniFormer with layout ``LLLL``)."""
    indices = sorted({i.layer_index for i in record.layers.values() if i.kind != "local_affinity"})
    if not indices:
        return []
    keep = {indices[0], indices[min(2, len(indices) - 1)], indices[-1]}
    return [n for n, i in record.layers.items() if i.kind != "local_affinity" and i.layer_index in keep]


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def layer_table_markdown(rows: Sequence[RedundancyRow]) -> str:
    head = ("| layer | kind | grid | locality | uniform | loc. space | loc. time | dist space | dist time "
            "| entropy | cls mass |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if r.head != -1:
            continue
        lines.append(
            f"| {r.layer} | {r.kind} | {r.grid} | {_fmt(r.locality)} | {_fmt(r.chance_locality)} | "
            f"{_fmt(r.locality_space)} | {_fmt(r.locality_time)} | {_fmt(r.dist_space, 2)} | "
            f"{_fmt(r.dist_time, 2)} | {_fmt(r.entropy)} | {_fmt(r.cls_mass)} |"
        )
    return "\n".join(lines)


def axis_table_markdown(rows: Sequence[LayerRow]) -> str:
    """Per-axis rows of ``analysis.redundancy`` (each axis against its own uniform floor)."""
    lines = ["| map | axis | source | grid | locality | uniform | ratio | distance |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.kind} | {r.source} | {r.grid} | {_fmt(r.locality_mean)} | "
                     f"{_fmt(r.uniform_locality)} | {r.ratio:.2f}× | {_fmt(r.distance_mean, 2)} |")
    return "\n".join(lines)


def redundancy_summary(rows: Sequence[LayerRow]) -> list[str]:
    """One sentence per (source, axis): how much more local than its uniform floor the shallow
    third of such rows is. Space and time are compared separately (a joint average hides a large
    spatial effect behind a small temporal one)."""
    out = []
    what = {("kernel", "spatial"): "of |kernel weight| in the central 3×3 taps",
            ("kernel", "temporal"): "of |kernel weight| in the central 3 time taps",
            ("attention", "spatial"): "of attention in the 3×3 spatial neighbourhood (any frame)",
            ("attention", "temporal"): "of attention within ±1 frame (any position)"}
    for (source, axis), phrase in what.items():
        shallow = _shallow_third(rows, source, axis)
        if shallow is None:
            continue
        n, loc, floor = shallow
        out.append(f"- {axis}, {source}: the first {n} such layer(s) put {loc:.1%} {phrase} "
                   f"(uniform would be {floor:.1%}; ratio {loc / floor:.2f}×).")
    return out


def _shallow_third(rows: Sequence[LayerRow], source: str, axis: str) -> tuple[int, float, float] | None:
    """(number of layers, mean locality, mean uniform floor) over the first third of the layers of
    that source (``kernel`` or attention) on that axis; None when there are none."""
    rs = [r for r in rows if r.kind == axis and (r.source == "kernel") == (source == "kernel")]
    if not rs:
        return None
    layers = sorted({r.layer_index for r in rs})
    keep = set(layers[: max(1, len(layers) // 3)])
    shallow = [r for r in rs if r.layer_index in keep]
    loc = sum(r.locality_mean for r in shallow) / len(shallow)
    floor = sum(r.uniform_locality for r in shallow) / len(shallow)
    return len(keep), loc, floor


# Bands for the verdict on ratio = locality / uniform floor: within ±25 % of 1 is "about uniform"
# (one clip, no interval: smaller differences are not worth a claim).
CLEARLY_LOCAL, MILDLY_LOCAL, LESS_LOCAL = 2.0, 1.25, 0.8
SATURATED_FLOOR = 0.9  # the neighbourhood already holds this share of the keys: locality cannot show


def verdict(rows: Sequence[LayerRow], random_weights: bool = False) -> list[str]:
    """One sentence per axis (spatial, temporal) on the paper's Figure 1 claim: how much more local
    than uniform the first third of the *attention* layers is (the kernels are local by design)."""
    where = {"spatial": "in the 3×3 spatial neighbourhood", "temporal": "within ±1 frame"}
    out = []
    for axis in ("spatial", "temporal"):
        shallow = _shallow_third(rows, "attention", axis)
        if shallow is None:
            out.append(f"- **{axis}**: no attention layer on this axis (only local affinity kernels), so there is "
                       "nothing to compare with uniform attention.")
            continue
        n, loc, floor = shallow
        ratio = loc / floor
        facts = f"{loc:.1%} {where[axis]} against {floor:.1%} for uniform attention, {ratio:.2f}×"
        if floor >= SATURATED_FLOOR:
            text = (f"cannot be judged: {where[axis]} already covers {floor:.0%} of the keys on this grid, so even "
                    f"uniform attention looks local ({facts}).")
        elif ratio >= CLEARLY_LOCAL:
            text = f"clearly local: the first {n} attention layer(s) put {facts}."
        elif ratio >= MILDLY_LOCAL:
            text = f"somewhat more local than uniform: the first {n} attention layer(s) put {facts}."
        elif ratio > LESS_LOCAL:
            text = (f"about uniform: the first {n} attention layer(s) put {facts}, within ±25 % of uniform; no "
                    "sign of the local redundancy the paper describes on this axis.")
        else:
            text = (f"less local than uniform: the first {n} attention layer(s) put only {facts}; they look "
                    "away from the neighbourhood.")
        out.append(f"- **{axis}**: {text}")
    caveat = "Measured on one view of one clip; `python -m analysis.redundancy` over many clips gives 95 % intervals."
    if random_weights:
        caveat = "Random weights: attention is close to uniform by construction, so this says nothing about a " \
                 "trained model. " + caveat
    return [*out, "", caveat]


def run_report(args: argparse.Namespace) -> Path:
    from uniformer import zoo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entry = zoo.get_entry(args.model)
    bundled = zoo.resolve_weights(args.model).source == "bundled"  # in the repository: never a random stand-in
    model, weights = load_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained or bundled)
    clip = load_clip(args.video, entry.protocol)
    x = clip.x

    # one extraction (also the warm-up) and one normal forward (fused attention), timed
    t0 = time.perf_counter()
    record = extract(model, x)
    t_ext = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        model(x)
    t_fwd = time.perf_counter() - t0
    probs = record.logits.softmax(-1)[0]
    top = probs.topk(min(5, probs.numel()))
    labels = getattr(model, "label_names", None) or [f"class {i}" for i in range(probs.numel())]

    rows = redundancy_table(record, per_head=True, model=args.model)
    axis_rows = summarise([axis_values(record)])
    files = [
        write_csv([r for r in rows if r.head == -1], out / "redundancy_per_layer.csv"),
        write_csv(rows, out / "redundancy_per_head.csv"),
        write_axes_csv(axis_rows, out / "redundancy_axes.csv"),
    ]

    def both(stem: str, mpl, plotly) -> None:
        files.extend(views.save_figures(out, stem, mpl, plotly))

    both("redundancy_curve", views.redundancy_curve_mpl(rows), views.redundancy_curve_plotly(rows))
    axes = {args.model: axis_rows}
    both("redundancy_axes", views.axis_curve_mpl(axes), views.axis_curve_plotly(axes))

    names = args.anchor_layers or default_anchor_layers(record)
    unknown = [n for n in names if n not in record.maps]
    if unknown:
        raise AnalysisError(f"No attention map named {', '.join(unknown)}; choose from {', '.join(record.maps)}.")
    notes: list[str] = []
    if names:
        anchor = args.anchor or default_anchor(record, names[0])
        ov = views.anchor_overlay(record, clip.frames, anchor, names=names, max_frames=args.max_frames)
        both("anchor_attention", views.overlay_mpl(ov), views.overlay_plotly(ov))
    else:
        notes.append("No anchor-attention figure: every layer of this model is a local affinity kernel.")
    shown = views.even_frames(len(clip.frames), args.max_frames)
    family = get_family(record)
    if family.has_local_blocks:
        for stage in sorted({i.stage for i in record.layers.values() if i.kind == "local_affinity"}):
            name = f"local_affinity_stage{stage}_block0"
            title = f"{name}: learned 5×5×5 affinity (per channel)"
            both(f"local_affinity_stage{stage}", views.kernels_mpl(record.maps[name], title=title),
                 views.kernels_plotly(record.maps[name], title=title))
    if family.attribution == "cam":
        cam = attr.class_activation_map(model, x)
        gcam = attr.grad_cam(model, x, target=cam.target)
        cls = labels[int(cam.target[0])]
        ov = views.Overlay(frames=clip.frames, rows={"CAM": cam.heat[0].numpy(), "Grad-CAM": gcam.heat[0].numpy()},
                           title=f"Class activation for '{cls}' (last stage-4 block)",
                           frame_ids=shown, value_label="activation")
        both("cam", views.overlay_mpl(ov), views.overlay_plotly(ov))
    elif family.attribution == "rollout" and any(i.kind == "temporal" for i in record.layers.values()):
        ro = attr.attention_rollout(record)
        ov = views.Overlay(frames=clip.frames, rows={"rollout (cls)": ro.patches.numpy()},
                           title=f"Attention rollout from the class token (cls keeps {ro.cls:.1%})",
                           frame_ids=shown, value_label="relevance")
        both("rollout", views.overlay_mpl(ov), views.overlay_plotly(ov))

    if args.attribution != "none":
        t0 = time.perf_counter()
        if args.attribution == "ig":
            a = attr.integrated_gradients(model, x, n_steps=args.ig_steps)
        else:
            size = x.shape[-1]
            a = attr.occlusion(model, x, window=args.occlusion_window or (min(2, x.shape[2]), size // 4, size // 4))
        heat = torch.nn.functional.avg_pool3d(a.heat[:, None], (1, 8, 8), ceil_mode=True)[0, 0]
        ov = views.Overlay(frames=clip.frames, rows={a.method: heat.numpy()},
                           title=f"{a.method} for '{labels[int(a.target[0])]}'",
                           frame_ids=shown, value_label="attribution")
        both("attribution", views.overlay_mpl(ov), views.overlay_plotly(ov))
        notes.append(f"{a.method} took {time.perf_counter() - t0:.1f} s.")

    published = efficiency.load_published(entry.dataset)
    names = zoo.list_models(dataset=entry.dataset) if args.measure_all else [args.model]
    measured = efficiency.measure_models(names)
    for per, stem in (("view", "efficiency_per_view"), ("total", "efficiency_total")):
        both(stem,
             efficiency.efficiency_mpl(published, measured, per, entry.dataset),
             efficiency.efficiency_plotly(published, measured, per, entry.dataset))

    info = clip.video_info
    notes = [*video_notes(info), *notes]
    lines = [
        f"# Attention report: `{args.model}` on `{Path(args.video).name}`",
        "",
        "- weights: " + (weights or "**random initialisation** (no checkpoint): redundancy numbers describe an "
                         "untrained model"),
        f"- video: {info.width}×{info.height}, {info.num_frames} frames at {info.fps:.2f} fps; analysed clip = "
        f"frames {clip.frame_indices} ({entry.protocol.sampler}), centre crop {x.shape[-1]} px",
        f"- model input {tuple(x.shape)}; normal forward {t_fwd:.3f} s, extraction forward {t_ext:.3f} s "
        f"(×{t_ext / max(t_fwd, 1e-9):.2f}; single runs, the extraction one also warms up — "
        "`python -m benchmarks.extraction` gives medians)",
        "",
        "## Prediction (this one view)",
        "",
        *[f"> {n}\n" for n in model_notes(entry, random_weights=weights is None)],
        *[f"{i + 1}. {labels[int(c)]} — {float(p):.1%}" for i, (p, c) in enumerate(zip(top.values, top.indices))],
        "",
        "## Redundancy (paper Figure 1, measured)",
        "",
        *redundancy_summary(axis_rows),
        "",
        "Per axis (each against its own uniform floor; `python -m analysis.redundancy` gives 95 % intervals "
        "over many clips):",
        "",
        axis_table_markdown(axis_rows),
        "",
        "All metrics per map (joint maps: one 3×3 × ±1-frame locality):",
        "",
        layer_table_markdown(rows),
        "",
        "locality: share of mass in the query's neighbourhood (joint: 3×3 × ±1 frame; spatial: 3×3; "
        "temporal: ±1 frame; kernel: central 3×3×3); uniform: the same for uniform attention; distances in "
        "tokens of that layer's grid / frames of its time axis; entropy normalised by log(#keys).",
        "",
        "## Cost",
        "",
        "| model | views | measured GFLOPs/view | published GFLOPs/view | measured total | params (M) | published "
        "params (M) |",
        "|---|---|---|---|---|---|---|",
        *[f"| {m.name} | {m.views} | {m.gflops_per_view:.2f} | {_fmt(m.published_gflops_per_view, 1)} | "
          f"{m.gflops_total:.1f} | {m.params_m:.2f} | {_fmt(m.published_params_m, 1)} |" for m in measured],
        "",
        *(["## Notes", "", *[f"- {n}" for n in notes], ""] if notes else []),
        "## Files",
        "",
        *[f"- `{f.name}`" for f in files],
        f"- `{views.PLOTLY_JS}` (plotly.js, loaded by every `.html` here: keep the folder together)",
        "",
        "## Verdict (paper Figure 1: is shallow attention local?)",
        "",
        *verdict(axis_rows, random_weights=not weights),
        "",
    ]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines), encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run_report(args)
    except (UniformerLabError, AnalysisError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
