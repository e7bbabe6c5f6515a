"""Browser previews of clips a browser cannot play (HEVC, MPEG-4 Part 2, MP3 audio, MKV/AVI, ...).

Why: the page shows the uploaded clip in an HTML ``<video>``, and browsers play only a few codec
and container combinations. Anything else used to leave a blank player and a "Video not
playable" toast over the result cards, although the models read the file without trouble (PyAV
decodes everything ffmpeg does). So, on upload:

1. :func:`browser_playability` reads the container, the video codec (and its pixel format) and the
   audio codecs, and checks them against :data:`PLAYABLE` (one place for the policy);
2. if the clip is not playable, :func:`make_preview` writes a small, bounded H.264 copy with PyAV
   (yuv420p, ``+faststart``, short side at most 480 px, at most 30 fps and 20 s, silent, upright)
   next to the upload, named ``<name>.preview.mp4``; the player shows that copy;
3. :func:`original_of` maps the preview back to the upload, so prediction, attention and
   redundancy still read the original file (``AppState.check_path`` calls it).

The preview lives in the upload's own folder inside Gradio's cache, so Gradio serves it without
copying and deletes it with the upload (``delete_cache``, and at shutdown). A clip that cannot be
transcoded gets one sentence on the page, never a traceback or a toast.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

PREVIEW_SUFFIX = ".preview.mp4"
PREVIEW_SHORT_SIDE = 480   # px: "480p"
PREVIEW_MAX_SECONDS = 20.0
PREVIEW_MAX_FPS = 30.0

# container → (video codecs, audio codecs) a current Chrome / Firefox / Safari plays.
# Keys are how the file presents itself: ffmpeg's demuxer name and, for Matroska, the extension
# (a ``.webm`` is Matroska with WebM codecs; a ``.mkv`` is not played by every browser).
MP4 = "mp4"
WEBM = "webm"
PLAYABLE: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    MP4: (frozenset({"h264", "vp9", "av1"}), frozenset({"aac", "opus"})),
    WEBM: (frozenset({"vp8", "vp9", "av1"}), frozenset({"opus", "vorbis"})),
}
# H.264 beyond 8-bit 4:2:0 (High 10, 4:2:2, 4:4:4 profiles) does not decode in browsers.
H264_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
_NAMES = {"hevc": "HEVC/H.265", "h264": "H.264", "mpeg4": "MPEG-4 Part 2", "mp3": "MP3", "mp3float": "MP3",
          "ac3": "AC-3", "pcm_s16le": "PCM"}


class PreviewError(Exception):
    """A preview could not be made; ``str(err)`` says why in a few words (no sentence of its own)."""


@dataclass(frozen=True)
class Playability:
    """Whether a browser can play a file, and if not, the reason in a few words."""

    playable: bool
    container: str            # "mp4", "webm" or the demuxer / extension name
    video_codec: str | None
    audio_codecs: tuple[str, ...]
    reason: str = ""          # e.g. "HEVC/H.265 video", "MP3 audio", "the MKV container"


def _container_kind(path: str, demuxer: str) -> str:
    ext = Path(path).suffix.lower()
    if demuxer.startswith("mov,mp4"):
        return MP4 if ext in (".mp4", ".m4v", "") else ext.lstrip(".")  # .mov / .3gp: not every browser
    if demuxer.startswith("matroska"):
        return WEBM if ext == ".webm" else ext.lstrip(".") or "mkv"
    return demuxer.split(",")[0]


def _codec_name(stream: object) -> str:
    cc = stream.codec_context  # type: ignore[attr-defined]
    return str(getattr(cc.codec, "canonical_name", None) or cc.name)


def browser_playability(path: str | os.PathLike) -> Playability:
    """Read the container and codecs (no decoding) and apply :data:`PLAYABLE`.

    A file PyAV cannot open is reported playable: there is nothing to transcode, and the
    prediction says what is wrong with it in its own sentence."""
    import av

    path = os.fspath(path)
    try:
        with av.open(path) as c:
            kind = _container_kind(path, c.format.name)
            video = c.streams.video[0] if c.streams.video else None
            vcodec = _codec_name(video) if video is not None else None
            pix = video.codec_context.pix_fmt if video is not None else None
            audio = tuple(_codec_name(s) for s in c.streams.audio)
    except Exception:  # noqa: BLE001 - not a video PyAV can read: the model path reports it
        return Playability(True, Path(path).suffix.lstrip("."), None, ())
    if vcodec is None:
        return Playability(True, kind, None, audio)
    if kind not in PLAYABLE:
        return Playability(False, kind, vcodec, audio, f"the {kind.upper()} container")
    video_ok, audio_ok = PLAYABLE[kind]
    if vcodec not in video_ok:
        return Playability(False, kind, vcodec, audio, f"{_NAMES.get(vcodec, vcodec)} video")
    if vcodec == "h264" and pix not in H264_PIXEL_FORMATS:
        return Playability(False, kind, vcodec, audio, f"H.264 video in {pix}")
    bad_audio = [a for a in audio if a not in audio_ok]
    if bad_audio:
        return Playability(False, kind, vcodec, audio, f"{_NAMES.get(bad_audio[0], bad_audio[0])} audio")
    return Playability(True, kind, vcodec, audio)


# ------------------------------------------------------------------------------ naming
def preview_path(original: str | os.PathLike) -> Path:
    """Where the preview of ``original`` is written: beside it, ``<name>.preview.mp4``."""
    p = Path(original)
    return p.with_name(p.name + PREVIEW_SUFFIX)


def original_of(path: str | os.PathLike) -> str:
    """The upload a preview was made from (its sibling without the suffix), else ``path`` itself."""
    p = os.fspath(path)
    if p.endswith(PREVIEW_SUFFIX):
        original = p[: -len(PREVIEW_SUFFIX)]
        if os.path.isfile(original):
            return original
    return p


# ------------------------------------------------------------------------------ transcoding
def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def preview_size(width: int, height: int, short_side: int = PREVIEW_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) with the short side at most ``short_side``, both even (yuv420p)."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    return _even(width * scale), _even(height * scale)


def make_preview(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    short_side: int = PREVIEW_SHORT_SIDE,
    max_seconds: float = PREVIEW_MAX_SECONDS,
    max_fps: float = PREVIEW_MAX_FPS,
) -> Path:
    """Transcode the first ``max_seconds`` of ``path`` to a silent H.264 mp4 a browser plays.

    Upright (the display rotation is applied to the pixels), yuv420p, ``+faststart``, at most
    ``max_fps`` (frames dropped by timestamp), written to a temporary name and renamed, so a
    half-written file is never served. Raises :class:`PreviewError` (the reason in a few words)
    when the clip cannot be decoded or encoded.
    """
    import av

    src = os.fspath(path)
    dst = Path(out) if out is not None else preview_path(src)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.part")  # two uploads of one file
    written = 0
    try:
        with av.open(src) as c:
            if not c.streams.video:
                raise PreviewError("the file has no video stream")
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            rate = float(s.average_rate or s.guessed_rate or 25)
            fps = min(rate, max_fps) if rate > 0 else 25.0
            start = float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as o:
                enc = None
                for frame in c.decode(s):
                    t = (float(frame.time) if frame.time is not None else written / fps) - start
                    if t >= max_seconds:
                        break
                    if t + 0.5 / fps < written / fps:  # above max_fps: drop this frame
                        continue
                    turns = {0: 0, 1: 1, 2: 2, 3: 3}[round(float(getattr(frame, "rotation", 0) or 0) / 90) % 4]
                    if turns:  # display matrix: make the pixels upright (the preview carries no matrix)
                        rgb = np.rot90(frame.to_ndarray(format="rgb24"), turns)
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                    if enc is None:
                        out_rate = Fraction(fps).limit_denominator(1001)
                        enc = o.add_stream("libx264", rate=out_rate)
                        enc.width, enc.height = preview_size(frame.width, frame.height, short_side)
                        enc.pix_fmt = "yuv420p"
                        enc.options = {"preset": "veryfast", "crf": "28"}
                    small = frame.reformat(width=enc.width, height=enc.height, format="yuv420p")
                    small.pts, small.time_base = written, 1 / out_rate
                    for packet in enc.encode(small):
                        o.mux(packet)
                    written += 1
                if enc is None:
                    raise PreviewError("no frame could be decoded")
                for packet in enc.encode(None):
                    o.mux(packet)
        os.replace(tmp, dst)
    except PreviewError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # noqa: BLE001 - ffmpeg's errors become a few words
        tmp.unlink(missing_ok=True)
        text = str(err).strip()
        why = getattr(err, "strerror", None) or (text.splitlines()[0] if text else type(err).__name__)
        raise PreviewError(str(why).rstrip(".")[:160]) from None
    return dst


# ------------------------------------------------------------------------------ the app's step
@dataclass(frozen=True)
class Preview:
    """What the player should show for an uploaded clip, and the sentence to say about it."""

    path: str           # the preview when one was made, else the upload itself
    note: str = ""      # "" when the clip plays as it is
    made: bool = False


def preview_for(path: str | os.PathLike, *, allowed_dir: str | os.PathLike | None = None) -> Preview:
    """The player's file for ``path``: the upload itself when a browser plays it, else a preview
    (made once; reused while it exists). Previews are only written inside ``allowed_dir`` (the
    upload folder): a bundled clip is never written beside."""
    src = original_of(path)
    name = Path(src).name
    check = browser_playability(src)
    if check.playable:
        return Preview(src)
    dst = preview_path(src)
    inside = allowed_dir is None or Path(os.path.realpath(src)).is_relative_to(os.path.realpath(allowed_dir))
    if not inside:
        return Preview(src, f"Browsers cannot play '{name}' ({check.reason}), so the player may stay blank; the "
                            "models read the file as it is.")
    if not dst.is_file():
        try:
            make_preview(src, dst)
        except PreviewError as err:
            return Preview(src, f"Browsers cannot play '{name}' ({check.reason}) and no preview could be made "
                                f"({err}); the models still read the original file.")
    return Preview(str(dst), _preview_note(name, check), made=True)


def _preview_note(name: str, check: Playability) -> str:
    return (f"Browsers cannot play '{name}' ({check.reason}): the player shows a silent H.264 preview (at most "
            f"{PREVIEW_SHORT_SIDE}p, first {PREVIEW_MAX_SECONDS:g} s); the models read the original file.")


def browser_note(original: str | os.PathLike) -> str:
    """The sentence for a prediction's status: "" for a clip a browser plays or one with no preview
    (an API caller's file: no player involved), else what the player shows and what the models read."""
    check = browser_playability(original)
    if check.playable or not preview_path(original).is_file():
        return ""
    return _preview_note(Path(original).name, check)


# ------------------------------------------------------------------------------ the page
# The upload's own <video> fails on such a clip before the preview arrives, and Gradio turns that
# into a "Video not playable" toast over the result cards: the page swallows that one error (the
# capture phase runs before the player's listener) and says what happened in the status line.
PLAYER_HEAD = """<script>
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t.tagName === "VIDEO" && t.closest && t.closest("#video-input")) { e.stopImmediatePropagation(); }
}, true);
</script>"""


def player_update(video: str | None) -> tuple[object, str]:
    """Upload event: ``(video update, status markdown)``; the player gets the preview when one
    was made, and the status says so (or why none could be made)."""
    import gradio as gr

    from app.state import upload_folder

    if not video:
        return gr.update(), ""
    p = preview_for(video, allowed_dir=upload_folder())
    return (gr.update(value=p.path) if p.made else gr.update()), p.note
