"""``python -m analysis.local_mask --model NAME --data LIST --root DIR [--json] [--out CSV]``

The causal redundancy test: held-out top-1 of the model as it is, and with the attention of the
first, middle and last third of its attention layers (and of all of them) restricted to the
3×3 spatial / ±1-frame neighbourhood (``analysis.intervention.local_attention``; softmax
renormalised over the allowed keys). A small drop when the shallow third is masked means their
global comparison was mostly wasted, the paper's argument for local MHRA early.

Evaluation: the model's own test protocol (all its views, raw logits summed, as
``uniformer.evaluate``); each batch is decoded once and every variant runs on the same views,
through ``uniformer.evaluate.evaluate_model`` with a wrapper module that stacks the variants'
logits side by side.

Interval of the drop: the same clips are scored unmasked and masked, so the drop is a paired
difference of proportions, ``(b − c) / n`` where ``b`` clips turn wrong and ``c`` turn right
under the mask. Its 95 % interval is Agresti–Min's adjusted Wald interval (add ½ to each cell
of the paired 2×2 table): it keeps the pairing (only discordant clips carry information, as
McNemar's test), has close to nominal coverage at small n, and, unlike the plain Wald or a
paired bootstrap, does not collapse to zero width when no clip changes.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from analysis.attention import AnalysisError
from analysis.inputs import load_model
from analysis.intervention import layer_groups, local_attention
from uniformer import jsonsafe
from uniformer.errors import UniformerLabError
from uniformer.models.uniformer import DEFAULT_LAYOUT

__all__ = ["MaskRow", "model_label", "paired_drop_interval", "run", "write_csv", "main"]

CSV_COLUMNS = ("model", "layers", "layer_indices", "n_layers", "space_radius", "time_radius", "top1",
               "top1_unmasked", "drop", "drop_ci95_low", "drop_ci95_high", "n_eval")


def paired_drop_interval(base: Tensor, masked: Tensor, z: float = 1.96) -> tuple[float, float, float]:
    """``(drop, low, high)`` of ``mean(base) − mean(masked)`` for paired 0/1 outcomes per clip."""
    base, masked = base.bool(), masked.bool()
    n = int(base.numel())
    if n == 0 or masked.numel() != n:
        raise AnalysisError("The paired drop needs the same, non-empty set of clips scored both ways.")
    b = int((base & ~masked).sum())  # right before, wrong under the mask
    c = int((~base & masked).sum())  # wrong before, right under the mask
    drop = (b - c) / n
    b_, c_, n_ = b + 0.5, c + 0.5, n + 2.0
    centre = (b_ - c_) / n_
    half = z * math.sqrt(max((b_ + c_) - (b_ - c_) ** 2 / n_, 0.0)) / n_
    return drop, max(-1.0, centre - half), min(1.0, centre + half)


class _Variants(nn.Module):
    """Runs ``model`` unmasked and under each mask configuration; logits side by side ``(B, V·K)``."""

    def __init__(self, model: nn.Module, groups: dict[str, list[int]], space_radius: int, time_radius: int) -> None:
        super().__init__()
        self.model = model
        self.groups = groups
        self.radii = (space_radius, time_radius)

    def forward(self, x: Tensor) -> Tensor:
        outs = [self.model(x)]
        for layers in self.groups.values():
            with local_attention(self.model, layers, *self.radii):
                outs.append(self.model(x))
        return torch.cat(outs, dim=1)


@dataclass(frozen=True)
class MaskRow:
    model: str
    layers: str  # group name: first | middle | last | all
    layer_indices: str
    n_layers: int
    space_radius: int
    time_radius: int
    top1: float
    top1_unmasked: float
    drop: float
    drop_ci95_low: float
    drop_ci95_high: float
    n_eval: int


def run(model: nn.Module, name: str, data: str, root: str, *, views: str | None = None, batch_size: int = 4,
        workers: int = 0, space_radius: int = 1, time_radius: int = 1, limit: int | None = None,
        device: str = "cpu") -> list[MaskRow]:
    """Score ``model`` on the list ``data`` unmasked and with each third of its attention masked."""
    from uniformer.data.datasets import VideoListDataset
    from uniformer.data.sampling import parse_views
    from uniformer.evaluate import evaluate_model

    groups = layer_groups(model)
    if not groups:
        raise AnalysisError(f"{name} has no attention layer to restrict (every block is a local affinity).")
    protocol = model.zoo_entry.protocol
    if views:
        clips, crops = parse_views(views)
        protocol = dataclasses.replace(protocol, num_clips=clips, num_crops=crops)
    dataset = VideoListDataset(data, root or None, mode="test", protocol=protocol)
    if limit:
        dataset.samples = dataset.samples[: int(limit)]
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    k = int(model.zoo_entry.num_classes if getattr(model, "zoo_entry", None) else model.num_classes)
    wrapper = _Variants(model, groups, space_radius, time_radius)
    result = evaluate_model(wrapper, loader, device, num_classes=k * (1 + len(groups)))
    logits = result.logits.reshape(result.logits.shape[0], 1 + len(groups), k)
    labels = result.labels
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise AnalysisError(f"A label of {data} is outside the model's {k} classes; check the list and the model.")
    correct = logits.argmax(-1) == labels[:, None]  # (N, 1 + groups)
    base = correct[:, 0]
    rows = []
    for i, (group, layers) in enumerate(groups.items(), start=1):
        drop, lo, hi = paired_drop_interval(base, correct[:, i])
        rows.append(MaskRow(name, group, ";".join(map(str, layers)), len(layers), space_radius, time_radius,
                            float(correct[:, i].double().mean()), float(base.double().mean()), drop, lo, hi,
                            int(base.numel())))
    return rows


def write_csv(rows: Sequence[MaskRow], path: str | Path) -> Path:
    """Write ``rows`` to ``path``, keeping the rows of other models already there (one table for
    every model measured: the lab models and ablation layouts are run one at a time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {r.model for r in rows}
    kept: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="") as fh:
            kept = [r for r in csv.DictReader(fh) if r.get("model") not in mine]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        for r in rows:
            d = dataclasses.asdict(r)
            writer.writerow({c: (f"{d[c]:.6g}" if isinstance(d[c], float) else d[c]) for c in CSV_COLUMNS})
    return path


