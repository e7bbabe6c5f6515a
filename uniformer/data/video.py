"""Read only the frames a test protocol needs, from any video a user might drop in.

Backends: decord (``decord2``) first — it is what UniFormer's Kinetics test used and it seeks
by keyframe index — and PyAV when decord cannot open, index or decode a file (VP9/WebM,
some AV1, truncated files, decord errors mid-way). Both produce identical RGB pixels on the
clips we ship (same swscale conversion), so the fallback does not change predictions.

Rules this module keeps:

- **Only the needed frames are decoded and kept.** decord gets one ``get_batch`` of the sorted
  unique indices. PyAV demuxes the packet list once (no decoding) to learn every frame's
  presentation rank and the keyframes, then decodes forward from the nearest keyframe before
  each wanted frame and stops after the last one: 16 frames of a 10-minute file cost at most
  16 GOPs of decoding, and only the wanted frames are converted to RGB and held.
- **Huge frames are shrunk while decoding.** ``max_side=N`` caps the long side at N pixels.
  The default (``max_side=None``) leaves frames up to 1920 px on the long side untouched and
  scales anything larger so that the short side is 480 px: every released model resizes the
  short side to 224–448 anyway, and the official Kinetics data were stored at a short side of
  256–320, so this keeps accuracy while 64 frames of a 4K clip take ~80 MB instead of ~1.6 GB.
  ``max_side=0`` disables scaling.
- **Frames come out upright.** Phones store portrait video as landscape frames plus a display
  matrix (a -90° rotation for a phone held upright); players rotate on display, decoders do not.
  The rotation (nearest multiple of 90°; flips are ignored) is read from the first decoded frame's
  side data, every frame is turned by it (``np.rot90``), and :class:`VideoInfo` reports the
  upright size and the ``rotation``. decord ignores the matrix (decord2 3.4 even fails on such
  files), so rotated videos are read with PyAV.
- **Metadata may lie.** Indices past the real end (truncated files, wrong frame counts) are
  clamped to the last decodable frame; ``VideoReader.num_decodable`` then tells the real count.
- **Bad input is a ``VideoError`` with one sentence**, never an ffmpeg traceback.
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from uniformer.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    from uniformer.data.sampling import SamplingPlan, TestProtocol

Backend = Literal["auto", "decord", "pyav"]

AUTO_DOWNSCALE_ABOVE = 1920   # long side (px) above which frames are shrunk by default
AUTO_SHORT_SIDE = 480         # ... to this short side
MAX_DECODE_ERRORS = 64        # corrupt packets tolerated in one PyAV pass before giving up

# ffmpeg demuxers that read a single still image; a renamed PNG/JPEG must not pass as a video.
_IMAGE_FORMATS = {"image2", "image2pipe"}  # plus every "*_pipe" demuxer (png_pipe, jpeg_pipe, ...)
# ... and ones that turn arbitrary text/bytes into a "video" of rendered characters.
_TEXT_FORMATS = {"tty", "bin", "ansi"}
_CODEC_ALIASES = {"libdav1d": "av1", "libaom-av1": "av1", "av1_cuvid": "av1", "libvpx-vp9": "vp9",
                  "libvpx": "vp8", "h264_cuvid": "h264", "hevc_cuvid": "hevc"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as far as sampling and the UI need to know."""

    num_frames: int        # frames the decoder can index (decord's index or the packet count)
    fps: float             # average frame rate (container ``avg_frame_rate``, as PySlowFast read it)
    width: int             # upright source frame size (after the display rotation), before any downscaling
    height: int
    duration: float        # seconds
    codec: str             # e.g. "h264", "vp9", "av1"
    backend: str           # "decord" or "pyav": the backend in use (a reader switches to "pyav"
                           # and updates this if decord fails while decoding, as on VP9)
    container: str = ""    # ffmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm"
    rotation: int = 0      # display rotation applied to the frames, counter-clockwise degrees (0, 90, 180, -90)


