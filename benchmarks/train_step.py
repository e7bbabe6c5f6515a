"""The training step of ``uniformer.train`` on CPU or CUDA, per precision: speed, memory, stability.

    python -m benchmarks.train_step                                   # tiny synthetic configs, CPU
    python -m benchmarks.train_step --device cuda --amp none,bf16,fp16 \\
        --configs synthetic_uniformer_tiny,uniformer_small_k400_16x8,timesformer_base_k400_8x32
    python -m benchmarks.train_step --device cuda --configs uniformer_base_k400_32x4 --grad-checkpointing both

Each case builds ``uniformer.train.Trainer`` from a shipped config under ``configs/`` (the
recipe's model, per-process batch, ``aug.num_sample`` copies, mixup/cutmix, random erasing,
label smoothing, clipping, optimiser and schedule; ``model.init`` is forced to random because the
ImageNet weights the recipes start from are not here) and times ``Trainer.train_step`` on a
random batch of the recipe's shape: ``--warmup`` untimed steps, then ``--steps`` timed ones
(CUDA synchronised), reported as the median step time and clips/s.

Stability: after timing, the same trainer, with mixup and erasing off, takes ``--fit-steps``
steps on one fixed batch; the loss must fall (``fits``) with no skipped (non-finite) step. For
fp16 the GradScaler's final scale is reported. Memory: ``torch.cuda.max_memory_allocated`` on
CUDA, peak RSS on CPU (this process, so only the first case's figure is its own).

``--parity`` also runs the official golden fixtures (``tests/fixtures/*_golden_small.pt``) on the
device in fp32 and under each autocast precision and reports the largest logit difference from
the official outputs: what mixed precision does to a model that must match the official weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.model_latency import peak_rss_mb, spread  # noqa: E402
from uniformer.data.synthetic import CLASSES as SYNTHETIC_CLASSES  # noqa: E402
from uniformer.device import autocast  # noqa: E402
from uniformer.train import ConfigError, Trainer, build_model, load_config, read_classes, resolve_amp  # noqa: E402

CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIGS = ("synthetic_uniformer_tiny", "synthetic_timesformer_tiny")


@dataclasses.dataclass
class StepCase:
    config: str
    device: str = "cpu"
    amp: str = "none"
    grad_checkpointing: bool = False
    batch: int | None = None  # clips per process and step before num_sample copies; None: the recipe's
    warmup: int = 3
    steps: int = 10
    fit_steps: int = 15


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _num_classes(cfg: Any) -> int:
    if cfg.model.num_classes:
        return cfg.model.num_classes
    if cfg.data.classes and (REPO_ROOT / cfg.data.classes).is_file():
        return len(read_classes(str(REPO_ROOT / cfg.data.classes)))
    return len(SYNTHETIC_CLASSES)  # the tiny recipes' dataset, before it is generated


def run_step_case(case: StepCase) -> dict[str, Any]:
    """Time one config's training step at one precision; returns a JSON-able record."""
    cfg = load_config(CONFIG_DIR / f"{case.config}.toml", [
        "model.init=random", f"run.amp={case.amp}", f"run.device={case.device}", "run.progress=false",
        f"model.grad_checkpointing={str(case.grad_checkpointing).lower()}",
    ])
    if case.batch:
        cfg.data.batch_size = case.batch
    num_classes = _num_classes(cfg)
    torch.manual_seed(0)
    record: dict[str, Any] = {**dataclasses.asdict(case), "batch": cfg.data.batch_size,
                              "num_sample": cfg.aug.num_sample, "num_frames": cfg.data.num_frames,
                              "size": cfg.data.size, "num_classes": num_classes}
    try:
        model = build_model(cfg.model, num_classes)
        trainer = Trainer(cfg, model, num_classes, updates_per_epoch=case.warmup + case.steps + case.fit_steps)
    except ConfigError as err:
        return {**record, "error": str(err)}
    device = trainer.device
    record["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    shape = (cfg.data.batch_size, cfg.aug.num_sample, 3, cfg.data.num_frames, cfg.data.size, cfg.data.size)
    if cfg.aug.num_sample == 1:
        shape = shape[:1] + shape[2:]
    g = torch.Generator().manual_seed(0)
    clips = torch.randn(shape, generator=g)
    targets = torch.randint(0, num_classes, shape[:2] if cfg.aug.num_sample > 1 else shape[:1], generator=g)
    clips_per_step = cfg.data.batch_size * cfg.aug.num_sample
    if device.type == "cuda":
        clips, targets = clips.pin_memory(), targets.pin_memory()
        torch.cuda.reset_peak_memory_stats(device)

    # the recipe's step, timed
    times, skipped = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a skipped step is counted below, not printed
        for i in range(case.warmup + case.steps):
            _sync(device)
            t0 = time.perf_counter()
            res = trainer.train_step(clips, targets)
            _sync(device)
            if i >= case.warmup:
                times.append(time.perf_counter() - t0)
            skipped += int(res.skipped)
    step = spread(times)
    record.update(step_ms=step, clips_per_s=round(clips_per_step / (statistics.median(times)), 2),
                  skipped_steps=skipped, mixup=trainer.mixup is not None, random_erase=trainer.erase is not None)
    if device.type == "cuda":
        record["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        record["peak_rss_mb"] = round(peak_rss_mb(), 1)

    # stability: plain steps on one fixed batch (no mixing), not the one timed above (a batch of
    # one clip is memorised during timing), must bring the loss down
    clips = torch.randn(clips.shape, generator=g)
    targets = torch.randint(0, num_classes, targets.shape, generator=g)
    trainer.mixup, trainer.erase = None, None
    if cfg.aug.mixup > 0 or cfg.aug.cutmix > 0:
        trainer.criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.aug.label_smoothing)
    # a fixed lr (the schedule is not under test): the recipe's own, at most 1e-3, for recipes
    # tuned at this batch; 1e-4 for those tuned at a multi-GPU batch (``optim.lr_base_batch``)
    fit_lr = 1e-4 if cfg.optim.lr_base_batch else min(cfg.optim.lr, 1e-3)
    for group in trainer.optimizer.param_groups:
        group["lr"] = fit_lr
    trainer.scheduler.step_update = lambda *a, **k: None  # type: ignore[method-assign]
    losses, fit_skipped = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(case.fit_steps):
            res = trainer.train_step(clips, targets)
            fit_skipped += int(res.skipped)
            if not res.skipped:
                losses.append(res.loss)
    record.update(
        fit_loss_first=round(losses[0], 4) if losses else None,
        fit_loss_last=round(losses[-1], 4) if losses else None,
        fit_skipped_steps=fit_skipped,
        fits=bool(losses) and losses[-1] < losses[0] and fit_skipped == 0,
        master_weights=str({p.dtype for p in trainer.model.parameters()}),
        amp_dtype=str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "none",
    )
    if trainer.scaler.is_enabled():
        record["grad_scale"] = float(trainer.scaler.get_scale())
    del trainer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return record


def run_parity(device: str, amps: list[str]) -> list[dict[str, Any]]:
    """Official golden fixtures on ``device``: largest |logit - official| per precision.

    On CUDA, fp32 is run twice: as PyTorch does by default (cuDNN convolutions in TF32) and with
    TF32 off (``amp`` "none-no-tf32"), which is what bit-for-bit comparisons need.
    """
    from uniformer.models import get_family

    rows = []
    fixtures = sorted((REPO_ROOT / "tests" / "fixtures").glob("*_golden_small*.pt"))
    dev = torch.device(device)
    for path in fixtures:
        fix = torch.load(path, weights_only=True)
        model = get_family(path.name.split("_")[0]).build(**fix["config"])
        model.load_state_dict(fix["state_dict"], strict=True)
        model.eval().to(dev)
        x = fix["input"].to(dev)
        expected = fix["logits"].float()
        modes = list(amps) + (["none-no-tf32"] if dev.type == "cuda" and "none" in amps else [])
        for amp in modes:
            dtype = resolve_amp(amp.removesuffix("-no-tf32"), dev)
            ctx = autocast(dev, dtype)
            tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            if amp.endswith("-no-tf32"):
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            try:
                with torch.inference_mode(), ctx:
                    out = model(x).float().cpu()
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
            rows.append({"fixture": path.stem, "device": device, "amp": amp,
                         "max_abs_diff": float((out - expected).abs().max()),
                         "logit_scale": float(expected.abs().max()),
                         "same_top1": bool((out.argmax(-1) == expected.argmax(-1)).all())})
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Training step (`python -m benchmarks.train_step`), {results['meta']['device_name']}, "
             f"torch {results['meta']['torch']}.", "",
             "| config | amp | grad ckpt | clips/step | step ms (median, min-max) | clips/s | memory MB | "
             "fits (loss first → last) | skipped | fp16 scale |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["steps"]:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['amp']} | {r['grad_checkpointing']} | | error: {r['error']} "
                         "| | | | | |")
            continue
        s = r["step_ms"]
        mem = r.get("cuda_peak_mb", r.get("peak_rss_mb"))
        lines.append(
            f"| {r['config']} | {r['amp_dtype']} | {'on' if r['grad_checkpointing'] else 'off'} | "
            f"{r['batch']}×{r['num_sample']} | {s['median_ms']:.1f} ({s['min_ms']:.1f}-{s['max_ms']:.1f}) | "
            f"{r['clips_per_s']:.1f} | {mem} | {'yes' if r['fits'] else 'NO'} ({r['fit_loss_first']} → "
            f"{r['fit_loss_last']}) | {r['skipped_steps'] + r['fit_skipped_steps']} | {r.get('grad_scale', '')} |")
    if results.get("parity"):
        lines += ["", "Official golden fixtures on this device (largest |logit − official|):", "",
                  "| fixture | amp | max abs diff | largest logit | same top-1 |", "|---|---|---|---|---|"]
        for p in results["parity"]:
            lines.append(f"| {p['fixture']} | {p['amp']} | {p['max_abs_diff']:.2e} | {p['logit_scale']:.2f} | "
                         f"{'yes' if p['same_top1'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help="names of files under configs/")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    ap.add_argument("--amp", default=None, help="comma list of none,bf16,fp16 (default: none,bf16 on CPU; all on CUDA)")
    ap.add_argument("--grad-checkpointing", default="off", choices=("off", "on", "both"))
    ap.add_argument("--batch", type=int, default=None, help="clips per step before num_sample copies (default: recipe)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--fit-steps", type=int, default=15)
    ap.add_argument("--parity", action="store_true", help="also run the golden fixtures per precision")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for train_step.json and train_step.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device is available; run with --device cpu.", file=sys.stderr)
        return 2
    amps = (args.amp or ("none,bf16,fp16" if args.device == "cuda" else "none,bf16")).split(",")
    ckpts = {"off": [False], "on": [True], "both": [False, True]}[args.grad_checkpointing]
    meta = {"torch": torch.__version__, "python": platform.python_version(), "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU",
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results: dict[str, Any] = {"meta": meta, "steps": [], "parity": []}
    out = Path(args.out) if args.out else None

    def save() -> None:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "train_step.json").write_text(json.dumps(results, indent=2))
            (out / "train_step.md").write_text(markdown(results))

    for name in args.configs.split(","):
        for ckpt in ckpts:
            for amp in amps:
                case = StepCase(config=name, device=args.device, amp=amp, grad_checkpointing=ckpt,
                                batch=args.batch, warmup=args.warmup, steps=args.steps, fit_steps=args.fit_steps)
                try:
                    rec = run_step_case(case)
                except Exception as err:  # noqa: BLE001 - one failing case must not lose the others
                    rec = {**dataclasses.asdict(case), "error": f"{type(err).__name__}: {err}"}
                results["steps"].append(rec)
                print(json.dumps(rec), flush=True)
                save()
    if args.parity:
        results["parity"] = run_parity(args.device, amps)
        save()
    print(markdown(results))
    failed = [r for r in results["steps"] if "error" in r or not r.get("fits")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
