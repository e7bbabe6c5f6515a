"""Hostile input: broken or odd videos and malicious checkpoints.

Contract under test: whatever file a user (or an attacker) hands to the core package, the
result is either a correct answer or a typed error whose message is one sentence
(``VideoError`` / ``CheckpointError``) — never another exception type, never code execution,
never a multi-gigabyte allocation. Fuzz inputs are generated from fixed seeds, so a failure
reproduces exactly.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import struct
import subprocess
import sys
import uuid
import zipfile
from collections import Counter, OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from uniformer.data.sampling import TestProtocol
from uniformer.data.video import VideoReader, read_clips
from uniformer.errors import CheckpointError, UniformerLabError, VideoError
from uniformer.models.checkpoint import read_checkpoint
from uniformer.predict import Predictor, prepare_video
from uniformer.zoo import ZooEntry, add_entry, create_model, remove_entry

TINY = "uniformer_tiny_hostile_test"
PROTOCOL = TestProtocol("uniformer_dense", num_frames=8, sampling_rate=4, num_clips=2, short_side=64, crop_size=64)


@pytest.fixture(scope="module", autouse=True)
def tiny_entry():
    add_entry(ZooEntry(
        name=TINY, family="uniformer", arch=dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16),
        dataset="test", num_classes=10, labels=None, protocol=PROTOCOL, kind="local",
    ))
    yield
    remove_entry(TINY)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    return Predictor(TINY, device="cpu")


# ============================================================================ video helpers

def _value(i: int) -> int:
    return (20 + 15 * i) % 256


def write_video(path: Path, codec: str, n: int = 12, w: int = 64, h: int = 48, *, fps: int = 25,
                pix: str = "yuv420p", options: dict | None = None, container_options: dict | None = None,
                value=_value) -> Path:
    """``n`` flat grey frames (frame ``i`` has grey level ``value(i)``) with PyAV."""
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix
        if options:
            s.options = options
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), value(i), np.uint8), format="rgb24")
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def assert_one_sentence(err: UniformerLabError) -> None:
    msg = str(err)
    assert msg and "\n" not in msg and len(msg) < 400, msg
    assert msg.rstrip().endswith((".", ")")), msg
    assert "Traceback" not in msg


def outcome(path: Path) -> str:
    """Read a few frames and the protocol's clips: ``"ok"`` (checked) or ``"error"`` (a one-sentence
    VideoError). Any other exception propagates and fails the test with its traceback."""
    try:
        r = VideoReader(path)
        h, w = r.frame_size
        frames = r.get_frames([0, 3, 7, 10_000])
        clips = read_clips(path, PROTOCOL)
    except VideoError as err:
        assert_one_sentence(err)
        return "error"
    assert frames.dtype == np.uint8 and frames.shape == (4, h, w, 3)
    assert len(clips.frames) == PROTOCOL.num_clips
    assert all(f.dtype == np.uint8 and f.shape[0] == PROTOCOL.num_frames and f.shape[-1] == 3 for f in clips.frames)
    return "ok"


# Base files for fuzzing: different containers and codecs (index first / last, B-frames,
# intra-only, MPEG-TS packets, Matroska/WebM clusters).
FUZZ_BASES = {
    "mp4_index_first": ("mp4", "libx264", "yuv420p", {"preset": "ultrafast"}, {"movflags": "faststart"}),
    "mp4_bframes": ("mp4", "libx264", "yuv420p", {"preset": "veryfast"}, None),
    "webm_vp8": ("webm", "libvpx", "yuv420p", None, None),
    "avi_mjpeg": ("avi", "mjpeg", "yuvj420p", None, None),
    "ts_mpeg2": ("ts", "mpeg2video", "yuv420p", None, None),
}


@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fuzz_bases")
    return {name: write_video(out / f"{name}.{ext}", codec, 60, pix=pix, options=opts, container_options=copts,
                              value=lambda i: (i * 37) % 256)
            for name, (ext, codec, pix, opts, copts) in FUZZ_BASES.items()}


# ================================================================================ video fuzz

@pytest.mark.slow
@pytest.mark.parametrize("base", list(FUZZ_BASES))
def test_truncated_at_random_offsets(base, fuzz_bases, tmp_path):
    data = fuzz_bases[base].read_bytes()
    rng = np.random.default_rng(1234)
    offsets = sorted({int(o) for o in rng.integers(1, len(data), 12)} | {len(data) * 9 // 10})
    results = {}
    for off in offsets:
        path = tmp_path / f"cut_{off}{fuzz_bases[base].suffix}"
        path.write_bytes(data[:off])
        results[off] = outcome(path)
    # The first bytes alone never make a video.
    head = tmp_path / f"head{fuzz_bases[base].suffix}"
    head.write_bytes(data[:16])
    assert outcome(head) == "error"
    if base == "mp4_index_first":  # index intact: a file cut at 90 % still plays up to the cut
        assert results[len(data) * 9 // 10] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("base", list(FUZZ_BASES))
def test_random_bit_flips(base, fuzz_bases, tmp_path):
    data = fuzz_bases[base].read_bytes()
    rng = np.random.default_rng(7)
    results: Counter[str] = Counter()
    for i in range(25):
        flipped = bytearray(data)
        for pos in rng.integers(0, len(flipped), int(rng.integers(1, 30))):
            flipped[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip_{i}{fuzz_bases[base].suffix}"
        path.write_bytes(bytes(flipped))
        results[outcome(path)] += 1
    # A few damaged bytes cost some frames, not the file: most flipped videos still decode.
    assert results["ok"] > results["error"], results


def test_corrupt_transport_stream_regression(fuzz_bases, tmp_path):
    """Seed found by fuzzing: the flips create a new MPEG-TS stream mid-file, on which PyAV's
    demuxer raised IndexError (now the reader stops there, like at a truncation)."""
    data = bytearray(fuzz_bases["ts_mpeg2"].read_bytes())
    rng = np.random.default_rng(252)
    for pos in rng.integers(0, len(data), int(rng.integers(1, 30))):
        data[pos] ^= int(rng.integers(1, 256))
    path = tmp_path / "flipped.ts"
    path.write_bytes(bytes(data))
    assert outcome(path) == "ok"  # frames up to the new stream, checked by outcome()


MAGIC_HEADERS = {
    "mp4_ftyp": None,  # the first 32 bytes of a real MP4
    "webm_ebml": b"\x1a\x45\xdf\xa3",
    "avi_riff": b"RIFF\x00\x10\x00\x00AVI LIST",
    "mpeg_ps": b"\x00\x00\x01\xba",
    "flv": b"FLV\x01\x05\x00\x00\x00\x09",
    "gif": b"GIF89a",
}


@pytest.mark.parametrize("magic", list(MAGIC_HEADERS))
def test_random_bytes_after_a_video_header(magic, fuzz_bases, tmp_path):
    header = MAGIC_HEADERS[magic] or fuzz_bases["mp4_bframes"].read_bytes()[:32]
    for seed in range(4):
        payload = np.random.default_rng(seed).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
        path = tmp_path / f"random_{seed}.mp4"
        path.write_bytes(header + payload)
        assert outcome(path) == "error"


@pytest.mark.parametrize("ext,codec,pix", [("mp4", "libx264", "yuv420p"), ("webm", "libvpx", "yuv420p"),
                                           ("mkv", "ffv1", "yuv420p"), ("avi", "mjpeg", "yuvj420p")])
def test_zero_frame_video(ext, codec, pix, tmp_path, predictor):
    path = tmp_path / f"empty.{ext}"
    with av.open(str(path), "w") as c:  # header and stream, not a single frame
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, pix
        c.start_encoding()
    assert path.stat().st_size > 0
    assert outcome(path) == "error"
    with pytest.raises(VideoError) as info:
        predictor.predict(path)
    assert_one_sentence(info.value)


@pytest.mark.parametrize("ext,codec,pix", [("mp4", "libx264", "yuv444p"), ("mkv", "ffv1", "yuv444p"),
                                           ("avi", "rawvideo", "rgb24"), ("gif", "gif", "rgb8")])
def test_one_by_one_pixel_video(ext, codec, pix, tmp_path, predictor):
    opts = {"preset": "ultrafast"} if codec == "libx264" else None
    path = write_video(tmp_path / f"one.{ext}", codec, 10, 1, 1, pix=pix, options=opts)
    frames = VideoReader(path).get_frames([0, 5, 9])
    assert frames.shape == (3, 1, 1, 3)
    tol = 30 if codec == "gif" else 6  # GIF's 3-3-2 bit palette cannot dither a single pixel
    assert all(abs(float(f.mean()) - _value(i)) <= tol for f, i in zip(frames, (0, 5, 9)))
    pred = predictor.predict(path)  # upscaled to the model's input, like any small video
    assert len(pred.topk) == 5 and np.isfinite(pred.view_logits).all()


@pytest.mark.slow
def test_8k_video_is_downscaled_while_decoding(tmp_path, predictor):
    path = write_video(tmp_path / "8k.mp4", "libx264", 2, 7680, 4320, options={"preset": "ultrafast"})
    r = VideoReader(path)
    assert (r.info.width, r.info.height) == (7680, 4320)
    assert r.downscaled and min(r.frame_size) == 480 and max(r.frame_size) <= 1920
    frames = r.get_frames([0, 1])
    assert frames.shape == (2, *r.frame_size, 3)
    assert abs(float(frames[1].mean()) - _value(1)) < 6
    prepared = prepare_video(path, PROTOCOL)  # the predictor's cap: long side <= 4 x short_side (min 640)
    assert max(prepared.clips.frames[0].shape[1:3]) <= 640
    assert prepared.views.shape == (2, 3, 8, 64, 64)
    assert np.isfinite(predictor.predict(path).view_logits).all()


def test_hour_long_video_at_1_fps_decodes_only_what_it_needs(tmp_path):
    path = write_video(tmp_path / "hour.mp4", "libx264", 3600, 32, 32, fps=1, value=lambda i: (i * 7) % 256,
                       options={"preset": "ultrafast", "x264-params": "keyint=30:min-keyint=30:scenecut=0"})
    r = VideoReader(path, backend="pyav")
    assert r.info.num_frames == 3600 and abs(r.info.duration - 3600) < 2 and r.info.fps == 1
    spread = np.linspace(0, 3599, 16).astype(int)
    frames = r.get_frames(spread)
    assert [abs(float(f.mean()) - (i * 7) % 256) < 8 for f, i in zip(frames, spread)] == [True] * 16
    assert r.stats.frames_converted == 16
    assert r.stats.frames_decoded <= 16 * 30 + 30  # at most one GOP per frame, far from 3600
    clips = read_clips(path, TestProtocol("uniformer_dense", 16, 8, num_clips=4))  # auto backend
    assert [len(c) for c in clips.frames] == [16] * 4
    assert clips.plan.clips[-1][-1] > 3000  # clips spread over the whole hour


ODD_CODECS = [  # (file, codec, pixel format, encoder options)
    ("mjpeg.avi", "mjpeg", "yuvj420p", None),
    ("mpeg4_part2.avi", "mpeg4", "yuv420p", None),
    ("mpeg4_part2.mp4", "mpeg4", "yuv420p", None),
    ("msmpeg4v2.avi", "msmpeg4v2", "yuv420p", None),
    ("vp8.webm", "libvpx", "yuv420p", None),
    ("vp9.webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    ("anim.gif", "gif", "rgb8", None),
    ("mpeg1.mpg", "mpeg1video", "yuv420p", None),
    ("mpeg2.mpg", "mpeg2video", "yuv420p", None),   # decord used to seek these to frame 0
    ("mpeg2.ts", "mpeg2video", "yuv420p", None),    # ... and these one frame off
    ("ffv1.mkv", "ffv1", "yuv420p", None),
    ("hevc.mp4", "libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    ("prores.mov", "prores", "yuv422p10le", None),
    ("flv1.flv", "flv", "yuv420p", None),
    ("huffyuv.avi", "huffyuv", "yuv422p", None),
    ("png.mov", "png", "rgb24", None),
    ("qtrle.mov", "qtrle", "rgb24", None),
    ("h264_yuv444.mkv", "libx264", "yuv444p", {"preset": "ultrafast"}),
]


@pytest.mark.parametrize("name,codec,pix,opts", ODD_CODECS, ids=[c[0] for c in ODD_CODECS])
def test_odd_codecs_give_the_right_frames(name, codec, pix, opts, tmp_path):
    path = write_video(tmp_path / name, codec, 40, pix=pix, options=opts, value=lambda i: 10 + 5 * i)
    wanted = [3, 17, 39, 20, 0]
    frames = VideoReader(path).get_frames(wanted)  # default (auto) backend, random access
    tol = 12 if codec == "gif" else 7
    means = [round(float(f.mean())) for f in frames]
    assert all(abs(m - (10 + 5 * i)) <= tol for m, i in zip(means, wanted)), (means, [10 + 5 * i for i in wanted])
    assert outcome(path) == "ok"


@pytest.mark.slow
def test_frame_size_change_mid_stream(tmp_path, predictor):
    """MJPEG packets are standalone JPEGs: one of another size must not break the batch."""
    path = tmp_path / "resized.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        odd = av.CodecContext.create("mjpeg", "w")
        odd.width, odd.height, odd.pix_fmt, odd.time_base = 32, 96, "yuvj420p", Fraction(1, 25)
        for i in range(12):
            ctx, h, w = (odd, 96, 32) if i == 5 else (s.codec_context, 48, 64)
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), _value(i), np.uint8), format="rgb24")
            frame.pts = i
            for packet in ctx.encode(frame):
                packet.stream = s
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    for backend in ("auto", "pyav"):
        frames = VideoReader(path, backend=backend).get_frames([4, 5, 6])
        assert frames.shape == (3, 48, 64, 3)
        assert abs(float(frames[1].mean()) - _value(5)) < 8
    assert outcome(path) == "ok"
    assert np.isfinite(predictor.predict(path).view_logits).all()


def test_extreme_aspect_ratio_is_refused_before_any_allocation(tmp_path):
    strip = write_video(tmp_path / "strip.mp4", "libx264", 4, 2000, 2, options={"preset": "ultrafast"})
    with pytest.raises(VideoError, match="10 times") as info:
        VideoReader(strip)
    assert_one_sentence(info.value)
    wide = write_video(tmp_path / "wide.mp4", "libx264", 4, 640, 64, options={"preset": "ultrafast"})
    assert outcome(wide) == "ok"  # 10:1 still works


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    candidates = [fifo] + [Path(p) for p in ("/dev/zero", "/dev/urandom") if os.path.exists(p)]
    for path in candidates:
        with pytest.raises(VideoError) as info:
            VideoReader(path)
        assert_one_sentence(info.value)


def test_predictor_on_broken_files_raises_video_error_only(fuzz_bases, tmp_path, predictor):
    data = fuzz_bases["mp4_bframes"].read_bytes()
    rng = np.random.default_rng(99)
    produced = {"ok": 0, "error": 0}
    for i in range(10):
        path = tmp_path / f"p{i}.mp4"
        if i % 2:
            path.write_bytes(data[: int(rng.integers(1, len(data)))])
        else:
            flipped = bytearray(data)
            for pos in rng.integers(0, len(flipped), 10):
                flipped[pos] ^= 0xFF
            path.write_bytes(bytes(flipped))
        try:
            pred = predictor.predict(path)
        except VideoError as err:
            assert_one_sentence(err)
            produced["error"] += 1
        else:
            assert np.isfinite(pred.view_logits).all()
            produced["ok"] += 1
    assert sum(produced.values()) == 10


# ======================================================================= malicious checkpoints

def _marker(tmp_path: Path) -> Path:
    return tmp_path / f"pwned_{uuid.uuid4().hex}"


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


class _Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


def _tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model(TINY).state_dict()


def _save_zip_with_data_pkl(path: Path, data_pkl: bytes, *, storages: dict[str, bytes] | None = None) -> Path:
    """A real torch zip checkpoint whose ``data.pkl`` is replaced (and its storages, if given)."""
    good = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, good)
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            if name.endswith("/data.pkl"):
                zout.writestr(name, data_pkl)
            elif "/data/" in name and storages is not None:
                continue
            else:
                zout.writestr(name, zin.read(name))
        prefix = zin.namelist()[0].split("/")[0]
        for key, blob in (storages or {}).items():
            zout.writestr(f"{prefix}/data/{key}", blob)
    return path


def _payload_files(tmp_path: Path, payload) -> dict[str, Path]:
    files = {}
    files["torch_zip"] = tmp_path / "zip.pth"
    torch.save(payload, files["torch_zip"])
    files["torch_legacy"] = tmp_path / "legacy.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "cfg": payload}, files["torch_legacy"],
               _use_new_zipfile_serialization=False)
    files["nested_in_state_dict"] = tmp_path / "nested.pth"
    torch.save({"model": {**_tiny_state_dict(), "evil": payload}}, files["nested_in_state_dict"])
    files["zip_data_pkl"] = _save_zip_with_data_pkl(tmp_path / "datapkl.pth", pickle.dumps(payload, protocol=2))
    for proto in (0, 2, 5):
        files[f"raw_pickle_p{proto}"] = tmp_path / f"raw{proto}.pkl"
        files[f"raw_pickle_p{proto}"].write_bytes(pickle.dumps(payload, protocol=proto))
    return files


@pytest.mark.parametrize("payload_cls", [_System, _Exec, _Popen], ids=["os.system", "exec", "subprocess.Popen"])
def test_pickles_that_would_run_code_are_refused(payload_cls, tmp_path):
    marker = _marker(tmp_path)
    for kind, path in _payload_files(tmp_path, payload_cls(marker)).items():
        try:
            read_checkpoint(path)  # may return inert placeholders (restricted unpickler) or refuse
        except CheckpointError as err:
            assert_one_sentence(err)
        assert not marker.exists(), f"{kind}: the payload ran while reading"
        with pytest.raises(CheckpointError) as info:
            create_model(TINY, checkpoint=path)
        assert_one_sentence(info.value)
        with pytest.raises(CheckpointError):
            Predictor(TINY, checkpoint=path, device="cpu")
        assert not marker.exists(), f"{kind}: the payload ran while loading a model"


def test_a_pickle_of_code_alone_is_named_as_such(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "only_code.pth"
    torch.save(_System(marker), path)
    with pytest.raises(CheckpointError,
                       match="not a weights checkpoint: it holds no tensors, only pickled Python objects") as info:
        read_checkpoint(path)
    assert "system" in str(info.value) and "not run" in str(info.value)
    assert_one_sentence(info.value)
    assert not marker.exists()


def test_pickled_global_from_an_importable_module_is_never_imported(tmp_path, monkeypatch):
    marker = _marker(tmp_path)
    module = f"evil_mod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = b"\x80\x02c" + module.encode() + b"\nThing\nq\x00)\x81q\x01."  # GLOBAL, EMPTY_TUPLE, NEWOBJ
    legacy = tmp_path / "import.pth"
    legacy.write_bytes(data)
    zipped = _save_zip_with_data_pkl(tmp_path / "import_zip.pth", data)
    for path in (legacy, zipped):
        try:
            read_checkpoint(path)
        except CheckpointError as err:
            assert_one_sentence(err)
        with pytest.raises(CheckpointError):
            create_model(TINY, checkpoint=path)
    assert module not in sys.modules and not marker.exists()


class _FakeStorage:
    pass


def _huge_tensor_pickle(numel: int) -> bytes:
    """``data.pkl`` for one float tensor whose storage claims ``numel`` elements."""

    class Rebuild:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (_FakeStorage(), 0, (numel,), (1,), False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, _FakeStorage) else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"w": Rebuild()})
    return buf.getvalue()


def test_huge_bogus_sizes_fail_fast_without_allocating(tmp_path):
    files = {
        # a torch zip whose tensor claims 4 TiB but stores 16 bytes
        "zip_huge_storage": _save_zip_with_data_pkl(tmp_path / "huge.pth", _huge_tensor_pickle(2**40),
                                                    storages={"0": bytes(16)}),
        # safetensors: header length of 2**62 bytes
        "safetensors_huge_header": tmp_path / "h1.safetensors",
        # safetensors: a header describing a 4-petabyte tensor
        "safetensors_huge_tensor": tmp_path / "h2.safetensors",
        # the same bytes under a .pth name (content sniffing)
        "safetensors_content_as_pth": tmp_path / "h3.pth",
        # pickle opcode stream that starts like a torch file, then garbage
        "pickle_header_garbage": tmp_path / "garbage.pth",
    }
    files["safetensors_huge_header"].write_bytes(struct.pack("<Q", 2**62) + b'{"a": 1}')
    header = b'{"w":{"dtype":"F32","shape":[1000000000,1000000],"data_offsets":[0,4000000000000000]}}'
    for key in ("safetensors_huge_tensor", "safetensors_content_as_pth"):
        files[key].write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    garbage = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    files["pickle_header_garbage"].write_bytes(b"\x80\x02" + garbage)
    for path in files.values():
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        assert_one_sentence(info.value)
        with pytest.raises(CheckpointError):
            create_model(TINY, checkpoint=path)


def test_video_and_other_files_passed_as_checkpoint(tmp_path):
    clip = Path(__file__).resolve().parents[1] / "assets" / "clips" / "pedestrians_576p_10s.mp4"
    with pytest.raises(CheckpointError, match="video"):
        create_model(TINY, checkpoint=clip)
    webm = write_video(tmp_path / "x.webm", "libvpx", 3)
    with pytest.raises(CheckpointError, match="video"):
        read_checkpoint(webm)
    plain_zip = tmp_path / "notes.pth"
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="zip"):
        read_checkpoint(plain_zip)


def test_truncated_downloads_of_a_real_checkpoint(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_tiny_state_dict(), good)
    data = good.read_bytes()
    for frac in (0.001, 0.5, 0.9, 0.999, 0.1):
        path = tmp_path / f"cut_{frac}.pth"
        path.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
            create_model(TINY, checkpoint=path)
        assert_one_sentence(info.value)


# Byte-level damage that once made torch.load raise OSError, AssertionError or AttributeError
# (which escaped the reader): each must now be one CheckpointError.

def _zip_cut_at_10_percent(tmp_path: Path) -> Path:
    good = tmp_path / "good.pth"
    torch.save(_tiny_state_dict(), good)
    path = tmp_path / "cut.pth"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 10])
    return path


def _legacy_with_wrong_storage_key(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(8)}, buf, _use_new_zipfile_serialization=False)
    data = bytearray(buf.getvalue())
    key = next(k for k, n in Counter(re.findall(rb"\d{6,}", bytes(data))).items() if n >= 2)
    pos = bytes(data).rindex(key)  # the storage-key list at the end of the legacy format
    data[pos] = ord("1") if data[pos] != ord("1") else ord("2")
    path = tmp_path / "legacy.pth"
    path.write_bytes(bytes(data))
    return path


def _non_class_storage_type(tmp_path: Path) -> Path:
    class Rebuild:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (_FakeStorage(), 0, (4,), (1,), False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", (1, 2), "0", "cpu", 4) if isinstance(obj, _FakeStorage) else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"w": Rebuild()})
    return _save_zip_with_data_pkl(tmp_path / "odd_storage.pth", buf.getvalue(), storages={"0": bytes(16)})


@pytest.mark.parametrize("make", [
    pytest.param(_zip_cut_at_10_percent, id="zip_cut_at_10pct"),
    pytest.param(_legacy_with_wrong_storage_key, id="legacy_bad_storage_key"),
    pytest.param(_non_class_storage_type, id="non_class_storage_type"),
])
def test_odd_damage_gives_one_checkpoint_error(make, tmp_path):
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(make(tmp_path))
    assert_one_sentence(info.value)


def test_corrupted_checkpoints_raise_checkpoint_error_only(tmp_path):
    torch.manual_seed(0)
    tensors = {"a": torch.randn(1000), "b": torch.ones(50)}
    good = tmp_path / "good.pth"
    torch.save(tensors, good)
    legacy = tmp_path / "legacy.pth"
    torch.save(tensors, legacy, _use_new_zipfile_serialization=False)
    rng = np.random.default_rng(2024)
    loaded = 0
    for i in range(60):
        data = bytearray((good if i % 2 else legacy).read_bytes())
        if i % 4 < 2:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"bad_{i}.pth"
        path.write_bytes(bytes(data))
        try:
            read_checkpoint(path)
            loaded += 1  # a flip inside tensor data leaves a valid (different) checkpoint
        except CheckpointError as err:
            assert_one_sentence(err)
    assert loaded < 60
