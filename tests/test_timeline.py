"""The prediction timeline: windows of the checkpoint's own clip over a long generated video."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.media import write_moving_clip
from uniformer import predict as predict_mod
from uniformer.data.sampling import TestProtocol, plan_sampling
from uniformer.errors import UniformerLabError
from uniformer.timeline import plan_windows, predict_timeline, smooth

pytestmark = pytest.mark.usefixtures("one_thread")
MODELS = ["uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return write_moving_clip(tmp_path_factory.mktemp("timeline") / "long.mp4", seconds=22, fps=10, size=(96, 64))


@pytest.mark.parametrize("model", MODELS)
def test_cli_json_windows_cover_the_video_in_order(model, long_clip, capsys):
    assert predict_mod.main([str(long_clip), "--model", model, "--timeline", "--json", "--topk", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["timeline"]
    duration = out["video_info"]["duration"]
    assert duration > 20 and len(rows) > 10
    assert rows[0]["start"] == 0 and rows[-1]["end"] == pytest.approx(duration, abs=0.11)
    starts = [r["start"] for r in rows]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(b["start"] <= a["end"] for a, b in zip(rows, rows[1:]))   # no gap between windows
    for r in rows:
        assert len(r["frames"]) == 8 and r["start_frame"] <= min(r["frames"]) <= max(r["frames"]) < r["end_frame"]
        assert len(r["topk"]) == 3 and sum(t["probability"] for t in r["topk"]) <= 1 + 1e-6
    classes = out["tracks"]["classes"]
    assert len(classes) == 3 and all(len(c["smoothed"]) == len(rows) for c in classes)


def test_frame_reuse_decodes_each_frame_once_and_changes_nothing(long_clip):
    pred = predict_mod.Predictor(MODELS[0])
    reused = predict_timeline(pred, long_clip, stride_s=0.4)
    fresh = predict_timeline(pred, long_clip, stride_s=0.4, reuse_frames=False)
    assert [w.start_frame for w in reused.windows] == [w.start_frame for w in fresh.windows]
    torch.testing.assert_close(reused.probs, fresh.probs, atol=1e-5, rtol=0)
    unique = np.unique(np.concatenate([w.frames for w in reused.windows]))
    assert reused.frames_decoded == len(unique) < fresh.frames_decoded


def test_a_one_window_video_matches_the_predictor(tmp_path):
    """A video exactly one clip long: the timeline's only window is the predictor's clip."""
    path = write_moving_clip(tmp_path / "one.mp4", seconds=1.6, fps=10, size=(96, 64))
    pred = predict_mod.Predictor(MODELS[0])
    tl = predict_timeline(pred, path)
    assert len(tl.windows) == 1
    single = pred.predict(path, topk=12)
    assert tl.windows[0].frames.tolist() == single.frames_used[0]
    probs = dict(zip(single.topk_indices, (p for _, p in single.topk)))
    assert tl.probs[0].tolist() == pytest.approx([probs[i] for i in range(12)], abs=1e-5)


def test_window_plan_follows_the_protocol_and_the_bound():
    p = TestProtocol("uniformer_dense", num_frames=8, sampling_rate=4, num_clips=4)
    windows, stride_s, notes = plan_windows(p, num_frames=3000, fps=25.0)
    assert notes == [] and stride_s == pytest.approx(16 / 25)
    assert windows[0].start_frame == 0 and windows[-1].end_frame == 3000
    one = dataclasses.replace(p, num_clips=1)
    assert windows[3].frames.tolist() == (plan_sampling(one, 32, 25.0).clips[0] + windows[3].start_frame).tolist()
    bounded, stride_s, notes = plan_windows(p, num_frames=3000, fps=25.0, max_windows=20)
    assert len(bounded) == 20 and bounded[-1].end_frame == 3000 and stride_s > 16 / 25
    assert len(notes) == 1 and notes[0].count(". ") == 0 and "20 allowed" in notes[0]
    # a segment protocol's window is a length in seconds
    seg = TestProtocol("uniformer_segment", num_frames=8)
    windows, _, _ = plan_windows(seg, num_frames=500, fps=10.0, window_s=3.0)
    assert {w.end_frame - w.start_frame for w in windows} == {30} and windows[-1].end_frame == 500
    # shorter than one window: one window over what there is
    windows, _, _ = plan_windows(p, num_frames=10, fps=25.0)
    assert len(windows) == 1 and windows[0].frames.max() == 9
    with pytest.raises(UniformerLabError, match="positive"):
        plan_windows(p, num_frames=100, fps=25.0, stride_s=0)


def test_smoothing_is_a_centred_mean():
    v = np.array([[0.0, 3.0, 0.0, 0.0]])
    assert smooth(v, 3).tolist() == [[1.5, 1.0, 1.0, 0.0]]


def test_the_request_is_priced_before_any_window_is_decoded(long_clip):
    from uniformer.cost import cancellation

    predictor = predict_mod.Predictor(MODELS[0])
    asked: list[int] = []

    def refuse(n_windows: int) -> None:
        asked.append(n_windows)
        raise UniformerLabError("over budget")

    with pytest.raises(UniformerLabError, match="over budget"):
        predict_timeline(predictor, long_clip, admit=refuse, progress=lambda done, total: asked.append(-done))
    assert len(asked) == 1 and asked[0] > 10  # priced once, with the planned windows; nothing ran after
    with cancellation(lambda: True), pytest.raises(UniformerLabError, match="cancelled"):
        predict_timeline(predictor, long_clip)
