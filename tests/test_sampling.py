"""Samplers and crop geometry equal the official code's choices (reference JSON from the official repos)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES
from uniformer.data.sampling import (
    TestProtocol,
    combine_views,
    crop_offsets,
    plan_sampling,
    resized_hw,
    sample_indices,
)

UNI = json.loads((FIXTURES / "uniformer_sampling_reference.json").read_text())
TSF = json.loads((FIXTURES / "timesformer_sampling_reference.json").read_text())


def _id(case: dict, *keys: str) -> str:
    return "-".join(f"{k}{case[k]}" for k in keys)


# ---------------------------------------------------------------------------------- UniFormer

@pytest.mark.parametrize("case", UNI["kinetics"],
                         ids=[_id(c, "video_frames", "num_frames", "sampling_rate", "num_clips")
                              for c in UNI["kinetics"]])
def test_uniformer_dense_matches_reference(case):
    p = TestProtocol("uniformer_dense", case["num_frames"], case["sampling_rate"], num_clips=case["num_clips"])
    clips = sample_indices(p, case["video_frames"], fps=30.0)
    assert [c.tolist() for c in clips] == case["indices"]
    assert all(c.dtype == np.int64 for c in clips)


@pytest.mark.parametrize("case", UNI["sth"],
                         ids=[_id(c, "video_frames", "num_frames", "num_views") for c in UNI["sth"]])
def test_uniformer_segment_matches_reference(case):
    p = TestProtocol("uniformer_segment", case["num_frames"], num_clips=case["num_views"])
    clips = sample_indices(p, case["video_frames"], fps=12.0)
    # The reference holds 1-based image numbers (img_00001.jpg); we return 0-based frame indices.
    expected_0based = [[i - 1 for i in view] for view in case["indices_1based"]]
    assert [c.tolist() for c in clips] == expected_0based
    assert all(c.min() >= 0 and c.max() <= case["video_frames"] - 1 for c in clips)


def test_uniformer_dense_does_not_depend_on_fps():
    p = TestProtocol("uniformer_dense", 16, 8, num_clips=4)
    a = sample_indices(p, 1000, fps=10.0)
    b = sample_indices(p, 1000, fps=60.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# -------------------------------------------------------------------------------- TimeSformer

KIN1 = TSF["kinetics_test_1clip"]["cases"]


@pytest.mark.parametrize("case", KIN1,
                         ids=[f"{c['config']}-fps{c['video_fps']}-n{c['video_num_frames']}" for c in KIN1])
def test_timesformer_dense_one_clip_matches_reference(case):
    p = TestProtocol("timesformer_dense", case["num_frames"], case["sampling_rate"], target_fps=30)
    plan = plan_sampling(p, case["video_num_frames"], case["video_fps"])
    assert len(plan.clips) == 1
    assert plan.clips[0].tolist() == case["indices"]
    assert plan.span == pytest.approx(case["clip_size_in_source_frames"])
    assert plan.video_shorter_than_clip == (case["video_num_frames"] < case["clip_size_in_source_frames"])


KIN10 = TSF["kinetics_test_10clips_for_reference"]["cases"]


@pytest.mark.parametrize("case", KIN10, ids=[f"n{c['video_num_frames']}-clip{c['clip_idx']}" for c in KIN10])
def test_timesformer_dense_ten_clips_matches_reference(case):
    p = TestProtocol("timesformer_dense", case["num_frames"], case["sampling_rate"], num_clips=10)
    clips = sample_indices(p, case["video_num_frames"], case["video_fps"])
    assert len(clips) == 10
    assert clips[case["clip_idx"]].tolist() == case["indices"]


SSV2 = TSF["ssv2_test"]["cases"]


@pytest.mark.parametrize("case", SSV2, ids=[_id(c, "num_frames", "video_num_frames") for c in SSV2])
def test_timesformer_segment_matches_reference(case):
    p = TestProtocol("timesformer_segment", case["num_frames"], num_crops=3)
    (clip,) = sample_indices(p, case["video_num_frames"], fps=30.0)
    assert clip.tolist() == case["indices"]


def test_timesformer_segment_rounds_half_to_even():
    # seg = 1.5 for 13 frames / 8 segments: round(1.5) = 2 and round(4.5) = 4 (numpy), not 5.
    p = TestProtocol("timesformer_segment", 8)
    (clip,) = sample_indices(p, 13, fps=30.0)
    assert clip[1] == (2 + 3) // 2 and clip[2] == (3 + 4) // 2


# ------------------------------------------------------------------------------------ spatial

CROPS = TSF["spatial_test_3crop"]["cases"]


@pytest.mark.parametrize("case", CROPS,
                         ids=[f"{c['input_hw'][0]}x{c['input_hw'][1]}-{c['test_crop_size']}" for c in CROPS])
def test_three_crop_geometry_matches_reference(case):
    size = case["test_crop_size"]
    h, w = case["input_hw"]
    p = TestProtocol("timesformer_dense", 8, 32, num_crops=3, short_side=size, crop_size=size)
    assert list(resized_hw(h, w, size)) == case["resized_hw"]
    assert crop_offsets(h, w, p) == [(c["y0"], c["x0"]) for c in case["crops"]]


def test_single_centre_crop_after_resize_to_256():
    # UniFormer K400 as shipped: short side 256, one centre crop of 224 on both axes.
    p = TestProtocol("uniformer_dense", 16, 8, num_crops=1, short_side=256, crop_size=224)
    assert resized_hw(576, 768, 256) == (256, 341)          # floor(768 / 576 * 256) = 341
    assert crop_offsets(576, 768, p) == [(16, 59)]           # ceil(32 / 2), ceil(117 / 2)
    assert crop_offsets(768, 576, p) == [(59, 16)]


def test_resize_uses_float_division_first():
    # The official code computes floor((long / short) * size): for 196x427 at 224 that is
    # floor(487.99999…) = 487, where exact integer arithmetic would give 488.
    assert resized_hw(196, 427, 224) == (224, 487)
    assert resized_hw(427, 196, 224) == (487, 224)
    assert resized_hw(1080, 1920, 224) == (224, 398)
    assert resized_hw(224, 500, 224) == (224, 500)  # short side already right: untouched


def test_crop_larger_than_frame_is_rejected():
    p = TestProtocol("uniformer_dense", 8, 8, short_side=200, crop_size=224)
    with pytest.raises(ValueError):
        crop_offsets(300, 400, p)


# --------------------------------------------------------------------------- views and flags

def test_view_order_is_clip_major():
    p = TestProtocol("uniformer_dense", 8, 8, num_clips=4, num_crops=3)
    assert p.num_views == 12
    assert [p.view_clip_crop(v) for v in range(4)] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert all(p.view_index(*p.view_clip_crop(v)) == v for v in range(12))


def test_short_video_is_flagged():
    p = TestProtocol("uniformer_dense", 16, 8, num_clips=4)
    short = plan_sampling(p, 40, fps=25)
    assert short.video_shorter_than_clip and short.repeats_frames
    assert short.unique_indices.max() == 39
    long = plan_sampling(p, 400, fps=25)
    assert not long.video_shorter_than_clip and not long.repeats_frames


def test_segment_sampler_flags_repeats_only_when_needed():
    p = TestProtocol("uniformer_segment", 16)
    assert plan_sampling(p, 10, fps=12).repeats_frames
    assert not plan_sampling(p, 100, fps=12).repeats_frames


def test_one_frame_video_repeats_frame_zero():
    for sampler in ("uniformer_dense", "uniformer_segment", "timesformer_dense", "timesformer_segment"):
        plan = plan_sampling(TestProtocol(sampler, 8, 4, num_clips=2), 1, fps=25)
        assert all(c.tolist() == [0] * 8 for c in plan.clips)
        assert plan.repeats_frames and plan.video_shorter_than_clip


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        sample_indices(TestProtocol("uniformer_dense", 8, 8), 0, fps=25)
    with pytest.raises(ValueError):
        sample_indices(TestProtocol("timesformer_dense", 8, 32), 100, fps=0)
    with pytest.raises(ValueError):
        TestProtocol("uniformer_dense", 8, 8, num_crops=2)
    with pytest.raises(ValueError):
        TestProtocol("nearest", 8)  # type: ignore[arg-type]


def test_combine_views_sums_raw_logits():
    logits = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    assert torch.equal(combine_views(logits), torch.tensor([4.0, -1.0, -0.5]))
    assert torch.allclose(combine_views(logits, "mean"), torch.tensor([2.0, -0.5, -0.25]))
    batched = torch.stack([logits, -logits])  # (B, V, K)
    assert combine_views(batched).shape == (2, 3)
    with pytest.raises(ValueError):
        combine_views(logits, "max")  # type: ignore[arg-type]
