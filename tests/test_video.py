"""Decoding: every shipped clip, both backends, the fallback, bad input, huge and long videos."""
from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.media import write_rotated_clip
from uniformer.data.sampling import TestProtocol, plan_sampling
from uniformer.data.video import VideoInfo, VideoReader, probe, read_clips, read_frames
from uniformer.errors import VideoError

ASSET_CLIPS = REPO_ROOT / "assets" / "clips"

# Frame counts from the shipped clips' documented duration x rate (assets/clips/README.md:
# 10 s @ 10 fps, 3 s @ 10 fps) and from the generated clips below (written here, frame by frame).
EXPECTED_FRAMES = {
    "pedestrians_576p_10s.mp4": 100,
    "codec_vp9.webm": 30,
    "codec_av1.mp4": 30,
    "gen_25fps_with_audio.mp4": 50,
    "gen_29.97fps_index_at_end.mp4": 60,
}


def _write_generated(path: Path, num_frames: int, width: int, height: int, rate: int | Fraction,
                     audio: bool = False) -> Path:
    """A clip with the traits real footage brings and the shipped clips lack: 25 fps with an AAC
    track beside the video, or NTSC 30000/1001 fps with the index (moov) after the samples
    (PyAV's mp4 muxer writes it last); H.264 with B-frames and a keyframe every 12 frames."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast", "x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
        a = c.add_stream("aac", rate=16000) if audio else None
        if a is not None:
            a.layout = "mono"
        for i in range(num_frames):  # every frame differs: a moving ramp and a changing blue level
            img = np.stack([(xx * 4 + i * 7) % 256, (yy * 4) % 256, np.full_like(xx, i * 19 % 256)], -1)
            for packet in s.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
        if a is not None:
            for pts in range(0, int(16000 * num_frames / float(rate)), 1024):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, pts
                for packet in a.encode(frame):
                    c.mux(packet)
            for packet in a.encode(None):
                c.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip_paths(tmp_path_factory) -> dict[str, Path]:
    """Every test clip: the ones shipped in assets/clips plus two generated here (~40 KB, < 1 s)."""
    tmp = tmp_path_factory.mktemp("generated_clips")
    paths = {n: ASSET_CLIPS / n for n in EXPECTED_FRAMES if not n.startswith("gen_")}
    paths["gen_25fps_with_audio.mp4"] = _write_generated(tmp / "gen_25fps_with_audio.mp4", 50, 160, 90, 25,
                                                         audio=True)
    paths["gen_29.97fps_index_at_end.mp4"] = _write_generated(tmp / "gen_29.97fps_index_at_end.mp4", 60, 176, 144,
                                                              Fraction(30000, 1001))
    return paths


def _clip_path(name: str) -> Path:
    return ASSET_CLIPS / name


def test_every_clip_is_available(clip_paths):
    # A missing clip is a failure, not a skip: everything the tests read is in the repository.
    missing = [n for n, p in clip_paths.items() if not p.exists()]
    assert not missing, f"clips not found: {missing}"
    shipped = {p.name for p in ASSET_CLIPS.iterdir() if p.suffix in (".mp4", ".webm")}
    assert {"pedestrians_576p_10s.mp4", "codec_vp9.webm", "codec_av1.mp4"} <= shipped
    assert sum(p.stat().st_size for p in ASSET_CLIPS.iterdir()) < 2_000_000
    with av.open(str(clip_paths["gen_25fps_with_audio.mp4"])) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]
    data = clip_paths["gen_29.97fps_index_at_end.mp4"].read_bytes()
    assert data.find(b"moov") > len(data) // 2


def _decode_all_pyav(path: Path) -> list[np.ndarray]:
    """Reference: decode every frame with plain PyAV, no seeking, no tricks."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _decord_count(path: Path) -> int | None:
    import decord

    try:
        return len(decord.VideoReader(str(path)))
    except Exception:
        return None


