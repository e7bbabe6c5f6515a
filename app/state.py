"""What the app keeps between requests, and the limits that keep it bounded.

Why a module of its own: every tab needs the same three things — a loaded model, a decoded clip
and (for the analysis tabs) one attention extraction — and each is expensive on a CPU (seconds)
and large in memory (hundreds of MB for a full-size extraction). ``AppState`` owns one small LRU
for each, keyed by what makes the result unique, so that

- a model is built once per (name, weights, device) and reused by every tab and every user;
- a clip is decoded once per (file content, test protocol): the attention tab reuses the predict
  tab's decode, and uploading the same file twice does not decode it twice;
- an attention extraction is run once per (model, clip) and shared by the attention and
  redundancy tabs (moving the layer slider never re-runs the model);
- memory stays bounded however long the server runs (every cache has a fixed size).

Nothing here downloads: weights come from ``assets/checkpoints/`` or the local Hugging Face cache,
unless ``allow_downloads`` is set explicitly. File paths from requests are only accepted inside
the upload folder, ``assets/`` and any extra folder the config names.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import hashlib
import itertools
import logging
import os
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from app.budget import RequestBudget
from uniformer.assets import ASSETS_DIR, CLIPS_DIR, DEFAULT_APP_MODELS
from uniformer.data.sampling import TestProtocol
from uniformer.errors import CheckpointError, UniformerLabError, VideoError
from uniformer.zoo import WeightsChoice

log = logging.getLogger("uniformer_lab.app")

REPO_ROOT = Path(__file__).resolve().parents[1]
# ASSETS_DIR / CLIPS_DIR: uniformer/assets.py (honours UNIFORMER_LAB_ASSETS, like the zoo)
WARM_UP_CLIP = CLIPS_DIR / "lab_stopping.mp4"  # 28 kB at the lab models' 112 px: decoding it costs nothing

# Used when no bundled ("local") model exists yet: full-size architectures with random weights.
FALLBACK_MODELS = ("uniformer_small_k400_16x8", "timesformer_base_k400_8x32")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".ogv", ".mpg", ".mpeg", ".gif")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pyth", ".safetensors", ".bin", ".ckpt")
THUMB_SIDE = 160  # long side of the sampled-frame thumbnails kept with a cached clip
# How galleries send thumbnails: Gradio's default WebP costs ~13x JPEG's encoding time in PIL (16
# thumbnails: 623 vs 47 ms under load), on the path of every prediction, for a similar size.
THUMB_FORMAT = "jpeg"
_SERIAL = itertools.count(1)  # identifies one load of a model (random weights differ per load)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# ================================================================================= config
@dataclass
class AppConfig:
    """Every knob of the app in one place (the CLI and the tests fill it)."""

    device: str = "auto"
    default_models: tuple[str, ...] | None = None  # None: bundled local models, else FALLBACK_MODELS
    views: tuple[int, int] = (1, 1)                # default views per prediction (clips, crops)
    max_video_mb: float = 200.0
    max_checkpoint_mb: float = 1024.0
    concurrency_limit: int = 2                     # heavy requests running at once (app/budget.py lanes)
    light_concurrency_limit: int = 2               # light requests running at once, in a lane of their own
    max_request_gflops: float | None = None        # budget per request; None: CPU 1,000, CUDA 20,000
    light_request_gflops: float | None = None      # light lane up to this; None: 5 % of the budget
    queue_max_size: int = 16                       # waiting requests beyond which new ones are refused
    model_cache_size: int = 3
    clip_cache_size: int = 4
    record_cache_size: int = 2
    max_attention_gb: float = 1.5                  # largest attention extraction kept (UniFormer-S16: 0.4 GB)
    allow_downloads: bool = False                  # fetch published weights from the hub when missing
    extra_allowed_dirs: tuple[str, ...] = ()       # more folders whose files requests may name
    preload: bool = True                           # load the default models at start-up
    warm_up: bool = True                           # ... and run each once on WARM_UP_CLIP (with preload)

    @property
    def max_upload_mb(self) -> float:
        return max(self.max_video_mb, self.max_checkpoint_mb)


# ==================================================================================== LRU
class LRU(Generic[K, V]):
    """A thread-safe LRU whose values are built once per key, even under concurrent requests.

    ``get_or_create(key, factory)`` builds the value under a per-key lock, so two users asking
    for the same model wait for one load instead of loading twice; different keys load in
    parallel. Evicted values are handed to ``on_evict`` (to free GPU memory).
    """

    def __init__(self, maxsize: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        self.maxsize = max(1, int(maxsize))
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[K, threading.Lock] = {}
        self._on_evict = on_evict
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._data)

    def values(self) -> list[V]:
        with self._lock:
            return list(self._data.values())

    def get(self, key: K) -> V | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key: K, value: V) -> None:
        evicted: list[tuple[K, V]] = []
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                evicted.append(self._data.popitem(last=False))
        for k, v in evicted:
            if self._on_evict is not None:
                self._on_evict(k, v)

    def get_or_create(self, key: K, factory: Callable[[], V]) -> tuple[V, bool]:
        """``(value, was_cached)``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key], True
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is not None:  # built by a request that held the lock before us
                with self._lock:
                    self.hits += 1
                return value, True
            try:
                value = factory()
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            with self._lock:
                self.misses += 1
            self.put(key, value)
            return value, False

    def clear(self) -> None:
        with self._lock:
            items = list(self._data.items())
            self._data.clear()
        for k, v in items:
            if self._on_evict is not None:
                self._on_evict(k, v)


