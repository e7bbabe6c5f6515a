"""Feature extraction: one row per readable video, the model's width, resumable and sharded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.media import write_moving_clip
from uniformer import features as feat_mod

pytestmark = pytest.mark.usefixtures("one_thread")
UNI, TS = "uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three short clips, one text file posing as a video, and a list naming all four."""
    root = tmp_path_factory.mktemp("features")
    for i in range(3):
        write_moving_clip(root / f"clip{i}.mp4", seconds=1.6 + i, fps=10, size=(96, 64))
    (root / "broken.mp4").write_text("not a video")
    (root / "list.txt").write_text("clip0.mp4 0\nbroken.mp4 1\nclip1.mp4\nclip2.mp4 2\n")
    return root


def _read(out: Path) -> tuple[torch.Tensor, dict]:
    with safe_open(str(out), framework="pt") as f:
        return f.get_tensor("features"), json.loads(out.with_name(out.name + ".index.json").read_text())


@pytest.mark.parametrize("model", [UNI, TS])
def test_one_row_per_clip_with_the_model_width(model, clips, tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert feat_mod.main(["--model", model, "--data", str(clips / "list.txt"), "--out", str(out)]) == 0
    feats, index = _read(out)
    from uniformer.zoo import create_model

    width = create_model(model).num_features
    assert feats.shape == (3, width) and torch.isfinite(feats).all()
    assert index["ids"] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert [s["id"] for s in index["skipped"]] == ["broken.mp4"]
    err = capsys.readouterr().err
    assert "skipped broken.mp4: " in err and "again to retry" in err
    assert not (tmp_path / "f.safetensors.parts").exists()


def test_resume_continues_where_it_stopped(clips, tmp_path, monkeypatch):
    args = ["--model", TS, "--data", str(clips / "list.txt"), "--pool", "cls", "--shard-size", "1", "--batch", "1"]
    whole = tmp_path / "whole.safetensors"
    assert feat_mod.main([*args, "--out", str(whole)]) == 0
    real, calls = feat_mod.video_features, []

    def dies_after_two(model, views, *a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.extend(views)
        return real(model, views, *a, **k)

    out = tmp_path / "resumed.safetensors"
    monkeypatch.setattr(feat_mod, "video_features", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        feat_mod.main([*args, "--out", str(out)])
    assert len(list((tmp_path / "resumed.safetensors.parts").glob("*.safetensors"))) >= 2 and not out.exists()
    monkeypatch.setattr(feat_mod, "video_features",
                        lambda m, views, *a, **k: calls.extend(views) or real(m, views, *a, **k))
    assert feat_mod.main([*args, "--out", str(out)]) == 0
    assert len(calls) == 3   # two before the crash, one after it
    (a, ia), (b, ib) = _read(whole), _read(out)
    assert ia["ids"] == ib["ids"] and torch.allclose(a, b, atol=1e-6)
    # a finished output is kept: a rerun computes nothing, another pooling is refused in one sentence
    assert feat_mod.main([*args, "--out", str(out)]) == 0 and len(calls) == 3
    assert feat_mod.main(["--model", TS, "--data", str(clips / "list.txt"), "--out", str(out)]) == 2


def test_ranks_share_the_list_and_rank0_merges(clips, tmp_path):
    from uniformer.predict import Predictor

    pred = Predictor(UNI)
    videos = feat_mod.list_videos(clips)   # the folder: every video under it, sorted
    assert [v.id for v in videos] == ["broken.mp4", "clip0.mp4", "clip1.mp4", "clip2.mp4"]
    settings = feat_mod.Settings(model=UNI, pool="tokens", views="1x1", frames=8, size=64, weights=pred.weights)
    kw = dict(protocol=pred.protocol, pool="tokens", settings=settings, world=2, batch=2)
    out = tmp_path / "tokens.safetensors"
    assert feat_mod.extract(pred.model, videos, out, rank=1, **kw) is None
    result = feat_mod.extract(pred.model, videos, out, rank=0, **kw)
    feats, index = _read(out)
    assert result.rows == 3 and index["ids"] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert feats.shape == (3, 1, 4 * 2 * 2, pred.model.num_features)   # (videos, views, T'H'W', width)
    mean = tmp_path / "mean.npy"
    assert feat_mod.main(["--model", UNI, "--data", str(clips), "--out", str(mean)]) == 0
    pooled = np.load(mean)
    assert np.allclose(pooled, feats.mean(2)[:, 0].numpy(), atol=1e-5)   # mean pooling = mean of the tokens


def test_cls_pooling_needs_a_cls_token(clips, tmp_path, capsys):
    code = feat_mod.main(["--model", UNI, "--data", str(clips), "--out", str(tmp_path / "x.safetensors"),
                          "--pool", "cls"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: UniFormer has no cls token; use --pool mean or --pool tokens."