@dataclass
class DecodeStats:
    """Counters for the last :meth:`VideoReader.get_frames` call (PyAV path), for tests/benchmarks."""

    frames_decoded: int = 0   # frames the codec produced (converted or not)
    frames_converted: int = 0  # frames converted to RGB and kept
    seeks: int = 0
    decode_errors: int = 0


def _check_file(path: str | os.PathLike) -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise VideoError(f"Video file '{p}' does not exist.")
    if os.path.isdir(p):
        raise VideoError(f"'{p}' is a directory, not a video file.")
    if os.path.getsize(p) == 0:
        raise VideoError(f"Video file '{p}' is empty (0 bytes).")
    return p


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """Output (width, height) when decoding should shrink frames, else ``None``."""
    long_side, short_side = max(width, height), min(width, height)
    if max_side is None:
        if long_side <= AUTO_DOWNSCALE_ABOVE:
            return None
        scale = min(AUTO_SHORT_SIDE / short_side, AUTO_DOWNSCALE_ABOVE / long_side)  # never upscale a thin strip
    elif max_side <= 0 or long_side <= max_side:
        return None
    else:
        scale = max_side / long_side
    # Even sizes keep every scaler (and yuv420 intermediates) happy.
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def _quiet_decord():
    import decord

    try:  # decord's bundled ffmpeg logs every corrupt packet to stderr; we raise instead.
        decord.logging.set_level(decord.logging.QUIET)
    except Exception:  # pragma: no cover - older builds
        pass
    return decord