def _free_memory(*_: Any) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ================================================================================= models
# WeightsChoice (where a model's weights come from) is the zoo's: uniformer.zoo.resolve_weights.


@dataclass
class LoadedModel:
    """A model in memory plus what the UI must say about it. ``lock`` serialises its forwards:
    attention capture switches state on the model, so two requests must not overlap on it."""

    name: str
    predictor: Any        # uniformer.predict.Predictor
    weights: WeightsChoice
    load_s: float
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    uid: int = field(default_factory=lambda: next(_SERIAL))

    @property
    def model(self) -> torch.nn.Module:
        return self.predictor.model

    @property
    def entry(self) -> Any:
        return self.predictor.entry

    @property
    def family(self) -> str:
        return self.predictor.entry.family

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    @property
    def label(self) -> str:
        uploaded = " [uploaded]" if self.weights.source == "uploaded" else ""
        tag = " [random weights]" if self.weights.random else uploaded
        return f"{self.name}{tag}"

    def with_views(self, views: tuple[int, int] | None) -> Any:
        """A predictor sharing this model but testing with ``views`` (``None``: the checkpoint's protocol)."""
        p = copy.copy(self.predictor)
        protocol = self.predictor.entry.protocol
        if views is not None:
            protocol = dataclasses.replace(protocol, num_clips=int(views[0]), num_crops=int(views[1]))
        p.protocol = protocol
        return p


# ================================================================================= clips
@dataclass
class CachedClip:
    """A prepared clip (``uniformer.predict.PreparedClip``) whose full-size frames were replaced by
    thumbnails: the model only needs the view tensors, the UI only small pictures."""

    key: tuple
    prepared: Any
    thumbs: list[np.ndarray]   # one (T, h, w, 3) uint8 array per temporal clip


def thumbnails(frames: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, h, w, 3) with the long side at most ``side`` (area-average)."""
    t, h, w, _ = frames.shape
    scale = side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(frames)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=size, mode="area")
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def upload_folder() -> str:
    """Where Gradio keeps uploaded files (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``): Gradio's own rule."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


