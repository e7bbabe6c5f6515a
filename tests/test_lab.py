"""The lab preset: determinism, list files, balance, sizes, and that the classes mean what they say."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from uniformer.data import lab, synthetic
from uniformer.data.lab import CLASSES, PAIRS, TEXTURE_DIR, LabConfig, make_lab_clip, render_lab_clip
from uniformer.data.synthetic import clip_rng

SMALL = LabConfig(size=48, num_frames=8)


def _decode(path) -> np.ndarray:
    from uniformer.data.video import VideoReader

    with VideoReader(path) as r:
        return r.get_frames(np.arange(r.info.num_frames))


def _screen(track: np.ndarray, meta: lab.LabMeta, size: int) -> np.ndarray:
    return lab._screen(track, meta.camera_velocity, meta.zoom, size)


def test_twelve_sorted_classes_with_time_reversal_pairs():
    assert len(CLASSES) == 12 and list(CLASSES) == sorted(CLASSES)
    for a, b in PAIRS:
        assert a in CLASSES and b in CLASSES


def test_same_index_same_frames_other_index_or_seed_different():
    a, meta_a = make_lab_clip(3, "train", 5)
    assert a.shape == (16, 112, 112, 3) and a.dtype == np.uint8  # the default: 112 px, 16 frames
    b, _ = make_lab_clip(3, "train", 5)
    np.testing.assert_array_equal(a, b)
    c, meta_c = make_lab_clip(3, "train", 5 + len(CLASSES))  # same class, next clip
    d, meta_d = make_lab_clip(4, "train", 5)
    e, _ = make_lab_clip(3, "val", 5)
    assert meta_c.class_name == meta_d.class_name == meta_a.class_name
    assert not np.array_equal(a, c) and not np.array_equal(a, d) and not np.array_equal(a, e)
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 2  # the camera and objects move


@pytest.mark.parametrize("forward,backward", PAIRS)
def test_paired_class_is_exactly_the_clip_played_backwards(forward, backward):
    fwd, mf = render_lab_clip(forward, clip_rng(2, "train", 0), SMALL)
    bwd, mb = render_lab_clip(backward, clip_rng(2, "train", 0), SMALL)
    np.testing.assert_array_equal(bwd, fwd[::-1])
    assert mb.class_name == backward and mf.label != mb.label
    # the reversed ground truth draws A at the same screen positions, in reverse order
    np.testing.assert_allclose(_screen(mb.track_a, mb, 48), _screen(mf.track_a, mf, 48)[::-1], atol=1e-6)


def _relative(name: str, seed: int, cfg: LabConfig = SMALL) -> tuple[np.ndarray, lab.LabMeta]:
    """A's motion relative to the background (reference pixels) for one clip of ``name``."""
    _, meta = render_lab_clip(name, clip_rng(seed, "train", 0), cfg)
    return meta.track_a - meta.track_a[0], meta


def test_ground_truth_matches_the_class():
    S = SMALL.size
    for seed in range(6):
        right, _ = _relative("moving_right", seed)
        left, _ = _relative("moving_left", seed)
        assert right[-1, 0] > abs(right[-1, 1]) * 0.5 and left[-1, 0] < 0
        slow, _ = _relative("slow", seed)
        fast, _ = _relative("fast", seed)
        assert np.hypot(*slow[-1]) < np.hypot(*fast[-1])
        start, _ = _relative("starting", seed)
        step = np.hypot(*np.diff(start, axis=0).T)
        assert step[0] < 1e-9 and step[-1] > SMALL.speed[0] * S * 0.99  # still first, moving at the end
        for name in ("approaching", "hiding"):
            _, m = _relative(name, seed)
            d0, d1 = (np.hypot(*(m.track_a[i] - m.track_b[i])) for i in (0, -1))
            assert d1 < d0
            if name == "approaching":  # touching at the end
                assert 0.9 < d1 / (m.radius_a + m.radius_b) < 1.1
            else:  # A ends inside B, drawn behind it
                assert d1 + m.radius_a < m.radius_b and not m.a_in_front
        for name, front in (("passing_in_front", True), ("passing_behind", False)):
            _, m = _relative(name, seed)
            assert m.a_in_front is front


def test_screen_motion_alone_does_not_give_the_direction():
    # The camera pans independently of the class: some "moving_right" clips show A moving left on
    # screen, so the label needs A's motion relative to the background around it.
    screen_dx = []
    for seed in range(40):
        _, m = render_lab_clip("moving_right", clip_rng(seed, "train", 6), SMALL)
        scr = _screen(m.track_a, m, SMALL.size)
        screen_dx.append(scr[-1, 0] - scr[0, 0])
        assert np.all(scr > -1) and np.all(scr < SMALL.size + 1)  # A stays in view
    assert min(screen_dx) < 0 < max(screen_dx)


def test_config_validation():
    with pytest.raises(ValueError, match="size must be an even number"):
        LabConfig(size=33)
    with pytest.raises(ValueError, match="Unknown lab classes"):
        LabConfig(classes=("flying",))
    with pytest.raises(ValueError, match="speed must be a range"):
        LabConfig(speed=(0.02, 0.01))
    with pytest.raises(ValueError, match="raise --fast-speed"):  # 'starting' would draw from an empty range
        LabConfig(speed=(0.05, 0.06))
    LabConfig(speed=(0.05, 0.06), fast_speed=(0.03, 0.06))
    with pytest.raises(ValueError, match="Unknown lab class"):
        render_lab_clip("flying", clip_rng(0, "train", 0), SMALL)


