"""Features of many videos for downstream work: one row per video, resumable, sharded.

CLI::

    python -m uniformer.features --model NAME --data LIST_OR_FOLDER --out FILE
                                 [--pool mean|cls|tokens] [--views CLIPSxCROPS] [--checkpoint PATH]
    torchrun --nproc-per-node 8 -m uniformer.features ...      # videos sharded over ranks

Each video is read with the checkpoint's test protocol (``--views`` overrides it, as in
:mod:`uniformer.predict`) and every view goes through the model's timm-style
``forward_features``; the pooling then follows the family:

- ``mean``: the head's input. UniFormer: ``forward_head(forward_features(x), pre_logits=True)``,
  the mean of the final map over ``T'H'W'``. TimeSformer: the mean of the final-norm patch tokens.
- ``cls``: the final-norm cls token (``forward_features``) — only for a family with a cls token
  (:attr:`ModelFamily.has_cls_token`); otherwise one sentence says why not.
- ``tokens``: every final-norm token, ``(views, tokens, width)`` per video (UniFormer's stage-4
  map flattened in ``T', H', W'`` order; TimeSformer's patches without the cls token).

Pooled features are averaged over the views (width ``model.num_features``); tokens keep the view
axis (crops do not align token for token).

Output: ``FILE`` (``.safetensors``: tensor ``features`` plus the settings and ids as metadata;
``.npy``: the array) and ``FILE.index.json`` (video ids in row order, skipped videos with the
reason, settings). Work is saved every ``--shard-size`` videos per rank as a part in
``FILE.parts/``; a rerun with the same ``--out`` reads the parts (and an existing ``FILE``) and
continues with the videos not done yet. Unreadable videos are skipped, listed (stderr and index)
and retried by the next run; nothing already computed is lost.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from uniformer.errors import UniformerLabError

Pool = Literal["mean", "cls", "tokens"]
POOLS: tuple[str, ...] = ("mean", "cls", "tokens")
_LABELLED = re.compile(r"^(?P<path>.+?)[\s,]+-?\d+$")   # "path label" / "path,label": the label is ignored


@dataclass(frozen=True)
class Video:
    id: str      # as written in the list, or the path under the folder
    path: str


# ---------------------------------------------------------------------------------- pooling
def check_pool(model: nn.Module, pool: str) -> Any:
    """The model's family, once ``pool`` is known to make sense for it (else one sentence)."""
    from uniformer.models.family import get_family

    family = get_family(model)
    if pool not in POOLS:
        raise UniformerLabError(f"Pooling '{pool}' is not one of {', '.join(POOLS)}.")
    if pool == "cls" and not family.has_cls_token:
        raise UniformerLabError(f"{family.title} has no cls token; use --pool mean or --pool tokens.")
    return family


def view_features(model: nn.Module, x: torch.Tensor, pool: Pool) -> torch.Tensor:
    """Features of views ``(V, 3, T, S, S)``: ``(V, D)`` pooled, or ``(V, L, D)`` tokens."""

    family = check_pool(model, pool)
    if not family.has_cls_token:   # a feature map (B, C, T', H', W') after the final norm
        fmap = model.forward_features(x)
        if pool == "mean":
            return model.forward_head(fmap, pre_logits=True)
        return fmap.flatten(2).transpose(1, 2)
    if pool == "cls":
        return model.forward_head(model.forward_features(x), pre_logits=True)
    tokens = model.norm(model.forward_hidden_states(x)[-1])
    patches = tokens[:, 1:]
    if patches.shape[0] != x.shape[0]:  # space-only attention runs frames as rows: (B*T, N, D)
        patches = patches.reshape(x.shape[0], -1, patches.shape[-1])
    return patches.mean(1) if pool == "mean" else patches


def video_features(model: nn.Module, views: Sequence[torch.Tensor], pool: Pool, *,
                   view_batch: int = 32) -> list[torch.Tensor]:
    """Several videos' views (one ``(V, 3, T, S, S)`` each) in shared forwards of at most
    ``view_batch`` views → per video pooled ``(D,)`` (mean over views) or tokens ``(V, L, D)``."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = torch.cat([view_features(model, chunk.to(device), pool).float().cpu()
                         for chunk in torch.cat(list(views)).split(view_batch)])
    per_video = out.split([v.shape[0] for v in views])
    return [f if pool == "tokens" else f.mean(0) for f in per_video]


class _Decoded(torch.utils.data.Dataset):
    """A rank's videos → ``(index, views or the one-sentence error)``; runs in loader workers."""

    def __init__(self, videos: Sequence[Video], protocol: Any) -> None:
        self.videos, self.protocol = list(videos), protocol

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        from uniformer.predict import prepare_video

        try:
            return i, prepare_video(self.videos[i].path, self.protocol).views
        except UniformerLabError as err:
            return i, str(err)