def model_label(name: str, model: nn.Module) -> str:
    """The zoo name, plus the stage layout when the weights are another layout than the entry's
    (an ablation run loaded through ``--checkpoint``): ``uniformer_lab/GGGG``."""
    layout = getattr(model, "layout", None)
    entry = getattr(model, "zoo_entry", None)
    default = entry.arch.get("layout", DEFAULT_LAYOUT) if entry is not None else DEFAULT_LAYOUT
    return f"{name}/{layout}" if layout and layout != default else name


def format_table(rows: Sequence[MaskRow]) -> str:
    lines = [f"{'masked':<7} {'layers':<14} {'top-1':>7} {'unmasked':>8} {'drop':>7} {'95% CI of drop':>18} {'n':>6}"]
    for r in rows:
        lines.append(f"{r.layers:<7} {r.layer_indices:<14} {r.top1:>7.3f} {r.top1_unmasked:>8.3f} {r.drop:>+7.3f} "
                     f"{f'[{r.drop_ci95_low:+.3f}, {r.drop_ci95_high:+.3f}]':>18} {r.n_eval:>6}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.local_mask", description=__doc__.split("\n\n")[1])
    p.add_argument("--model", required=True, help="zoo model name")
    p.add_argument("--checkpoint", help="weights file (default: the zoo's bundled or cached weights)")
    p.add_argument("--data", required=True, help="held-out list file ('path label' per line)")
    p.add_argument("--root", default="", help="folder the list's paths are relative to (default: the list's folder)")
    p.add_argument("--views", help="CLIPSxCROPS (default: the model's test protocol)")
    p.add_argument("--space-radius", type=int, default=1, help="allowed |Δh|, |Δw| in tokens (1: 3×3)")
    p.add_argument("--time-radius", type=int, default=1, help="allowed |Δt| in token frames (1: ±1 frame)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N clips of the list")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", help="also write the rows to this CSV (e.g. docs/reproduction/local_mask.csv)")
    p.add_argument("--label", help="the rows' model name in the CSV (default: the zoo name, plus the layout for "
                                   "another layout's weights); name a second seed apart, e.g. uniformer_lab/GGGG_s1")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        model, weights = load_model(a.model, a.checkpoint, pretrained=True)
        model.to(a.device)
        label = a.label or model_label(a.model, model)
        rows = run(model, label, a.data, a.root, views=a.views, batch_size=a.batch_size, workers=a.workers,
                   space_radius=a.space_radius, time_radius=a.time_radius, limit=a.limit, device=a.device)
        if a.out:
            write_csv(rows, a.out)
    except (UniformerLabError, AnalysisError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.json:
        doc: dict[str, Any] = {"model": a.model, "weights": weights, "rows": [dataclasses.asdict(r) for r in rows]}
        print(jsonsafe.dumps(doc, indent=2))
    else:
        print(f"{a.model} ({weights}): attention restricted to |Δh|,|Δw| ≤ {a.space_radius}, |Δt| ≤ {a.time_radius}")
        print(format_table(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