@pytest.mark.parametrize("name", sorted(EXPECTED_FRAMES))
def test_clip_decodes_to_expected_frame_count(name, clip_paths):
    path = clip_paths[name]
    expected = EXPECTED_FRAMES[name]
    ref = _decode_all_pyav(path)
    assert len(ref) == expected

    info = probe(path)
    assert isinstance(info, VideoInfo)
    assert info.num_frames == expected
    assert (info.height, info.width) == ref[0].shape[:2]
    assert info.fps > 0 and info.duration == pytest.approx(expected / info.fps, rel=0.05)

    count = _decord_count(path)
    if count is not None:  # decord opened it: both backends must agree on the length
        assert count == expected
    assert VideoReader(path, backend="pyav").info.num_frames == expected

    idx = [expected - 1, 0, expected // 2, expected // 2, 3]
    for backend in ("auto", "pyav"):
        frames = read_frames(path, idx, backend=backend)
        assert frames.shape == (len(idx),) + ref[0].shape and frames.dtype == np.uint8
        for got, i in zip(frames, idx):
            assert np.array_equal(got, ref[i]), (backend, i)


def test_codec_names():
    assert probe(_clip_path("codec_vp9.webm")).codec == "vp9"
    assert probe(_clip_path("codec_av1.mp4")).codec == "av1"
    assert probe(_clip_path("pedestrians_576p_10s.mp4")).codec == "h264"


def test_vp9_goes_through_fallback_when_decord_cannot():
    import decord

    path = _clip_path("codec_vp9.webm")
    try:
        decord.VideoReader(str(path)).get_batch([0, 29]).asnumpy()
        decord_ok = True
    except Exception:
        decord_ok = False
    r = VideoReader(path)
    frames = r.get_frames([0, 29])
    ref = _decode_all_pyav(path)
    assert np.array_equal(frames[0], ref[0]) and np.array_equal(frames[1], ref[29])
    if decord_ok:
        assert r.backend == "decord"
    else:
        assert r.backend == "pyav" and r.fallback_reason
        with pytest.raises(VideoError):
            VideoReader(path, backend="decord").get_frames([0, 29])


# ---------------------------------------------------------------------------- synthetic videos

def _write_video(path: Path, frames, fps: int = 25, codec: str = "libx264", options: dict | None = None,
                 gop: int | None = None) -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if gop:
            s.codec_context.gop_size = gop
        if options:
            s.options = options
        for arr in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


BITS = 12  # frame index written as 12 black/white stripes, 8 px each


def _stripes(i: int, height: int = 32) -> np.ndarray:
    bits = [(i >> b) & 1 for b in range(BITS)]
    row = np.repeat(np.array(bits, np.uint8) * 255, 8)
    return np.broadcast_to(row[None, :, None], (height, BITS * 8, 3)).copy()


def _read_stripes(frame: np.ndarray) -> int:
    cols = frame.reshape(frame.shape[0], BITS, -1, 3).mean(axis=(0, 2, 3))
    return int(sum(1 << b for b, v in enumerate(cols) if v > 128))


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    # 1200 frames (48 s @ 25 fps), a keyframe every 30 frames, B-frames on (pts != dts order).
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return _write_video(path, (_stripes(i) for i in range(1200)), gop=30,
                        options={"preset": "veryfast", "x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=2"})


def test_long_video_frames_are_the_right_ones(long_video):
    idx = [1199, 0, 31, 600, 600, 29, 30, 877]
    for backend in ("auto", "pyav"):
        frames = read_frames(long_video, idx, backend=backend)
        assert [_read_stripes(f) for f in frames] == idx, backend


def test_sixteen_frames_of_a_long_video_do_not_decode_everything(long_video):
    r = VideoReader(long_video, backend="pyav")
    assert r.info.num_frames == 1200

    # UniFormer 16x4 single clip: 64 frames in the middle of the video.
    plan = plan_sampling(TestProtocol("uniformer_dense", 16, 4), 1200, r.info.fps)
    frames = r.get_frames(plan.clips[0])
    assert [_read_stripes(f) for f in frames] == plan.clips[0].tolist()
    assert r.stats.seeks >= 1
    assert r.stats.frames_converted == 16
    assert r.stats.frames_decoded <= 64 + 2 * 30

    # 16 frames spread over the whole video: at most one GOP of decoding per frame.
    spread = np.linspace(0, 1199, 16).astype(int)
    frames = r.get_frames(spread)
    assert [_read_stripes(f) for f in frames] == spread.tolist()
    assert r.stats.frames_decoded <= 16 * 30 + 30 < 1200
    assert r.stats.frames_converted == 16

    # The first frames only: decoding stops after the last one needed.
    r.get_frames(np.arange(16))
    assert r.stats.frames_decoded <= 16 + 30 and r.stats.seeks == 0


def test_one_frame_video_is_repeated(tmp_path):
    path = _write_video(tmp_path / "one.mp4", [np.full((48, 64, 3), 90, np.uint8)])
    assert probe(path).num_frames == 1
    clips = read_clips(path, TestProtocol("uniformer_dense", 8, 8, num_clips=2))
    assert clips.plan.video_shorter_than_clip and clips.plan.repeats_frames
    assert len(clips.frames) == 2 and clips.frames[0].shape == (8, 48, 64, 3)
    assert np.array_equal(clips.frames[0], np.broadcast_to(clips.frames[0][:1], clips.frames[0].shape))
    assert abs(float(clips.frames[0].mean()) - 90) < 3


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.mp4"
    frames = [np.full((3000, 4000, 3), v, np.uint8) for v in (40, 200)]
    return _write_video(path, frames, options={"preset": "ultrafast"})


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_huge_resolution_is_downscaled_while_decoding(huge_video, backend):
    r = VideoReader(huge_video, backend=backend)
    assert (r.info.width, r.info.height) == (4000, 3000)  # the source size is reported ...
    assert r.downscaled and r.frame_size == (480, 640)      # ... frames come out short side 480
    frames = r.get_frames([1, 0])
    assert frames.shape == (2, 480, 640, 3)
    assert abs(float(frames[0].mean()) - 200) < 4 and abs(float(frames[1].mean()) - 40) < 4
    capped = VideoReader(huge_video, backend=backend, max_side=1000)
    assert capped.get_frames([0]).shape == (1, 750, 1000, 3)


def test_small_video_is_not_rescaled_by_default():
    r = VideoReader(_clip_path("pedestrians_576p_10s.mp4"))
    assert not r.downscaled and r.frame_size == (576, 768)
    assert VideoReader(_clip_path("pedestrians_576p_10s.mp4"), max_side=384).frame_size == (288, 384)


# ----------------------------------------------------------------------------------- bad input

def _assert_one_sentence(err: VideoError, path: Path | str | None = None) -> None:
    msg = str(err)
    assert msg.endswith(".") and "\n" not in msg and len(msg) < 300
    assert "Traceback" not in msg
    if path is not None:
        assert str(path) in msg


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def _zero_payload_copy(src: Path, dst: Path) -> Path:
    """Keep the container index but zero every sample: no frame can decode."""
    data = bytearray(src.read_bytes())
    mdat = data.find(b"mdat")
    assert 0 < mdat < len(data) // 2  # this clip stores its index (moov) first
    data[mdat + 4:] = bytes(len(data) - mdat - 4)
    dst.write_bytes(bytes(data))
    return dst


BAD_INPUTS = ["missing", "directory", "zero_bytes", "truncated_no_index", "truncated_header",
              "png_renamed", "jpeg_renamed", "text_renamed", "audio_only", "no_decodable_frames"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_raises_video_error(kind, tmp_path, clip_paths):
    ped = _clip_path("pedestrians_576p_10s.mp4")
    path = tmp_path / "video.mp4"
    if kind == "missing":
        pass
    elif kind == "directory":
        path = tmp_path / "folder.mp4"
        path.mkdir()
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "truncated_no_index":
        # This clip stores its index (moov) at the end: the first half has no index at all.
        data = clip_paths["gen_29.97fps_index_at_end.mp4"].read_bytes()
        assert data.find(b"moov") > len(data) // 2
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_header":
        path.write_bytes(ped.read_bytes()[:1000])  # cut inside the moov box
    elif kind == "png_renamed":
        path.write_bytes(_png_bytes())
    elif kind == "jpeg_renamed":
        from PIL import Image

        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.jpg")
        shutil.copy(tmp_path / "x.jpg", path)
    elif kind == "text_renamed":
        path.write_text("this is not a video\n" * 50)
    elif kind == "audio_only":
        _write_audio_only(path)
    elif kind == "no_decodable_frames":
        _zero_payload_copy(ped, path)
    with pytest.raises(VideoError) as info:
        read_frames(path, [0, 1])
    _assert_one_sentence(info.value, path)


def test_bad_input_messages_say_what_is_wrong(tmp_path):
    img = tmp_path / "img.mp4"
    img.write_bytes(_png_bytes())
    with pytest.raises(VideoError, match="still image"):
        probe(img)
    audio = _write_audio_only(tmp_path / "audio.mp4")
    with pytest.raises(VideoError, match="no video stream"):
        probe(audio)
    with pytest.raises(VideoError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe(empty)


def test_truncated_file_clamps_to_last_decodable_frame(tmp_path):
    # pedestrians stores its index first, so a cut file still opens and promises 100 frames.
    data = _clip_path("pedestrians_576p_10s.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])

    # Reference: every frame plain PyAV can get out of it, skipping the broken last packet.
    ref = []
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            try:
                ref += [f.to_ndarray(format="rgb24") for f in packet.decode()]
            except av.FFmpegError:
                pass
    assert 10 < len(ref) < 100

    r = VideoReader(path)
    frames = r.get_frames([0, 99, 5])
    assert r.num_decodable == len(ref)
    assert np.array_equal(frames[0], ref[0]) and np.array_equal(frames[2], ref[5])
    assert np.array_equal(frames[1], ref[-1])  # past the real end: the last decodable frame

    # A clip reaching past the real end (8x32 at 10 fps spans 85 frames) makes read_clips
    # discover the truncation and re-plan over the frames that exist.
    clips = read_clips(path, TestProtocol("timesformer_dense", 8, 32))
    assert clips.plan.num_frames_in_video == len(ref)
    assert clips.plan.clips[0].max() == len(ref) - 1
    assert clips.frames[0].shape == (8, 576, 768, 3)
    assert np.array_equal(clips.frames[0][-1], ref[-1])


def test_indices_order_duplicates_and_validation():
    path = _clip_path("codec_av1.mp4")
    ref = _decode_all_pyav(path)
    frames = read_frames(path, [7, 2, 7, 2, 29])
    assert all(np.array_equal(f, ref[i]) for f, i in zip(frames, [7, 2, 7, 2, 29]))
    assert read_frames(path, []).shape == (0, 576, 768, 3)
    with pytest.raises(ValueError):
        read_frames(path, [-1])
    with pytest.raises(ValueError):
        VideoReader(path, backend="opencv")  # type: ignore[arg-type]


def test_read_clips_follows_the_protocol():
    path = _clip_path("pedestrians_576p_10s.mp4")
    p = TestProtocol("uniformer_dense", 8, 4, num_clips=4)
    clips = read_clips(path, p)
    assert clips.info.num_frames == 100 and len(clips.frames) == 4
    ref = _decode_all_pyav(path)
    for frames, idx in zip(clips.frames, clips.plan.clips):
        assert frames.shape == (8, 576, 768, 3)
        assert all(np.array_equal(f, ref[i]) for f, i in zip(frames, idx))


# ------------------------------------------------------------------------------ display rotation

def _upright_pattern(height: int = 64, width: int = 48) -> np.ndarray:
    """A portrait frame no rotation or flip maps onto itself: a white block top-left, a red bar
    along the bottom edge, grey elsewhere."""
    img = np.full((height, width, 3), 100, np.uint8)
    img[: height // 4, : width // 3] = 255
    img[-height // 8:, :] = (230, 20, 20)
    return img


def _write_rotated(path: Path, upright: np.ndarray, degrees: int, num_frames: int = 3) -> Path:
    """Store ``upright`` as a phone would: coded frames turned against the display matrix, which
    says to rotate them by ``degrees`` counter-clockwise (PyAV's and FFmpeg's convention)."""
    return write_rotated_clip(path, np.rot90(upright, -(degrees // 90) % 4), degrees, num_frames)


@pytest.mark.parametrize("degrees", [-90, 90, 180, 0])
def test_display_rotation_delivers_upright_frames(tmp_path, degrees):
    upright = _upright_pattern()
    path = _write_rotated(tmp_path / f"rot{degrees}.mp4", upright, degrees)
    with av.open(str(path)) as c:  # the file really is stored sideways for +-90
        s = c.streams.video[0]
        assert (s.width, s.height) == ((64, 48) if degrees in (90, -90) else (48, 64))
    info = probe(path)
    assert info.rotation == degrees
    assert (info.width, info.height) == (48, 64)  # the upright size, whatever the coded one
    r = VideoReader(path)
    assert r.backend == ("pyav" if degrees else r.backend) and r.frame_size == (64, 48)
    frames = r.get_frames([2, 0])
    assert frames.shape == (2, 64, 48, 3) and frames.flags["C_CONTIGUOUS"]
    assert np.abs(frames.astype(int) - upright).mean() < 6, "frames are not upright"
    clips = read_clips(path, TestProtocol("uniformer_dense", 2, 1))
    assert clips.info.rotation == degrees and clips.frames[0].shape == (2, 64, 48, 3)


def test_phone_clip_rotated_minus_90_is_turned_clockwise(tmp_path):
    # The case: 640x480 coded, a -90 degree display matrix (a phone held upright).
    coded = np.full((480, 640, 3), 60, np.uint8)
    coded[:120, :160] = 255  # top-left of the stored frame: FFmpeg's autorotate ("transpose=clock")
    path = write_rotated_clip(tmp_path / "phone.mp4", coded, -90)  # puts it top-right
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (480, 640, -90)
    frame = read_frames(path, [0])[0]
    assert frame.shape == (640, 480, 3)
    assert frame[:160, -120:].mean() > 240 and frame[:160, :120].mean() < 80
    small = VideoReader(path, max_side=320)  # downscaling happens on the coded frame, before the turn
    assert small.frame_size == (320, 240) and small.get_frames([0]).shape == (1, 320, 240, 3)
    with pytest.raises(VideoError, match="display rotation"):
        VideoReader(path, backend="decord")