class VideoReader:
    """Random access to a video's frames as ``uint8`` RGB arrays ``(N, H, W, 3)``.

    ``backend='auto'`` tries decord and falls back to PyAV for the rest of the reader's life as
    soon as decord fails; ``'decord'`` or ``'pyav'`` force one (a forced decord failure is a
    :class:`VideoError`). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, *, max_side: int | None = None,
                 backend: Backend = "auto") -> None:
        if backend not in ("auto", "decord", "pyav"):
            raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
        self.path = _check_file(path)
        self.max_side = max_side
        self._forced = backend
        self._vr = None                      # decord.VideoReader
        self._index: _PacketIndex | None = None
        self.num_decodable: int | None = None  # set when decoding found fewer frames than promised
        self.stats = DecodeStats()
        self.fallback_reason: str | None = None
        self._damaged = False                # decode single-threaded once a stream ended early

        meta = self._probe_container()
        self._src_w, self._src_h = meta["width"], meta["height"]   # coded size, as the decoder outputs it
        self._out = _scaled_size(self._src_w, self._src_h, max_side)
        self._turns = (meta["rotation"] // 90) % 4                 # np.rot90 quarter turns that make frames upright

        num_frames = 0
        decord_fps = 0.0
        chosen = "pyav"
        if meta["rotation"]:
            if backend == "decord":
                raise VideoError(f"decord cannot read '{self.path}' upright: it has a {meta['rotation']}° display "
                                 "rotation, which decord ignores; use the PyAV backend.")
            self.fallback_reason = f"the video has a {meta['rotation']}° display rotation, which decord ignores"
        # decord seeks MPEG-1/2 video (.mpg, .ts) to wrong frames without an error: PyAV reads those.
        if backend == "decord" or (backend == "auto" and not meta["rotation"]
                                   and meta["codec"] not in ("mpeg1video", "mpeg2video")):
            try:
                decord = _quiet_decord()
                kw = {"width": self._out[0], "height": self._out[1]} if self._out else {}
                vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=0, **kw)
                num_frames = len(vr)
                decord_fps = float(vr.get_avg_fps() or 0.0)
                if num_frames <= 0:
                    raise RuntimeError("decord reports zero frames")
                self._vr, chosen = vr, "decord"
            except Exception as err:  # decord raises its own DECORDError / RuntimeError
                self._vr = None
                if backend == "decord":
                    raise VideoError(f"decord cannot open '{self.path}' ({_short(err)}).") from None
                self.fallback_reason = f"decord could not open it: {_short(err)}"
        if chosen == "pyav":
            num_frames = self._packet_index().num_frames
        if num_frames <= 0:
            raise VideoError(f"'{self.path}' contains no video frames.")

        fps = meta["fps"] or decord_fps
        duration = meta["duration"]
        if not fps and duration:
            fps = num_frames / duration
        if not fps:
            fps = 30.0  # unknown rate: the value PySlowFast assumes as its target rate
        if not duration:
            duration = num_frames / fps
        upright_w, upright_h = (self._src_h, self._src_w) if self._turns % 2 else (self._src_w, self._src_h)
        self._info = VideoInfo(num_frames=num_frames, fps=float(fps), width=upright_w,
                               height=upright_h, duration=float(duration), codec=meta["codec"],
                               backend=chosen, container=meta["container"], rotation=meta["rotation"])

    # -- metadata -----------------------------------------------------------------------------

    def _open_av(self):
        import av

        try:
            return av.open(self.path, mode="r", metadata_errors="ignore")
        except Exception as err:
            raise VideoError(
                f"'{self.path}' could not be opened as a video: it is corrupt, truncated or not a "
                f"video file ({_short(err)})."
            ) from None

    def _probe_container(self) -> dict:
        with self._open_av() as c:
            fmt = c.format.name if c.format is not None else ""
            streams = list(c.streams.video)
            if not streams:
                kinds = sorted({s.type for s in c.streams})
                what = "it contains only " + "/".join(kinds) if kinds else "it contains no streams"
                raise VideoError(f"'{self.path}' has no video stream ({what}).")
            s = streams[0]
            if s.codec_context is None:  # ffmpeg found a stream but no decoder for it (corrupt header)
                raise VideoError(f"'{self.path}' has a video stream in an unknown codec (corrupt or unsupported file).")
            codec = s.codec_context.name
            if fmt in _TEXT_FORMATS or codec in ("ansi", "bintext", "xbin", "idf"):
                raise VideoError(f"'{self.path}' is a text file, not a video.")
            if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
                raise VideoError(f"'{self.path}' is a still image ({codec or fmt}), not a video.")
            width = int(s.codec_context.width or s.width or 0)
            height = int(s.codec_context.height or s.height or 0)
            if width <= 0 or height <= 0:
                raise VideoError(f"'{self.path}' has a video stream without a frame size (corrupt header).")
            if max(width, height) > 10 * min(width, height):  # resizing its short side would need GBs
                raise VideoError(f"'{self.path}' is {width}x{height} pixels; frames more than 10 times wider "
                                 "than high (or the reverse) are not supported.")
            rate = s.average_rate or s.guessed_rate or s.base_rate
            fps = float(rate) if rate else 0.0
            if s.duration and s.time_base:
                duration = float(s.duration * s.time_base)
            elif c.duration:
                duration = c.duration / 1_000_000  # AV_TIME_BASE
            else:
                duration = 0.0
            return {"width": width, "height": height, "fps": fps, "duration": duration,
                    "codec": _CODEC_ALIASES.get(codec, codec), "container": fmt,
                    "rotation": _display_rotation(c, s)}

    def _packet_index(self) -> _PacketIndex:
        if self._index is None:
            self._index = _PacketIndex.build(self)
        return self._index

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def backend(self) -> str:
        """The backend in use now ('decord' until it fails, then 'pyav')."""
        return self._info.backend

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the (upright) arrays :meth:`get_frames` returns."""
        h, w = (self._out[1], self._out[0]) if self._out else (self._src_h, self._src_w)
        return (w, h) if self._turns % 2 else (h, w)

    @property
    def downscaled(self) -> bool:
        return self._out is not None

    # -- reading ------------------------------------------------------------------------------

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at 0-based ``indices`` (any order, repeats allowed) → ``(N, H, W, 3)`` uint8 RGB.

        Indices past the last decodable frame are clamped to it.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        h, w = self.frame_size
        if idx.size == 0:
            return np.empty((0, h, w, 3), np.uint8)
        if (idx < 0).any():
            raise ValueError(f"frame indices must be >= 0, got {int(idx.min())}")
        self.stats = DecodeStats()
        limit = self.num_decodable if self.num_decodable is not None else self._info.num_frames
        uniq, inverse = np.unique(np.minimum(idx, limit - 1), return_inverse=True)
        batch = None
        if self._vr is not None:
            try:
                batch = self._vr.get_batch(uniq.tolist()).asnumpy()
                if batch.shape[0] != len(uniq) or batch.ndim != 4:
                    raise RuntimeError(f"decord returned {batch.shape} for {len(uniq)} frames")
            except Exception as err:
                batch = None
                if self._forced == "decord":
                    raise VideoError(f"decord failed to decode '{self.path}' ({_short(err)}).") from None
                self._switch_to_pyav(f"decord failed while decoding: {_short(err)}")
        if batch is None:
            batch = self._read_pyav(uniq)
        if self._turns:
            batch = np.ascontiguousarray(np.rot90(batch, self._turns, axes=(1, 2)))
        if len(uniq) == len(idx) and np.array_equal(uniq, idx):
            return np.ascontiguousarray(batch)
        return batch[inverse.reshape(-1)]

    def _switch_to_pyav(self, reason: str) -> None:
        self._vr = None
        self.fallback_reason = reason
        index = self._packet_index()
        self._info = replace(self._info, backend="pyav")
        if index.num_frames < self._info.num_frames:
            self.num_decodable = index.num_frames

    def _convert(self, frame) -> np.ndarray:
        self.stats.frames_converted += 1
        if self._out:
            return frame.to_ndarray(format="rgb24", width=self._out[0], height=self._out[1],
                                    interpolation="BICUBIC")  # BICUBIC: what decord's scaler uses
        return frame.to_ndarray(format="rgb24", width=self._src_w, height=self._src_h)  # size may change mid-stream

    def _read_pyav(self, targets: np.ndarray) -> np.ndarray:
        threads = not self._damaged
        got = self._decode_targets(targets, allow_seek=True, frame_threads=threads)
        if got is None:  # a seek landed after its target: one plain pass from the start
            got = self._decode_targets(targets, allow_seek=False, frame_threads=threads)
        found, max_seen, eof = got
        if eof and threads and max_seen + 1 < self._packet_index().num_frames:
            # The stream ended before its last packet (damaged file). Frame-threaded decoding
            # silently drops the frames in flight around a corrupt packet, so from now on this
            # reader decodes single-threaded to find the real end.
            self._damaged = True
            found, max_seen, eof = self._decode_targets(targets, allow_seek=False, frame_threads=False)
        if not found:
            raise VideoError(f"'{self.path}' contains no decodable video frames (it is corrupt or truncated).")
        if eof and max_seen + 1 < self._info.num_frames:
            self.num_decodable = max_seen + 1
        have = sorted(found)
        first = found[have[0]]
        out = np.empty((len(targets),) + first.shape, np.uint8)
        for i, t in enumerate(targets.tolist()):
            arr = found.get(t)
            if arr is None:
                # Past the real end, or a frame whose packet would not decode: nearest earlier
                # decodable frame (the last one for indices beyond the end).
                pos = bisect.bisect_right(have, t) - 1
                arr = found[have[pos]] if pos >= 0 else first
            out[i] = arr
        return out

    def _decode_targets(self, targets: np.ndarray, *, allow_seek: bool, frame_threads: bool):
        """Decode forward, seeking to a keyframe whenever that skips work; keep only ``targets``.

        Returns ``(found, max_index_seen, hit_end)`` — RGB arrays by frame index, including the
        stream's last frame when a target lies past it — or ``None`` if a seek landed after its
        target.
        """
        index = self._packet_index()
        can_seek = allow_seek and index.seekable
        found: dict[int, np.ndarray] = {}
        want = targets.tolist()
        ti = 0
        max_seen = -1
        pending, pending_idx = None, -1   # newest decoded frame not converted yet
        eof = False
        with self._open_av() as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO" if frame_threads else "SLICE"
            frames: Iterator | None = None
            cur = -1  # presentation index of the newest frame produced since the last (re)start

            def needs_seek(t: int) -> bool:
                if not can_seek:
                    return False
                key = index.keyframe_at_or_before(t)
                return key > 0 if frames is None else key > cur + 1

            while ti < len(want) and not eof:
                t = want[ti]
                check_landing = False
                if needs_seek(t):
                    key = index.keyframe_at_or_before(t)
                    c.seek(index.pts_of(key), stream=s, backward=True, any_frame=False)
                    self.stats.seeks += 1
                    frames, cur, check_landing = self._iter_frames(c, s), key - 1, True
                elif frames is None:
                    frames, cur = self._iter_frames(c, s), -1
                for frame in frames:
                    i = index.rank_of(frame.pts, cur + 1) if index.seekable else cur + 1
                    if i <= cur:
                        continue  # open-GOP frames shown before the keyframe we sought to
                    if check_landing and (i > t or index.rank_of(frame.pts, -1) < 0):  # MPEG-PS shifts pts after a seek
                        return None
                    check_landing = False
                    cur = i
                    max_seen = max(max_seen, i)
                    while ti < len(want) and want[ti] < i:
                        ti += 1  # never produced (corrupt packet): filled from a neighbour later
                    if ti < len(want) and want[ti] == i:
                        found[i] = self._convert(frame)
                        ti += 1
                        pending = None
                    else:
                        pending, pending_idx = frame, i
                    if ti >= len(want) or needs_seek(want[ti]):
                        break
                else:
                    eof = True
        if eof and pending is not None and pending_idx == max_seen and pending_idx not in found:
            found[pending_idx] = self._convert(pending)  # stands in for every index past the end
        return found, max_seen, eof

    def _iter_frames(self, c, s) -> Iterator:
        """Decoded frames in presentation order; corrupt packets are skipped, not fatal."""
        import av

        demux = c.demux(s)
        flushed = False
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                flushed = True  # PyAV's final empty packet already drained the decoder
                break
            except (av.FFmpegError, IndexError):  # IndexError: PyAV meets a stream born mid-file (corrupt TS)
                break  # demuxer gave up (truncated file): drain what the decoder holds
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.stats.decode_errors += 1
                if self.stats.decode_errors > MAX_DECODE_ERRORS:
                    break
                continue
            for frame in decoded:
                self.stats.frames_decoded += 1
                yield frame
        if not flushed:
            try:
                for frame in s.codec_context.decode(None):
                    self.stats.frames_decoded += 1
                    yield frame
            except av.FFmpegError:
                pass

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        self._vr = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self._info
        rot = f", rotated {i.rotation}°" if i.rotation else ""
        return (f"VideoReader('{self.path}', {i.width}x{i.height}{rot}, {i.num_frames} frames @ "
                f"{i.fps:.3g} fps, {i.codec}, backend={i.backend})")


