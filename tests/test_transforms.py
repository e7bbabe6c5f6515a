"""Test-time preprocessing equals hand-computed values and the official operation order."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uniformer.data.sampling import TestProtocol
from uniformer.data.transforms import (
    preprocess_clip,
    preprocess_views,
    short_side_resize,
    to_float_cthw,
    train_transform,
)


def _proto(**kw) -> TestProtocol:
    base = dict(sampler="uniformer_dense", num_frames=4, sampling_rate=2)
    base.update(kw)
    return TestProtocol(**base)


def test_constant_frame_normalises_to_known_value():
    v = 100
    frames = np.full((4, 72, 96, 3), v, np.uint8)
    p = _proto(num_clips=2, num_crops=3, short_side=32, crop_size=32)
    out = preprocess_views([frames, frames], p)
    assert out.shape == (6, 3, 4, 32, 32) and out.dtype == torch.float32
    expected = (v / 255 - 0.45) / 0.225
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-6)


def test_per_channel_mean_std_and_bgr_swap():
    rgb = (10, 100, 200)
    frames = np.empty((2, 16, 16, 3), np.uint8)
    frames[...] = rgb
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    p = _proto(num_frames=2, short_side=16, crop_size=16, mean=mean, std=std)
    out = preprocess_views([frames], p)[0]
    for c in range(3):
        assert torch.allclose(out[c], torch.tensor((rgb[c] / 255 - mean[c]) / std[c]), atol=1e-6)
    # BGR models (TimeSformer SSv2) saw OpenCV frames: channel 0 is blue, normalised by mean[0].
    out_bgr = preprocess_views([frames], _proto(num_frames=2, short_side=16, crop_size=16,
                                               mean=mean, std=std, bgr=True))[0]
    for c, src in enumerate(reversed(rgb)):
        assert torch.allclose(out_bgr[c], torch.tensor((src / 255 - mean[c]) / std[c]), atol=1e-6)


def test_gradient_frame_three_crops_landscape():
    # Horizontal ramp: pixel (y, x) = x. Resizing 100x150 → 50x75 with bilinear,
    # align_corners=False samples source x = 2 * x' + 0.5, so the ramp stays linear.
    h, w = 100, 150
    ramp = np.broadcast_to(np.arange(w, dtype=np.uint8)[None, :, None], (h, w, 3))
    frames = np.stack([ramp, ramp])
    p = _proto(num_frames=2, num_crops=3, short_side=50, crop_size=50)
    out = preprocess_views([frames], p)
    assert out.shape == (3, 3, 2, 50, 50)
    x0s = [0, math.ceil((75 - 50) / 2), 75 - 50]  # left, centre (13), right (25)
    for view, x0 in enumerate(x0s):
        for y, x in [(0, 0), (7, 11), (49, 49), (25, 30)]:
            src = 2 * (x0 + x) + 0.5
            expected = (src / 255 - 0.45) / 0.225
            assert out[view, 1, 0, y, x].item() == pytest.approx(expected, abs=1e-5)


def test_gradient_frame_three_crops_portrait():
    # Vertical ramp on a portrait frame: crops run top / centre / bottom.
    h, w = 120, 40
    ramp = np.broadcast_to(np.arange(h, dtype=np.uint8)[:, None, None], (h, w, 3))
    frames = ramp[None].copy()
    p = _proto(num_frames=1, num_crops=3, short_side=20, crop_size=20)
    out = preprocess_views([frames], p)
    y0s = [0, math.ceil((60 - 20) / 2), 60 - 20]
    for view, y0 in enumerate(y0s):
        for y, x in [(0, 0), (19, 3), (10, 19)]:
            src = 2 * (y0 + y) + 0.5
            assert out[view, 0, 0, y, x].item() == pytest.approx((src / 255 - 0.45) / 0.225, abs=1e-5)


def test_matches_official_order_normalise_then_interpolate():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 57, 83, 3), dtype=np.uint8)
    p = _proto(num_frames=3, num_crops=3, short_side=40, crop_size=36, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    ours = preprocess_clip(frames, p)
    # The PySlowFast sequence, written out: float/255, normalise, CTHW, interpolate, crop.
    x = torch.from_numpy(frames).float() / 255.0
    x = (x - torch.tensor(p.mean)) / torch.tensor(p.std)
    x = x.permute(3, 0, 1, 2)
    new_w = int(math.floor((83 / 57) * 40))
    x = F.interpolate(x, size=(40, new_w), mode="bilinear", align_corners=False)
    ref = torch.stack([x[:, :, 2:38, xo:xo + 36] for xo in (0, math.ceil((new_w - 36) / 2), new_w - 36)])
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-6)


def test_uint8_resize_would_differ():
    # Guard for the order of operations: resizing uint8 first rounds pixels.
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(1, 30, 45, 3), dtype=np.uint8)
    p = _proto(num_frames=1, short_side=20, crop_size=20)
    ours = preprocess_clip(frames, p)[0]
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)
    x8 = F.interpolate(x.float(), size=(20, 30), mode="bilinear", align_corners=False).round()
    alt = ((x8 / 255 - 0.45) / 0.225)[..., 5:25]
    assert not torch.allclose(ours, alt, atol=1e-4)


def test_views_are_clip_major():
    a = np.full((2, 24, 32, 3), 50, np.uint8)
    b = np.full((2, 24, 32, 3), 200, np.uint8)
    p = _proto(num_frames=2, num_clips=2, num_crops=3, short_side=24, crop_size=24)
    out = preprocess_views([a, b], p)
    means = out.mean(dim=(1, 2, 3, 4))
    assert torch.allclose(means[:3], torch.tensor((50 / 255 - 0.45) / 0.225), atol=1e-6)
    assert torch.allclose(means[3:], torch.tensor((200 / 255 - 0.45) / 0.225), atol=1e-6)


def test_short_side_already_right_is_not_resampled():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(1, 24, 40, 3), dtype=np.uint8)
    x = to_float_cthw(frames, (0.45,) * 3, (0.225,) * 3)
    assert short_side_resize(x, 24) is x
    out = preprocess_clip(frames, _proto(num_frames=1, short_side=24, crop_size=24))[0]
    assert torch.allclose(out, x[..., 8:32], atol=0)  # centre crop x0 = ceil(16 / 2) = 8


def test_rejects_wrong_dtype_or_layout():
    with pytest.raises(ValueError):
        to_float_cthw(np.zeros((2, 8, 8, 3), np.float32), (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError):
        to_float_cthw(np.zeros((2, 3, 8, 8), np.uint8), (0.5,) * 3, (0.5,) * 3)


# ----------------------------------------------------------------------------------- training

def test_train_transform_same_params_for_every_frame():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (1, 3, 60, 90), dtype=torch.uint8)
    clip = img.repeat(5, 1, 1, 1)  # (T, C, H, W), all frames identical
    t = train_transform(32)
    for _ in range(5):
        out = t(clip)
        assert out.shape == (3, 5, 32, 32) and out.dtype == torch.float32
        assert torch.equal(out, out[:, :1].expand_as(out))


def test_train_transform_flip_toggle():
    # Full-frame "crop" (scale 1, the frame's own aspect) isolates the flip.
    h, w = 40, 60
    ramp = torch.arange(w, dtype=torch.uint8).expand(h, w)
    clip = torch.stack([ramp + 10 * t for t in range(3)])[:, None].expand(3, 3, h, w).contiguous()
    ratio = (w / h, w / h)
    no_flip = train_transform(40, scale=(1.0, 1.0), flip=False, ratio=ratio)
    ref = no_flip(clip)
    torch.manual_seed(0)
    for _ in range(5):
        assert torch.equal(no_flip(clip), ref)
    flip = train_transform(40, scale=(1.0, 1.0), flip=True, ratio=ratio)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = flip(clip)
        if torch.equal(out, ref):
            seen.add("plain")
        else:
            assert torch.equal(out, ref.flip(-1))  # every frame flipped together
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_train_transform_accepts_thwc_numpy_and_normalises():
    clip = np.full((2, 20, 30, 3), 255, np.uint8)
    out = train_transform(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(clip)
    assert out.shape == (3, 2, 16, 16)
    assert torch.allclose(out, torch.ones_like(out))
