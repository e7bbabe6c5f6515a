"""Procedural motion clips whose classes can only be told apart through time.

Why: a tiny, offline, license-free benchmark on which a video model must use temporal
reasoning. Every class comes in a **time-reversed pair** (moving right / moving left, approaching
/ receding, rotating clockwise / anticlockwise, appearing / disappearing, meeting / parting, moving
down / moving up). The second class of a pair is *exactly* the first one played backwards (same
random draws, frames reversed), and everything that is not the class (distractors, noise, flicker)
has a time-symmetric distribution. Hence the set of frames of a clip, taken in random order, has
the same distribution for both classes of a pair: a frame-level (bag-of-frames) model cannot beat
chance within a pair, a temporal model can reach ~100 %.

The world is a torus (objects leaving one side re-enter on the other) and start positions are
uniform, so for the translation classes even a single frame *at a known time index* carries no
label information (the object's position is uniform at every frame for both classes). For the
other pairs (size, visibility, distance of two objects) the first frame still hints at the class
(an appearing object is absent at frame 0); only the bag-of-frames symmetry holds there.

Clips are written as H.264 mp4 (``yuv420p``) with Kinetics-style list files::

    python -m uniformer.data.synthetic --out data/synthetic --train 2400 --val 600 --seed 0

    OUT/classes.txt            one class name per line, line number = label (sorted names)
    OUT/train.txt, val.txt     "train/moving_left/train_000005.mp4 5" (path relative to OUT)
    OUT/train/<class>/*.mp4    so ``VideoFolderDataset(OUT / "train")`` gives the same labels
    OUT/train_meta.jsonl       per-clip ground truth (object tracks, radius, angle, alpha)
    OUT/synthetic.json         the generator settings, for provenance

Generation is deterministic: clip ``i`` of split ``s`` is rendered from
``SeedSequence([seed, SPLIT_IDS[s], i])`` and encoded single-threaded, so the same seed gives
byte-identical decoded frames whatever the number of workers. Horizontal flipping must stay OFF
when training on this data (left/right and clockwise/anticlockwise are classes).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

# (forward class, time-reversed class)
PAIRS: tuple[tuple[str, str], ...] = (
    ("moving_right", "moving_left"),
    ("moving_down", "moving_up"),
    ("approaching", "receding"),
    ("rotating_clockwise", "rotating_anticlockwise"),
    ("appearing", "disappearing"),
    ("meeting", "parting"),
)
#: All class names, sorted, so that label = index here = index of sorted class folders.
CLASSES: tuple[str, ...] = tuple(sorted(c for pair in PAIRS for c in pair))
#: class -> the class that is its exact time reversal
REVERSED: dict[str, str] = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
_FORWARD: dict[str, str] = {a: a for a, _ in PAIRS} | {b: a for a, b in PAIRS}
SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "star", "cross")


@dataclass(frozen=True)
class SynthConfig:
    """Clip geometry and nuisance levels (lengths in pixels are fractions of ``size``)."""

    size: int = 64
    num_frames: int = 16
    fps: float = 8.0
    classes: tuple[str, ...] = CLASSES
    max_distractors: int = 3
    noise_std: tuple[float, float] = (1.0, 6.0)  # per-pixel noise std range, 0-255 units
    background_contrast: float = 1.0  # scales the background texture around its mean colour
    # Translation speed (fraction of ``size`` per frame) and main-object size. Both were chosen by
    # experiment: with objects of radius ~0.15 size moving ~3 px/frame a tiny 3D CNN, UniFormer and
    # TimeSformer all stayed at chance for 700+ steps (the direction signal of a small object is
    # diluted by global average pooling, and steps larger than a 3x3 kernel alias); objects of
    # radius ~0.3 size moving ~1 px/frame are learnt within a few hundred steps.
    speed: tuple[float, float] = (0.012, 0.024)
    object_scale: float = 1.0  # multiplies the main objects' sizes (difficulty knob)

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be an even number >= 16 (yuv420p), got {self.size}.")
        if self.num_frames < 4:
            raise ValueError(f"num_frames must be at least 4, got {self.num_frames}.")
        unknown = [c for c in self.classes if c not in REVERSED]
        if unknown or not self.classes:
            raise ValueError(f"Unknown synthetic classes {unknown}; choose from {list(CLASSES)}.")
        if not (0 < self.speed[0] <= self.speed[1]) or not self.object_scale > 0:
            raise ValueError(f"speed must be 0 < low <= high and object_scale > 0, got {self.speed}, "
                             f"{self.object_scale}.")
        if list(self.classes) != sorted(set(self.classes)):
            raise ValueError("classes must be sorted and unique so labels match sorted folder names.")


@dataclass
class ClipMeta:
    """Ground truth of one clip. ``K`` main objects (2 for meeting/parting, else 1), ``T`` frames.

    ``track`` is the unwrapped centre (x, y) in pixels (it can leave the frame); ``center`` is the
    same point wrapped onto the torus, i.e. where it is drawn. ``angle`` grows when the object
    turns clockwise on screen (radians). ``alpha`` is the opacity. ``mask`` (only when asked for)
    is the main objects' coverage ``(T, H, W)`` in [0, 1] before occlusion by distractors.
    """

    label: int
    class_name: str
    shape: str
    track: np.ndarray  # (K, T, 2)
    center: np.ndarray  # (K, T, 2)
    radius: np.ndarray  # (K, T)
    angle: np.ndarray  # (K, T)
    alpha: np.ndarray  # (K, T)
    num_distractors: int = 0
    background: str = ""
    mask: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        """A JSON-friendly dict (arrays rounded to 0.01 px / 1e-4)."""
        out = {"label": self.label, "class_name": self.class_name, "shape": self.shape,
               "num_distractors": self.num_distractors, "background": self.background}
        for key in ("track", "center", "radius", "angle", "alpha"):
            out[key] = np.round(getattr(self, key).astype(np.float64), 4).tolist()
        return out

    def reversed(self, label: int, class_name: str) -> ClipMeta:
        """The metadata of the same clip played backwards."""
        return ClipMeta(label, class_name, self.shape, self.track[:, ::-1].copy(),
                        self.center[:, ::-1].copy(), self.radius[:, ::-1].copy(),
                        self.angle[:, ::-1].copy(), self.alpha[:, ::-1].copy(),
                        self.num_distractors, self.background,
                        None if self.mask is None else self.mask[::-1].copy())


@dataclass
class _Obj:
    """One object's appearance and per-frame pose (all pose arrays have length T)."""

    shape: str
    cx: np.ndarray
    cy: np.ndarray
    r: np.ndarray
    theta: np.ndarray
    alpha: np.ndarray
    color1: np.ndarray
    color2: np.ndarray | None = None  # None: plain colour
    texture: int = 0
    tex_freq: float = 6.0
    tex_angle: float = 0.0
    tex_phase: tuple[float, float] = (0.0, 0.0)