@dataclass
class _PacketIndex:
    """Presentation order of a stream's packets, from one demux pass (no decoding)."""

    num_frames: int
    sorted_pts: np.ndarray | None = None   # pts of frame i (presentation order), if known
    keyframes: np.ndarray | None = None    # presentation indices of keyframes, ascending
    _rank: dict = field(default_factory=dict)

    @property
    def seekable(self) -> bool:
        return self.sorted_pts is not None and self.keyframes is not None and len(self.keyframes) > 0

    @classmethod
    def build(cls, reader: VideoReader) -> _PacketIndex:
        import av

        pts: list[int | None] = []
        key: list[bool] = []
        with reader._open_av() as c:
            s = c.streams.video[0]
            try:
                for p in c.demux(s):
                    if p.size == 0 or p.is_discard:
                        continue  # the final flush packet / frames an edit list drops
                    pts.append(p.pts)
                    key.append(bool(p.is_keyframe))
            except (av.FFmpegError, IndexError):  # IndexError: PyAV meets a stream born mid-file (corrupt TS)
                pass  # truncated: what was demuxed is what exists
        n = len(pts)
        if n == 0 or any(p is None for p in pts) or len(set(pts)) != n:
            return cls(num_frames=n)  # no reliable timestamps: sequential decoding only
        arr = np.asarray(pts, dtype=np.int64)
        order = np.argsort(arr, kind="stable")
        sorted_pts = arr[order]
        ranks = np.empty(n, np.int64)
        ranks[order] = np.arange(n)
        keyframes = np.sort(ranks[np.asarray(key, bool)])
        if len(keyframes) == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes]) if len(keyframes) else np.array([0])
        return cls(num_frames=n, sorted_pts=sorted_pts, keyframes=keyframes,
                   _rank={int(p): i for i, p in enumerate(sorted_pts.tolist())})

    def keyframe_at_or_before(self, i: int) -> int:
        pos = int(np.searchsorted(self.keyframes, i, side="right")) - 1
        return int(self.keyframes[max(pos, 0)])

    def pts_of(self, i: int) -> int:
        return int(self.sorted_pts[i])

    def rank_of(self, pts: int | None, default: int) -> int:
        if pts is None:
            return default
        return self._rank.get(int(pts), default)