# ------------------------------------------------------------------------------------ input
def list_videos(data: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Video]:
    """Videos of a folder (recursively, sorted) or of a list file (one path per line, optional label)."""
    from uniformer.data.datasets import VIDEO_EXTENSIONS

    data = Path(data)
    if data.is_dir():
        videos = [Video(p.relative_to(data).as_posix(), os.fspath(p)) for p in sorted(data.rglob("*"))
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")]
        if not videos:
            raise UniformerLabError(f"No video files ({', '.join(VIDEO_EXTENSIONS)}) under '{data}'.")
        return videos
    if not data.is_file():
        raise UniformerLabError(f"--data '{data}' is neither a list file nor a folder.")
    base = Path(root) if root else data.parent
    videos, seen = [], set()
    for line in data.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LABELLED.match(line)
        rel = (m.group("path") if m and not Path(base / line).exists() else line).strip().strip("\"'")
        if rel not in seen:
            seen.add(rel)
            videos.append(Video(rel, os.fspath(base / rel)))
    if not videos:
        raise UniformerLabError(f"The list '{data}' names no videos.")
    return videos


# ------------------------------------------------------------------------------------ store
def _index_path(out: Path) -> Path:
    return out.with_name(out.name + ".index.json")


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _read_store(path: Path) -> tuple[dict[str, Any], torch.Tensor]:
    """(metadata, features) of a part or of a finished output file."""
    if path.suffix == ".npy":
        import numpy as np

        meta = json.loads(_index_path(path).read_text(encoding="utf-8"))
        return meta, torch.from_numpy(np.load(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
        feats = f.get_tensor("features")
    meta = {k: json.loads(v) for k, v in raw.items()}
    return meta, feats


def _write_store(path: Path, feats: torch.Tensor, meta: dict[str, Any]) -> None:
    """Atomic write (a killed run leaves either the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".npy":
        import numpy as np

        with open(tmp, "wb") as f:
            np.save(f, feats.numpy())
    else:
        from safetensors.torch import save_file

        save_file({"features": feats.contiguous()}, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    os.replace(tmp, path)


@dataclass
class Settings:
    """What makes two runs' rows comparable (a resume with other settings is refused)."""

    model: str
    pool: str
    views: str
    frames: int
    size: int
    weights: str

    def check(self, other: dict[str, Any], where: Path) -> None:
        mine = dataclasses.asdict(self)
        diff = [k for k in mine if other.get(k) != mine[k]]
        if diff:
            k = diff[0]
            raise UniformerLabError(f"'{where}' holds features made with {k}={other.get(k)!r}, not {mine[k]!r}; "
                                    "use another --out or the same settings.")


def _load_done(out: Path, settings: Settings) -> tuple[list[Path], set[str]]:
    """Existing parts (and a finished output) and the ids they hold."""
    sources = sorted(_parts_dir(out).glob("*.safetensors")) if _parts_dir(out).is_dir() else []
    if out.is_file() and _index_path(out).is_file():
        sources.append(out)
    done: set[str] = set()
    for src in sources:
        meta = _metadata(src)
        settings.check(meta.get("settings", {}), src)
        done.update(meta.get("ids", []))
    return sources, done


def _metadata(path: Path) -> dict[str, Any]:
    """Metadata without reading the tensor (a ``.npy`` keeps it in its index)."""
    if path.suffix == ".npy":
        return json.loads(_index_path(path).read_text(encoding="utf-8"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


# -------------------------------------------------------------------------------------- run
@dataclass
class RunResult:
    rows: int                   # videos with features in the output
    computed: int               # computed by this run (all ranks)
    skipped: list[dict[str, str]]
    shape: tuple[int, ...]
    seconds: float


def extract(model: nn.Module, videos: Sequence[Video], out: str | os.PathLike, *, protocol: Any, pool: Pool,
            settings: Settings, rank: int = 0, world: int = 1, shard_size: int = 64, batch: int = 8,
            workers: int = 0, progress: bool = False, barrier: Any = None,
            all_gather: Any = None) -> RunResult | None:
    """Compute what is missing in ``out`` for this rank's share of ``videos``; rank 0 merges.

    ``batch`` videos share a forward; ``workers`` loader processes decode ahead. Returns the
    merged result on rank 0, ``None`` on the other ranks.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    out = Path(out)
    if out.suffix not in (".safetensors", ".npy"):
        raise UniformerLabError(f"--out '{out}' must end in .safetensors or .npy.")
    check_pool(model, pool)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = _parts_dir(out)
    parts.mkdir(exist_ok=True)
    _, done = _load_done(out, settings)
    mine = [v for i, v in enumerate(videos) if i % world == rank and v.id not in done]
    seq = len(list(parts.glob(f"r{rank:03d}-*.safetensors")))
    rows: list[torch.Tensor] = []
    ids: list[str] = []
    skipped: list[dict[str, str]] = []
    computed = 0

    def flush() -> None:
        nonlocal seq, rows, ids, skipped
        if not rows and not skipped:
            return
        feats = torch.stack(rows) if rows else torch.zeros(0)
        meta = {"ids": ids, "skipped": skipped, "settings": dataclasses.asdict(settings)}
        _write_store(parts / f"r{rank:03d}-{seq:06d}.safetensors", feats, meta)
        seq, rows, ids, skipped = seq + 1, [], [], []

    loader = torch.utils.data.DataLoader(_Decoded(mine, protocol), batch_size=max(1, batch), shuffle=False,
                                         num_workers=workers, collate_fn=list)
    with tqdm(total=len(mine), desc=f"features ({pool})", unit="video", disable=not progress) as bar:
        for items in loader:
            good = [(i, v) for i, v in items if isinstance(v, torch.Tensor)]
            skipped.extend({"id": mine[i].id, "error": v} for i, v in items if isinstance(v, str))
            if good:
                rows.extend(video_features(model, [v for _, v in good], pool))
                ids.extend(mine[i].id for i, _ in good)
                computed += len(good)
            bar.update(len(items))
            if len(rows) >= shard_size:
                flush()
    flush()
    if barrier is not None:
        barrier()
    counts = all_gather(computed) if all_gather is not None else [computed]
    if rank != 0:
        return None
    return _merge(out, videos, settings, sum(counts), start)


def _merge(out: Path, videos: Sequence[Video], settings: Settings, computed: int, start: float) -> RunResult:
    """Every part plus the previous output → ``out`` and its index, rows in list order."""
    parts = _parts_dir(out)
    sources = sorted(parts.glob("*.safetensors"))
    if out.is_file() and _index_path(out).is_file():
        sources.insert(0, out)
    by_id: dict[str, torch.Tensor] = {}
    errors: dict[str, str] = {}
    for src in sources:
        meta, feats = _read_store(src)
        for i, vid in enumerate(meta.get("ids", [])):
            by_id[vid] = feats[i]
        for s in meta.get("skipped", []):
            errors[s["id"]] = s["error"]
    order = [v.id for v in videos if v.id in by_id] + sorted(set(by_id) - {v.id for v in videos})
    skipped = [{"id": v.id, "error": errors.get(v.id, "not processed")} for v in videos if v.id not in by_id]
    feats = torch.stack([by_id[i] for i in order]) if order else torch.zeros(0)
    meta = {"ids": order, "skipped": skipped, "settings": dataclasses.asdict(settings),
            "shape": list(feats.shape)}
    _index_path(out).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    _write_store(out, feats, meta)
    for src in sources:
        if src != out:
            src.unlink()
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    return RunResult(rows=len(order), computed=computed, skipped=skipped, shape=tuple(feats.shape),
                     seconds=time.perf_counter() - start)


# -------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uniformer.features", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="zoo model name")
    p.add_argument("--checkpoint", help="weights file (default: the zoo's bundled or cached weights, else random)")
    p.add_argument("--data", required=True, help="a list file (one video path per line, a label may follow) "
                                                 "or a folder (every video under it)")
    p.add_argument("--root", help="folder the list's paths are relative to (default: the list's folder)")
    p.add_argument("--out", required=True, help="FILE.safetensors or FILE.npy (an index FILE.index.json beside it)")
    p.add_argument("--pool", default="mean", choices=POOLS, help="mean (default), cls (TimeSformer) or tokens")
    p.add_argument("--views", help="CLIPSxCROPS (default: the checkpoint's test protocol)")
    p.add_argument("--shard-size", type=int, default=64, help="videos per saved part (what a crash can lose)")
    p.add_argument("--batch", type=int, default=8, help="videos per forward pass")
    p.add_argument("--workers", type=int, default=0, help="processes decoding ahead (0: decode in this one)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: one GPU per rank)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = None
    try:
        from uniformer.data.sampling import parse_views
        from uniformer.predict import Predictor
        from uniformer.train.config import RunConfig
        from uniformer.train.dist import all_gather_objects, barrier, setup_distributed

        views = parse_views(args.views) if args.views else None
        videos = list_videos(args.data, args.root)
        env = setup_distributed(RunConfig(device=args.device))
        predictor = Predictor(args.model, checkpoint=args.checkpoint, device=str(env.device), views=views)
        proto = predictor.protocol
        check_pool(predictor.model, args.pool)
        settings = Settings(model=predictor.name, pool=args.pool, views=f"{proto.num_clips}x{proto.num_crops}",
                            frames=proto.num_frames, size=proto.crop_size, weights=predictor.weights)
        result = extract(predictor.model, videos, args.out, protocol=proto, pool=args.pool, settings=settings,
                         rank=env.rank, world=env.world_size, shard_size=max(1, args.shard_size),
                         batch=args.batch, workers=max(0, args.workers),
                         progress=env.is_main, barrier=lambda: barrier(env),
                         all_gather=lambda obj: all_gather_objects(obj, env))
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if env is not None and env.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if result is None:
        return 0
    rate = result.computed / result.seconds if result.seconds > 0 else 0.0
    print(f"{args.out}: {result.rows} videos x {list(result.shape[1:])} ({args.pool} features of {args.model}); "
          f"{result.computed} computed now in {result.seconds:.1f} s ({rate:.2f} videos/s), "
          f"index {_index_path(Path(args.out))}")
    for s in result.skipped:
        print(f"skipped {s['id']}: {s['error']}", file=sys.stderr)
    if result.skipped:
        print(f"{len(result.skipped)} video(s) skipped; run the same command again to retry them.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
