"""Browser previews (issue 15.4): which clips a browser cannot play, the bounded H.264 copy the
player shows instead, and that the models still read the original file."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from app import preview
from app.preview import PreviewError, browser_playability, make_preview, original_of, preview_for, preview_path
from tests.conftest import REPO_ROOT

CLIPS = REPO_ROOT / "assets" / "clips"


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001
        return False


# HEVC when this PyAV has libx265; else MPEG-4 Part 2 in AVI, which no browser plays either.
HEVC = ("libx265", ".mp4", "hevc") if _has_encoder("libx265") else ("mpeg4", ".avi", "mpeg4")


def write_clip(path: Path, codec: str, *, size: tuple[int, int] = (160, 96), frames: int = 12, rate: int = 10,
               audio: str | None = None, pix_fmt: str = "yuv420p", rotation: int = 0) -> Path:
    """A clip with a white bar moving right (so frames differ), optional silent audio track."""
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if codec == "libx265":
            s.options = {"preset": "ultrafast", "x265-params": "log-level=none"}
        if rotation:
            s.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream(audio, rate=44100)
            a.codec_context.format, a.codec_context.layout = "fltp", "stereo"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[: h // 2, (i * 8) % w: (i * 8) % w + 8] = 255  # top half only: shows which way is up
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            fs = a.codec_context.frame_size or 1024
            for k in range(int(frames / rate * 44100 / fs)):
                fr = av.AudioFrame.from_ndarray(np.zeros((2, fs), np.float32), format="fltp", layout="stereo")
                fr.sample_rate, fr.pts = 44100, k * fs
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def _video(path: Path) -> tuple[str, str, int, int, int, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return (s.codec_context.name, s.codec_context.pix_fmt, s.width, s.height, frames,
                float(c.duration or 0) / 1e6)


@pytest.fixture(scope="module")
def hevc(tmp_path_factory) -> Path:
    codec, ext, _ = HEVC
    return write_clip(tmp_path_factory.mktemp("hevc") / f"clip{ext}", codec)


# ----------------------------------------------------------------------------- the decision
def test_clips_browsers_play_need_no_preview(tmp_path):
    for clip in ("pedestrians_576p_10s.mp4", "codec_vp9.webm", "codec_av1.mp4"):
        check = browser_playability(CLIPS / clip)
        assert check.playable, (clip, check)
    check = browser_playability(write_clip(tmp_path / "aac.mp4", "libx264", audio="aac"))
    assert check.playable and check.audio_codecs == ("aac",)


def test_hevc_mp3_mkv_and_high444_need_a_preview(tmp_path, hevc):
    check = browser_playability(hevc)
    assert not check.playable and check.video_codec == HEVC[2] and check.reason
    mp3 = browser_playability(write_clip(tmp_path / "mp3.mp4", "libx264", audio="mp3"))
    assert not mp3.playable and mp3.video_codec == "h264" and mp3.reason == "MP3 audio"
    mkv = browser_playability(write_clip(tmp_path / "h264.mkv", "libx264"))
    assert not mkv.playable and "MKV" in mkv.reason
    hi444 = browser_playability(write_clip(tmp_path / "444.mp4", "libx264", pix_fmt="yuv444p"))
    assert not hi444.playable and "yuv444p" in hi444.reason
    assert browser_playability(tmp_path / "missing.mp4").playable  # nothing to transcode: the model path says why


# ----------------------------------------------------------------------------- the transcode
def test_preview_is_h264_yuv420p_faststart_and_same_frames(tmp_path, hevc):
    out = make_preview(hevc, tmp_path / "p.mp4")
    codec, pix, w, h, frames, _ = _video(out)
    assert (codec, pix, w, h, frames) == ("h264", "yuv420p", 160, 96, 12)
    head = out.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < max(head.find(b"mdat"), 10**9) and head.find(b"moov") != -1  # faststart
    assert browser_playability(out).playable
    assert not list(tmp_path.glob(".*part"))  # no half-written file left behind


def test_preview_is_bounded_in_size_rate_and_duration(tmp_path):
    src = write_clip(tmp_path / "big.avi", "mpeg4", size=(800, 600), frames=60, rate=60)  # 1 s at 60 fps
    out = make_preview(src, tmp_path / "p.mp4", max_seconds=0.5, max_fps=30)
    _, _, w, h, frames, duration = _video(out)
    assert min(w, h) == 480 and (w, h) == (640, 480)  # short side ≤ 480, aspect kept, even sizes
    assert 14 <= frames <= 16 and duration <= 0.6  # 0.5 s at 30 fps, not 30 frames at 60 fps


def test_preview_is_upright_for_a_rotated_phone_clip(tmp_path):
    codec, ext, _ = HEVC
    src = write_clip(tmp_path / f"phone{ext}", codec, size=(160, 96), rotation=-90)
    out = make_preview(src, tmp_path / "p.mp4")
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (96, 160) and not frame.rotation
        img = frame.to_ndarray(format="rgb24").astype(float)
    # stored: bright bar in the top half; a -90° matrix (clockwise turn) puts it in the right half
    assert img[:, 48:].mean() > 3 * img[:, :48].mean()


def test_a_clip_that_cannot_be_transcoded_gets_one_sentence(tmp_path, hevc):
    broken = tmp_path / hevc.name
    data = bytearray(hevc.read_bytes())
    if hevc.suffix == ".mp4":  # keep the boxes, zero every coded frame inside mdat
        start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4
    else:
        start, end = len(data) // 4, len(data) * 3 // 4
    data[start:end] = bytes(end - start)
    broken.write_bytes(bytes(data))
    with pytest.raises(PreviewError):
        make_preview(broken, tmp_path / "p.mp4")
    result = preview_for(broken)
    assert not result.made and result.path == str(broken)
    assert result.note.count(". ") == 0 and result.note.endswith(".") and "no preview could be made" in result.note
    assert not preview_path(broken).exists()


# ----------------------------------------------------------------------------- in the app
def test_preview_sits_beside_the_upload_and_maps_back(tmp_path, hevc):
    upload = tmp_path / "abc123" / hevc.name
    upload.parent.mkdir()
    upload.write_bytes(hevc.read_bytes())
    result = preview_for(upload, allowed_dir=tmp_path)
    assert result.made and Path(result.path) == preview_path(upload) and Path(result.path).parent == upload.parent
    assert "the models read the original file" in result.note and HEVC[2].upper()[:4] in result.note.upper()
    assert original_of(result.path) == str(upload) and original_of(upload) == str(upload)
    assert preview_for(result.path, allowed_dir=tmp_path).path == result.path  # reused, not made twice
    assert preview.browser_note(upload) == result.note
    outside = preview_for(hevc, allowed_dir=tmp_path / "abc123")  # a bundled clip: never written beside
    assert not outside.made and not preview_path(hevc).exists() and "the models read the file" in outside.note


def test_prediction_reads_the_original_not_the_preview(tmp_path, monkeypatch, tiny, hevc):
    from app import tab_predict
    from app.state import AppConfig, AppState

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    upload = tmp_path / "f00d" / hevc.name
    upload.parent.mkdir()
    upload.write_bytes(hevc.read_bytes())
    shown = preview_for(upload, allowed_dir=tmp_path)
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False))
    assert state.check_path(shown.path) == str(upload)
    result, _, _, status = tab_predict.predict(state, shown.path, models=[tiny[0]], views="1x1")
    assert result["video"]["codec"] == HEVC[2]  # decoded from the upload, not the H.264 preview
    assert shown.note in status