# --------------------------------------------------------------------------------------------
# rendering


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance (object units, circumradius ~1) of a shape; < 0 inside."""
    if shape == "disc":
        return np.sqrt(u * u + v * v) - 0.9
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.72
    if shape == "triangle":  # equilateral, apex up (screen y grows downwards)
        return np.maximum(v, np.abs(u) * 0.8660254 - 0.5 * v) - 0.55
    if shape == "star":  # five points, outer radius 1, inner radius 0.45
        rho = np.sqrt(u * u + v * v)
        k = (np.arctan2(v, u) + np.pi / 2) * (5 / (2 * np.pi))
        tri = np.abs(k - np.floor(k) - 0.5) * 2.0  # 1 at the points, 0 between them
        return (rho - (0.45 + 0.55 * tri)) * 0.8
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au - 0.9, av - 0.33), np.maximum(au - 0.33, av - 0.9))
    raise ValueError(f"unknown shape {shape!r}")


def _draw(canvas: np.ndarray, obj: _Obj, mask: np.ndarray | None = None) -> None:
    """Alpha-composite ``obj`` onto ``canvas`` (T, H, W, 3) float32 in place, on a torus.

    Only a square window around the object is touched (wrapped with modular indices), which
    keeps small objects cheap.
    """
    T, H, W, _ = canvas.shape
    win = int(math.ceil(2 * (1.1 * float(obj.r.max()) + 1.5)))
    tt = np.arange(T)[:, None, None]
    if win >= min(H, W):  # whole frame, offsets wrapped to the nearest copy of the object
        cx = obj.cx.astype(np.float32)[:, None, None]
        cy = obj.cy.astype(np.float32)[:, None, None]
        xs = np.arange(W, dtype=np.float32) + 0.5
        ys = np.arange(H, dtype=np.float32) + 0.5
        dx = np.mod(xs[None, None, :] - cx + W / 2, W) - W / 2  # (T, 1, W)
        dy = np.mod(ys[None, :, None] - cy + H / 2, H) - H / 2  # (T, H, 1)
        rows = np.broadcast_to(np.arange(H)[None, :, None], (T, H, 1))
        cols = np.broadcast_to(np.arange(W)[None, None, :], (T, 1, W))
    else:  # window of side ``win`` around the centre; exact offsets, wrapped indices
        x0 = np.floor(obj.cx - win / 2).astype(np.int64)
        y0 = np.floor(obj.cy - win / 2).astype(np.int64)
        j = np.arange(win)
        dx = ((x0[:, None] + j + 0.5) - obj.cx[:, None]).astype(np.float32)[:, None, :]
        dy = ((y0[:, None] + j + 0.5) - obj.cy[:, None]).astype(np.float32)[:, :, None]
        cols = np.mod(x0[:, None] + j, W)[:, None, :]
        rows = np.mod(y0[:, None] + j, H)[:, :, None]
    c = np.cos(obj.theta).astype(np.float32)[:, None, None]
    s = np.sin(obj.theta).astype(np.float32)[:, None, None]
    inv_r = (1.0 / obj.r).astype(np.float32)[:, None, None]
    u = (c * dx + s * dy) * inv_r  # object frame: world = centre + r * R(theta) @ (u, v)
    v = (c * dy - s * dx) * inv_r
    cov = np.clip(0.5 - _sdf(obj.shape, u, v) * obj.r.astype(np.float32)[:, None, None], 0.0, 1.0)
    cov *= obj.alpha.astype(np.float32)[:, None, None]
    if mask is not None:
        mask[tt, rows, cols] = np.maximum(mask[tt, rows, cols], cov)
    patch = canvas[tt, rows, cols]  # (T, h, w, 3) copy
    cov = cov[..., None]
    if obj.color2 is None:
        patch += cov * (obj.color1 - patch)
    else:
        ca, sa = math.cos(obj.tex_angle), math.sin(obj.tex_angle)
        f, (p1, p2) = obj.tex_freq, obj.tex_phase
        if obj.texture == 0:  # stripes
            pat = np.clip(0.5 + 1.5 * np.sin(f * (u * ca + v * sa) + p1), 0.0, 1.0)
        elif obj.texture == 1:  # checker
            pat = np.clip(0.5 + 3.0 * np.sin(f * u + p1) * np.sin(f * v + p2), 0.0, 1.0)
        else:  # two halves
            pat = np.clip(0.5 + 4.0 * (u * ca + v * sa), 0.0, 1.0)
        colour = obj.color1 + (obj.color2 - obj.color1) * pat[..., None]
        patch += cov * (colour - patch)
    canvas[tt, rows, cols] = patch


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A static textured background (H, W, 3) float32 in [0, 1] and its kind."""
    kind = ("noise", "stripes", "checker")[int(rng.integers(3))]
    base = rng.uniform(0.1, 0.9, 3)
    other = np.clip(base + rng.uniform(-0.35, 0.35, 3), 0.0, 1.0)
    g = (np.arange(size, dtype=np.float32) + 0.5) / size
    if kind == "noise":  # bilinear upsampling of a coarse random grid
        n = int(rng.integers(3, 7))
        grid = base + rng.uniform(-0.3, 0.3, (n, n, 3))
        pos = g * (n - 1)
        lo = np.minimum(np.floor(pos).astype(int), n - 2)
        frac = (pos - lo).astype(np.float32)
        A = np.zeros((size, n), np.float32)
        A[np.arange(size), lo] = 1 - frac
        A[np.arange(size), lo + 1] = frac
        bg = np.stack([A @ grid[:, :, ch].astype(np.float32) @ A.T for ch in range(3)], -1)
    else:
        freq = rng.uniform(2.0, 6.0) * 2 * np.pi
        a = rng.uniform(0, np.pi)
        ph1, ph2 = rng.uniform(0, 2 * np.pi, 2)
        X, Y = g[None, :], g[:, None]
        if kind == "stripes":
            t = np.sin(freq * (X * math.cos(a) + Y * math.sin(a)) + ph1)
        else:
            t = np.sin(freq * X + ph1) * np.sin(freq * Y + ph2)
        t = np.clip(0.5 + 2.0 * t, 0.0, 1.0)[..., None]
        bg = base + (other - base) * t
    return np.clip(bg, 0.0, 1.0).astype(np.float32), kind


