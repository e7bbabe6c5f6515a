"""Run a model on a video exactly as its checkpoint was evaluated.

``Predictor`` ties the data path together: decode only the frames the checkpoint's test protocol
needs (``read_clips``), preprocess every view (``preprocess_views``), run the model in chunks of
views (``optimize_for_inference`` at ``--precision fp32`` or ``bf16``), sum the raw logits over
views as the official test meters do, and report top-k labels with the frames used and the
time each step took.

CLI::

    python -m uniformer.predict VIDEO [--model NAME] [--checkpoint PATH] [--views CLIPSxCROPS]
                                      [--topk 5] [--device auto|cpu|cuda|cuda:N] [--json]
                                      [--precision fp32|bf16]
                                      [--timeline [--window-stride SECONDS] [--window SECONDS]]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from uniformer import jsonsafe
from uniformer.data.sampling import TestProtocol, parse_views, view_probabilities
from uniformer.data.video import Clips, read_clips
from uniformer.device import PRECISIONS, resolve_device, resolve_precision
from uniformer.errors import UniformerLabError

# torchvision (transforms), timm (the model files) and the zoo are imported where they are used,
# so that ``--help`` and argument errors return about as fast as ``import torch``
# (``python -m benchmarks.cli_startup`` measures it).
if TYPE_CHECKING:  # pragma: no cover
    from uniformer.data.video import VideoInfo
    from uniformer.zoo import ZooEntry


@dataclass
class Prediction:
    """What a user needs to trust a prediction: scores, which frames, and where time went."""

    model: str
    video: str
    topk: list[tuple[str, float]]          # (label, probability) best first
    topk_indices: list[int]
    views: str                             # "CLIPSxCROPS"
    frames_used: list[list[int]]           # 0-based frame indices per temporal clip
    view_logits: list[list[float]]         # raw logits per view (V, K)
    timings: dict[str, float]              # seconds: decode, preprocess, model, total
    device: str
    backend: str                           # video decoder that read the frames
    video_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights: str = ""                      # where the weights came from, in words
    precision: str = "fp32"                # what the model ran in (fp32 exact, bf16 autocast)

    def to_dict(self, *, with_logits: bool = False) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["topk"] = [{"label": lbl, "probability": round(p, 6)} for lbl, p in self.topk]
        if not with_logits:
            d.pop("view_logits")
        return d


@dataclass
class PreparedClip:
    """A decoded and preprocessed video, reusable by several models that share a protocol."""

    clips: Clips
    views: torch.Tensor                    # (V, 3, T, S, S) float32, clip-major
    protocol: TestProtocol
    decode_s: float
    preprocess_s: float

    @property
    def notes(self) -> list[str]:
        plan, notes = self.clips.plan, []
        if plan.video_shorter_than_clip:
            notes.append(
                f"The video has {plan.num_frames_in_video} frames, fewer than one clip spans "
                f"({plan.span:.0f}); frames were repeated to fill the clip, as the official loaders do."
            )
        notes.extend(video_notes(self.clips.info))
        return notes


def video_notes(info: VideoInfo) -> list[str]:
    """What decoding did to a video that a user should know (rotation, decoder fallback)."""
    notes = []
    if info.rotation:
        notes.append(f"The video carries a {info.rotation}° display rotation (as phones record); its frames were "
                     f"turned upright ({info.width}×{info.height}) before the model saw them.")
    if info.backend != "decord":
        why = "decord ignores display rotation" if info.rotation else "decord could not read this file"
        notes.append(f"Decoded with {info.backend} ({why}).")
    return notes


def model_notes(entry: ZooEntry, *, random_weights: bool) -> list[str]:
    """What a model's labels can mean on a user's video, in one sentence (CLI, API, app card, report)."""
    if random_weights:
        return [f"{entry.name} runs with random weights (no trained weights were found), so its labels show that "
                "the pipeline runs, not what the video contains."]
    if entry.synthetic:
        examples = "lab_*" if entry.dataset == "synthetic-lab" else "synthetic_*"  # assets/clips, the app's examples
        return [f"{entry.name} knows the {entry.num_classes} motion classes of this project's synthetic clips "
                f"(such as the {examples} examples), not human actions: on a real video its labels say little about "
                "what it shows."]
    return []


def prepare_video(path: str | os.PathLike, protocol: TestProtocol, *, max_side: int | None = None) -> PreparedClip:
    """Decode the protocol's frames and build every view tensor.

    ``max_side`` caps the decoded long side (default :func:`default_max_side`, 0 = full size).
    """
    from uniformer.data.transforms import preprocess_views  # torchvision: imported when first needed

    t0 = time.perf_counter()
    clips = read_clips(path, protocol, max_side=default_max_side(protocol) if max_side is None else max_side)
    t1 = time.perf_counter()
    views = preprocess_views(clips.frames, protocol)
    t2 = time.perf_counter()
    return PreparedClip(clips=clips, views=views, protocol=protocol, decode_s=t1 - t0, preprocess_s=t2 - t1)


def default_max_side(protocol: TestProtocol) -> int:
    """Long-side cap while decoding (4× the resize target): a 4K upload costs what a small one does."""
    return max(4 * protocol.short_side, 640)


class Predictor:
    """A loaded model plus its test protocol; call :meth:`predict` on video paths.

    ``model=None`` is the zoo's ``DEFAULT_MODEL`` (bundled, trained weights). ``views=(clips, crops)``
    overrides the checkpoint's protocol (e.g. ``(1, 1)`` for a quick look). ``precision`` (``fp32``
    or ``bf16``, :func:`uniformer.device.resolve_precision`) is what :meth:`predict` runs by default;
    logits come from ``optimize_for_inference`` copies, ``self.model`` stays the plain fp32 model
    (attention capture, attributions).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        checkpoint: str | os.PathLike | None = None,
        device: str = "auto",
        views: tuple[int, int] | None = None,
        view_batch: int = 4,
        precision: str = "fp32",
    ) -> None:
        from uniformer.models.checkpoint_guard import checkpoint_notes
        from uniformer.zoo import DEFAULT_MODEL, create_model, get_entry, resolve_weights

        model = model or DEFAULT_MODEL
        self.entry = get_entry(model)
        self.device = resolve_device(device)
        resolve_precision(precision, self.device)  # refuse bf16 before loading anything
        self.precision = "bf16" if precision.strip().lower() in ("bf16", "bfloat16") else "fp32"
        if checkpoint is None:  # the zoo's policy, without downloads: bundled, hub cache, else random
            checkpoint = resolve_weights(model).path
        with checkpoint_notes() as read_notes:  # e.g. pickled objects the safe reader neutralised
            self.model = create_model(model, checkpoint=checkpoint, device=str(self.device))
        self.weights = str(checkpoint) if checkpoint is not None else "random initialisation (no checkpoint given)"
        self.random_weights = checkpoint is None
        self.notes: list[str] = [*model_notes(self.entry, random_weights=self.random_weights), *read_notes]
        self.label_names: list[str] = list(self.model.label_names)
        protocol = self.entry.protocol
        if views is not None:
            protocol = dataclasses.replace(protocol, num_clips=views[0], num_crops=views[1])
        self.protocol = protocol
        self.view_batch = max(1, int(view_batch))
        self._fast: dict[str, torch.nn.Module] = {}
        self.fast_model(self.precision)

    @property
    def name(self) -> str:
        return self.entry.name

    def fast_model(self, precision: str | None = None) -> torch.nn.Module:
        """The optimised copy at ``precision`` (default: the predictor's); one copy of the weights serves both."""
        from uniformer.models.optimize import optimize_for_inference

        precision = (precision or self.precision).strip().lower()
        if precision not in self._fast:
            first = next(iter(self._fast.values()), None)
            self._fast[precision] = (optimize_for_inference(self.model, precision) if first is None
                                     else first.with_precision(precision))
        return self._fast[precision]

    @torch.inference_mode()
    def view_logits(self, views: torch.Tensor, precision: str | None = None) -> torch.Tensor:
        """Raw logits ``(V, K)`` for view tensors ``(V, 3, T, S, S)``, in chunks of ``view_batch``."""
        from uniformer.cost import check_cancelled

        model = self.fast_model(precision)
        out = []
        for chunk in views.split(self.view_batch):
            check_cancelled()  # a server stops here when the client went away (uniformer.cost.cancellation)
            out.append(model(chunk.to(self.device, non_blocking=True)).cpu())
        return torch.cat(out)

    def predict(self, video: str | os.PathLike, *, topk: int = 5, prepared: PreparedClip | None = None,
                precision: str | None = None) -> Prediction:
        start = time.perf_counter()
        reused = prepared is not None and prepared.protocol == self.protocol
        if not reused:
            prepared = prepare_video(video, self.protocol)
        t0 = time.perf_counter()
        precision = self.fast_model(precision).precision
        logits = self.view_logits(prepared.views, precision)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        model_s = time.perf_counter() - t0
        probs = view_probabilities(logits, self.protocol.ensemble)  # the official ranking, per-view-mean softmax
        k = min(topk, probs.numel())
        p, idx = probs.topk(k)
        labels = [self.label_names[i] if i < len(self.label_names) else f"class {i}" for i in idx.tolist()]
        info = prepared.clips.info
        return Prediction(
            model=self.name,
            video=str(video),
            topk=list(zip(labels, p.tolist())),
            topk_indices=idx.tolist(),
            views=f"{self.protocol.num_clips}x{self.protocol.num_crops}",
            frames_used=[c.tolist() for c in prepared.clips.plan.clips],
            view_logits=logits.tolist(),
            timings={
                "decode_s": prepared.decode_s,
                "preprocess_s": prepared.preprocess_s,
                "model_s": model_s,
                # a reused clip was decoded earlier: its decode/preprocess time still counts
                "total_s": time.perf_counter() - start + (prepared.decode_s + prepared.preprocess_s if reused else 0.0),
            },
            device=str(self.device),
            backend=prepared.clips.backend,
            video_info=dataclasses.asdict(info),
            notes=[*self.notes, *prepared.notes],
            weights=self.weights,
            precision=precision,
        )


