"""The paper's stage-layout ablation at lab scale, reproducible with one resumable command.

UniFormer's claim (paper Sec. 3-4, ablation tables): a cheap learned *local* affinity in the
shallow stages and *global* self-attention in the deep ones (layout ``LLGG``) gives a better
accuracy / GFLOPs balance than local or global everywhere. This module trains every layout with
one recipe and one step budget, evaluates each run on the same held-out set, and writes::

    docs/reproduction/ablation.csv    layout,seed,gflops,params_m,top1,top5,n_eval,train_minutes
    docs/reproduction/ablation.json   the same rows plus per-layout means, 95 % CIs, CPU, commands
    docs/reproduction/ablation.png    held-out top-1 (mean, 95 % CI over seeds) against GFLOPs
    docs/reproduction/ablation_per_class.csv   held-out top-1 per class (rows) and run (columns)

Usage::

    python -m uniformer.ablate --out runs/ablation            # data, all runs, evaluation, report
    python -m uniformer.ablate --out runs/ablation --report-only
    python -m uniformer.ablate --out runs/ablation --bundle   # LLGG / TS seed 0 -> assets/checkpoints

Each run is ``python -m uniformer.train --config CFG run.out_dir=OUT/<layout>_s<seed>
run.seed=<seed> run.resume=auto [model.kwargs.layout=...]`` in a child process whose output goes
to ``OUT/<layout>_s<seed>/train.out``: a session that stops mid-run loses at most the current
epoch, and the next ``python -m uniformer.ablate`` continues every unfinished run where it was.
Runs go seed-major (every layout's seed 0 before any seed 1), so a partial ablation already
compares all layouts. ``TS`` is the TimeSformer baseline (divided space-time attention).

Uncertainty: per layout, the mean over seeds with a Student-t 95 % interval (seed-to-seed
variation), each layout's difference from LLGG with a Welch 95 % interval (the one for "is layout
A better than B"; ``differences`` in ablation.json), and per run a Wilson 95 % interval on its
held-out clips (evaluation noise only).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from uniformer.device import cpu_name
from uniformer.errors import UniformerLabError
from uniformer.metrics import t_interval, t_quantile_975, welch_interval, wilson_interval

__all__ = [
    "LAYOUTS",
    "RunSpec",
    "RunResult",
    "LayoutSummary",
    "layout_colour",
    "plan_runs",
    "differences",
    "step_budget",
    "summarise",
    "t_quantile_975",
    "wilson_interval",
    "write_report",
    "main",
]

#: The layouts of the paper's ablation, cheapest-global first; ``TS`` is TimeSformer.
LAYOUTS: tuple[str, ...] = ("LLLL", "LLLG", "LLGG", "LGGG", "GGGG", "TS")
CSV_COLUMNS: tuple[str, ...] = ("layout", "seed", "gflops", "params_m", "top1", "top5", "n_eval", "train_minutes")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA, DEFAULT_HELDOUT = "data/lab", "data/lab_heldout"


class AblationError(UniformerLabError):
    """A run, the data or the report could not be produced."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of the ablation."""

    layout: str
    seed: int
    config: Path
    out_dir: Path

    @property
    def name(self) -> str:
        return f"{self.layout}_s{self.seed}"

    def train_command(self, data_overrides: Sequence[str] = ()) -> list[str]:
        cmd = [sys.executable, "-m", "uniformer.train", "--config", str(self.config),
               f"run.out_dir={json.dumps(str(self.out_dir))}", f"run.seed={self.seed}", "run.resume=auto",
               "run.progress=false"]
        if self.layout != "TS":
            cmd.append(f'model.kwargs.layout="{self.layout}"')
        return cmd + list(data_overrides)


@dataclass
class RunResult:
    """One row of ``ablation.csv`` (top1/top5 as fractions)."""

    layout: str
    seed: int
    gflops: float
    params_m: float
    top1: float
    top5: float
    n_eval: int
    train_minutes: float
    steps: int | None = None  # optimiser steps trained (log.csv); not a CSV column
    batch_size: int | None = None  # clips per step
    per_class: dict[str, float] | None = None  # held-out top-1 per class (uniformer.evaluate); not a CSV column
    time_reversal: dict[str, Any] | None = None  # pair found / order given the pair (uniformer.metrics)

    def wilson95(self) -> tuple[float, float]:
        return wilson_interval(round(self.top1 * self.n_eval), self.n_eval)


