"""2D (ImageNet) -> 3D inflation against the dict the official video code produces."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from uniformer.errors import CheckpointError
from uniformer.models.inflate import inflate_2d_state_dict, inflate_weight, load_inflated
from uniformer.models.uniformer import UniFormer

FIXTURE = Path(__file__).parent / "fixtures" / "uniformer_inflation_small.pt"


@pytest.fixture(scope="module")
def fix() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def test_inflated_dict_equals_official(fix):
    model = UniFormer(**fix["config_3d"])
    ours = inflate_2d_state_dict(fix["state_dict_2d"], model)
    expected = fix["state_dict_3d_expected"]
    assert list(ours) == list(expected)
    for k, v in expected.items():
        assert ours[k].dtype == v.dtype, k
        torch.testing.assert_close(ours[k], v, atol=0, rtol=0, msg=k)
    # the input dict is not modified (the official code edits it in place)
    assert fix["state_dict_2d"]["patch_embed1.proj.weight"].ndim == 4


@pytest.mark.parametrize("wrap", [None, "model", "model_state", "state_dict"])
def test_load_inflated_containers(fix, wrap):
    source = fix["state_dict_2d"] if wrap is None else {wrap: fix["state_dict_2d"], "epoch": 1}
    model = UniFormer(**fix["config_3d"])
    missing = load_inflated(model, source)
    assert missing == fix["missing_after_load"]
    loaded = model.state_dict()
    for k, v in fix["state_dict_3d_expected"].items():
        torch.testing.assert_close(loaded[k], v, atol=0, rtol=0, msg=k)


def test_load_inflated_from_file_and_same_class_count(fix, tmp_path):
    path = tmp_path / "imagenet.pth"
    torch.save({"model": fix["state_dict_2d"]}, path)
    n_2d = fix["state_dict_2d"]["head.weight"].shape[0]
    model = UniFormer(**{**fix["config_3d"], "num_classes": n_2d})
    assert load_inflated(model, path) == []  # head kept when the class counts agree
    torch.testing.assert_close(model.head.weight, fix["state_dict_2d"]["head.weight"], atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="not found"):
        load_inflated(model, tmp_path / "missing.pth")


def test_incompatible_source_raises(fix):
    other = UniFormer(**{**fix["config_3d"], "embed_dim": [16, 32, 64, 96]})
    with pytest.raises(CheckpointError, match="patch_embed4"):
        inflate_2d_state_dict(fix["state_dict_2d"], other)
    with pytest.raises(CheckpointError):
        inflate_2d_state_dict([1, 2, 3], other)


def test_inflation_is_mean_preserving_on_static_clips():
    """A 3D conv with the inflated kernel sees a temporally constant clip as the 2D conv sees a frame."""
    torch.manual_seed(0)
    w2d = torch.randn(6, 3, 5, 5, dtype=torch.float64)
    frame = torch.randn(1, 3, 12, 12, dtype=torch.float64)
    clip = frame.unsqueeze(2).repeat(1, 1, 7, 1, 1)
    out3d = F.conv3d(clip, inflate_weight(w2d, 5), padding=(0, 2, 2))
    out2d = F.conv2d(frame, w2d, padding=2)
    for t in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, t], out2d)


def test_center_inflation():
    w2d = torch.randn(4, 2, 3, 3)
    w3d = inflate_weight(w2d, 3, center=True)
    assert w3d.shape == (4, 2, 3, 3, 3)
    torch.testing.assert_close(w3d[:, :, 1], w2d)
    assert torch.all(w3d[:, :, 0] == 0) and torch.all(w3d[:, :, 2] == 0)
