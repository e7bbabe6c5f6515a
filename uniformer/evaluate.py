"""Video-level accuracy with the official multi-view protocol (views' raw logits summed).

    python -m uniformer.evaluate --checkpoint runs/x/best.pt --data val.txt --root DATA [--views 4x1] [--json]
    python -m uniformer.evaluate --model uniformer_small_k400_16x8 --checkpoint k400.pth --data val.csv --root K400
    python -m uniformer.evaluate --model uniformer_tiny_synthetic_8x2 --data data/synthetic_heldout/val.txt \
        --root data/synthetic_heldout      # a bundled model: no --checkpoint needed

``--model`` is a zoo name or a training config (``.toml``/``.json``); it may be left out when the
checkpoint was written by ``uniformer.train`` (its config travels inside). Works under
``torchrun`` too: videos are sharded over ranks without padding, so each is counted once.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from uniformer import jsonsafe
from uniformer.data.lab import PAIRS as LAB_PAIRS
from uniformer.data.sampling import parse_views
from uniformer.data.synthetic import PAIRS as SYNTHETIC_PAIRS
from uniformer.device import PRECISIONS, resolve_amp, resolve_precision
from uniformer.errors import CheckpointError, ConfigError, UniformerLabError
from uniformer.metrics import EvalResult, compute_metrics, evaluate_model, time_reversal
from uniformer.train.checkpoint import stored_config
from uniformer.train.config import TrainConfig, load_config
from uniformer.train.dist import setup_distributed

__all__ = ["EvalResult", "compute_metrics", "evaluate_model", "main"]

#: Classes that are each other played backwards, in the project's generators; a class list that holds
#: both names of a pair gets the time-reversal scores (``uniformer.metrics.time_reversal``, which
#: counts a pair both generators list once).
REVERSAL_PAIRS: tuple[tuple[str, str], ...] = (*LAB_PAIRS, *SYNTHETIC_PAIRS)


# -------------------------------------------------------------------------------------------- CLI
def _load_weights(model: nn.Module, path: str, use_ema: bool) -> None:
    from uniformer.models.checkpoint import load_checkpoint, match_state_dict, read_checkpoint, unwrap_state_dict

    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and "format" in obj and obj.get("format", "").startswith("uniformer-lab/train"):
        if use_ema and obj.get("ema") is None:
            raise CheckpointError(f"{path} has no EMA weights; drop --ema.")
        sd = obj["ema"] if use_ema else obj["model"]
        model.load_state_dict(match_state_dict(model, sd))  # a misfit is one CheckpointError sentence
        return
    import importlib

    filter_fn = getattr(importlib.import_module(type(model).__module__), "checkpoint_filter_fn", None)
    load_checkpoint(model, unwrap_state_dict(obj, use_ema=use_ema), filter_fn=filter_fn)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m uniformer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="zoo model name or a training config (.toml/.json)")
    p.add_argument("--checkpoint", help="weights: official, timm/HF, or written by uniformer.train "
                                        "(default for a zoo --model: its bundled or cached weights)")
    p.add_argument("--data", required=True, help="list file (path label per line)")
    p.add_argument("--root", default="", help="directory the list entries are relative to")
    p.add_argument("--format", default=None, help="dataset kind: list | folder | ssv2 (default: from the config)")
    p.add_argument("--classes", default=None, help="label file, one class per line")
    p.add_argument("--views", default=None, help="CLIPSxCROPS, e.g. 4x1 (Kinetics) or 1x3 (SSv2)")
    p.add_argument("--num-frames", type=int, default=None)
    p.add_argument("--sampling-rate", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="crop size")
    p.add_argument("--batch-size", type=int, default=None, help="videos per batch")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", default="auto", help="auto | none | bf16 | fp16")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="the optimize_for_inference copy evaluated: fp32 (exact, default; --amp still applies) "
                        "or bf16 (AMX / AVX-512-BF16 CPUs and Ampere+ GPUs only; --amp is then ignored)")
    p.add_argument("--ema", action="store_true", help="use the EMA weights of a training checkpoint")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--confusion", action="store_true", help="include the confusion matrix in the JSON")
    a = p.parse_args(argv)
    try:
        result, classes = _run_cli(a)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is None:  # not rank 0
        return 0
    reversal = time_reversal(result.confusion, classes, REVERSAL_PAIRS)  # None without named pairs
    if a.json:
        out = result.to_dict(classes, confusion=a.confusion)
        if reversal is not None:
            out["time_reversal"] = reversal
        print(jsonsafe.dumps(out, indent=2))
    else:
        print(f"videos {result.num_videos}  top-1 {100 * result.top1:.2f}  top-5 {100 * result.top5:.2f}  "
              f"mean class acc {100 * result.mean_class_acc:.2f}  view loss {result.loss:.4f}")
        names = classes or [str(i) for i in range(len(result.support))]
        worst = sorted((acc, i) for i, acc in enumerate(result.per_class_acc) if result.support[i])[:5]
        for acc, i in worst:
            print(f"  weakest: {names[i]:<32} {100 * acc:6.2f}%  ({result.support[i]} videos)")
        if reversal is not None and reversal["order_given_pair"] is not None:
            print(f"time-reversed pairs: pair found {100 * reversal['pair_found']:.2f} %, right order given the pair "
                  f"{100 * reversal['order_given_pair']:.2f} % (50 % = the order is not seen), {reversal['n']} videos")
    return 0


def _run_cli(a: argparse.Namespace) -> tuple[EvalResult | None, list[str]]:
    classes: list[str] = []
    if a.checkpoint is None:
        if not a.model or Path(a.model).suffix in (".toml", ".json"):
            raise ConfigError("Pass --checkpoint (or a zoo --model whose weights are bundled or cached).")
        from uniformer import zoo

        # the zoo's policy: bundled file, HF cache, a download unless HF_HUB_OFFLINE, or one clear error
        a.checkpoint = str(zoo.resolve_weights(a.model, allow_download=None, fetch=True, required=True).path)
    stored = stored_config(a.checkpoint)
    if a.model and Path(a.model).suffix in (".toml", ".json"):
        cfg = load_config(a.model)
    elif a.model:
        from uniformer import zoo

        entry = zoo.get_entry(a.model)
        cfg = TrainConfig()
        cfg.model.name = entry.name
        cfg.model.num_classes = entry.num_classes
        cfg.data = _zoo_data_config(entry.protocol, cfg.data)
        classes = zoo.labels_for(entry)
    elif stored is not None:
        cfg, classes = stored
    else:
        raise ConfigError("Pass --model (a zoo name or a training config): the checkpoint does not carry its config.")
    if stored is not None and not classes:
        classes = stored[1]
    d = cfg.data
    d = dataclasses.replace(
        d, format=a.format or d.format, root=a.root, val_list=a.data, test_list=a.data,
        classes=a.classes if a.classes is not None else d.classes,
        num_frames=a.num_frames or d.num_frames, sampling_rate=a.sampling_rate or d.sampling_rate,
        size=a.size or d.size, eval_batch_size=a.batch_size or d.eval_batch_size or d.batch_size,
        num_workers=d.num_workers if a.workers is None else a.workers,
        test_views=a.views or d.test_views,
    )
    if d.classes and not Path(d.classes).is_file() and a.classes is None:
        d = dataclasses.replace(d, classes="")  # a training-time path that is gone: names come from the checkpoint
    cfg.data = d
    cfg.run.device = a.device
    # the models (timm) and the data pipeline (torchvision): imported here, not before --help
    from uniformer.models.optimize import optimize_for_inference
    from uniformer.train.builders import build_dataset, build_eval_loader, build_model, dataset_classes

    env = setup_distributed(cfg.run)
    try:
        resolve_precision(a.precision, env.device)  # a refusal before any video is read
        dataset = build_dataset(d, "test", parse_views(d.test_views))
        if not classes:
            classes = dataset_classes(dataset, d, cfg.model.num_classes)
        num_classes = cfg.model.num_classes or len(classes)
        model = build_model(dataclasses.replace(cfg.model, init="random", grad_checkpointing=False), num_classes)
        _load_weights(model, a.checkpoint, a.ema)
        model = optimize_for_inference(model.to(env.device), a.precision)
        amp = None if a.precision == "bf16" else resolve_amp(a.amp, env.device)
        loader = build_eval_loader(dataset, d, env, seed=0)
        result = evaluate_model(model, loader, env.device, num_classes, amp, env,
                                progress=env.is_main, desc=f"eval {d.test_views}")
        return (result if env.is_main else None), classes
    finally:
        if env.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def _zoo_data_config(protocol: Any, base: Any) -> Any:
    """Data settings from a zoo entry's test protocol (frames, stride, sampler, views, mean/std)."""
    return dataclasses.replace(
        base, num_frames=protocol.num_frames, sampling_rate=protocol.sampling_rate, sampler=protocol.sampler,
        size=protocol.crop_size, short_side=protocol.short_side, mean=list(protocol.mean), std=list(protocol.std),
        test_views=f"{protocol.num_clips}x{protocol.num_crops}", flip=False,
    )


if __name__ == "__main__":
    sys.exit(main())