def _display_rotation(c, s, max_packets: int = 64) -> int:
    """Counter-clockwise display rotation of stream ``s`` (0, 90, 180 or -90), from the display
    matrix ffmpeg attaches to decoded frames (PyAV has no stream-level getter; ``frame.rotation``
    is that matrix's angle). Costs one decoded frame; 0 when none decodes in ``max_packets``."""
    try:
        for n, packet in enumerate(c.demux(s)):
            if n >= max_packets:
                break
            try:
                frames = packet.decode()
            except Exception:  # a corrupt packet: try the next one
                continue
            for frame in frames:
                degrees = float(getattr(frame, "rotation", 0) or 0)
                return {0: 0, 1: 90, 2: 180, 3: -90}[round(degrees / 90) % 4]
    except Exception:  # demuxer gave up (truncated, corrupt): the decoders will say so later
        pass
    return 0


def _short(err: BaseException) -> str:
    """First line of an exception, without decord's C++ stack noise, for one-sentence errors."""
    strerror = getattr(err, "strerror", None)  # av.FFmpegError: "Invalid data found when ..."
    if isinstance(strerror, str) and strerror:
        return strerror.rstrip(".")
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    for marker in ("Check failed:", "ERROR"):
        if marker in text:
            text = text[text.index(marker):]
            break
    return text[:160].rstrip(".")


