"""The app through Gradio's API: every named endpoint, bad uploads, limits and caches.

The app runs in-process on a free port with two tiny models (random weights, 64 px), so each
request takes well under a second; ``gradio_client`` talks to it over HTTP like any user script.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app import tab_attention, tab_predict
from app.state import AppConfig, AppState
from app.testing import serve
from tests.conftest import REPO_ROOT
from uniformer.errors import UniformerLabError

CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
WEBM = REPO_ROOT / "assets" / "clips" / "codec_vp9.webm"
ENDPOINTS = {"/predict", "/models", "/attention", "/redundancy", "/efficiency", "/timeline", "/timeline_window"}


@pytest.fixture(scope="module")
def served(tiny):
    with serve(default_models=tiny, views=(1, 1)) as s:
        yield s


def _readable(err: BaseException) -> str:
    msg = str(err)
    assert "Traceback" not in msg and "upstream Gradio app has raised an exception" not in msg, msg
    return msg


# ----------------------------------------------------------------------------- endpoints
def test_named_endpoints_are_the_public_api(client):
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(named) == ENDPOINTS  # UI-only events (slider moves, clicks) stay private
    params = [p["parameter_name"] for p in named["/attention"]["parameters"]]
    assert params[:3] == ["video", "model", "layer"]


def test_models_endpoint_lists_defaults_and_zoo(client, tiny):
    payload, cards = client.predict(api_name="/models")
    assert payload["default_models"] == tiny
    rows = {r["name"]: r for r in payload["models"]}
    assert rows[tiny[0]]["default"] and rows[tiny[0]]["loaded"] and rows[tiny[0]]["weights"] == "random"
    assert "uniformer_small_k400_16x8" in rows and "timesformer_base_k400_8x32" in rows
    assert f"`{tiny[0]}`" in cards and "random initialisation" in cards


def test_predict_two_models_side_by_side(client, tiny):
    result, cards, frames, status = client.predict(handle_file(str(CLIP)), tiny, "1x1", None, None,
                                                   api_name="/predict")
    models = result["models"]
    assert [m["name"] for m in models] == tiny
    for m, frames_per_clip in zip(models, (8, 4)):
        probs = [t["probability"] for t in m["top5"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert m["views"] == "1x1" and m["random_weights"] is True
        assert len(m["frames_used"]) == 1 and len(m["frames_used"][0]) == frames_per_clip
        assert m["timings"]["model_s"] > 0 and m["timings"]["total_s"] >= m["timings"]["model_s"]
    assert result["video"]["num_frames"] == 100 and result["video"]["width"] == 768
    assert all(f'data-model="{m["model"]}"' in cards for m in models)
    assert cards.count('class="ul-row"') == 10
    for m in models:  # each card says itself that its labels mean nothing
        assert len(m["notes"]) == 1 and "random weights" in m["notes"][0]
        assert m["notes"][0].split(",")[0] in cards
    assert cards.count('class="ul-warn"') == 2 and "ul-note" not in cards  # random weights: a warning
    assert len(frames) == 8 + 4  # one thumbnail per sampled frame of each protocol
    assert {Path(f["image"]).suffix for f in frames} == {".jpeg"}  # WebP would cost ~13x the encoding time
    assert "Done in" in status and "random weights" in status


@pytest.mark.slow
def test_same_content_uploaded_twice_is_decoded_once(client, tiny):
    first = client.predict(handle_file(str(WEBM)), [tiny[0]], "2x1", None, None, api_name="/predict")[0]
    second = client.predict(handle_file(str(WEBM)), [tiny[0]], "2x1", None, None, api_name="/predict")[0]
    assert first["models"][0]["clip_cached"] is False
    assert second["models"][0]["clip_cached"] is True and second["models"][0]["model_cached"] is True
    assert second["models"][0]["top5"] == first["models"][0]["top5"]  # same model instance, same clip
    assert first["video"]["decoder"] == "pyav"  # VP9 goes through the fallback decoder


def test_protocol_views(client, tiny):
    result = client.predict(handle_file(str(CLIP)), [tiny[1]], "protocol", None, None, api_name="/predict")[0]
    assert result["models"][0]["views"] == "1x3"


def test_bad_upload_gives_readable_error_and_server_keeps_serving(client, tiny, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 50)
    with pytest.raises(AppError) as exc:
        client.predict(handle_file(str(fake)), [tiny[0]], "1x1", None, None, api_name="/predict")
    msg = _readable(exc.value)
    assert "'notes.mp4' could not be opened as a video" in msg  # the server's upload folder is not shown
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(AppError) as exc:
        client.predict(handle_file(str(empty)), [tiny[0]], "1x1", None, None, api_name="/predict")
    assert "empty" in _readable(exc.value).lower()
    # still serving
    result = client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", None, None, api_name="/predict")[0]
    assert len(result["models"][0]["top5"]) == 5


def test_bad_request_values_are_readable(client, tiny):
    with pytest.raises(AppError) as exc:
        client.predict(handle_file(str(CLIP)), ["no_such_model"], "1x1", None, None, api_name="/predict")
    msg = _readable(exc.value)  # refused by the dropdown's own check, before the handler
    assert "no_such_model" in msg and "not in the list of choices" in msg
    with pytest.raises(AppError) as exc:
        client.predict(handle_file(str(CLIP)), [tiny[0]], "banana", None, None, api_name="/predict")
    assert "CLIPSxCROPS" in _readable(exc.value)
    with pytest.raises(AppError) as exc:
        client.predict(None, [tiny[0]], "1x1", None, None, api_name="/predict")
    assert "upload a video" in _readable(exc.value)


def test_upload_over_the_cap_is_refused(client, served, tiny):
    old = served.state.config.max_video_mb
    served.state.config.max_video_mb = 0.1  # the pedestrians clip is 0.52 MB
    try:
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", None, None, api_name="/predict")
    finally:
        served.state.config.max_video_mb = old
    assert "at most 0.1 MB" in _readable(exc.value)


def test_server_refuses_paths_that_were_not_uploaded(served):
    """A raw API call naming a server file must not read it (Gradio's check and the handler's)."""
    payload = {"data": [{"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}},
                        [served.state.default_models[0]], "1x1", None, None, "fp32"]}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        r = http.post("gradio_api/call/predict", json=payload)
        if r.status_code == 200:
            event_id = r.json()["event_id"]
            body = http.get(f"gradio_api/call/predict/{event_id}").text
            assert "event: error" in body and "Done in" not in body
        else:
            assert r.status_code in (400, 403, 422)


def test_handler_refuses_paths_outside_allowed_dirs(tiny, tmp_path):
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False))
    outside = tmp_path / "clip.mp4"
    outside.write_bytes(CLIP.read_bytes())
    with pytest.raises(UniformerLabError, match="outside the upload folder"):
        tab_predict.predict(state, str(outside), [tiny[0]])
    with pytest.raises(UniformerLabError, match="outside the upload folder"):
        tab_predict.predict(state, str(CLIP.parent / ".." / ".." / "README.md"), [tiny[0]])
    allowed = AppState(AppConfig(default_models=tuple(tiny), preload=False, extra_allowed_dirs=(str(tmp_path),)))
    assert tab_predict.predict(allowed, str(outside), [tiny[0]])[0]["models"][0]["name"] == tiny[0]


def test_synthetic_model_card_says_synthetic(tmp_path):
    # The bundled default: trained weights, synthetic classes; the caveat is on its card, not only
    # in the model card; an upright-rotated phone clip is reported upright.
    import numpy as np

    from tests.media import write_rotated_clip

    phone = write_rotated_clip(tmp_path / "phone.mp4", np.zeros((48, 64, 3), np.uint8), -90)
    name = "uniformer_tiny_synthetic_8x2"
    state = AppState(AppConfig(default_models=(name,), preload=False, extra_allowed_dirs=(str(tmp_path),)))
    result, cards, _, status = tab_predict.predict(state, str(phone), [name])
    (m,) = result["models"]
    assert m["random_weights"] is False and len(m["notes"]) == 1 and "synthetic" in m["notes"][0]
    assert "synthetic clips" in cards and "synthetic clips" not in status
    assert 'class="ul-note"' in cards and "ul-warn" not in cards  # a scope of classes, not a warning
    assert "synthetic_* examples" in m["notes"][0]  # the tiny model's own classes, not the lab clips'
    assert (result["video"]["width"], result["video"]["height"], result["video"]["rotation"]) == (48, 64, -90)
    assert "display rotation" in status


def test_uploaded_checkpoint_is_used_and_bad_one_refused(client, tiny, tmp_path):
    from uniformer.zoo import create_model

    torch.manual_seed(1)
    model = create_model(tiny[0])
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[7] = 50.0  # this checkpoint always says class 7
    good = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), good)
    result, cards, _, _ = client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", handle_file(str(good)), tiny[0],
                                         api_name="/predict")
    uploaded = result["models"][1]
    assert uploaded["model"].endswith("[uploaded]") and uploaded["weights"] == "uploaded file tiny.pth"
    assert uploaded["top5"][0]["label"] == "class 7" and uploaded["top5"][0]["probability"] > 0.99
    assert result["models"][0]["top5"][0]["probability"] < 0.5

    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(AppError) as exc:
        client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", handle_file(str(bad)), tiny[0], api_name="/predict")
    assert "checkpoint" in _readable(exc.value).lower()
    with pytest.raises(AppError) as exc:  # right file, wrong architecture
        client.predict(handle_file(str(CLIP)), [tiny[0]], "1x1", handle_file(str(good)), tiny[1], api_name="/predict")
    _readable(exc.value)


def _plot_json(plot) -> dict:
    assert plot["type"] == "plotly"
    return json.loads(plot["plot"])


def test_attention_endpoint_layers_heads_and_views(client, tiny):
    video = handle_file(str(CLIP))
    # layer 0 of the UniFormer is a local block: kernels, one row per channel shown
    plot, info, picker, layer, head, frame = client.predict(video, tiny[0], 0, "average", tab_attention.VIEW_ATTENTION,
                                                            4, 50, 50, api_name="/attention")
    fig = _plot_json(plot)
    assert "local_affinity_stage1_block0" in info and "affinity" in fig["layout"]["title"]["text"]
    # the slider/head/frame outputs are updates: value plus the new range for this model
    assert layer["value"] == 0 and layer["maximum"] == 3 and frame["value"] == 4 and frame["maximum"] == 7
    assert head["value"] == "average" and head["choices"][:2] == [["average", "average"], ["0", "0"]]
    # the last layer is global attention: anchor overlay, one heat map per shown frame
    plot, info, picker, layer, head, frame = client.predict(video, tiny[0], 99, "0", tab_attention.VIEW_ATTENTION,
                                                            7, 0, 100, api_name="/attention")
    fig = _plot_json(plot)
    assert layer["value"] == 3 and "global_attn_stage4_block0" in info and "(cached)" in info
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heat) == 8 and "head 0" in fig["layout"]["title"]["text"]
    # anchor at frame 7, top-right corner -> token (t=3, h=0, w=1) of the 4x2x2 stage-4 grid
    assert "t=3, h=0, w=1" in info
    # TimeSformer: the layer selector runs over temporal and spatial maps of every block
    plot, info, *_ = client.predict(video, tiny[1], 3, "1", tab_attention.VIEW_ATTENTION, 0, 50, 50,
                                    api_name="/attention")
    assert "spatial_attn_block1" in info and "layer 4 of 4" in info
    plot, info, *_ = client.predict(video, tiny[1], 0, "average", tab_attention.VIEW_ROLLOUT, 0, 50, 50,
                                    api_name="/attention")
    assert "rollout" in _plot_json(plot)["layout"]["title"]["text"].lower()
    plot, info, *_ = client.predict(video, tiny[0], 0, "average", tab_attention.VIEW_CAM, 0, 50, 50,
                                    api_name="/attention")
    assert "CAM" in _plot_json(plot)["layout"]["title"]["text"]


def test_attention_endpoint_bad_choices_are_readable(client, tiny):
    video = handle_file(str(CLIP))
    with pytest.raises(AppError) as exc:  # CAM is defined on UniFormer only
        client.predict(video, tiny[1], 0, "average", tab_attention.VIEW_CAM, 0, 50, 50, api_name="/attention")
    assert "UniFormer" in _readable(exc.value)
    with pytest.raises(AppError) as exc:
        client.predict(video, tiny[0], 3, "9", tab_attention.VIEW_ATTENTION, 0, 50, 50, api_name="/attention")
    assert "4 heads" in _readable(exc.value) or "heads" in _readable(exc.value)


def test_redundancy_endpoint(client, tiny):
    plot, reading, table = client.predict(handle_file(str(CLIP)), tiny[0], tiny[1], api_name="/redundancy")
    fig = _plot_json(plot)
    names = {t.get("name") for t in fig["data"]}
    assert any(tiny[0] in (n or "") for n in names) and any(tiny[1] in (n or "") for n in names)
    rows = table["data"]
    # per axis: UniFormer's 4 layers (kernels and joint maps) each give a spatial and a temporal row,
    # TimeSformer's 2 blocks a temporal row (temporal attention) and a spatial row (spatial attention)
    assert len(rows) == 4 * 2 + 2 * 2
    assert {r[2] for r in rows} == {"spatial", "temporal"}
    assert {r[3] for r in rows} == {"kernel", "joint", "divided"}
    for r in rows:
        assert 0 <= r[5] <= 1 and 0 < r[6] <= 1  # locality, uniform floor of that axis
        assert r[7] == pytest.approx(r[5] / r[6], abs=0.02)
    assert "random weights" in reading and tiny[0] in reading and tiny[1] in reading


def test_efficiency_endpoint(client, served, tiny):
    plot, table, md = client.predict("K400", "per view", False, api_name="/efficiency")
    fig = _plot_json(plot)
    assert fig["layout"]["xaxis"]["type"] == "log"
    rows = table["data"]
    published = [r for r in rows if r[0] == "published"]
    assert published and all(r[3] == "K400" for r in published)
    assert any(r[1] == "UniFormer" for r in published) and any(r[1] == "TimeSformer" for r in published)
    assert tiny[0] in md and tiny[1] in md  # measured FLOPs of the loaded models
    plot_total, table_total, _ = client.predict("K400", "total over views", False, api_name="/efficiency")
    xs_view = sorted(x for t in fig["data"] for x in t["x"])
    xs_total = sorted(x for t in _plot_json(plot_total)["data"] for x in t["x"])
    assert xs_total != xs_view and max(xs_total) > max(xs_view)
    with pytest.raises(AppError) as exc:
        client.predict("ImageNet", "per view", False, api_name="/efficiency")
    assert "ImageNet" in _readable(exc.value)  # the radio's own check answers first
    from app import tab_efficiency

    with pytest.raises(UniformerLabError, match="Unknown dataset"):
        tab_efficiency.efficiency(served.state, "ImageNet")


@pytest.mark.slow
def test_slow_request_does_not_block_others(client, served, tiny, monkeypatch):
    """A long prediction runs in the queue while another user's request is answered."""
    state = served.state
    original = state.prepare
    started = threading.Event()

    def slow_prepare(*args, **kwargs):
        started.set()
        time.sleep(4.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(state, "prepare", slow_prepare)
    job = client.submit(handle_file(str(CLIP)), [tiny[0]], "1x1", None, None, api_name="/predict")
    assert started.wait(30)
    payload, _ = client.predict(api_name="/models")
    assert payload["default_models"] == tiny
    assert not job.done()  # the other request was answered while the slow one still ran
    assert len(job.result(timeout=60)[0]["models"][0]["top5"]) == 5


# ----------------------------------------------------------------------------- state
@pytest.mark.slow
def test_caches_stay_bounded(tiny):
    import dataclasses

    from uniformer.zoo import ZOO, add_entry, remove_entry

    extra = [dataclasses.replace(ZOO[tiny[0]], name=f"{tiny[0]}_copy{i}") for i in range(3)]
    for e in extra:
        add_entry(e)
    try:
        state = AppState(AppConfig(default_models=tuple(tiny), preload=False, model_cache_size=3,
                                   record_cache_size=2, clip_cache_size=2, extra_allowed_dirs=()))
        names = [*tiny, *(e.name for e in extra)]
        for name in names:
            tab_attention.attention(state, str(CLIP), name, 1)
        assert len(state.models) == 3 and len(state.records) == 2
        assert len(state.clips) <= 2
        assert [k[0] for k in state.models.keys()] == names[-3:]
        # a model asked for again is reused, not rebuilt
        lm1, cached1 = state.get_model(names[-1])
        lm2, cached2 = state.get_model(names[-1])
        assert cached1 and cached2 and lm1 is lm2
    finally:
        for e in extra:
            remove_entry(e.name)


def test_attention_memory_budget_is_enforced_before_running(tiny):
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False, max_attention_gb=1e-6))
    with pytest.raises(UniformerLabError, match="attention maps of .* take .* GB"):
        tab_attention.attention(state, str(CLIP), tiny[0], 3)
    assert len(state.records) == 0
    # the estimate is the size of the real extraction
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False))
    tab_attention.attention(state, str(CLIP), tiny[0], 3)
    record = state.records.values()[0]["record"]
    real = sum(m.numel() * m.element_size() for m in record.maps.values())
    assert tab_attention.attention_map_bytes(tiny[0], tuple(state.records.values()[0]["x"].shape)) == real


