"""The running app against hostile requests: huge uploads, paths to server files, malicious
checkpoints and broken videos. Each gets a clear one-line error and the server keeps serving.

The app runs in-process (``app.testing.serve``) with two tiny random-weight models and small
upload caps (1 MB), so a request takes well under a second. Requests that name server paths
are sent as raw HTTP (``gradio_client`` would read and upload a local path itself, which tests
nothing about the server).
"""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
import torch

gradio_client = pytest.importorskip("gradio_client")  # a dependency in requirements.txt
import httpx  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.state import AppConfig, AppState  # noqa: E402
from app.testing import serve  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from uniformer.errors import UniformerLabError  # noqa: E402

pytestmark = pytest.mark.slow  # hostile requests against a served app

CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"  # 0.52 MB
CAP_MB = 1.0


@pytest.fixture(scope="module")
def served(tiny):
    with serve(default_models=tiny, views=(1, 1), max_video_mb=CAP_MB, max_checkpoint_mb=CAP_MB) as s:
        yield s


def one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg.strip(), msg
    assert "Traceback" not in msg and "unexpectedly" not in msg, msg  # a typed error, not the fallback
    assert "upstream Gradio app has raised an exception" not in msg, msg
    return msg


def assert_still_serving(client: Client, model: str) -> None:
    result = client.predict(handle_file(str(CLIP)), [model], "1x1", None, None, api_name="/predict")[0]
    assert len(result["models"][0]["top5"]) == 5


# ------------------------------------------------------------------------------ huge uploads

def test_upload_larger_than_the_server_limit_is_refused(client, served, tiny, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(CLIP.read_bytes() + os.urandom(int(1.5 * 2**20)))  # a valid MP4 prefix, 2 MB
    with pytest.raises(Exception, match="maximum file size"):  # gradio_client checks the declared limit
        client.predict(handle_file(str(big)), [tiny[0]], "1x1", None, None, api_name="/predict")
    with httpx.Client(base_url=served.url, timeout=60) as http:  # a raw upload that ignores it
        r = http.post("gradio_api/upload", files={"files": ("big.mp4", big.read_bytes(), "video/mp4")})
        assert r.status_code == 413 and "maximum" in r.text
        small = http.post("gradio_api/upload", files={"files": ("ok.mp4", CLIP.read_bytes(), "video/mp4")})
        assert small.status_code == 200
    assert_still_serving(client, tiny[0])


def test_checkpoint_over_its_cap_is_refused_by_the_handler(client, served, tiny, tmp_path):
    ckpt = tmp_path / "big.pth"
    torch.save({"w": torch.zeros(200_000)}, ckpt)  # 0.8 MB: under the upload limit
    old = served.state.config.max_checkpoint_mb
    served.state.config.max_checkpoint_mb = 0.5
    try:
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", handle_file(str(ckpt)), tiny[0],
                           api_name="/predict")
    finally:
        served.state.config.max_checkpoint_mb = old
    assert "at most 0.5 MB" in one_line(exc.value)
    assert_still_serving(client, tiny[0])


# ------------------------------------------------------------------------- paths to server files