def _contrasting_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A random colour at least a little away from ``avoid`` (bounded tries, deterministic)."""
    for _ in range(8):
        c = rng.random(3)
        if np.abs(c - avoid).sum() > 0.6:
            break
    return c.astype(np.float32)


def _main_object(rng: np.random.Generator, bg_mean: np.ndarray, T: int, shape: str | None = None,
                 ) -> _Obj:
    """Appearance of a main object (always two-tone textured, so rotation is visible)."""
    c1 = _contrasting_colour(rng, bg_mean)
    k = rng.uniform(0.35, 0.8)
    c2 = (c1 * (1 - k) + (1 - c1) * k).astype(np.float32)
    ones = np.ones(T)
    return _Obj(shape=shape or SHAPES[int(rng.integers(len(SHAPES)))], cx=ones, cy=ones,
                r=ones, theta=ones, alpha=ones, color1=c1, color2=c2,
                texture=int(rng.integers(3)), tex_freq=float(rng.uniform(4.0, 9.0)),
                tex_angle=float(rng.uniform(0, 2 * np.pi)),
                tex_phase=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi))))


def _drift(rng: np.random.Generator, size: int, T: int, max_speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform start anywhere on the torus plus a slow straight drift in a random direction."""
    t = np.arange(T)
    x0, y0 = rng.uniform(0, size, 2)
    speed, ang = rng.uniform(0, max_speed) * size, rng.uniform(0, 2 * np.pi)
    return x0 + speed * math.cos(ang) * t, y0 + speed * math.sin(ang) * t


