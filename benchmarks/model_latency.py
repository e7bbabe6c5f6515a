"""Forward latency of a UniFormer video model (random weights, batch 1 by default).

    python -m benchmarks.model_latency --model uniformer_s16
    python -m benchmarks.model_latency --model uniformer_s16 --capture   # attention maps kept

Reports the median of ``--repeats`` timed runs after ``--warmup`` untimed ones, under
``torch.inference_mode()``. ``--capture`` runs the explicit-softmax path that stores every global
attention map (what the analysis views use) instead of the fused SDPA path.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch

from uniformer.models.layers import attention_capture
from uniformer.models.uniformer import UniFormer

DEPTHS = {"s": [3, 4, 8, 3], "b": [5, 8, 20, 7]}
# name -> (depth, frames); sizes and frame counts of the released checkpoints
MODELS = {f"uniformer_{size}{frames}": (DEPTHS[size], frames) for size in "sb" for frames in (8, 16, 32)}


def measure(
    model_name: str,
    capture: bool = False,
    batch: int = 1,
    img_size: int = 224,
    frames: int | None = None,
    warmup: int = 1,
    repeats: int = 3,
    device: str = "cpu",
) -> dict:
    """Median forward time in milliseconds plus the settings that produced it."""
    depth, default_frames = MODELS[model_name]
    frames = frames or default_frames
    torch.manual_seed(0)
    model = UniFormer(depth=depth, num_classes=400).eval().to(device)
    x = torch.randn(batch, 3, frames, img_size, img_size, device=device)
    times = []
    ctx = attention_capture(model) if capture else nullcontext()
    with torch.inference_mode(), ctx:
        for i in range(warmup + repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {
        "model": model_name,
        "path": "capture" if capture else "sdpa",
        "input": [batch, 3, frames, img_size, img_size],
        "device": device,
        "threads": torch.get_num_threads(),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "runs_ms": [round(t * 1000, 1) for t in times],
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="uniformer_s16", choices=sorted(MODELS))
    parser.add_argument("--capture", action="store_true", help="explicit softmax, keep attention maps")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=None, help="override the model's frame count")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(
        args.model, args.capture, args.batch, args.img_size, args.frames, args.warmup, args.repeats, args.device
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