def _outside_paths(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(CLIP.read_bytes())  # a perfectly good video, but not uploaded
    return {
        "etc_passwd": "/etc/passwd",
        "proc_environ": "/proc/self/environ",
        "repo_file": str(REPO_ROOT / "README.md"),
        "traversal_from_assets": str(REPO_ROOT / "assets" / "clips" / ".." / ".." / "README.md"),
        "relative_traversal": "../../../../../etc/passwd",
        "video_outside_allowed_dirs": str(secret),
    }


def _call(http: httpx.Client, endpoint: str, data: list) -> tuple[int, str]:
    r = http.post(f"gradio_api/call/{endpoint}", json={"data": data})
    if r.status_code != 200:
        return r.status_code, r.text
    event_id = r.json()["event_id"]
    return 200, http.get(f"gradio_api/call/{endpoint}/{event_id}").text


def _upload(http: httpx.Client, path: Path) -> dict:
    r = http.post("gradio_api/upload", files={"files": (path.name, path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}


def _slot_data(slot: str, model: str, tiny: list[str], video: dict, checkpoint: dict | None) -> tuple[str, list]:
    return {
        "predict_video": ("predict", [video, [model], "1x1", None, None, "fp32"]),
        "predict_checkpoint": ("predict", [video, [model], "1x1", checkpoint, model, "fp32"]),
        "attention_video": ("attention", [video, model, 0, "average", "layer: attention / kernels", 4, 50, 50]),
        "redundancy_video": ("redundancy", [video, tiny[0], tiny[1]]),
    }[slot]


@pytest.mark.parametrize("slot", ["predict_video", "predict_checkpoint", "attention_video", "redundancy_video"])
def test_api_calls_naming_server_paths_are_refused(slot, served, client, tiny, tmp_path):
    from uniformer.zoo import create_model

    model = served.state.default_models[0]
    ckpt = tmp_path / "tiny.pth"
    torch.save(create_model(model).state_dict(), ckpt)
    with httpx.Client(base_url=served.url, timeout=60) as http:
        video, good_ckpt = _upload(http, CLIP), _upload(http, ckpt)
        # control: the same call with uploaded files works, so a refusal below is about the path
        endpoint, data = _slot_data(slot, model, tiny, video, good_ckpt)
        status, body = _call(http, endpoint, data)
        assert status == 200 and "event: complete" in body and "event: error" not in body, body[:300]
        for kind, path in _outside_paths(tmp_path).items():
            f = {"path": path, "meta": {"_type": "gradio.FileData"}}
            if slot == "predict_checkpoint":
                endpoint, data = _slot_data(slot, model, tiny, video, f)
            else:
                endpoint, data = _slot_data(slot, model, tiny, f, None)
            status, body = _call(http, endpoint, data)
            if status == 200:
                assert "event: error" in body and "event: complete" not in body, (kind, body[:300])
            else:
                assert status in (400, 403, 422), (kind, status)
            assert "root:x:" not in body and "# UniFormer Lab" not in body, kind
    assert_still_serving(client, tiny[0])


def test_file_route_does_not_serve_files_outside_allowed_folders(served, tmp_path):
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for kind, path in _outside_paths(tmp_path).items():
            r = http.get(f"gradio_api/file={path}")
            assert r.status_code in (403, 404), (kind, r.status_code)
            assert "root:x:" not in r.text and "# UniFormer Lab" not in r.text
        assert http.get(f"gradio_api/file={CLIP}").status_code == 200  # assets/ is allowed on purpose


def test_handler_resolves_symlinks_and_traversal(tiny, tmp_path):
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False))
    upload = state.allowed_roots()[0]
    upload.mkdir(parents=True, exist_ok=True)
    link = upload / f"link_{uuid.uuid4().hex}.mp4"
    target = tmp_path / "outside.mp4"
    target.write_bytes(CLIP.read_bytes())
    link.symlink_to(target)
    try:
        for path in (link, upload / ".." / ".." / "etc" / "passwd", f"{REPO_ROOT}/assets/../README.md",
                     {"path": "/etc/passwd"}):
            with pytest.raises(UniformerLabError, match="outside the upload folder"):
                state.check_path(path)
        with pytest.raises(UniformerLabError):
            state.check_path(12345)
    finally:
        link.unlink()


# --------------------------------------------------------------------- malicious checkpoints

class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_uploaded_pickle_that_would_run_code_is_refused(client, tiny, tmp_path):
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    files = {"zip": tmp_path / "evil.pth", "legacy": tmp_path / "evil_legacy.pth"}
    torch.save({"state_dict": _RunsCode(marker)}, files["zip"])
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": _RunsCode(marker)}, files["legacy"],
               _use_new_zipfile_serialization=False)
    for kind, path in files.items():
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", handle_file(str(path)), tiny[0],
                           api_name="/predict")
        assert "checkpoint" in one_line(exc.value).lower(), kind
        assert not marker.exists(), f"{kind}: the pickle ran code on the server"
    assert_still_serving(client, tiny[0])


# --------------------------------------------------------------------------- broken videos

def _write(path: Path, n: int, w: int, h: int, codec: str = "libx264") -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            s.options = {"preset": "ultrafast"}
        if n == 0:
            c.start_encoding()
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 10 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _hostile_videos(tmp_path: Path) -> dict[str, Path]:
    data = CLIP.read_bytes()
    files = {
        "zero_frames": _write(tmp_path / "zero.mp4", 0, 64, 48),
        "truncated_header": tmp_path / "cut.mp4",
        "random_after_mp4_header": tmp_path / "random.mp4",
        "thin_strip_2000x2": _write(tmp_path / "strip.mp4", 3, 2000, 2),
        "html_in_name_<b>x</b>": tmp_path / "<b>x<b>.webm",
    }
    files["truncated_header"].write_bytes(data[:900])
    files["random_after_mp4_header"].write_bytes(data[:32] + np.random.default_rng(0).integers(
        0, 256, 50_000, np.uint8).tobytes())
    files["html_in_name_<b>x</b>"].write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(4000))
    return files


def test_hostile_videos_get_one_line_errors(client, tiny, tmp_path):
    for kind, path in _hostile_videos(tmp_path).items():
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(path)), [tiny[0]], "1x1", None, None, api_name="/predict")
        msg = one_line(exc.value)
        assert "<b>" not in msg or kind.startswith("html"), msg
    assert_still_serving(client, tiny[0])


def test_concurrent_hostile_requests_do_not_take_the_server_down(client, served, tiny, tmp_path):
    videos = list(_hostile_videos(tmp_path).values())
    errors: list[str] = []
    unexpected: list[str] = []

    def hit(i: int) -> None:
        c = Client(served.url, verbose=False, analytics_enabled=False)
        try:
            c.predict(handle_file(str(videos[i % len(videos)])), [tiny[i % 2]], "1x1", None, None,
                      api_name="/predict")
            unexpected.append(f"request {i} succeeded")
        except AppError as err:
            errors.append(str(err))
        except Exception as err:  # noqa: BLE001 - a transport failure is what this test guards against
            unexpected.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not unexpected and len(errors) == 8
    for msg in errors:
        assert "\n" not in msg.strip() and "unexpectedly" not in msg
    assert_still_serving(client, tiny[0])
    assert_still_serving(client, tiny[1])
