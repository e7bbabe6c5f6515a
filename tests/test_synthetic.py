"""The procedural motion dataset: determinism, balance, and that only time tells the classes apart."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from uniformer.data import synthetic as syn
from uniformer.data.synthetic import (
    CLASSES,
    PAIRS,
    REVERSED,
    SynthConfig,
    clip_rng,
    generate_dataset,
    make_clip,
    render_clip,
)

TINY = SynthConfig(size=32, num_frames=8)


def _decode(path) -> np.ndarray:
    from uniformer.data.video import VideoReader

    with VideoReader(path) as r:
        return r.get_frames(np.arange(r.info.num_frames))


def test_classes_are_sorted_pairs_of_time_reversals():
    assert len(CLASSES) == 12 and list(CLASSES) == sorted(CLASSES)
    for a, b in PAIRS:
        assert REVERSED[a] == b and REVERSED[b] == a


def test_same_seed_same_frames_different_seed_different_frames():
    a, meta_a = make_clip(0, "train", 5, TINY)
    b, meta_b = make_clip(0, "train", 5, TINY)
    assert a.shape == (8, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(meta_a.track, meta_b.track)
    c, meta_c = make_clip(1, "train", 5, TINY)
    d, _ = make_clip(0, "val", 5, TINY)
    assert meta_c.class_name == meta_a.class_name  # label depends on the index only
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


@pytest.mark.parametrize("forward,backward", PAIRS)
def test_paired_class_is_exactly_the_clip_played_backwards(forward, backward):
    # Same random draws: the backward class shows the very same frames in reverse order, so the
    # set of frames (a bag-of-frames view) has the same distribution for both classes.
    fwd, mf = render_clip(forward, clip_rng(3, "train", 0), TINY)
    bwd, mb = render_clip(backward, clip_rng(3, "train", 0), TINY)
    np.testing.assert_array_equal(bwd, fwd[::-1])
    np.testing.assert_array_equal(mb.track, mf.track[:, ::-1])
    assert mf.label != mb.label and mb.class_name == backward


def _metas(name: str, n: int, cfg: SynthConfig = TINY):
    return [render_clip(name, clip_rng(11, "train", i), cfg)[1] for i in range(n)]


def test_first_frame_position_carries_no_left_right_information():
    n, size = 150, TINY.size
    x_right = np.array([m.center[0, 0, 0] for m in _metas("moving_right", n)])
    x_left = np.array([m.center[0, 0, 0] for m in _metas("moving_left", n)])
    # Wrapped start positions are uniform for both: means agree to a few % of the frame
    # (without the torus they would differ by the path length, ~0.3-0.75 of the frame).
    assert abs(x_right.mean() - x_left.mean()) < 0.1 * size
    assert x_right.min() < 0.25 * size and x_right.max() > 0.75 * size
    assert x_left.min() < 0.25 * size and x_left.max() > 0.75 * size


def test_ground_truth_motion_has_the_class_direction():
    n = 25
    for name, axis, sign in [("moving_right", 0, 1), ("moving_left", 0, -1),
                             ("moving_down", 1, 1), ("moving_up", 1, -1)]:
        for m in _metas(name, n):
            dx = m.track[0, -1] - m.track[0, 0]
            assert np.sign(dx[axis]) == sign, name
            assert abs(dx[axis]) > abs(dx[1 - axis])  # the class axis dominates
    for m in _metas("approaching", n):
        assert m.radius[0, -1] > 1.5 * m.radius[0, 0]
    for m in _metas("receding", n):
        assert m.radius[0, 0] > 1.5 * m.radius[0, -1]
    for m in _metas("rotating_clockwise", n):  # angle grows = clockwise on screen (y down)
        assert np.all(np.diff(m.angle[0]) > 0)
    for m in _metas("rotating_anticlockwise", n):
        assert np.all(np.diff(m.angle[0]) < 0)
    for m in _metas("appearing", n):
        assert m.alpha[0, 0] == 0 and m.alpha[0, -1] == 1
    for m in _metas("disappearing", n):
        assert m.alpha[0, 0] == 1 and m.alpha[0, -1] == 0
    for name, closer in [("meeting", True), ("parting", False)]:
        for m in _metas(name, n):
            assert m.track.shape[0] == 2
            d = np.linalg.norm(m.track[0] - m.track[1], axis=-1)
            assert (d[-1] < d[0]) == closer
            assert d.min() <= 1.05 * m.radius[:, 0].sum()  # they touch at the close end


def test_growing_angle_turns_the_drawn_shape_clockwise_on_screen():
    # A triangle with its apex up; after a small positive turn the apex must lie right of centre.
    S = 64
    ob = syn._Obj(shape="triangle", cx=np.full(2, 32.0), cy=np.full(2, 32.0), r=np.full(2, 20.0),
                  theta=np.array([0.0, 0.4]), alpha=np.ones(2), color1=np.ones(3, np.float32))
    canvas, mask = np.zeros((2, S, S, 3), np.float32), np.zeros((2, S, S), np.float32)
    syn._draw(canvas, ob, mask)
    np.testing.assert_allclose(canvas[..., 0], mask, atol=1e-6)
    xs = np.arange(S) + 0.5
    top = mask[:, :16]  # rows well above the centre: only the apex reaches there
    x_top = (top.sum(1) * xs).sum(-1) / top.sum((1, 2))
    assert abs(x_top[0] - 32) < 1.0 and x_top[1] > 36


def test_mask_follows_the_ground_truth_centre_and_the_object_is_visible():
    cfg = SynthConfig(size=48, num_frames=8, max_distractors=0, noise_std=(0.0, 0.0))
    frames, meta = render_clip("moving_right", clip_rng(2, "train", 0), cfg, return_mask=True)
    S = cfg.size
    grid = (np.arange(S) + 0.5) * 2 * np.pi / S
    for t in range(cfg.num_frames):
        w = meta.mask[t]
        assert w.max() > 0.99
        # circular means (the world wraps around)
        cx = np.angle((w.sum(0) * np.exp(1j * grid)).sum()) % (2 * np.pi) * S / (2 * np.pi)
        cy = np.angle((w.sum(1) * np.exp(1j * grid)).sum()) % (2 * np.pi) * S / (2 * np.pi)
        err = np.abs((np.array([cx, cy]) - meta.center[0, t] + S / 2) % S - S / 2)
        assert err.max() < 0.25 * meta.radius[0, t] + 1.0
    # pixels covered at the start and uncovered at the end change colour (static background)
    moved = (meta.mask[0] > 0.95) & (meta.mask[-1] < 0.05)
    assert moved.sum() > 10
    diff = np.abs(frames[0].astype(int) - frames[-1].astype(int)).sum(-1)
    assert diff[moved].mean() > 30


def test_config_validation():
    with pytest.raises(ValueError, match="even"):
        SynthConfig(size=33)
    with pytest.raises(ValueError, match="Unknown"):
        SynthConfig(classes=("moving_left", "jumping"))
    with pytest.raises(ValueError, match="sorted"):
        SynthConfig(classes=("moving_right", "moving_left"))
    with pytest.raises(ValueError, match="split"):
        clip_rng(0, "holdout", 0)


def test_generate_dataset_writes_balanced_lists_and_deterministic_videos(tmp_path):
    cfg = SynthConfig(size=32, num_frames=8, classes=("moving_left", "moving_right", "rotating_anticlockwise",
                                                      "rotating_clockwise"))
    out1 = tmp_path / "a"
    summary = generate_dataset(out1, num_train=8, num_val=4, seed=7, config=cfg, workers=1)
    assert summary["counts"] == {"train": 8, "val": 4} and summary["clips_per_second"] > 0
    assert (out1 / "classes.txt").read_text().split() == list(cfg.classes)
    lines = (out1 / "train.txt").read_text().splitlines()
    labels = [int(line.rsplit(maxsplit=1)[1]) for line in lines]
    assert Counter(labels) == {0: 2, 1: 2, 2: 2, 3: 2}
    for line in lines:
        rel, label = line.rsplit(maxsplit=1)
        assert rel.startswith(f"train/{cfg.classes[int(label)]}/")
    metas = [json.loads(s) for s in (out1 / "train_meta.jsonl").read_text().splitlines()]
    assert [m["label"] for m in metas] == labels and len(metas[0]["track"][0]) == 8

    # decoded frames match the rendered ones: luma within a few levels (H.264 at crf 18); the
    # colour error is larger (4:2:0 halves the chroma resolution of these colourful textures)
    rel0 = lines[0].rsplit(maxsplit=1)[0]
    decoded = _decode(out1 / rel0)
    rendered, _ = make_clip(7, "train", 0, cfg)
    assert decoded.shape == rendered.shape
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(decoded @ luma - rendered @ luma).mean() < 4
    assert np.abs(decoded.astype(int) - rendered.astype(int)).mean() < 25

    # same seed in another folder, with two worker processes: identical decoded frames
    out2 = tmp_path / "b"
    generate_dataset(out2, num_train=4, num_val=0, seed=7, config=cfg, workers=2)
    assert (out2 / "train.txt").read_text().splitlines() == lines[:4]
    for line in lines[:4]:
        rel = line.rsplit(maxsplit=1)[0]
        np.testing.assert_array_equal(_decode(out1 / rel), _decode(out2 / rel))
    other = tmp_path / "c"
    generate_dataset(other, num_train=1, num_val=0, seed=8, config=cfg, workers=1)
    assert not np.array_equal(_decode(other / rel0), decoded)


def test_cli_writes_a_dataset(tmp_path, capsys):
    rc = syn.main(["--out", str(tmp_path), "--train", "2", "--val", "1", "--size", "32", "--frames", "4",
                   "--classes", "approaching,receding", "--workers", "1"])
    assert rc == 0 and "clips/s" in capsys.readouterr().out
    assert len((tmp_path / "train.txt").read_text().splitlines()) == 2
    assert (tmp_path / "val.txt").read_text().split()[1] == "0"
    info = json.loads((tmp_path / "synthetic.json").read_text())
    assert info["config"]["num_frames"] == 4 and info["config"]["classes"] == ["approaching", "receding"]
    with pytest.raises(SystemExit):
        syn.main(["--out", str(tmp_path), "--classes", "flying"])
    with pytest.raises(FileExistsError, match="already holds clips"):
        generate_dataset(tmp_path, 1, 0, config=SynthConfig(size=32, num_frames=4), workers=1)
    generate_dataset(tmp_path, 1, 0, config=SynthConfig(size=32, num_frames=4), workers=1, overwrite=True)
    assert len(list((tmp_path / "train").rglob("*.mp4"))) == 1 and not (tmp_path / "val").exists()


def test_difficulty_knobs_change_what_they_name():
    base = SynthConfig(size=48, num_frames=8, max_distractors=0, noise_std=(0.0, 0.0))
    # speed: ground-truth steps of a translation class stay inside the asked range
    fast = SynthConfig(size=48, num_frames=8, max_distractors=0, speed=(0.05, 0.06))
    for cfg, (lo, hi) in ((base, base.speed), (fast, fast.speed)):
        _, meta = render_clip("moving_right", clip_rng(3, "train", 0), cfg)
        step = np.hypot(*np.diff(meta.track[0], axis=0).T)
        assert np.all(step >= lo * 48 - 1e-3) and np.all(step <= hi * 48 + 1e-3)
    # object_scale: the same draws with every main radius scaled
    big = SynthConfig(size=48, num_frames=8, max_distractors=0, noise_std=(0.0, 0.0), object_scale=1.5)
    for name in ("moving_right", "approaching", "meeting"):
        _, m1 = render_clip(name, clip_rng(4, "train", 1), base)
        _, m2 = render_clip(name, clip_rng(4, "train", 1), big)
        np.testing.assert_allclose(m2.radius, 1.5 * m1.radius, rtol=1e-5)
    # background_contrast=0: a flat background (only the main object varies within a frame)
    flat = SynthConfig(size=48, num_frames=8, max_distractors=0, noise_std=(0.0, 0.0), background_contrast=0.0)
    frames, meta = render_clip("rotating_clockwise", clip_rng(5, "train", 2), flat, return_mask=True)
    bg = frames[0][meta.mask[0] == 0].astype(float)
    assert bg.std(0).max() < 1.0
    textured, meta = render_clip("rotating_clockwise", clip_rng(5, "train", 2), base, return_mask=True)
    assert textured[0][meta.mask[0] == 0].astype(float).std(0).max() > 3.0
    with pytest.raises(ValueError, match="speed"):
        SynthConfig(speed=(0.03, 0.01))
    with pytest.raises(ValueError, match="object_scale"):
        SynthConfig(object_scale=0.0)


def test_cli_passes_the_difficulty_knobs(tmp_path):
    rc = syn.main(["--out", str(tmp_path), "--train", "1", "--val", "0", "--size", "32", "--frames", "4",
                   "--workers", "1", "--speed", "0.03", "0.04", "--object-scale", "0.8",
                   "--background-contrast", "0.5", "--max-noise", "2", "--max-distractors", "1"])
    assert rc == 0
    cfg = json.loads((tmp_path / "synthetic.json").read_text())["config"]
    assert cfg["speed"] == [0.03, 0.04] and cfg["object_scale"] == 0.8
    assert cfg["background_contrast"] == 0.5 and cfg["noise_std"] == [1.0, 2.0] and cfg["max_distractors"] == 1
