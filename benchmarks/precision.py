"""bf16 accuracy, measured: top-1 agreement with fp32 on held-out clips, logit error on the golden fixtures.

    python -m benchmarks.precision                                   # a fresh synthetic held-out set
    python -m benchmarks.precision --data /work/lab/data/lab_heldout --limit 1200 --json out.json

Both paths are ``optimize_for_inference`` copies of the same model (``fp32``: exact; ``bf16``:
autocast), run on the same preprocessed views, each clip with its checkpoint's test protocol.
Reported per model: top-1 agreement (the fraction of clips whose bf16 top-1 equals the fp32 top-1),
top-1 accuracy of both against the labels, and the relative logit error ||bf16 - fp32|| / ||fp32||
(median and worst clip). The golden fixtures (official-code logits, ``tests/fixtures``) add the
max abs and relative error of the bf16 logits against the official fp32 ones.

The held-out set is a list file (``val.txt``: ``path label`` per line) under ``--data``; without
``--data`` one is generated (``uniformer.data.synthetic``, a seed the bundled models never saw).
The default models are the bundled trained ones (``assets/checkpoints``), whose classes are the
synthetic motion classes. On hardware without fast bf16 the command refuses in one line (exit 2):
emulated bf16 would measure nothing a user can run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_MODELS = ("uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2")
FIXTURES = REPO_ROOT / "tests" / "fixtures"
GOLDEN = {"uniformer_golden_small.pt": "uniformer", "uniformer_golden_small_split_std.pt": "uniformer",
          "timesformer_golden_small.pt": "timesformer"}


def _clips(data: Path, limit: int | None) -> list[tuple[Path, int]]:
    lines = [ln.split() for ln in (data / "val.txt").read_text().splitlines() if ln.strip()]
    items = [(data / ln[0], int(ln[1])) for ln in lines]
    return items[:limit] if limit else items


def heldout_agreement(model: str, clips: list[tuple[Path, int]], classes: list[str] | None = None,
                      device: str = "cpu") -> dict[str, Any]:
    """Top-1 agreement bf16 vs fp32, relative logit error and, where the set's ``classes`` are the
    model's own, the accuracy of both, for ``model`` on ``clips``."""
    from uniformer.data.sampling import combine_views
    from uniformer.predict import Predictor, prepare_video

    p = Predictor(model, device=device, precision="fp32")
    own = classes is not None and set(classes) <= set(p.label_names)
    to_model = [p.label_names.index(c) for c in classes] if own else []
    agree = right32 = right16 = 0
    rel: list[float] = []
    for i, (path, label) in enumerate(clips):
        if i and i % 100 == 0:
            print(f"{model}: {i}/{len(clips)} clips", file=sys.stderr, flush=True)
        views = prepare_video(path, p.protocol).views
        l32 = combine_views(p.view_logits(views, "fp32"), p.protocol.ensemble)
        l16 = combine_views(p.view_logits(views, "bf16"), p.protocol.ensemble)
        top32, top16 = int(l32.argmax()), int(l16.argmax())
        agree += top32 == top16
        if own:
            right32 += top32 == to_model[label]
            right16 += top16 == to_model[label]
        rel.append(float((l16 - l32).norm() / l32.norm()))
    n = len(clips)
    return {"model": model, "clips": n, "views": f"{p.protocol.num_clips}x{p.protocol.num_crops}",
            "top1_agreement": agree / n, "top1_fp32": right32 / n if own else None,
            "top1_bf16": right16 / n if own else None,
            "rel_logit_err_median": statistics.median(rel), "rel_logit_err_max": max(rel)}


def golden_errors() -> list[dict[str, Any]]:
    """bf16 (and fp32 fast) logits against the official code's fp32 logits on each golden fixture."""
    import torch

    from uniformer.models.optimize import optimize_for_inference
    from uniformer.models.timesformer import TimeSformer
    from uniformer.models.uniformer import UniFormer

    rows = []
    for name, family in GOLDEN.items():
        fix = torch.load(FIXTURES / name, map_location="cpu", weights_only=True)
        model = (UniFormer if family == "uniformer" else TimeSformer)(**fix["config"]).eval()
        model.load_state_dict(fix["state_dict"])
        ref = fix["logits"].float()
        fast = optimize_for_inference(model, "fp32")
        with torch.inference_mode():
            out32, out16 = fast(fix["input"]), fast.with_precision("bf16")(fix["input"])
        rows.append({"fixture": name, "fp32_max_abs": float((out32 - ref).abs().max()),
                     "bf16_max_abs": float((out16 - ref).abs().max()),
                     "bf16_rel": float((out16 - ref).norm() / ref.norm()),
                     "top1_agree": float((out16.argmax(-1) == ref.argmax(-1)).float().mean())})
    return rows


def markdown(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['cpu']} ({report['bf16']}); held-out set: {report['data']}.", "",
             "| model | clips (views) | top-1 agreement bf16 vs fp32 | top-1 fp32 | top-1 bf16 | "
             "rel. logit error median (max) |", "| --- | --- | --- | --- | --- | --- |"]
    def pct(v: float | None) -> str:
        return "— (other classes)" if v is None else f"{100 * v:.2f} %"

    for r in report["heldout"]:
        lines.append(f"| {r['model']} | {r['clips']} ({r['views']}) | {pct(r['top1_agreement'])} | "
                     f"{pct(r['top1_fp32'])} | {pct(r['top1_bf16'])} | "
                     f"{r['rel_logit_err_median']:.1e} ({r['rel_logit_err_max']:.1e}) |")
    lines += ["", "| golden fixture (official fp32 logits) | fp32 fast max abs | bf16 max abs | bf16 rel. | "
              "top-1 same |", "| --- | --- | --- | --- | --- |"]
    for r in report["golden"]:
        lines.append(f"| {r['fixture']} | {r['fp32_max_abs']:.1e} | {r['bf16_max_abs']:.1e} | {r['bf16_rel']:.1e} | "
                     f"{100 * r['top1_agree']:.0f} % |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="held-out folder with val.txt (default: generate one)")
    p.add_argument("--limit", type=int, default=None, help="first N clips of the list")
    p.add_argument("--generate", type=int, default=120, help="clips to generate when --data is not given")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    import torch

    from uniformer.device import cpu_bf16_support, cpu_name, resolve_precision
    from uniformer.errors import UniformerLabError

    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        resolve_precision("bf16", torch.device("cpu"))
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            from uniformer.data.synthetic import SynthConfig, generate_dataset

            data = Path(tmp)
            print(f"generating {a.generate} held-out clips in {data}", file=sys.stderr, flush=True)
            generate_dataset(data, num_train=0, num_val=a.generate, seed=101,
                             config=SynthConfig(max_distractors=1, background_contrast=0.35, noise_std=(1.0, 3.0)),
                             workers=1)
        if not (data / "val.txt").is_file():
            print(f"error: {data} has no val.txt (a 'path label' list of held-out clips).", file=sys.stderr)
            return 2
        clips = _clips(data, a.limit)
        names = data / "classes.txt"
        classes = names.read_text().split() if names.is_file() else None
        where = str(a.data) if a.data else f"{len(clips)} generated synthetic clips (seed 101)"
        report: dict[str, Any] = {"cpu": cpu_name(), "bf16": cpu_bf16_support(), "torch": torch.__version__,
                                  "data": where, "heldout": [], "golden": golden_errors()}
        for model in (m.strip() for m in a.models.split(",") if m.strip()):
            print(f"{model}: {len(clips)} clips", file=sys.stderr, flush=True)
            report["heldout"].append(heldout_agreement(model, clips, classes))
    print("\n".join(markdown(report)))
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