@dataclass
class LayoutSummary:
    """Mean over seeds of one layout, with a Student-t 95 % interval when there are >= 2 seeds."""

    layout: str
    n_seeds: int
    gflops: float
    params_m: float
    top1_mean: float
    top1_ci95: tuple[float, float] | None
    top1_sd: float | None
    top5_mean: float
    train_minutes_mean: float


def plan_runs(layouts: Sequence[str], seeds: Sequence[int], out: Path,
              uniformer_config: Path, timesformer_config: Path) -> list[RunSpec]:
    """Seed-major order: every layout once before any layout twice."""
    bad = [x for x in layouts if x != "TS" and (len(x) != 4 or set(x) - {"L", "G"})]
    if bad:
        raise AblationError(f"Layout {bad[0]!r} is not four letters of L/G (or TS).")
    return [RunSpec(layout, s, timesformer_config if layout == "TS" else uniformer_config, out / f"{layout}_s{s}")
            for s in seeds for layout in layouts]


def layout_order(layout: str) -> tuple[int, str]:
    """Sort key of a layout: ``LAYOUTS`` order, any other layout after them by name."""
    return (LAYOUTS.index(layout) if layout in LAYOUTS else len(LAYOUTS), layout)


def summarise(rows: Sequence[RunResult]) -> list[LayoutSummary]:
    """Per-layout mean over seeds, in ``LAYOUTS`` order (others after, sorted)."""
    by_layout: dict[str, list[RunResult]] = {}
    for r in rows:
        by_layout.setdefault(r.layout, []).append(r)
    out = []
    for layout in sorted(by_layout, key=layout_order):
        rs = by_layout[layout]
        k = len(rs)
        accs = [r.top1 for r in rs]
        mean = sum(accs) / k
        sd = math.sqrt(sum((a - mean) ** 2 for a in accs) / (k - 1)) if k >= 2 else None
        ci = t_interval(accs)
        if ci is not None:
            ci = (max(0.0, ci[0]), min(1.0, ci[1]))
        out.append(LayoutSummary(
            layout=layout, n_seeds=k, gflops=sum(r.gflops for r in rs) / k,
            params_m=sum(r.params_m for r in rs) / k, top1_mean=mean, top1_ci95=ci, top1_sd=sd,
            top5_mean=sum(r.top5 for r in rs) / k, train_minutes_mean=sum(r.train_minutes for r in rs) / k,
        ))
    return out


def differences(rows: Sequence[RunResult], reference: str = "LLGG") -> list[dict[str, Any]]:
    """Each layout's mean top-1 minus ``reference``'s, with a Welch 95 % interval over seeds (None
    where either has one seed): the quantity behind "can these two layouts be told apart"."""
    by_layout: dict[str, list[float]] = {}
    for r in rows:
        by_layout.setdefault(r.layout, []).append(r.top1)
    ref = by_layout.get(reference)
    if ref is None:
        return []
    out = []
    for layout in sorted(set(by_layout) - {reference}, key=layout_order):
        accs = by_layout[layout]
        w = welch_interval(accs, ref)
        out.append({"layout": layout, "reference": reference, "diff": sum(accs) / len(accs) - sum(ref) / len(ref),
                    "ci95": None if w is None else [max(-1.0, w[0]), min(1.0, w[1])],  # a difference of fractions
                    "dof": None if w is None else w[2],
                    "seeds": len(accs), "reference_seeds": len(ref)})
    return out


def read_csv(path: Path) -> list[RunResult]:
    with path.open(newline="") as f:
        return [RunResult(layout=r["layout"], seed=int(r["seed"]), gflops=float(r["gflops"]),
                          params_m=float(r["params_m"]), top1=float(r["top1"]), top5=float(r["top5"]),
                          n_eval=int(r["n_eval"]), train_minutes=float(r["train_minutes"]))
                for r in csv.DictReader(f)]


def _interval(s: LayoutSummary, rows: Sequence[RunResult]) -> tuple[float, float] | None:
    """The bar drawn for a layout: the t-interval over seeds, or the Wilson interval over clips of
    its only run (one seed has no seed-to-seed spread, but its evaluation noise is still shown)."""
    if s.top1_ci95 is not None:
        return s.top1_ci95
    return rows[0].wilson95() if len(rows) == 1 else None