# ----------------------------------------------------------------------------------------------
# convenience
# ----------------------------------------------------------------------------------------------

def probe(path: str | os.PathLike, *, max_side: int | None = None, backend: Backend = "auto") -> VideoInfo:
    """Metadata of a video without decoding any frame (raises :class:`VideoError` on bad input)."""
    with VideoReader(path, max_side=max_side, backend=backend) as r:
        return r.info


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray, **kw) -> np.ndarray:
    """``VideoReader(path, **kw).get_frames(indices)`` in one call."""
    with VideoReader(path, **kw) as r:
        return r.get_frames(indices)


@dataclass
class Clips:
    """Decoded frames for every temporal clip of a protocol, plus how they were chosen."""

    frames: list[np.ndarray]   # one (T, H, W, 3) uint8 array per temporal clip
    plan: SamplingPlan
    info: VideoInfo
    backend: str


def read_clips(path: str | os.PathLike, protocol: TestProtocol, **kw) -> Clips:
    """Sample a protocol's clips and decode each needed frame once.

    If decoding reveals fewer frames than the container promised (truncated file), the clips
    are re-planned over the frames that really exist, so no clip is made of repeats of the
    last frame just because the metadata lied.
    """
    from uniformer.data.sampling import plan_sampling

    with VideoReader(path, **kw) as r:
        info = r.info
        plan = plan_sampling(protocol, info.num_frames, info.fps)
        frames = r.get_frames(np.concatenate(plan.clips))
        if r.num_decodable is not None and r.num_decodable < plan.num_frames_in_video:
            plan = plan_sampling(protocol, r.num_decodable, info.fps)
            frames = r.get_frames(np.concatenate(plan.clips))
        t = protocol.num_frames
        return Clips(frames=[frames[i * t:(i + 1) * t] for i in range(len(plan.clips))],
                     plan=plan, info=r.info, backend=r.backend)
