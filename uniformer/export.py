"""ONNX export of a zoo model, verified with ONNX Runtime before the file is handed over.

CLI::

    python -m uniformer.export --model NAME [--checkpoint PATH] --format onnx --out FILE
                               [--frames T] [--size S] [--layout LLGG] [--opset 20] [--benchmark N]

The graph takes ``video`` ``(batch, 3, T, S, S)`` (the normalised views :mod:`uniformer.predict`
builds) and returns ``logits`` ``(batch, classes)``; the batch is dynamic, ``T`` and ``S`` are
fixed at export (TimeSformer's position embeddings and UniFormer's stage shapes are resolved for
them). Export goes through ``torch.export`` (``torch.onnx.export(dynamo=True)``, which needs
``onnxscript``), opset :data:`OPSET`. After writing, the file is loaded by ONNX Runtime (CPU) and run
on a random clip at batch 1 and 3 against PyTorch; the largest absolute difference of the logits
is printed and an export beyond ``--tolerance`` fails.

Ops that needed care (all handled without custom ops):

- ``scaled_dot_product_attention`` (:class:`uniformer.models.layers.Attention`): opset 20 has no
  fused attention op, so the exporter decomposes it into ``MatMul`` + ``Softmax`` + ``MatMul``
  with the explicit scale; ONNX Runtime fuses the pattern again when it loads the graph.
- UniFormer's 3D depthwise convolutions (DPE ``3x3x3`` and local MHRA ``5x5x5``, ``groups=C``)
  become ``Conv`` with ``group=C``, and ``BatchNorm3d`` a ``BatchNormalization`` (eval statistics).
- Token reshapes: ``(B, C, T, H, W) <-> (B, THW, C)`` in UniFormer's global blocks and
  TimeSformer's ``(B*T, N, D) <-> (B*N, T, D)`` divided attention. ``torch.export`` traces the
  batch symbolically, so every ``Reshape`` gets its batch from ``Shape`` instead of a constant
  (the models use no einops). ``GELU`` is opset 20's native ``Gelu``.

This exports the plain eval model; the opt-in rewrites of :mod:`uniformer.models.optimize`
(BatchNorm folding) are not applied (ONNX Runtime folds BatchNorm into ``Conv`` itself).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from uniformer.errors import UniformerLabError

OPSET = 20          # ONNX Runtime >= 1.17 runs it; first opset with a native Gelu
TOLERANCE = 1e-4    # largest |ONNX Runtime - PyTorch| logit difference accepted after export


@dataclass
class ExportReport:
    """What the export wrote and how well ONNX Runtime reproduces PyTorch."""

    path: Path
    opset: int
    input_shape: tuple[int, ...]          # with batch 1
    max_abs_diff: float                   # over the verification batches
    ops: list[str]                        # ONNX op types in the graph
    latency_ratio: float | None = None    # ONNX Runtime / PyTorch seconds per batch, when benchmarked

    def describe(self) -> str:
        lines = [f"wrote {self.path} (opset {self.opset}, input video {list(self.input_shape)} with a dynamic batch)",
                 f"onnxruntime vs PyTorch on a random clip (batch 1 and 3): max abs diff {self.max_abs_diff:.3g}",
                 f"ops: {', '.join(self.ops)}"]
        if self.latency_ratio is not None:
            lines.append(f"latency onnxruntime / PyTorch: {self.latency_ratio:.2f}")
        return "\n".join(lines)


def export_onnx(model: nn.Module, out: str | os.PathLike, *, frames: int, size: int, opset: int = OPSET) -> Path:
    """Write ``model`` (eval mode) as ONNX with a dynamic batch; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = torch.randn(2, 3, frames, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), torch.no_grad():  # the exporter narrates every step on stdout
            torch.onnx.export(model, (x,), str(out), dynamo=True, input_names=["video"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, opset_version=opset, external_data=False)
    except Exception as err:  # torch.export / onnxscript errors are pages long
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UniformerLabError(f"ONNX export of {type(model).__name__} failed ({first}).") from None
    return out


def onnx_session(path: str | os.PathLike):
    """An ONNX Runtime CPU session for ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify_onnx(model: nn.Module, path: str | os.PathLike, *, frames: int, size: int,
                batches: Sequence[int] = (1, 3), seed: int = 0) -> float:
    """Largest absolute logit difference between ONNX Runtime and PyTorch on random clips."""
    session = onnx_session(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batches:
        x = torch.randn(b, 3, frames, size, size, generator=gen)
        with torch.inference_mode():
            ref = model(x).float()
        got = torch.from_numpy(session.run(["logits"], {"video": x.numpy()})[0])
        if got.shape != ref.shape:
            raise UniformerLabError(f"The ONNX model returned logits of shape {tuple(got.shape)} for batch {b}, "
                                    f"PyTorch {tuple(ref.shape)}.")
        worst = max(worst, float((got - ref).abs().max()))
    return worst


def latency_ratio(model: nn.Module, path: str | os.PathLike, *, frames: int, size: int, batch: int = 1,
                  repeats: int = 10) -> float:
    """ONNX Runtime / PyTorch seconds per forward, timed interleaved (after one warm-up each)."""
    session = onnx_session(path)
    x = torch.randn(batch, 3, frames, size, size)
    feed = {"video": x.numpy()}
    ort_s = torch_s = 0.0
    with torch.inference_mode():
        model(x)
        session.run(["logits"], feed)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            t1 = time.perf_counter()
            session.run(["logits"], feed)
            t2 = time.perf_counter()
            torch_s, ort_s = torch_s + t1 - t0, ort_s + t2 - t1
    return ort_s / torch_s


def graph_ops(path: str | os.PathLike) -> list[str]:
    import onnx

    return sorted({node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node})


def export_and_verify(model: nn.Module, out: str | os.PathLike, *, frames: int, size: int, opset: int = OPSET,
                      tolerance: float = TOLERANCE, benchmark: int = 0) -> ExportReport:
    """Export, check against PyTorch (raise past ``tolerance``), optionally time both runtimes."""
    path = export_onnx(model, out, frames=frames, size=size, opset=opset)
    diff = verify_onnx(model, path, frames=frames, size=size)
    report = ExportReport(path=path, opset=opset, input_shape=(1, 3, frames, size, size), max_abs_diff=diff,
                          ops=graph_ops(path))
    if not diff <= tolerance:
        raise UniformerLabError(f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.3g}, more than the "
                                f"tolerance {tolerance:g}; the file {path} should not be used.")
    if benchmark > 0:
        report.latency_ratio = latency_ratio(model, path, frames=frames, size=size, repeats=benchmark)
    return report


# -------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uniformer.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="zoo model name")
    p.add_argument("--checkpoint", help="weights file (default: the zoo's bundled or cached weights, else random)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    p.add_argument("--out", required=True, help="output file, e.g. model.onnx")
    p.add_argument("--frames", type=int, help="frames per clip (default: the checkpoint's test protocol)")
    p.add_argument("--size", type=int, help="crop size in pixels (default: the checkpoint's test protocol)")
    p.add_argument("--layout", help="UniFormer stage layout, e.g. LLGG, LLLL or GGGG (default: the model's)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="largest accepted |onnxruntime - PyTorch|")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="also time N interleaved forwards of both runtimes at batch 1")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from uniformer.zoo import create_model, get_entry, resolve_weights

        entry = get_entry(args.model)
        checkpoint = args.checkpoint if args.checkpoint is not None else resolve_weights(args.model).path
        kwargs = {}
        if args.layout:
            if entry.family != "uniformer":
                raise UniformerLabError(f"--layout applies to UniFormer models; {entry.name} is a {entry.family}.")
            kwargs["layout"] = args.layout
        model = create_model(args.model, checkpoint=checkpoint, **kwargs)
        frames = args.frames or entry.protocol.num_frames
        size = args.size or entry.protocol.crop_size
        if frames < 1 or size < 1:
            raise UniformerLabError(f"--frames and --size must be positive, got {frames} and {size}.")
        report = export_and_verify(model, args.out, frames=frames, size=size, opset=args.opset,
                                   tolerance=args.tolerance, benchmark=args.benchmark)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if checkpoint is None:
        print(f"note: {entry.name} has no weights on disk; the export carries random weights.")
    print(report.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