def test_every_texture_has_its_source_and_licence_recorded():
    readme = (TEXTURE_DIR / "README.md").read_text()
    names = [p.name for p in sorted(TEXTURE_DIR.glob("*.png"))]
    assert len(names) >= 4 and [n for n, _ in lab.texture_bank()] == [n[:-4] for n in names]
    for n in names:
        row = next(line for line in readme.splitlines() if f"`{n}`" in line)
        assert any(k in row.lower() for k in ("apache-2.0", "bsd-3-clause", "cc-by 3.0", "as above"))
    assert sum(p.stat().st_size for p in TEXTURE_DIR.iterdir()) < 1.5e6


def test_shipped_lab_examples_are_the_generator_clips_their_readme_names():
    """assets/clips/lab_<class>.mp4 are validation clips of seed 12 (never trained on), so the app's
    examples for its default models are labelled truthfully and can be remade."""
    from uniformer.assets import CLIPS_DIR

    examples = sorted(CLIPS_DIR.glob("lab_*.mp4"))
    assert len(examples) >= 4 and "seed 12" in (CLIPS_DIR / "README.md").read_text()
    for path in examples:
        name = path.stem.removeprefix("lab_")
        frames, meta = make_lab_clip(12, "val", CLASSES.index(name))  # index i has class i % 12
        assert meta.class_name == name
        assert np.abs(_decode(path).astype(np.int16) - frames.astype(np.int16)).mean() < 8  # H.264, not another clip


def test_cli_preset_lab_writes_balanced_lists_and_deterministic_videos(tmp_path, capsys):
    args = ["--preset", "lab", "--train", "12", "--val", "3", "--seed", "9", "--size", "48", "--frames", "8"]
    assert synthetic.main([*args, "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert "clips/s" in capsys.readouterr().out
    out = tmp_path / "a"
    assert (out / "classes.txt").read_text().split() == list(CLASSES)
    lines = (out / "train.txt").read_text().splitlines()
    labels = [int(line.rsplit(maxsplit=1)[1]) for line in lines]
    assert Counter(labels) == {i: 1 for i in range(12)}
    assert [int(x.split()[1]) for x in (out / "val.txt").read_text().splitlines()] == [0, 1, 2]
    for line in lines:
        rel, label = line.rsplit(maxsplit=1)
        assert rel.startswith(f"train/{CLASSES[int(label)]}/")
    info = json.loads((out / "lab.json").read_text())
    assert info["preset"] == "lab" and info["config"]["size"] == 48 and len(info["textures"]) >= 4
    metas = [json.loads(s) for s in (out / "train_meta.jsonl").read_text().splitlines()]
    assert [m["label"] for m in metas] == labels and len(metas[0]["track_a"]) == 8

    rel0 = lines[0].rsplit(maxsplit=1)[0]
    decoded = _decode(out / rel0)
    rendered, _ = make_lab_clip(9, "train", 0, LabConfig(size=48, num_frames=8))
    assert decoded.shape == rendered.shape == (8, 48, 48, 3)
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(decoded @ luma - rendered @ luma).mean() < 6
    # two workers, another folder: identical decoded frames
    assert synthetic.main([*args, "--train", "4", "--val", "0", "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    assert (tmp_path / "b" / "train.txt").read_text().splitlines() == lines[:4]
    for line in lines[:4]:
        rel = line.rsplit(maxsplit=1)[0]
        np.testing.assert_array_equal(_decode(out / rel), _decode(tmp_path / "b" / rel))
    with pytest.raises(SystemExit):
        synthetic.main(["--preset", "lab", "--out", str(tmp_path / "c"), "--classes", "flying"])


def test_lab_recipes_train_the_zoo_architectures_and_labels():
    # configs/lab_*.toml are what uniformer.ablate trains; the bundled uniformer_lab / timesformer_lab
    # are built from uniformer.models.*.ARCHS["lab"]: both must describe the same network.
    import tomllib

    from uniformer.assets import LABELS_DIR
    from uniformer.models import timesformer, uniformer

    for module, config in ((uniformer, "lab_uniformer.toml"), (timesformer, "lab_timesformer.toml")):
        recipe = tomllib.loads((Path(__file__).parents[1] / "configs" / config).read_text())
        assert recipe["model"]["kwargs"] == module.ARCHS["lab"], config
        assert recipe["data"]["size"] == module.ARCHS["lab"]["img_size"]
    assert (LABELS_DIR / "lab_motion.txt").read_text().split() == list(CLASSES)


def test_landmark_is_on_screen_except_for_the_known_approach_defect():
    # hiding / emerging / passing are defined by B and have it on screen; approaching / moving_away
    # have at most an edge of it (the defect the module docstring describes; a fix is a new preset)
    shown: dict[str, list[float]] = {c: [] for c in CLASSES}
    for i in range(36):  # three clips per class, at the real 112 px
        _, meta = make_lab_clip(1, "val", i)
        shown[meta.class_name].append(meta.landmark_on_screen(112))
    for c in ("hiding", "emerging", "passing_in_front", "passing_behind"):
        assert min(shown[c]) == 1.0, c
    assert max(shown["approaching"] + shown["moving_away"]) < 0.2