def _forward_objects(name: str, rng: np.random.Generator, cfg: SynthConfig,
                     bg_mean: np.ndarray) -> list[_Obj]:
    """Main object(s) of a *forward* class (the reversed classes reuse these, played backwards)."""
    S, T = cfg.size, cfg.num_frames
    t = np.arange(T, dtype=np.float64)
    deg = np.pi / 180
    ob = _main_object(rng, bg_mean, T)
    k = cfg.object_scale
    ob.r = np.full(T, rng.uniform(0.22, 0.36) * S * k)
    ob.theta = rng.uniform(0, 2 * np.pi) + rng.uniform(-3, 3) * deg * t
    ob.alpha = np.ones(T)
    if name in ("moving_right", "moving_down"):
        axis = 0.0 if name == "moving_right" else np.pi / 2
        ang = axis + rng.uniform(-25, 25) * deg
        speed = rng.uniform(*cfg.speed) * S
        x0, y0 = rng.uniform(0, S, 2)
        ob.cx, ob.cy = x0 + speed * math.cos(ang) * t, y0 + speed * math.sin(ang) * t
        return [ob]
    if name == "approaching":
        r0 = rng.uniform(0.12, 0.2) * S * k
        ratio = rng.uniform(1.8, 2.6)
        ob.r = r0 * ratio ** (t / (T - 1))
        ob.cx, ob.cy = _drift(rng, S, T, 0.008)
        return [ob]
    if name == "rotating_clockwise":
        ob.theta = rng.uniform(0, 2 * np.pi) + rng.uniform(6, 14) * deg * t
        ob.cx, ob.cy = _drift(rng, S, T, 0.008)
        return [ob]
    if name == "appearing":
        dur = int(rng.integers(max(2, T // 6), max(3, T // 2) + 1))
        t0 = int(rng.integers(0, max(1, T - 1 - dur) + 1))
        ob.alpha = np.clip((t - t0) / dur, 0.0, 1.0)
        if rng.random() < 0.5:  # also grow in
            ob.r = ob.r * (0.3 + 0.7 * ob.alpha)
        ob.cx, ob.cy = _drift(rng, S, T, 0.008)
        return [ob]
    if name == "meeting":
        other = _main_object(rng, bg_mean, T, shape=ob.shape)
        ra, rb = rng.uniform(0.12, 0.17, 2) * S * k
        d1 = (ra + rb) * rng.uniform(0.8, 1.0)  # touching at the end
        d0 = max(rng.uniform(0.44, 0.5) * S, 1.2 * d1)  # at most half the torus apart
        dist = d0 + (d1 - d0) * t / (T - 1)
        ang = rng.uniform(0, 2 * np.pi)
        mx, my = _drift(rng, S, T, 0.005)
        ux, uy = math.cos(ang), math.sin(ang)
        ob.cx, ob.cy, ob.r = mx - ux * dist / 2, my - uy * dist / 2, np.full(T, ra)
        other.cx, other.cy, other.r = mx + ux * dist / 2, my + uy * dist / 2, np.full(T, rb)
        other.theta = rng.uniform(0, 2 * np.pi) + rng.uniform(-3, 3) * deg * t
        other.alpha = np.ones(T)
        return [ob, other]
    raise ValueError(f"{name!r} is not a forward class")


def _distractor(rng: np.random.Generator, cfg: SynthConfig) -> _Obj:
    """A small plain object in random straight motion (any direction: time-symmetric)."""
    S, T = cfg.size, cfg.num_frames
    t = np.arange(T)
    speed, ang = rng.uniform(0, 0.04) * S, rng.uniform(0, 2 * np.pi)
    x0, y0 = rng.uniform(0, S, 2)
    return _Obj(shape=SHAPES[int(rng.integers(len(SHAPES)))],
                cx=x0 + speed * math.cos(ang) * t, cy=y0 + speed * math.sin(ang) * t,
                r=np.full(T, rng.uniform(0.035, 0.065) * S),
                theta=rng.uniform(0, 2 * np.pi) + rng.uniform(-0.17, 0.17) * t,
                alpha=np.ones(T), color1=rng.random(3).astype(np.float32))


def render_clip(class_name: str, rng: np.random.Generator, config: SynthConfig = SynthConfig(),
                return_mask: bool = False) -> tuple[np.ndarray, ClipMeta]:
    """Render one clip of ``class_name``: frames ``(T, H, W, 3)`` uint8 RGB and its ground truth.

    A reversed class consumes exactly the same random draws as its forward partner and returns
    its frames in reverse order, so ``render_clip(b, rng(s))`` == ``render_clip(a, rng(s))[::-1]``.
    """
    if class_name not in REVERSED:
        raise ValueError(f"Unknown synthetic class {class_name!r}; choose from {list(CLASSES)}.")
    cfg, S, T = config, config.size, config.num_frames
    bg, bg_kind = _background(rng, S)
    if cfg.background_contrast != 1.0:
        mean = bg.reshape(-1, 3).mean(0)
        bg = mean + (bg - mean) * np.float32(cfg.background_contrast)
    objs = _forward_objects(_FORWARD[class_name], rng, cfg, bg.reshape(-1, 3).mean(0))
    n_dis = int(rng.integers(0, cfg.max_distractors + 1))
    dis = [_distractor(rng, cfg) for _ in range(n_dis)]
    in_front = rng.random(n_dis) < 0.3
    gain = rng.uniform(0.75, 1.25) * (1 + rng.normal(0, 0.02, T))
    bias = rng.uniform(-0.06, 0.06)
    sigma = rng.uniform(*cfg.noise_std)

    canvas = np.empty((T, S, S, 3), np.float32)
    canvas[:] = bg
    mask = np.zeros((T, S, S), np.float32) if return_mask else None
    for d, front in zip(dis, in_front):
        if not front:
            _draw(canvas, d)
    for ob in objs:
        _draw(canvas, ob, mask)
    for d, front in zip(dis, in_front):
        if front:
            _draw(canvas, d)
    # photometrics in 0-255 units, in place; noise is uniform with std ``sigma`` (4x cheaper
    # than Gaussian and just as time-symmetric)
    canvas *= (gain * 255.0).astype(np.float32)[:, None, None, None]
    canvas += np.float32(bias * 255.0 + 0.5 - sigma * math.sqrt(3.0))
    if sigma > 0:
        canvas += rng.random(canvas.shape, dtype=np.float32) * np.float32(sigma * math.sqrt(12.0))
    np.clip(canvas, 0, 255, out=canvas)
    frames = canvas.astype(np.uint8)

    track = np.stack([np.stack([o.cx, o.cy], -1) for o in objs]).astype(np.float32)
    meta = ClipMeta(
        label=cfg.classes.index(class_name) if class_name in cfg.classes else -1,
        class_name=class_name, shape=objs[0].shape, track=track,
        center=np.mod(track, np.float32(S)),
        radius=np.stack([o.r for o in objs]).astype(np.float32),
        angle=np.stack([o.theta for o in objs]).astype(np.float32),
        alpha=np.stack([o.alpha for o in objs]).astype(np.float32),
        num_distractors=n_dis, background=bg_kind, mask=mask)
    if _FORWARD[class_name] != class_name:
        return frames[::-1].copy(), meta.reversed(meta.label, class_name)
    return frames, meta


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``split``: independent of worker count and order."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}.")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]))