def test_malloc_arena_cap_respects_the_users_setting(monkeypatch):
    from app.main import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the user's own value wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas() is True


def test_start_up_warms_each_default_model_up_without_caching_a_clip(tiny, monkeypatch):
    """The first user's request must not pay one-time set-up (the decoder's first open, oneDNN's
    kernels for the input shape): start-up runs each default model once through the request path.
    A warm-up that fails (here: no clip) is logged and the app still starts."""
    from app import state as state_module
    from uniformer.predict import Predictor

    calls: list[tuple[str, int]] = []
    original = Predictor.predict

    def spy(self, video, **kw):
        calls.append((self.name, self.protocol.num_views))
        return original(self, video, **kw)

    monkeypatch.setattr(Predictor, "predict", spy)
    state = AppState(AppConfig(default_models=tuple(tiny), preload=False, views=(2, 1)))
    lines: list[str] = []
    state.preload_defaults(report=lines.append)
    assert calls == [(name, 2) for name in tiny]  # the app's views: the request's input shape
    assert len(lines) == len(tiny) and all("warmed up in" in line for line in lines)
    assert len(state.clips) == 0

    monkeypatch.setattr(state_module, "WARM_UP_CLIP", REPO_ROOT / "assets" / "clips" / "missing.mp4")
    lines.clear()
    AppState(AppConfig(default_models=tuple(tiny[:1]), preload=False)).preload_defaults(report=lines.append)
    assert len(lines) == 1 and "loaded in" in lines[0] and "warmed up" not in lines[0]


def test_examples_start_with_clips_of_the_default_models_classes():
    from app.state import WARM_UP_CLIP, AppState, iter_clip_examples

    names = [Path(p).name for p in iter_clip_examples()]
    lab = [n for n in names if n.startswith("lab_")]
    assert len(lab) >= 4 and names[:len(lab)] == lab and names[len(lab)] == "pedestrians_576p_10s.mp4"
    assert WARM_UP_CLIP.is_file() and WARM_UP_CLIP.name in lab
    assert AppState(AppConfig(preload=False)).default_models == ["uniformer_lab", "timesformer_lab"]
