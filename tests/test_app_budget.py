"""Cost per request, lanes, cancellation and upload caps of the app (issue 17).

The budget and lanes are tested directly (threads and events, no timing); the served app runs
in-process with two tiny random-weight models, a private upload folder and small caps, so its
tests take seconds.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from app.budget import OverBudget, RequestBudget, client_gone
from app.state import AppConfig, AppState
from tests.conftest import REPO_ROOT
from uniformer.cost import RequestCost, RunCost, cancellation, check_cancelled, request_cost, run_cost
from uniformer.errors import RequestCancelled, UniformerLabError

CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"


def cost(gflops: float, name: str = "m") -> RequestCost:
    return RequestCost((RunCost(model=name, views=1, gflops_per_view=gflops, source="published"),))


def in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, box) where box gets 'result' or 'error'."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# ================================================================================ budget
def test_request_cost_is_zoo_gflops_times_views_times_models():
    c = request_cost([run_cost("timesformer_large_k400_96x4"), run_cost("uniformer_base_k400_32x4", (2, 1))])
    assert c.gflops == pytest.approx(2380.0 * 3 + 259.0 * 2)
    assert "timesformer_large_k400_96x4: 3 views × 2,380.0 GFLOPs" in c.describe()
    counted = run_cost("uniformer_tiny_synthetic_8x2", (1, 1))  # no published figure: counted on meta
    assert counted.source == "counted" and 0 < counted.gflops < 5


def test_over_budget_is_one_sentence_with_the_ask_the_budget_and_the_flag():
    budget = RequestBudget(1000.0)
    c = request_cost([run_cost("timesformer_large_k400_96x4")])
    with pytest.raises(OverBudget) as info:
        budget.check(c)
    msg = str(info.value)
    assert "7,140 GFLOPs" in msg and "timesformer_large_k400_96x4" in msg and "1,000 GFLOPs" in msg, msg
    assert "--max-request-gflops 7140" in msg and "\n" not in msg and msg.endswith(".")
    budget.check(request_cost([run_cost("uniformer_small_k400_16x8")]))  # 4 x 41.8: inside
    assert RequestBudget(20000.0).lane_for(c) == "heavy" and RequestBudget(20000.0).lane_for(cost(900)) == "light"


def test_light_requests_do_not_wait_behind_heavy_ones():
    budget = RequestBudget(1000.0, light_gflops=50.0, heavy_slots=1, light_slots=1, max_waiting=4)
    release_heavy = threading.Event()
    holding = threading.Event()

    def heavy():
        with budget.scope():
            lane = budget.admit(cost(900))
            holding.set()
            release_heavy.wait(60)
            return lane

    t_heavy, box_heavy = in_thread(heavy)
    assert holding.wait(60)
    waiting_heavy, box_wait = in_thread(lambda: _admit_in_scope(budget, cost(800)))
    t_light, box_light = in_thread(lambda: _admit_in_scope(budget, cost(10)))
    t_light.join(60)
    assert box_light == {"result": "light"}  # admitted while the heavy lane is full
    assert "result" not in box_wait  # the second heavy one still waits for the slot
    release_heavy.set()
    t_heavy.join(60)
    waiting_heavy.join(60)
    assert box_heavy == {"result": "heavy"} and box_wait == {"result": "heavy"}


def _admit_in_scope(budget: RequestBudget, c: RequestCost, should_stop=None) -> str:
    with budget.scope(should_stop):
        return budget.admit(c)


def test_a_waiting_request_stops_when_its_client_goes_and_the_waiting_room_is_bounded():
    budget = RequestBudget(1000.0, light_gflops=50.0, heavy_slots=1, light_slots=1, max_waiting=1)
    gone = threading.Event()
    with budget.scope():
        budget.admit(cost(900))  # the only heavy slot
        t, box = in_thread(lambda: _admit_in_scope(budget, cost(900), gone.is_set))
        while budget.lanes["heavy"].waiting == 0 and t.is_alive():
            time.sleep(0.01)
        with pytest.raises(OverBudget, match="busy"):  # the waiting room (1) is full
            _admit_in_scope(budget, cost(900))
        gone.set()
        t.join(60)
        assert isinstance(box.get("error"), RequestCancelled)
        assert budget.lanes["heavy"].waiting == 0
    assert budget.lanes["heavy"].free.acquire(blocking=False)  # every slot was given back


def test_predictor_stops_between_chunks_of_views_when_cancelled(tiny):
    from uniformer.predict import Predictor

    torch.manual_seed(0)
    p = Predictor(tiny[1], device="cpu", views=(1, 3), view_batch=1)
    x = torch.zeros(3, 3, 4, 64, 64)
    calls = []

    def stop_after_first() -> bool:
        calls.append(1)
        return len(calls) > 1

    with cancellation(stop_after_first), pytest.raises(RequestCancelled):
        p.view_logits(x)
    assert len(calls) == 2  # checked before each chunk: one chunk ran, the second was skipped
    check_cancelled()  # outside the block nothing stops


def test_handlers_price_requests_before_loading_anything(tiny):
    from app import tab_attention, tab_efficiency, tab_predict, tab_redundancy

    state = AppState(AppConfig(default_models=tuple(tiny), preload=False, max_request_gflops=1e-6))
    for call in (lambda: tab_predict.predict(state, str(CLIP), [tiny[0]], "1x1"),
                 lambda: tab_attention.attention(state, str(CLIP), tiny[0]),
                 lambda: tab_redundancy.redundancy(state, str(CLIP), tiny[0], tiny[1]),
                 lambda: tab_efficiency.efficiency(state, "K400", "per view", latency=True)):
        with pytest.raises(OverBudget, match="more than this server allows per request"):
            call()
    assert len(state.models) == 0 and len(state.clips) == 0
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False, max_attention_gb=1e-9))
    for call in (lambda: tab_attention.attention(state, str(CLIP), tiny[0]),
                 lambda: tab_redundancy.redundancy(state, str(CLIP), tiny[0], tiny[1])):
        with pytest.raises(UniformerLabError, match="attention maps of .* take .* GB"):
            call()
    assert len(state.models) == 0  # attention-map memory is priced before loading, too


def test_client_gone_reads_the_queue_defensively():
    assert client_gone(object(), None)() is False

    class Event:
        def __init__(self, session: str, alive: bool) -> None:
            self.session_hash, self.alive = session, alive

    class Demo:
        class _queue:  # noqa: N801 - Gradio's attribute name
            active_jobs = [None, [Event("a", True)], [Event("b", False)]]

    class Request:
        def __init__(self, session: str) -> None:
            self.session_hash = session

    assert client_gone(Demo(), Request("a"))() is False
    assert client_gone(Demo(), Request("b"))() is True   # disconnected
    assert client_gone(Demo(), Request("c"))() is True   # cancelled: no longer among the active jobs


def test_refused_upload_is_deleted_by_the_handler(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False, max_video_mb=0.1))
    big = tmp_path / "abc" / "big.mp4"
    big.parent.mkdir()
    big.write_bytes(CLIP.read_bytes())  # 0.5 MB
    with pytest.raises(UniformerLabError, match="at most 0.1 MB"):
        state.check_path(str(big))
    assert not big.exists()
    outside = REPO_ROOT / "assets" / "clips" / CLIP.name  # allowed, over the cap, never deleted
    with pytest.raises(UniformerLabError, match="at most 0.1 MB"):
        state.check_path(str(outside))
    assert outside.exists()


# =========================================================================== served app
@pytest.fixture(scope="module")
def served(tiny, tmp_path_factory):
    from app.testing import serve

    upload_dir = tmp_path_factory.mktemp("uploads")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(upload_dir)
    try:
        with serve(default_models=tiny, views=(1, 1), max_video_mb=1.0, max_checkpoint_mb=2.0,
                   light_request_gflops=0.02, max_request_gflops=100.0) as s:
            s.upload_dir = upload_dir
            yield s
    finally:
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old


def _files(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_uploads_are_capped_per_kind_while_streaming(served, tmp_path):
    import httpx

    payload = CLIP.read_bytes() + os.urandom(int(1.0 * 2**20))  # 1.5 MB: over the video cap, under the checkpoint's
    with httpx.Client(base_url=served.url, timeout=60) as http:
        r = http.post("gradio_api/upload", files={"files": ("big.mp4", payload, "video/mp4")})
        assert r.status_code == 413 and "at most 1 MB" in r.text, r.text
        assert not any(size >= len(payload) for size in _files(served.upload_dir).values())
        r = http.post("gradio_api/upload", files={"files": ("big.pth", payload, "application/octet-stream")})
        assert r.status_code == 200, r.text
        r = http.post("gradio_api/upload", files={"files": ("bigger.pth", payload * 2, "application/octet-stream")})
        assert r.status_code == 413 and "at most 2 MB" in r.text
    assert sorted(_files(served.upload_dir).values()).count(len(payload)) == 1  # only the accepted one


@pytest.mark.slow
def test_a_disconnected_upload_leaves_no_partial_file_and_one_log_line(served, caplog):
    host, port = served.url.split("//")[1].rstrip("/").split(":")
    before = _files(served.upload_dir)
    boundary = "xyzboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"cut.pth\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    with caplog.at_level("INFO"):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall((f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
                          f"boundary={boundary}\r\nContent-Length: {3 * 2**20}\r\n\r\n").encode() + head)
            sock.sendall(os.urandom(600_000))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    p not in before for p in _files(served.upload_dir)):  # the partial file exists on disk
                time.sleep(0.05)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "ended by the client" not in caplog.text:
            time.sleep(0.05)
    assert "ended by the client" in caplog.text
    assert "ClientDisconnect" not in caplog.text and "Traceback" not in caplog.text
    assert _files(served.upload_dir) == before


@pytest.mark.slow
def test_light_request_is_served_while_the_heavy_lane_is_full_and_waiting_ones_can_cancel(served, client, tiny):
    from gradio_client import handle_file

    heavy = served.state.budget.lanes["heavy"]
    held = 0
    while heavy.free.acquire(blocking=False):  # as if heavy requests were running
        held += 1
    try:
        job = client.submit(handle_file(str(CLIP)), [tiny[0], tiny[1]], "protocol", None, None, api_name="/predict")
        deadline = time.monotonic() + 60
        while heavy.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heavy.waiting == 1  # priced as heavy: it waits for a slot
        light = client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", None, None, api_name="/predict")[0]
        assert len(light["models"][0]["top5"]) == 5
        job.cancel()
        deadline = time.monotonic() + 60
        while heavy.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heavy.waiting == 0  # the cancelled request left the waiting room
    finally:
        for _ in range(held):
            heavy.free.release()
    with pytest.raises(Exception, match="more than this server allows"):
        client.predict(handle_file(str(CLIP)), ["timesformer_large_k400_96x4"], "protocol", None, None,
                       api_name="/predict")