def make_clip(seed: int, split: str, index: int, config: SynthConfig = SynthConfig(),
              return_mask: bool = False) -> tuple[np.ndarray, ClipMeta]:
    """Clip ``index`` of a split: label ``index % num_classes`` (balanced), seeded per clip."""
    label = index % len(config.classes)
    return render_clip(config.classes[label], clip_rng(seed, split, index), config, return_mask)


# --------------------------------------------------------------------------------------------
# files


@functools.lru_cache(maxsize=1)
def _cpu_has_avx512() -> bool:
    """Whether to cap x264 at AVX2.

    On this project's AVX-512 machines (AMD EPYC VMs) x264's AVX-512 kernels gave a different
    bitstream from run to run for the same input, even single-threaded; capped at AVX2 (or with
    asm off) the output was identical over hundreds of runs. AVX2 output is bit-exact with the
    narrower SIMD paths, so capping costs nothing but a little speed.
    """
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512" in f.read(1 << 16)
    except OSError:
        return False


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0, crf: int = 18) -> None:
    """Encode ``(T, H, W, 3)`` uint8 RGB as H.264/yuv420p mp4, single-threaded (deterministic).

    ``crf=0`` is lossless (High 4:4:4 Predictive profile): the decoded YUV then equals the input's
    YUV on any machine, whatever the encoder's choices.
    """
    import av  # lazy: rendering alone needs only numpy

    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}.")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        options = {"crf": str(crf), "preset": "fast", "threads": "1"}
        if _cpu_has_avx512():
            options["x264-params"] = "asm=AVX2"
        stream.codec_context.options = options
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _write_one(job: tuple[str, int, int, str, SynthConfig, int, Callable]) -> tuple[str, int, dict]:
    out, seed, index, split, cfg, crf, clip_fn = job
    frames, meta = clip_fn(seed, split, index, cfg)
    rel = f"{split}/{meta.class_name}/{split}_{index:06d}.mp4"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, cfg.fps, crf)
    return rel, meta.label, meta.to_json()


