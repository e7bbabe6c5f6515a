"""Datasets: annotation parsing, item shapes, test views, flip policy, unreadable files."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from uniformer.data.datasets import (
    AnnotationError,
    SSv2Dataset,
    VideoDataset,
    VideoFolderDataset,
    VideoListDataset,
    names_direction,
    parse_video_list,
    read_class_names,
)
from uniformer.data.sampling import TestProtocol, sample_indices
from uniformer.data.synthetic import CLASSES, SynthConfig, generate_dataset
from uniformer.errors import VideoError

T, S = 8, 32


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """12 train clips (one per class) and 4 val clips of 32x32x8 frames."""
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, num_train=12, num_val=4, seed=0, config=SynthConfig(size=S, num_frames=T),
                     workers=1)
    return out


def _write(path, text):
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# parsing


def test_parse_list_whitespace_csv_spaces_comments_and_header(tmp_path):
    f = _write(tmp_path / "list.txt",
               "# comment\n\na/b.mp4 3\nmy clips/c d.mp4\t7\nx.mp4,2\n\"q r.mp4\", 5\n/abs/v.mp4 0\n")
    assert parse_video_list(f, root="/data") == [
        ("/data/a/b.mp4", 3), ("/data/my clips/c d.mp4", 7), ("/data/x.mp4", 2),
        ("/data/q r.mp4", 5), ("/abs/v.mp4", 0)]
    assert parse_video_list(f)[0] == (str(tmp_path / "a/b.mp4"), 3)  # default root: list folder
    csv = _write(tmp_path / "list.csv", "path,label\nv1.mp4,1\nv2.mp4,0\n")
    assert [y for _, y in parse_video_list(csv)] == [1, 0]


def test_parse_list_errors_are_one_sentence_annotation_errors(tmp_path):
    with pytest.raises(AnnotationError, match="Line 2 .* not 'path label'"):
        parse_video_list(_write(tmp_path / "bad.txt", "a.mp4 1\nb.mp4 cat\n"))
    with pytest.raises(AnnotationError, match="no samples"):
        parse_video_list(_write(tmp_path / "empty.txt", "# nothing\n"))
    with pytest.raises(AnnotationError, match="does not exist"):
        parse_video_list(tmp_path / "missing.txt")
    with pytest.raises(AnnotationError, match="outside the 2 known classes"):
        VideoListDataset(_write(tmp_path / "l.txt", "a.mp4 2\n"), classes=["x", "y"])


def test_class_names_file_and_direction_words(tmp_path):
    assert read_class_names(_write(tmp_path / "c.txt", "riding a bike\t0\nmarching\t1\n\n")) == [
        "riding a bike", "marching"]
    assert names_direction(CLASSES)
    assert names_direction(["Moving something from left to right"])
    assert not names_direction(["abseiling", "playing guitar", "brightening"])
    assert not names_direction(None)
    samples = [("a.mp4", 0)]
    assert VideoDataset(samples, classes=["abseiling", "zumba"]).flip is True
    assert VideoDataset(samples, classes=["moving_left", "moving_right"]).flip is False
    assert VideoDataset(samples).flip is False  # unknown names: never flip by default
    assert VideoDataset(samples, flip=True).flip is True
    assert VideoDataset(samples, classes=["abseiling"], flip=False).transform.flip is False


def test_folder_dataset_labels_follow_sorted_folders(synth):
    ds = VideoFolderDataset(synth / "train", mode="train", num_frames=T, size=S)
    assert ds.classes == sorted(CLASSES) and len(ds) == 12
    listed = dict(VideoListDataset(synth / "train.txt").samples)
    assert all(listed[p] == y for p, y in ds.samples)
    assert ds.flip is False  # direction words in the class names


def test_ssv2_json_templates_without_brackets_and_no_flip(tmp_path, synth, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    for vid in ("11", "22", "33"):
        shutil.copy(next((synth / "train" / "moving_left").glob("*.mp4")), videos / f"{vid}.mp4")
    labels = _write(tmp_path / "labels.json", json.dumps({
        "Moving something from left to right": "1", "Pushing something so it spins": "0",
        "Putting something on a surface": "2"}))
    ann = _write(tmp_path / "train.json", json.dumps([
        {"id": "11", "label": "moving a cup", "template": "Moving [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "22", "template": "Putting [something] on a surface"},
        {"id": "33"}]))  # test-set style entry: no template, label unknown
    with caplog.at_level(logging.WARNING):
        ds = SSv2Dataset(ann, labels, videos, ext="mp4", mode="train", num_frames=4, size=S, flip=True)
    assert "flip is disabled" in caplog.text
    assert ds.classes == ["Pushing something so it spins", "Moving something from left to right",
                          "Putting something on a surface"]
    assert ds.labels == [1, 2, -1] and ds.samples[0][0] == str(videos / "11.mp4")
    assert ds.flip is False and ds.sampler == "segment"
    x, y = ds[0]
    assert x.shape == (3, 4, S, S) and y == 1
    test = SSv2Dataset(ann, labels, videos, ext="mp4", mode="test", num_frames=4, size=S)
    assert test.num_views == 3 and test[2][0].shape == (3, 3, 4, S, S) and test[2][1] == -1

    bad = _write(tmp_path / "bad.json", json.dumps([{"id": "1", "template": "Dancing with [something]"}]))
    with pytest.raises(AnnotationError, match="not in the labels file"):
        SSv2Dataset(bad, labels, videos)
    with pytest.raises(AnnotationError, match="not valid JSON"):
        SSv2Dataset(_write(tmp_path / "broken.json", "[{"), labels, videos)


# ------------------------------------------------------------------------------------------------
# items


def test_train_items_have_the_right_shape_dtype_and_are_seeded(synth):
    ds = VideoListDataset(synth / "train.txt", mode="train", num_frames=4, sampling_rate=2, size=24,
                          scale=(0.5, 1.0))
    assert ds.classes == list(CLASSES) and ds.flip is False  # classes.txt found beside the list
    torch.manual_seed(0)
    x, y = ds[5]
    assert x.shape == (3, 4, 24, 24) and x.dtype == torch.float32 and y == 5
    assert isinstance(y, int)
    assert -2.5 < float(x.mean()) < 2.5 and float(x.std()) > 0.05  # normalised, not raw 0-255
    torch.manual_seed(0)
    x2, _ = ds[5]
    torch.testing.assert_close(x, x2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (3, 3, 4, 24, 24) and yb.tolist() == [0, 1, 2]


def test_train_frame_sampling_dense_and_segment():
    ds = VideoDataset([("x.mp4", 0)], num_frames=4, sampling_rate=3)
    torch.manual_seed(1)
    starts = set()
    for _ in range(30):
        idx = ds.frame_indices(100)[0]
        assert len(idx) == 4 and idx.min() >= 0 and idx.max() < 100
        assert np.all(np.diff(idx) >= 3) and idx[-1] - idx[0] == 11  # span 4 x 3, linspace
        starts.add(int(idx[0]))
    assert len(starts) > 10  # random clip start
    assert ds.frame_indices(5)[0].max() == 4  # short video: clamped to the last frame
    seg = VideoDataset([("x.mp4", 0)], num_frames=4, sampler="segment")
    seen = set()
    for _ in range(40):
        idx = seg.frame_indices(41)[0]  # segments of 10 frames: [0,10], [10,20], [20,30], [30,40]
        assert all(10 * i <= v <= 10 * (i + 1) for i, v in enumerate(idx))
        seen.add(int(idx[0]))
    assert len(seen) > 5


def test_val_returns_all_views_with_the_official_protocol(synth):
    ds = VideoListDataset(synth / "val.txt", mode="val", num_frames=4, sampling_rate=2, size=S,
                          num_clips=2, num_crops=3)
    x, y = ds[1]
    assert x.shape == (6, 3, 4, S, S) and x.dtype == torch.float32 and y == 1
    assert ds.protocol.sampler == "uniformer_dense" and ds.num_views == 6
    np.testing.assert_array_equal(ds.frame_indices(T, 8.0)[1], sample_indices(ds.protocol, T, 8.0)[1])
    # deterministic: the same views every time
    torch.testing.assert_close(ds[1][0], x)
    p = TestProtocol(sampler="timesformer_segment", num_frames=4, short_side=S, crop_size=S)
    custom = VideoListDataset(synth / "val.txt", mode="test", protocol=p)
    assert custom[0][0].shape == (1, 3, 4, S, S)


# ------------------------------------------------------------------------------------------------
# unreadable files


def _with_corrupt(tmp_path, synth):
    bad = _write(tmp_path / "broken.mp4", "this is not a video")
    lst = _write(tmp_path / "list.txt", f"{bad} 0\n{synth / 'train/appearing/train_000000.mp4'} 0\n")
    return bad, lst


def test_train_retries_another_video_after_an_unreadable_one(tmp_path, synth, caplog):
    bad, lst = _with_corrupt(tmp_path, synth)
    ds = VideoListDataset(lst, mode="train", num_frames=4, size=S, max_retries=50)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="uniformer.data.datasets"):
        x, y = ds[0]
    assert x.shape == (3, 4, S, S) and y == 0
    assert "broken.mp4" in caplog.text and "trying another" in caplog.text

    only_bad = VideoListDataset(_write(tmp_path / "bad.txt", f"{bad} 0\n"), mode="train", max_retries=2)
    with pytest.raises(VideoError, match="3 training videos in a row .*broken.mp4"):
        only_bad[0]


def test_test_mode_raises_video_error_naming_the_file(tmp_path, synth):
    _, lst = _with_corrupt(tmp_path, synth)
    ds = VideoListDataset(lst, mode="test", num_frames=4, size=S)
    with pytest.raises(VideoError, match="broken.mp4"):
        ds[0]
    assert ds[1][0].shape == (1, 3, 4, S, S)
    missing = VideoListDataset(_write(tmp_path / "m.txt", "nowhere.mp4 0\n"), mode="val")
    with pytest.raises(VideoError, match="nowhere.mp4"):
        missing[0]


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        VideoDataset([("a.mp4", 0)], mode="eval")
    with pytest.raises(ValueError, match="sampler"):
        VideoDataset([("a.mp4", 0)], sampler="uniform")
    with pytest.raises(ValueError, match="short_side"):
        VideoDataset([("a.mp4", 0)], size=224, short_side=200)


@pytest.mark.parametrize("mode", ["train", "val"])
def test_phone_clip_with_display_rotation_is_upright_in_datasets(tmp_path, mode):
    # Upright: bright top half, dark bottom half; stored sideways under a -90 degree display matrix.
    from tests.media import write_rotated_clip

    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:32] = 230
    coded = np.ascontiguousarray(np.rot90(upright, 1))  # what the phone stores (64 wide, 48 high)
    path = write_rotated_clip(tmp_path / "phone.mp4", coded, -90, num_frames=4)
    ds = VideoDataset([(str(path), 0)], mode=mode, num_frames=2, sampling_rate=1, size=32,
                      scale=(1.0, 1.0), ratio=(0.75, 0.75), flip=False)
    x, _ = ds[0]
    img = x.reshape(-1, *x.shape[-2:]).mean(0)  # (S, S) over views, channels and frames
    assert img[:8].mean() - img[-8:].mean() > 1.0  # top bright, bottom dark: upright
    assert abs(float(img[:, :8].mean() - img[:, -8:].mean())) < 0.2  # no left/right split (sideways)