def layout_colour(layout: str) -> tuple[float, float, float]:
    """A layout's colour, fixed by its name (not its position), so plots with a layout missing agree."""
    import matplotlib

    if layout in LAYOUTS:
        return matplotlib.colormaps["tab10"].colors[LAYOUTS.index(layout)]
    others = matplotlib.colormaps["tab20b"].colors  # none of them is in tab10
    if len(layout) == 4 and set(layout) <= {"L", "G"}:  # every other four-stage layout: a colour of its own
        return others[int(layout.replace("L", "0").replace("G", "1"), 2)]
    return others[16 + sum(map(ord, layout)) % 4]


def _plot(summary: Sequence[LayoutSummary], rows: Sequence[RunResult], path: Path, budget: str = "") -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8), dpi=120)
    for s in summary:  # one colour per layout, named in the legend (labels beside points collide)
        colour = layout_colour(s.layout)
        seeds = [r for r in rows if r.layout == s.layout]
        ax.scatter([r.gflops for r in seeds], [100 * r.top1 for r in seeds], s=14, color=colour, alpha=0.45)
        ci = _interval(s, seeds)
        yerr = None if ci is None else [[100 * (s.top1_mean - ci[0])], [100 * (ci[1] - s.top1_mean)]]
        ax.errorbar([s.gflops], [100 * s.top1_mean], yerr=yerr, fmt="s" if s.layout == "TS" else "o", ms=7,
                    capsize=4, color=colour, label=f"{s.layout} ({s.n_seeds} seed{'s' if s.n_seeds != 1 else ''})")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.set_xlabel("GFLOPs per clip (multiply-adds, counted here)")
    ax.set_ylabel("held-out top-1 (%)")
    shown = budget if budget and ";" not in budget else "mixed step budgets: see ablation.json"
    title = f"Stage-layout ablation, trained here ({shown}): mean over seeds; bars: 95 % t-interval over seeds"
    if any(s.n_seeds == 1 for s in summary):
        title += "\n(a layout with one seed so far: Wilson interval over its held-out clips)"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(rows: Sequence[RunResult], report_dir: Path,
                 meta: dict[str, Any] | None = None) -> list[LayoutSummary]:
    """``ablation.csv``, ``ablation.json`` and ``ablation.png`` in ``report_dir``."""
    if not rows:
        raise AblationError("No finished run to report yet; run python -m uniformer.ablate first.")
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (*layout_order(r.layout), r.seed))
    with (report_dir / "ablation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([r.layout, r.seed, f"{r.gflops:.4f}", f"{r.params_m:.4f}", f"{r.top1:.4f}", f"{r.top5:.4f}",
                        r.n_eval, f"{r.train_minutes:.1f}"])
    _write_per_class(rows, report_dir / "ablation_per_class.csv")
    summary = summarise(rows)
    budget = step_budget(rows)
    doc = {
        "runs": [asdict(r) | {"top1_wilson95": list(r.wilson95())} for r in rows],
        "layouts": [asdict(s) for s in summary],
        "differences": differences(rows),
        "meta": (meta or {}) | {"step_budget": budget},
    }
    (report_dir / "ablation.json").write_text(json.dumps(doc, indent=2) + "\n")
    _plot(summary, rows, report_dir / "ablation.png", budget)
    return summary


def _write_per_class(rows: Sequence[RunResult], path: Path) -> None:
    """``ablation_per_class.csv``: one row per class, one column per run (held-out top-1), for the
    question "which motions does a layout miss"; runs evaluated before per-class results were kept
    have no column."""
    runs = [r for r in rows if r.per_class]
    if not runs:
        path.unlink(missing_ok=True)
        return
    classes = list(dict.fromkeys(c for r in runs for c in r.per_class or {}))  # first-seen order
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", *(f"{r.layout}_s{r.seed}" for r in runs)])
        for c in classes:
            w.writerow([c, *(f"{(r.per_class or {}).get(c, float('nan')):.4f}" for r in runs)])


