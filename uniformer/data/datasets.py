"""Training and evaluation datasets that decode clips on the fly through ``uniformer.data.video``.

Three ways to describe a dataset, one behaviour:

- :class:`VideoListDataset` — Kinetics/SlowFast lists, ``path label`` per line (``path,label``
  CSV also accepted; a path may contain spaces because the label is split off the *last*
  whitespace). With ``classes=None`` a ``classes.txt`` beside the list file is used when present
  (the synthetic dataset writes one).
- :class:`VideoFolderDataset` — one folder per class; label = index of the sorted folder names.
- :class:`SSv2Dataset` — Something-Something v2 JSON (``[{"id", "template", ...}]``) plus the
  official labels JSON (``{template without brackets: index}``).

Items:

- ``mode='train'``: ``(float32 (3, T, S, S), label)``. One clip at a random position
  (``sampler='dense'``: ``num_frames`` frames over ``num_frames * sampling_rate`` source frames,
  SlowFast style; ``'segment'``: one random frame in each of ``num_frames`` equal segments,
  UniFormer's Something-Something rule), then an Inception-style random resized crop and
  optional horizontal flip drawn once per clip. A file that cannot be decoded is logged and
  another random index is tried, at most ``max_retries`` times (as PySlowFast does), so one bad
  file does not kill an epoch.
- ``mode='val'|'test'``: ``(float32 (V, 3, T, S, S), label)`` with ``V = num_clips * num_crops``
  views chosen by the official test protocol (:func:`uniformer.data.sampling.sample_indices`:
  ``uniformer_dense`` or ``uniformer_segment``; pass ``protocol=`` for any other). A file that
  cannot be decoded raises :class:`~uniformer.errors.VideoError` naming it: an evaluation must
  not silently skip videos.

Horizontal flip: **off** for :class:`SSv2Dataset` (always) and whenever ``flip=False``. With
``flip=None`` (default) it is on only when the class names are known and none of them names a
direction (left, right, clockwise, ...): so the synthetic motion dataset and any list without
names train without flips. Pass ``flip=True`` to force it for, e.g., an unnamed Kinetics list.

Randomness comes from ``torch``'s generator, so ``torch.manual_seed`` (and DataLoader's
per-worker seeding) makes the sampled clips reproducible.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from uniformer.data.sampling import TestProtocol, sample_indices
from uniformer.data.transforms import preprocess_views, train_transform
from uniformer.errors import UniformerLabError, VideoError

log = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]
SamplerName = Literal["dense", "segment"]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg",
                                     ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts")
DEFAULT_MEAN = (0.45, 0.45, 0.45)  # SlowFast defaults, used by both official recipes
DEFAULT_STD = (0.225, 0.225, 0.225)
_DIRECTION = re.compile(r"\b(left|right|leftwards|rightwards|clockwise|anticlockwise|"
                        r"counterclockwise|anti clockwise|counter clockwise)\b", re.IGNORECASE)


class AnnotationError(UniformerLabError, ValueError):
    """A list/JSON annotation file cannot be parsed, or names an unknown class."""


def names_direction(classes: Sequence[str] | None) -> bool:
    """Whether any class name mentions a horizontal or rotational direction (flip would lie)."""
    return bool(classes) and any(_DIRECTION.search(re.sub(r"[_\-]+", " ", c)) for c in classes)


class VideoDataset(Dataset):
    """A list of ``(path, label)`` samples decoded and transformed as described in the module doc.

    Args:
        samples: ``(absolute or cwd-relative path, label)`` pairs; label ``-1`` = unknown.
        classes: class names (index = label) when known.
        mode: ``'train'`` (random clip + augmentation) or ``'val'``/``'test'`` (official views).
        num_frames, sampling_rate: clip length and stride (stride unused by ``'segment'``).
        sampler: ``'dense'`` (Kinetics-style clips) or ``'segment'`` (Something-Something).
        size: output crop side S.
        short_side: test-time short-side resize before cropping (default: ``size``).
        scale, ratio: random-resized-crop area and aspect ranges (train).
        flip: horizontal flip in training (see module doc; ``None`` = decide from class names).
        mean, std: normalisation of RGB in [0, 1].
        num_clips, num_crops: test views (``V = num_clips * num_crops``; crops 1 or 3).
        protocol: a full :class:`TestProtocol` for val/test, overriding the settings above.
        max_retries: training only: other random videos tried after an unreadable one.
        max_side, backend: passed to :class:`~uniformer.data.video.VideoReader`.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], *, classes: Sequence[str] | None = None,
                 mode: Mode = "train", num_frames: int = 16, sampling_rate: int = 4,
                 sampler: SamplerName = "dense", size: int = 224, short_side: int | None = None,
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool | None = None,
                 mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD,
                 num_clips: int = 1, num_crops: int = 1, protocol: TestProtocol | None = None,
                 max_retries: int = 10, max_side: int | None = None, backend: str = "auto") -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}.")
        if sampler not in ("dense", "segment"):
            raise ValueError(f"sampler must be 'dense' or 'segment', got {sampler!r}.")
        if num_frames < 1 or sampling_rate < 1:
            raise ValueError("num_frames and sampling_rate must be at least 1.")
        short_side = size if short_side is None else short_side
        if short_side < size:
            raise ValueError(f"short_side ({short_side}) must be at least the crop size ({size}).")
        self.samples = [(os.fspath(p), int(y)) for p, y in samples]
        self.classes = list(classes) if classes is not None else None
        if self.classes is not None:
            bad = [(p, y) for p, y in self.samples if y >= len(self.classes) or y < -1]
            if bad:
                raise AnnotationError(f"Label {bad[0][1]} of '{bad[0][0]}' is outside the "
                                      f"{len(self.classes)} known classes.")
        self.mode, self.sampler = mode, sampler
        self.num_frames, self.sampling_rate = int(num_frames), int(sampling_rate)
        self.size, self.short_side = int(size), int(short_side)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.max_retries, self.max_side, self.backend = int(max_retries), max_side, backend
        if flip is None:
            flip = self.classes is not None and not names_direction(self.classes)
        self.flip = bool(flip)
        self.transform = train_transform(self.size, scale=scale, flip=self.flip, mean=self.mean,
                                         std=self.std, ratio=ratio)
        if protocol is None:
            protocol = TestProtocol(
                sampler="uniformer_dense" if sampler == "dense" else "uniformer_segment",
                num_frames=self.num_frames, sampling_rate=self.sampling_rate,
                num_clips=num_clips, num_crops=num_crops, short_side=self.short_side,
                crop_size=self.size, mean=self.mean, std=self.std)  # type: ignore[arg-type]
        self.protocol = protocol

    # -- size and labels ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes: the names when known, else ``max(label) + 1``."""
        if self.classes is not None:
            return len(self.classes)
        return max((y for _, y in self.samples), default=-1) + 1

    @property
    def num_views(self) -> int:
        """Views per video at val/test (``num_clips * num_crops``)."""
        return self.protocol.num_views

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.samples]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, classes={self.num_classes}, mode={self.mode!r}, "
                f"frames={self.num_frames}x{self.sampling_rate}, sampler={self.sampler!r}, "
                f"size={self.size}, flip={self.flip})")

    # -- items ----------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.mode != "train":
            return self._load_test(index)
        tried = []
        for _ in range(self.max_retries + 1):
            try:
                return self._load_train(index)
            except VideoError as err:
                tried.append(self.samples[index][0])
                log.warning("Skipping unreadable training video (%s); trying another one.", err)
                index = int(torch.randint(len(self), ()).item())
        raise VideoError(f"{len(tried)} training videos in a row could not be read, the last "
                         f"being '{tried[-1]}'; check the dataset paths.")

    def _train_indices(self, n: int) -> np.ndarray:
        """Frame indices of one random training clip in a video of ``n`` frames."""
        T = self.num_frames
        if self.sampler == "segment":  # UniFormer sth.py train: one random frame per segment
            seg = (n - 1) / T
            lo = np.array([int(round(seg * i)) for i in range(T)])
            hi = np.array([int(round(seg * (i + 1))) for i in range(T)])
            return lo + (torch.rand(T).numpy() * (hi - lo + 1)).astype(np.int64).clip(0, hi - lo)
        span = T * self.sampling_rate  # SlowFast: random start, float linspace, clamp, truncate
        start = float(torch.rand(()).item()) * max(n - span, 0)
        idx = torch.linspace(start, start + span - 1, T, dtype=torch.float32)
        return torch.clamp(idx, 0, n - 1).long().numpy()

    def _load_train(self, index: int) -> tuple[torch.Tensor, int]:
        from uniformer.data.video import VideoReader

        path, label = self.samples[index]
        with VideoReader(path, max_side=self.max_side, backend=self.backend) as reader:
            n = reader.info.num_frames
            frames = reader.get_frames(self._train_indices(n))
        return self.transform(frames), label

    def _load_test(self, index: int) -> tuple[torch.Tensor, int]:
        from uniformer.data.video import read_clips

        path, label = self.samples[index]
        clips = read_clips(path, self.protocol, max_side=self.max_side, backend=self.backend)
        return preprocess_views(clips.frames, self.protocol), label

    def frame_indices(self, num_frames_in_video: int, fps: float = 30.0) -> list[np.ndarray]:
        """The frame indices an item would use (train: one random draw; test: every clip)."""
        if self.mode == "train":
            return [self._train_indices(int(num_frames_in_video))]
        return sample_indices(self.protocol, int(num_frames_in_video), fps)


