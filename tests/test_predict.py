"""End-to-end inference: the predict API and CLI on real clips, and every bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT
from uniformer import predict as predict_mod
from uniformer.data.sampling import TestProtocol
from uniformer.errors import CheckpointError, UniformerLabError, UnknownModelError, VideoError
from uniformer.zoo import ZooEntry, add_entry, remove_entry

CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
TINY = "uniformer_tiny_predict_test"
TINY_TS = "timesformer_tiny_predict_test"


@pytest.fixture(scope="module", autouse=True)
def tiny_entries():
    """Two tiny zoo entries on the real registration path (random weights, 10 classes)."""
    labels = None
    uni = ZooEntry(
        name=TINY, family="uniformer",
        arch=dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16),
        dataset="test", num_classes=10, labels=labels,
        protocol=TestProtocol("uniformer_dense", num_frames=8, sampling_rate=4, num_clips=2,
                              short_side=64, crop_size=64),
        kind="local",
    )
    ts = ZooEntry(
        name=TINY_TS, family="timesformer",
        arch=dict(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_frames=4),
        dataset="test", num_classes=10, labels=labels,
        protocol=TestProtocol("timesformer_dense", num_frames=4, sampling_rate=8, num_crops=3,
                              short_side=64, crop_size=64),
        kind="local",
    )
    add_entry(uni)
    add_entry(ts)
    yield
    remove_entry(TINY)
    remove_entry(TINY_TS)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from uniformer.zoo import create_model

    torch.manual_seed(0)
    model = create_model(TINY)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_predict_api_reports_protocol_frames_and_timings(tiny_checkpoint):
    p = predict_mod.Predictor(TINY, checkpoint=tiny_checkpoint, device="cpu")
    pred = p.predict(CLIP, topk=3)
    assert len(pred.topk) == 3
    probs = [pr for _, pr in pred.topk]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert pred.views == "2x1"
    # the 10 s clip has 100 frames: 2 dense clips of 8x4 = span 32, starts 0 and 68
    assert pred.frames_used[0][0] == 0 and pred.frames_used[1][0] == 68
    assert len(pred.frames_used) == 2 and all(len(c) == 8 for c in pred.frames_used)
    assert np.array(pred.view_logits).shape == (2, 10)
    assert set(pred.timings) == {"decode_s", "preprocess_s", "model_s", "total_s"}
    assert pred.timings["total_s"] >= pred.timings["model_s"] > 0
    assert pred.weights == str(tiny_checkpoint)


def test_views_are_summed_raw_logits(tiny_checkpoint):
    p = predict_mod.Predictor(TINY, checkpoint=tiny_checkpoint, device="cpu")
    pred = p.predict(CLIP, topk=10)
    summed = torch.tensor(pred.view_logits).sum(0)
    assert pred.topk_indices == summed.argsort(descending=True).tolist()


@pytest.mark.slow
def test_view_override_and_prepared_clip_reuse(tiny_checkpoint):
    p = predict_mod.Predictor(TINY, checkpoint=tiny_checkpoint, device="cpu", views=(1, 3))
    prepared = predict_mod.prepare_video(CLIP, p.protocol)
    assert prepared.views.shape == (3, 3, 8, 64, 64)
    a = p.predict(CLIP, prepared=prepared)
    b = p.predict(CLIP)
    assert a.topk_indices == b.topk_indices
    assert np.allclose(a.view_logits, b.view_logits, atol=1e-5)


def test_timesformer_three_crops():
    p = predict_mod.Predictor(TINY_TS, device="cpu")
    pred = p.predict(CLIP)
    assert pred.views == "1x3" and np.array(pred.view_logits).shape == (3, 10)
    assert "random" in pred.weights


def test_short_video_is_padded_and_said(tmp_path):
    import av

    path = tmp_path / "short.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            img = np.full((64, 64, 3), 40 * i, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    pred = predict_mod.Predictor(TINY, device="cpu").predict(path)
    assert any("repeated" in n for n in pred.notes)
    assert max(max(c) for c in pred.frames_used) == 4


def test_cli_json(capsys, tiny_checkpoint):
    rc = predict_mod.main([str(CLIP), "--model", TINY, "--checkpoint", str(tiny_checkpoint),
                           "--views", "1x1", "--topk", "2", "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == TINY and len(out["topk"]) == 2 and out["views"] == "1x1"
    assert {"label", "probability"} == set(out["topk"][0])


def test_cli_text(capsys):
    assert predict_mod.main([str(CLIP), "--model", TINY, "--views", "1x1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1. class" in out and "clip 0: frames" in out and "time: decode" in out


def _bad_video_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    trunc = tmp_path / "truncated.mp4"
    trunc.write_bytes(CLIP.read_bytes()[:2000])
    return {"missing": tmp_path / "nope.mp4", "empty": empty, "text": text, "truncated": trunc}


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_cli_bad_video_exit_2_one_line(kind, tmp_path, capsys):
    path = _bad_video_files(tmp_path)[kind]
    rc = predict_mod.main([str(path), "--model", TINY, "--views", "1x1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(VideoError):
        predict_mod.Predictor(TINY).predict(path)


def test_unknown_model_and_bad_views(capsys):
    assert predict_mod.main([str(CLIP), "--model", "uniformer_smol"]) == 2
    assert "Unknown model" in capsys.readouterr().err
    with pytest.raises(UnknownModelError):
        predict_mod.Predictor("uniformer_smol")
    assert predict_mod.main([str(CLIP), "--model", TINY, "--views", "four"]) == 2
    assert "CLIPSxCROPS" in capsys.readouterr().err


def test_checkpoint_for_another_model(tmp_path, capsys):
    from uniformer.zoo import create_model

    other = tmp_path / "timesformer.pth"
    torch.save(create_model(TINY_TS).state_dict(), other)
    with pytest.raises(CheckpointError):
        predict_mod.Predictor(TINY, checkpoint=other)
    assert predict_mod.main([str(CLIP), "--model", TINY, "--checkpoint", str(other)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    missing = tmp_path / "nothing.pth"
    with pytest.raises(CheckpointError):
        predict_mod.Predictor(TINY, checkpoint=missing)


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        assert predict_mod.resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(UniformerLabError, match="no CUDA"):
            predict_mod.resolve_device("cuda")
    assert predict_mod.resolve_device("cpu").type == "cpu"


def test_default_model_is_bundled_and_trained_and_says_synthetic(capsys):
    from uniformer.zoo import DEFAULT_MODEL, get_entry, resolve_weights

    assert resolve_weights(DEFAULT_MODEL).source == "bundled"  # never random weights
    assert predict_mod.build_parser().parse_args(["v.mp4"]).model == DEFAULT_MODEL
    assert predict_mod.main([str(CLIP), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == DEFAULT_MODEL and "random" not in out["weights"]
    synthetic = [n for n in out["notes"] if "synthetic" in n]
    assert len(synthetic) == 1 and synthetic[0].endswith(".") and get_entry(DEFAULT_MODEL).synthetic
    assert "lab_* examples" in synthetic[0]  # the lab model's example clips (assets/clips/lab_*.mp4)
    assert not any("random" in n for n in out["notes"])


def test_random_weights_and_real_weights_notes(tiny_checkpoint):
    rand = predict_mod.Predictor(TINY, device="cpu", views=(1, 1)).predict(CLIP)
    assert any("random weights" in n for n in rand.notes)
    trained = predict_mod.Predictor(TINY, checkpoint=tiny_checkpoint, device="cpu", views=(1, 1)).predict(CLIP)
    assert not any("random" in n or "synthetic" in n for n in trained.notes)  # dataset "test": no caveat


def test_rotated_clip_note(tmp_path):
    from tests.media import write_rotated_clip

    path = write_rotated_clip(tmp_path / "phone.mp4", np.zeros((48, 64, 3), np.uint8), -90)
    pred = predict_mod.Predictor(TINY, device="cpu", views=(1, 1)).predict(path)
    assert (pred.video_info["width"], pred.video_info["height"], pred.video_info["rotation"]) == (48, 64, -90)
    assert any("-90° display rotation" in n and "48×64" in n for n in pred.notes)