# ------------------------------------------------------------------------------------------ runs
def _run_logged(cmd: Sequence[str], log: Path) -> None:
    """Run ``cmd`` with its output appended to ``log``; one sentence if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.call(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if rc != 0:
        raise AblationError(f"{' '.join(cmd[1:4])} failed (exit {rc}); its output is in {log}.")


def _training_log(run_dir: Path) -> tuple[float, int | None]:
    """From ``log.csv``: minutes of the epochs' training time (validation and killed partial epochs
    excluded) and the optimiser steps trained (the last step it records)."""
    path = run_dir / "log.csv"
    if not path.is_file():
        return float("nan"), None
    seen: dict[str, float] = {}
    steps: list[int] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("epoch_time_s"):
                seen[row["epoch"]] = float(row["epoch_time_s"])  # a resumed epoch counts once
            if row.get("step"):
                steps.append(int(row["step"]))
    return sum(seen.values()) / 60.0, max(steps, default=None)


def step_budget(rows: Sequence[RunResult]) -> str:
    """'3000 steps of 16 clips' when every run agrees, else each budget with its runs (a mixed
    ablation is not one recipe, and the report should say so)."""
    budgets: dict[str, list[str]] = {}
    for r in rows:
        key = f"{r.steps} steps of {r.batch_size} clips" if r.steps and r.batch_size else "unknown steps"
        budgets.setdefault(key, []).append(f"{r.layout}_s{r.seed}")
    if len(budgets) == 1:
        return next(iter(budgets))
    return "; ".join(f"{k} ({', '.join(v)})" for k, v in budgets.items())


def _cost(run_dir: Path, cfg: Any) -> tuple[float, float]:
    """GFLOPs per clip and parameters (M) of the run's model (its ``TrainConfig``) at its training input."""
    import torch

    from uniformer.flops import count_flops
    from uniformer.train import build_model

    num_classes = cfg.model.num_classes or 10  # the head is a negligible share of the cost
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            if "head.weight" in f.keys():
                num_classes = f.get_slice("head.weight").get_shape()[0]
    with torch.device("meta"):
        model = build_model(cfg.model, num_classes)
    report = count_flops(model, (1, 3, cfg.data.num_frames, cfg.data.size, cfg.data.size))
    return report.gflops, report.params / 1e6


def run_one(spec: RunSpec, heldout: Path, data_overrides: Sequence[str]) -> RunResult:
    """Train (or resume) one run, evaluate it on the held-out set, return its row."""
    done = spec.out_dir / "heldout.json"
    if not (spec.out_dir / "model.safetensors").is_file():
        print(f"[ablate] training {spec.name} -> {spec.out_dir}/train.out", flush=True)
        _run_logged(spec.train_command(data_overrides), spec.out_dir / "train.out")
    if not (spec.out_dir / "model.safetensors").is_file():
        raise AblationError(f"{spec.name} finished without writing model.safetensors; see {spec.out_dir}/train.out.")
    if not done.is_file():
        print(f"[ablate] evaluating {spec.name} on {heldout}", flush=True)
        tmp = spec.out_dir / "heldout.out"
        cmd = [sys.executable, "-m", "uniformer.evaluate", "--checkpoint", str(spec.out_dir / "model.safetensors"),
               "--data", str(heldout / "val.txt"), "--root", str(heldout), "--json"]
        with tmp.open("w") as f:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.DEVNULL, cwd=REPO)
        if rc != 0:
            raise AblationError(f"Evaluating {spec.name} failed (exit {rc}); run: {' '.join(cmd)}")
        result = json.loads(tmp.read_text())
        done.write_text(json.dumps({"top1": result["top1"], "top5": result["top5"],
                                    "n_eval": result["num_videos"], "heldout": str(heldout),
                                    "per_class": _per_class(result),
                                    "time_reversal": result.get("time_reversal")}, indent=2))
    return _result(spec)


def _result(spec: RunSpec) -> RunResult:
    """The CSV row of a run that has its ``heldout.json``."""
    res = json.loads((spec.out_dir / "heldout.json").read_text())
    from uniformer.train import load_config

    cfg = load_config(spec.out_dir / "config.toml")
    gflops, params_m = _cost(spec.out_dir, cfg)
    minutes, steps = _training_log(spec.out_dir)
    per_class, reversal = res.get("per_class"), res.get("time_reversal")
    if (per_class is None or reversal is None) and (spec.out_dir / "heldout.out").is_file():
        try:  # runs evaluated before heldout.json kept these: the evaluation's own output
            full = json.loads((spec.out_dir / "heldout.out").read_text())
            per_class, reversal = per_class or _per_class(full), reversal or full.get("time_reversal")
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return RunResult(layout=spec.layout, seed=spec.seed, gflops=gflops, params_m=params_m, top1=res["top1"],
                     top5=res["top5"], n_eval=int(res["n_eval"]), train_minutes=minutes, steps=steps,
                     batch_size=cfg.data.batch_size, per_class=per_class, time_reversal=reversal)