def format_prediction(pred: Prediction) -> str:
    """Human-readable report for the terminal."""
    info = pred.video_info
    lines = [
        f"{pred.video}: {info.get('width')}x{info.get('height')}, {info.get('num_frames')} frames at "
        f"{info.get('fps', 0):.2f} fps ({info.get('codec')}, read with {pred.backend})",
        f"model {pred.model} on {pred.device} ({pred.precision}), {pred.views} views; weights: {pred.weights}",
        "",
    ]
    width = max((len(lbl) for lbl, _ in pred.topk), default=0)
    for rank, (lbl, p) in enumerate(pred.topk, 1):
        lines.append(f"  {rank}. {lbl:<{width}}  {100 * p:6.2f}%")
    lines.append("")
    for i, frames in enumerate(pred.frames_used):
        lines.append(f"clip {i}: frames {frames}")
    t = pred.timings
    lines.append(
        f"time: decode {t['decode_s']:.2f} s, preprocess {t['preprocess_s']:.2f} s, "
        f"model {t['model_s']:.2f} s, total {t['total_s']:.2f} s"
    )
    lines.extend(f"note: {n}" for n in pred.notes)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from uniformer.assets import DEFAULT_MODEL  # not the zoo: --help needs no timm

    p = argparse.ArgumentParser(prog="python -m uniformer.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("video", help="path to a video file")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo model name (default {DEFAULT_MODEL}: bundled, "
                   "trained on synthetic motion classes)")
    p.add_argument("--checkpoint", help="weights file (.pth/.pyth/.pt/.safetensors); default: the bundled "
                                        "file for local models, else a copy in the local Hugging Face cache, "
                                        "else random weights")
    p.add_argument("--views", help="CLIPSxCROPS, e.g. 4x1 or 1x3 (default: the checkpoint's test protocol)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (exact, default) or bf16 (faster where the CPU has AMX / AVX-512-BF16 or on "
                        "an Ampere+ GPU; refused elsewhere)")
    t = p.add_argument_group("timeline (uniformer/timeline.py)")
    t.add_argument("--timeline", action="store_true", help="slide the test clip over the whole video: top-k per "
                   "window in time order, plus smoothed tracks of the top classes")
    t.add_argument("--window-stride", type=float, metavar="SECONDS", help="seconds between window starts "
                   "(default: half a window)")
    t.add_argument("--window", type=float, metavar="SECONDS", help="window length for segment protocols "
                   "(Something-Something; dense protocols use their clip's span)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        views = parse_views(args.views) if args.views else None
        predictor = Predictor(args.model, checkpoint=args.checkpoint, device=args.device, views=views,
                              precision=args.precision)
        if args.timeline:
            from uniformer.timeline import run_cli

            print(run_cli(predictor, args.video, stride_s=args.window_stride, window_s=args.window,
                          topk=args.topk, as_json=args.json))
            return 0
        pred = predictor.predict(args.video, topk=args.topk)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(jsonsafe.dumps(pred.to_dict()) if args.json else format_prediction(pred))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