# ------------------------------------------------------------------------------------------------
# annotation formats
# ------------------------------------------------------------------------------------------------

_WS_LINE = re.compile(r"^(?P<path>.*\S)\s+(?P<label>[+-]?\d+)$")
_CSV_LINE = re.compile(r"^(?P<path>.*?)\s*,\s*(?P<label>[+-]?\d+)$")


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line (line number = label); also ``name<TAB>index`` / ``name,index``."""
    names: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            m = re.match(r"^(.*?)[\t,](\d+)$", line)
            if m and int(m.group(2)) == len(names):
                line = m.group(1)
            names.append(line.strip())
    if not names:
        raise AnnotationError(f"The class list '{os.fspath(path)}' is empty.")
    return names


def parse_video_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                     ) -> list[tuple[str, int]]:
    """``path label`` / ``path,label`` lines → ``[(full path, label)]``.

    Blank lines and ``#`` comments are skipped, as is a CSV header on the first line. Relative
    paths are joined to ``root`` (default: the list file's folder).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise AnnotationError(f"The video list '{list_file}' does not exist.")
    base = Path(root) if root is not None else list_file.parent
    out: list[tuple[str, int]] = []
    with open(list_file, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _WS_LINE.match(line)
            if m and m.group("path").endswith(","):  # "a.mp4, 3" is CSV with a space
                m = None
            m = m or _CSV_LINE.match(line)
            if m is None:
                if not out and "," in line and "label" in line.lower():
                    continue  # CSV header
                raise AnnotationError(f"Line {lineno} of '{list_file}' is not 'path label': {line[:80]!r}.")
            rel = m.group("path").strip().strip('"').strip("'")
            if not rel:
                raise AnnotationError(f"Line {lineno} of '{list_file}' has an empty path.")
            out.append((os.fspath(base / rel), int(m.group("label"))))
    if not out:
        raise AnnotationError(f"The video list '{list_file}' contains no samples.")
    return out


class VideoListDataset(VideoDataset):
    """Kinetics-style ``path label`` list (see :func:`parse_video_list`)."""

    def __init__(self, list_file: str | os.PathLike, root: str | os.PathLike | None = None, *,
                 classes: Sequence[str] | str | os.PathLike | None = None, **kwargs) -> None:
        samples = parse_video_list(list_file, root)
        if classes is None:
            guess = Path(list_file).parent / "classes.txt"
            classes = read_class_names(guess) if guess.is_file() else None
        elif isinstance(classes, (str, os.PathLike)):
            classes = read_class_names(classes)
        super().__init__(samples, classes=classes, **kwargs)
        self.list_file = os.fspath(list_file)


class VideoFolderDataset(VideoDataset):
    """``root/<class>/**/<video>``: label = index of the class folder in sorted order."""

    def __init__(self, root: str | os.PathLike, *, extensions: Sequence[str] = VIDEO_EXTENSIONS,
                 **kwargs) -> None:
        root = Path(root)
        if not root.is_dir():
            raise AnnotationError(f"The video folder '{root}' does not exist.")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise AnnotationError(f"The video folder '{root}' has no class sub-folders.")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        samples = [(os.fspath(p), label) for label, name in enumerate(classes)
                   for p in sorted((root / name).rglob("*"))
                   if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")]
        if not samples:
            raise AnnotationError(f"No video files ({', '.join(exts)}) under the class folders of '{root}'.")
        super().__init__(samples, classes=classes, **kwargs)
        self.root = os.fspath(root)


def ssv2_template_key(template: str) -> str:
    """``'Moving [something] from left to right'`` → ``'Moving something from left to right'``."""
    return template.replace("[", "").replace("]", "")


def _load_json(path: str | os.PathLike, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"The {what} '{os.fspath(path)}' does not exist.") from None
    except json.JSONDecodeError as err:
        raise AnnotationError(f"The {what} '{os.fspath(path)}' is not valid JSON "
                              f"(line {err.lineno}: {err.msg}).") from None


class SSv2Dataset(VideoDataset):
    """Something-Something v2: ``json_file`` (train/validation list) + ``labels_json``.

    The label of an entry is ``labels[template without brackets]``; entries without a
    ``template`` (the official test list) get label ``-1``. Videos are
    ``video_root/<id>.<ext>`` (the official release is ``.webm``). Defaults follow the official
    recipes: segment sampling, 1 clip x 3 crops at test, and horizontal flip always off
    (left/right is part of the label).
    """

    def __init__(self, json_file: str | os.PathLike, labels_json: str | os.PathLike,
                 video_root: str | os.PathLike, *, ext: str = "webm",
                 sampler: SamplerName = "segment", num_crops: int = 3,
                 flip: bool | None = False, **kwargs) -> None:
        mapping = _load_json(labels_json, "SSv2 labels file")
        where = f"The SSv2 labels file '{os.fspath(labels_json)}'"
        if not isinstance(mapping, dict) or not mapping:
            raise AnnotationError(f"{where} must map templates to indices.")
        try:
            labels = {ssv2_template_key(k): int(v) for k, v in mapping.items()}
        except (TypeError, ValueError):
            raise AnnotationError(f"{where} has a non-integer index.") from None
        if sorted(labels.values()) != list(range(len(labels))):
            raise AnnotationError(f"{where} must number "
                                  f"its {len(labels)} templates 0..{len(labels) - 1}.")
        classes = [name for name, _ in sorted(labels.items(), key=lambda kv: kv[1])]
        entries = _load_json(json_file, "SSv2 annotation file")
        if not isinstance(entries, list):
            raise AnnotationError(f"The SSv2 annotation file '{os.fspath(json_file)}' must be a JSON list.")
        ext = ext.lstrip(".")
        samples = []
        for k, e in enumerate(entries):
            if not isinstance(e, dict) or "id" not in e:
                raise AnnotationError(f"Entry {k} of '{os.fspath(json_file)}' has no 'id'.")
            label = -1
            if e.get("template") is not None:
                key = ssv2_template_key(str(e["template"]))
                if key not in labels:
                    raise AnnotationError(f"Entry {e['id']} of '{os.fspath(json_file)}' has a template "
                                          f"that is not in the labels file: {key!r}.")
                label = labels[key]
            samples.append((os.path.join(os.fspath(video_root), f"{e['id']}.{ext}"), label))
        if not samples:
            raise AnnotationError(f"The SSv2 annotation file '{os.fspath(json_file)}' contains no videos.")
        if flip:
            log.warning("Horizontal flip is disabled for Something-Something: "
                        "left/right is part of the label.")
        super().__init__(samples, classes=classes, sampler=sampler, num_crops=num_crops, flip=False,
                         **kwargs)
        self.json_file, self.video_root = os.fspath(json_file), os.fspath(video_root)