def _per_class(evaluation: dict[str, Any]) -> dict[str, float] | None:
    """``{class: top-1}`` from ``uniformer.evaluate --json`` output (None when it has none); a class
    without held-out clips is left out (the CSV shows it as nan)."""
    rows = evaluation.get("per_class")
    return {str(c["class"]): float(c["top1"]) for c in rows if c.get("top1") is not None} if rows else None


def _ensure_data(path: Path, train: int, val: int, seed: int) -> None:
    if (path / "val.txt").is_file() and (train == 0 or (path / "train.txt").is_file()):
        return
    cmd = [sys.executable, "-m", "uniformer.data.synthetic", "--preset", "lab", "--out", str(path),
           "--train", str(train), "--val", str(val), "--seed", str(seed)]
    print(f"[ablate] generating {path}: {' '.join(cmd[1:])}", flush=True)
    _run_logged(cmd, path.parent / f"{path.name}.generate.out")


def collect(specs: Sequence[RunSpec]) -> list[RunResult]:
    """Rows of every run that has a held-out result (for ``--report-only``)."""
    return [_result(spec) for spec in specs if (spec.out_dir / "heldout.json").is_file()]


# ------------------------------------------------------------------------------- bundling
#: The seed-0 runs that become the zoo's bundled lab models (``assets/checkpoints``).
BUNDLED_RUNS: dict[str, str] = {"LLGG": "uniformer_lab", "TS": "timesformer_lab", "GGGG": "uniformer_lab_gggg"}
MAX_BUNDLE_MB = 25.0