# ================================================================================= state
class AppState:
    """Caches, limits and the device; one instance per running app."""

    def __init__(self, config: AppConfig | None = None) -> None:
        from uniformer.device import resolve_device

        self.config = config or AppConfig()
        self.device = resolve_device(self.config.device)
        self.models: LRU[tuple, LoadedModel] = LRU(self.config.model_cache_size, on_evict=_free_memory)
        self.clips: LRU[tuple, CachedClip] = LRU(self.config.clip_cache_size)
        self.records: LRU[tuple, dict[str, Any]] = LRU(self.config.record_cache_size, on_evict=_free_memory)
        self._hashes: LRU[tuple, str] = LRU(256)
        self._latency: dict[str, deque[float]] = {}
        self._latency_lock = threading.Lock()
        self.default_models: list[str] = self._pick_defaults()
        self.budget = RequestBudget.from_config(self.config, self.device)  # app/budget.py: cost policy, lanes
        self.started = time.time()
        self.startup_s: float | None = None

    # ------------------------------------------------------------------ model choices
    def _pick_defaults(self) -> list[str]:
        from uniformer.zoo import ZOO, get_entry

        if self.config.default_models:
            names = list(self.config.default_models)
            for n in names:
                get_entry(n)  # unknown names fail at start-up, not on the first request
            return names
        local = [e.name for e in ZOO.values()
                 if e.kind == "local" and e.local_path is not None and e.local_path.is_file()]
        lab = [n for n in DEFAULT_APP_MODELS if n in local]  # 112 px: locality can be measured
        tiny = [n for n in local if ZOO[n].dataset == "synthetic-motion"]
        return lab or tiny or list(FALLBACK_MODELS)

    def resolve_weights(self, name: str, *, allow_download: bool | None = None) -> WeightsChoice:
        """The zoo's policy (bundled file, local Hugging Face cache, a download on first use only
        when allowed, else random weights); never touches the network by itself."""
        from uniformer.zoo import resolve_weights

        allow = self.config.allow_downloads if allow_download is None else allow_download
        return resolve_weights(name, allow_download=allow)

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, name) for every zoo model: defaults first, then models with weights on disk,
        then the rest (random weights unless downloads are allowed)."""
        from uniformer.zoo import ZOO

        rows: list[tuple[int, str, str]] = []
        for name in ZOO:
            w = self.resolve_weights(name)
            if name in self.default_models:
                rank, tag = 0, "default"
            elif w.source in ("bundled", "hub cache"):
                rank, tag = 1, f"{w.source} weights"
            elif w.source == "download":
                rank, tag = 2, "downloads published weights"
            else:
                rank, tag = 3, "random weights"
            if name in self.default_models and w.random:
                tag = "default, random weights"
            rows.append((rank, f"{name} ({tag})", name))
        rows.sort(key=lambda r: (r[0], self.default_models.index(r[2]) if r[0] == 0 else 0))
        return [(label, name) for _, label, name in rows]

    # ------------------------------------------------------------------ loading
    def get_model(self, name: str, checkpoint: str | os.PathLike | None = None) -> tuple[LoadedModel, bool]:
        """The loaded model (built on first use); ``checkpoint`` is an uploaded weights file,
        read with the safe loader. Returns ``(model, was_cached)``."""
        from uniformer.zoo import get_entry, resolve_weights

        get_entry(name)
        if checkpoint is not None:
            path = self.check_path(checkpoint, what="checkpoint")
            weights = WeightsChoice(Path(path), "uploaded")
            key = (name, "uploaded", self.file_hash(path), str(self.device))
        else:
            weights = self.resolve_weights(name)
            key = (name, weights.source, str(weights.path), str(self.device))

        def load() -> LoadedModel:
            from uniformer.predict import Predictor

            w = weights
            if w.source == "download":
                w = resolve_weights(name, allow_download=True, fetch=True)
            t0 = time.perf_counter()
            try:
                predictor = Predictor(name, checkpoint=w.path, device=str(self.device))
            except (RuntimeError, ValueError, KeyError) as err:
                if w.source == "uploaded":
                    raise CheckpointError(
                        f"The uploaded checkpoint does not fit {name} ({type(err).__name__}).") from err
                raise
            if w.random:
                predictor.weights = "random initialisation (no weights on disk)"
            elif w.source == "uploaded":
                predictor.weights = f"uploaded file {Path(w.path).name}"
            load_s = time.perf_counter() - t0
            log.info("loaded %s (%s) on %s in %.1f s", name, w.describe(), self.device, load_s)
            return LoadedModel(name=name, predictor=predictor, weights=w, load_s=load_s)

        return self.models.get_or_create(key, load)

    def preload_defaults(self, report: Callable[[str], None] | None = None) -> dict[str, float]:
        """Load every default model now (and warm it up, ``config.warm_up``); returns name → seconds."""
        out = {}
        for name in self.default_models:
            lm, _ = self.get_model(name)
            out[name] = lm.load_s
            warm_s = self.warm_up(lm) if self.config.warm_up else None
            warm = f", warmed up in {warm_s:.1f} s" if warm_s is not None else ""
            if report:
                report(f"  {lm.label}: loaded in {lm.load_s:.1f} s ({lm.weights.describe()}){warm}")
        return out

    def warm_up(self, lm: LoadedModel) -> float | None:
        """One prediction on a small bundled clip, the way a request makes it (app views, fp32 fast
        path), so that the first user does not pay one-time set-up: the decoder library's first
        open, building the fast model, and oneDNN's kernels for this input shape, which depends on
        the protocol, not the video. Nothing is cached under the clip. Returns seconds, or None when
        it could not run (the app still starts; the first request then pays the set-up)."""
        t0 = time.perf_counter()
        try:
            with lm.lock:
                lm.with_views(self.config.views).predict(WARM_UP_CLIP, topk=1, precision="fp32")
        except Exception as err:  # optional: never stop the app from starting
            log.warning("warm-up of %s on %s failed: %s", lm.name, WARM_UP_CLIP, err)
            return None
        return time.perf_counter() - t0

    def loaded_models(self) -> list[LoadedModel]:
        return self.models.values()

    # ------------------------------------------------------------------ paths and files
    def allowed_roots(self) -> list[Path]:
        roots = [Path(upload_folder()), ASSETS_DIR, *(Path(d) for d in self.config.extra_allowed_dirs)]
        return [Path(os.path.realpath(r)) for r in roots]

    def check_path(self, path: Any, *, what: str = "video") -> str:
        """A request's file path, accepted only inside the allowed folders and under the size cap."""
        if isinstance(path, dict):  # FileData-like payloads from API callers
            path = path.get("path") or path.get("name")
        if path is None or (isinstance(path, str) and not path.strip()):
            hint = "upload a video or pick an example clip" if what == "video" else "upload a checkpoint file"
            raise UniformerLabError(f"No {what} was given; {hint}.")
        if not isinstance(path, (str, os.PathLike)):
            raise UniformerLabError(f"The {what} must be a file, not {type(path).__name__}.")
        from app.preview import original_of

        real = Path(os.path.realpath(original_of(os.fspath(path))))  # the player's preview → the upload
        if not any(real == root or root in real.parents for root in self.allowed_roots()):
            raise UniformerLabError(
                f"The {what} path is outside the upload folder and assets/; upload the file instead of naming a path.")
        name = Path(os.fspath(path)).name
        if not real.is_file():
            raise (VideoError if what == "video" else CheckpointError)(f"The {what} file '{name}' does not exist.")
        size_mb = real.stat().st_size / 2**20
        cap = self.config.max_video_mb if what == "video" else self.config.max_checkpoint_mb
        if size_mb > cap:
            _discard_upload(real, Path(os.path.realpath(upload_folder())))
            raise UniformerLabError(f"The {what} '{name}' is {size_mb:.1f} MB; this app accepts at most {cap:g} MB.")
        return str(real)

    def file_hash(self, path: str | os.PathLike) -> str:
        """SHA-256 of the content (memoised by path, size and mtime): equal files share caches."""
        st = os.stat(path)
        key = (os.fspath(path), st.st_size, st.st_mtime_ns)

        def digest() -> str:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return h.hexdigest()

        return self._hashes.get_or_create(key, digest)[0]

    # ------------------------------------------------------------------ clips
    def prepare(self, video: str, protocol: TestProtocol) -> tuple[CachedClip, bool]:
        """Decoded + preprocessed views of ``video`` for ``protocol`` (cached by content)."""
        from uniformer.predict import default_max_side, prepare_video

        key = (self.file_hash(video), protocol)

        def build() -> CachedClip:
            prepared = prepare_video(video, protocol, max_side=default_max_side(protocol))
            thumbs = [thumbnails(f) for f in prepared.clips.frames]
            prepared.clips = dataclasses.replace(prepared.clips, frames=thumbs)  # drop full-size frames
            return CachedClip(key=key, prepared=prepared, thumbs=thumbs)

        return self.clips.get_or_create(key, build)

    # ------------------------------------------------------------------ latency
    def record_latency(self, name: str, seconds_per_view: float) -> None:
        with self._latency_lock:
            self._latency.setdefault(name, deque(maxlen=20)).append(float(seconds_per_view))

    def latency(self, name: str) -> float | None:
        """Median observed forward time per view (s), or None if never run."""
        with self._latency_lock:
            obs = list(self._latency.get(name, ()))
        return statistics.median(obs) if obs else None

    def memory_summary(self) -> dict[str, Any]:
        return {
            "models": [m.label for m in self.loaded_models()],
            "clips": len(self.clips),
            "records": len(self.records),
            "device": str(self.device),
        }


def _discard_upload(path: Path, folder: Path) -> None:
    """Delete a refused upload (never a file outside the upload folder): it can never be used."""
    if folder in path.parents:
        try:
            path.unlink()
            log.info("deleted refused upload %s", path.name)
        except OSError:
            pass


def iter_clip_examples(suffixes: Iterable[str] = VIDEO_SUFFIXES) -> list[str]:
    """Example clips shipped in ``assets/clips/``: the lab clips first (the default models' own
    classes, never trained on), then the real pedestrians scene, then the rest smallest first."""
    if not CLIPS_DIR.is_dir():
        return []
    files = [p for p in CLIPS_DIR.iterdir() if p.suffix.lower() in suffixes and p.is_file()]

    def order(p: Path) -> tuple[bool, bool, int]:
        return not p.name.startswith("lab_"), p.name != "pedestrians_576p_10s.mp4", p.stat().st_size

    return [str(p) for p in sorted(files, key=order)]