def generate_dataset(out: str | os.PathLike, num_train: int, num_val: int, seed: int = 0,
                     config: SynthConfig = SynthConfig(), workers: int = 2, crf: int = 18,
                     overwrite: bool = False, clip_fn: Callable = make_clip,
                     provenance: str = "synthetic.json", extra: dict | None = None) -> dict:
    """Write clips, ``classes.txt``, ``{split}.txt`` lists and ``{split}_meta.jsonl`` under ``out``.

    ``clip_fn(seed, split, index, config) -> (frames, meta)`` renders one clip (another preset,
    e.g. ``uniformer.data.lab``, passes its own, a module-level function so workers can pickle it);
    its settings go to ``out/<provenance>`` with ``extra`` added.

    A split folder that already holds files is an error unless ``overwrite=True``, which deletes
    ``out/train`` and ``out/val`` first (stale clips would otherwise leak into
    ``VideoFolderDataset``). Returns a summary dict with counts, seconds and clips per second.
    """
    out = Path(out)
    splits = (("train", num_train), ("val", num_val))
    stale = [out / s for s, _ in splits if (out / s).is_dir() and any((out / s).iterdir())]
    if stale and not overwrite:
        raise FileExistsError(f"'{stale[0]}' already holds clips; choose an empty folder or "
                              f"overwrite (--overwrite).")
    for d in stale:
        shutil.rmtree(d)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    (out / "classes.txt").write_text("".join(c + "\n" for c in config.classes))
    jobs = [(str(out), seed, i, split, config, crf, clip_fn) for split, n in splits for i in range(n)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        # fork where there is one: a spawned worker would re-import the package (torch, timm:
        # seconds each); the workers only use numpy and PyAV
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        chunk = max(1, min(32, len(jobs) // (4 * workers)))
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as ex:
            results = list(ex.map(_write_one, jobs, chunksize=chunk))
    else:
        results = [_write_one(j) for j in jobs]
    counts, pos = {}, 0
    for split, n in splits:
        part, pos = results[pos:pos + n], pos + n
        with open(out / f"{split}.txt", "w") as f:
            f.writelines(f"{rel} {label}\n" for rel, label, _ in part)
        with open(out / f"{split}_meta.jsonl", "w") as f:
            for rel, _, meta in part:
                f.write(json.dumps({"path": rel, **meta}) + "\n")
        counts[split] = n
    elapsed = time.perf_counter() - start
    total = num_train + num_val
    summary = {**(extra or {}), "out": str(out), "seed": seed, "crf": crf, "config": asdict(config),
               "counts": counts, "seconds": round(elapsed, 3),
               "clips_per_second": round(total / elapsed, 2) if elapsed > 0 else None}
    (out / provenance).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=("default", "lab"), default="default")
    known, rest = pre.parse_known_args(argv)
    if known.preset == "lab":  # natural-texture lab clips: their own module and knobs
        from uniformer.data import lab

        return lab.main(rest)
    p = argparse.ArgumentParser(prog="python -m uniformer.data.synthetic",
                                description="Write the procedural temporal-reasoning clip dataset.")
    p.add_argument("--preset", choices=("default", "lab"), default="default",
                   help="'lab': 112-px natural-texture clips (uniformer.data.lab, see its --help)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=1200, help="number of training clips")
    p.add_argument("--val", type=int, default=240, help="number of validation clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (even)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--fps", type=float, default=8.0, help="nominal frame rate written in the file")
    p.add_argument("--classes", default=",".join(CLASSES),
                   help="comma-separated subset of: " + ", ".join(CLASSES))
    p.add_argument("--max-distractors", type=int, default=3)
    p.add_argument("--background-contrast", type=float, default=1.0,
                   help="texture contrast of the background (1 = full, lower = easier)")
    p.add_argument("--speed", type=float, nargs=2, default=list(SynthConfig.speed), metavar=("LOW", "HIGH"),
                   help="translation speed range, fraction of the frame side per frame")
    p.add_argument("--object-scale", type=float, default=1.0, help="size multiplier of the main objects")
    p.add_argument("--max-noise", type=float, default=6.0, help="upper bound of per-pixel noise std (0-255)")
    p.add_argument("--crf", type=int, default=18, help="x264 constant rate factor")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="replace OUT/train and OUT/val")
    a = p.parse_args(argv)
    try:
        cfg = SynthConfig(size=a.size, num_frames=a.frames, fps=a.fps,
                          classes=tuple(sorted({c.strip() for c in a.classes.split(",") if c.strip()})),
                          max_distractors=a.max_distractors, background_contrast=a.background_contrast,
                          noise_std=(min(1.0, a.max_noise), a.max_noise), speed=tuple(a.speed),
                          object_scale=a.object_scale)
    except ValueError as err:
        p.error(str(err))
    try:
        summary = generate_dataset(a.out, a.train, a.val, a.seed, cfg, a.workers, a.crf, a.overwrite)
    except FileExistsError as err:
        p.error(str(err))
    print(f"wrote {a.train} train + {a.val} val clips to {a.out} in {summary['seconds']} s "
          f"({summary['clips_per_second']} clips/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