def bundle(out: Path, dest: Path, labels: Path, seed: int = 0) -> list[str]:
    """Copy the finished seed-``seed`` LLGG / TS runs' weights to ``dest/<zoo name>.safetensors``.

    Refuses a file whose class list differs from ``labels`` (the zoo's label file) or that is over
    25 MB; returns one model-card line per bundled model (held-out top-1 with its Wilson interval).
    """
    from safetensors import safe_open

    classes = [ln.strip() for ln in labels.read_text().splitlines() if ln.strip()]
    lines = []
    for layout, name in BUNDLED_RUNS.items():
        run = out / f"{layout}_s{seed}"
        src = run / "model.safetensors"
        if not (run / "heldout.json").is_file():
            lines.append(f"{name}: {run.name} has not finished yet; nothing bundled.")
            continue
        with safe_open(str(src), "pt") as f:
            trained = json.loads(f.metadata()["classes"])
        if trained != classes:
            raise AblationError(f"{src} was trained on classes {trained}, not those of {labels}.")
        size_mb = src.stat().st_size / 2**20
        if size_mb > MAX_BUNDLE_MB:
            raise AblationError(f"{src} is {size_mb:.1f} MB, over the {MAX_BUNDLE_MB:.0f} MB bundle limit.")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / f"{name}.safetensors")
        r = _result(RunSpec(layout, seed, Path(), run))
        lo, hi = r.wilson95()
        lines.append(f"{name}: {run.name}, held-out top-1 {100 * r.top1:.1f} % (95 % Wilson {100 * lo:.1f}-"
                     f"{100 * hi:.1f}, n={r.n_eval}), top-5 {100 * r.top5:.1f} %, {r.gflops:.3f} GFLOPs, "
                     f"{r.params_m:.3f} M params, {r.train_minutes:.1f} min training, {size_mb:.1f} MB")
    return lines


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m uniformer.ablate", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/ablation", help="folder of the runs (resumable)")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated, e.g. LLLL,LLGG,TS")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    p.add_argument("--uniformer-config", default="configs/lab_uniformer.toml")
    p.add_argument("--timesformer-config", default="configs/lab_timesformer.toml")
    p.add_argument("--data", default=DEFAULT_DATA, help="training data (generated when missing)")
    p.add_argument("--heldout", default=DEFAULT_HELDOUT, help="held-out set (generated when missing)")
    p.add_argument("--train-clips", type=int, default=12000)
    p.add_argument("--val-clips", type=int, default=600)
    p.add_argument("--heldout-clips", type=int, default=1200)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--heldout-seed", type=int, default=1)
    p.add_argument("--report", default="docs/reproduction", help="where ablation.csv/.json/.png go")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from finished runs")
    p.add_argument("--bundle", action="store_true",
                   help="copy the finished seed-0 weights to assets/checkpoints ("
                        + ", ".join(f"{layout} as {name}" for layout, name in BUNDLED_RUNS.items())
                        + ") and rewrite the report")
    p.add_argument("--extra", nargs="*", default=[], help="extra section.key=value overrides for every run")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = _parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        specs = plan_runs([x.strip() for x in a.layouts.split(",") if x.strip()], seeds, Path(a.out),
                          Path(a.uniformer_config), Path(a.timesformer_config))
        data, heldout = Path(a.data), Path(a.heldout)
        overrides = [f"data.root={json.dumps(str(data))}", f"data.train_list={json.dumps(str(data / 'train.txt'))}",
                     f"data.val_list={json.dumps(str(data / 'val.txt'))}",
                     f"data.classes={json.dumps(str(data / 'classes.txt'))}", *a.extra]
        rows: list[RunResult] = []
        if a.report_only or a.bundle:
            rows = collect(specs)
            if a.bundle:
                from uniformer.assets import CHECKPOINTS_DIR, LABELS_DIR

                print("\n".join(bundle(Path(a.out), CHECKPOINTS_DIR, LABELS_DIR / "lab_motion.txt")))
        else:
            _ensure_data(data, a.train_clips, a.val_clips, a.data_seed)
            _ensure_data(heldout, 0, a.heldout_clips, a.heldout_seed)
            for spec in specs:
                rows.append(run_one(spec, heldout, overrides))
                write_report(rows, Path(a.report), _meta(a, rows))  # after every run: a partial report survives a stop
        summary = write_report(rows, Path(a.report), _meta(a, rows))
    except (UniformerLabError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for s in summary:
        ci = "n/a (1 seed)" if s.top1_ci95 is None else f"[{100 * s.top1_ci95[0]:.1f}, {100 * s.top1_ci95[1]:.1f}]"
        print(f"{s.layout:5s} {s.gflops:8.3f} GFLOPs  top-1 {100 * s.top1_mean:5.1f} %  95% CI {ci}  seeds {s.n_seeds}")
    for d in differences(rows):
        ci = "n/a (1 seed)" if d["ci95"] is None else \
            f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] (Welch, {d['dof']:.1f} dof)"
        print(f"{d['layout']:5s} - {d['reference']}: {100 * d['diff']:+5.1f} points  95% CI {ci}")
    return 0


def _meta(a: argparse.Namespace, rows: Sequence[RunResult]) -> dict[str, Any]:
    """Where and how: ``command`` trains exactly the reported runs (a report rewritten with
    ``--report-only`` or ``--bundle`` still names the training commands: one per set of seeds);
    ``invoked`` is this call."""
    seeds: dict[str, set[int]] = {}
    for r in rows:
        seeds.setdefault(r.layout, set()).add(r.seed)
    groups: dict[tuple[int, ...], list[str]] = {}
    for layout in sorted(seeds, key=layout_order):
        groups.setdefault(tuple(sorted(seeds[layout])), []).append(layout)
    options = [f"--data {a.data}"] if a.data != DEFAULT_DATA else []
    options += [f"--heldout {a.heldout}"] if a.heldout != DEFAULT_HELDOUT else []
    options += [f"--extra {' '.join(a.extra)}"] if a.extra else []
    commands = [" ".join(["python -m uniformer.ablate", f"--out {a.out}", f"--layouts {','.join(layouts)}",
                          f"--seeds {','.join(map(str, group))}", *options]) for group, layouts in groups.items()]
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": _torch_threads(),
            "command": " && ".join(commands), "invoked": "python -m uniformer.ablate " + " ".join(sys.argv[1:]),
            "written": time.strftime("%Y-%m-%d %H:%M:%S")}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
