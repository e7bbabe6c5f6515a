"""Extraction: maps equal the official golden maps; the normal forward stays on the fused path."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from analysis.attention import AnalysisError, anchor_attention, extract, map_names
from uniformer.models.layers import attention_capture, attention_modules
from uniformer.models.timesformer import TimeSformer
from uniformer.models.uniformer import UniFormer

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = sorted(Path(__file__).parent.joinpath("fixtures").glob("*golden_small*.pt"))
UNIFORMER_MAP = re.compile(r"^(local_affinity|global_attn|temporal_attn|spatial_attn)_stage\d+_block\d+$")


def _load(path: Path):
    fx = torch.load(path, weights_only=True)
    model = TimeSformer(**fx["config"]) if "spatial_attn" in fx else UniFormer(**fx["config"])
    model.load_state_dict(fx["state_dict"], strict=True)
    return model.eval(), fx


def _expected_maps(fx: dict) -> dict[str, torch.Tensor]:
    """Fixture maps under the names ``extract`` must use (sample 0, except kernels)."""
    if "spatial_attn" in fx:  # TimeSformer: per-block lists
        out = {f"spatial_attn_block{i}": m for i, m in enumerate(fx["spatial_attn"])}
        out.update({f"temporal_attn_block{i}": m for i, m in enumerate(fx["temporal_attn"])})
        return out
    return {k: v for k, v in fx.items() if UNIFORMER_MAP.match(k)}




@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def loaded(request):
    model, fx = _load(request.param)
    return model, fx, extract(model, fx["input"])


def test_fixtures_present():
    names = {p.name for p in FIXTURES}
    assert {"uniformer_golden_small.pt", "timesformer_golden_small.pt"} <= names


def test_extracted_maps_equal_fixture(loaded):
    _, fx, record = loaded
    expected = _expected_maps(fx)
    assert expected, "fixture holds no maps"
    assert set(record.maps) == set(expected)
    for name, ref in expected.items():
        got = record.maps[name]
        if name.startswith("local_affinity"):
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
        else:
            assert got.shape == (fx["input"].shape[0], *ref.shape), name
            torch.testing.assert_close(got[0], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(record.logits, fx["logits"], atol=1e-4, rtol=1e-4)


def test_layer_geometry(loaded):
    model, fx, record = loaded
    T = fx["input"].shape[2]
    for name, info in record.layers.items():
        m = record.maps[name]
        t, h, w = info.grid
        if info.kind == "joint":
            assert m.shape[-1] == t * h * w
        elif info.kind == "spatial":
            assert m.shape[1] == t and m.shape[-1] == h * w + info.has_cls
        elif info.kind == "temporal":
            assert m.shape[1] == h * w and m.shape[-1] == t
    if isinstance(model, UniFormer):
        assert record.frames_per_token == 2  # the stem halves time
        assert [i.layer_index for i in record.layers.values()][-1] == sum(model.depth) - 1
    else:
        assert record.frames_per_token == 1
        assert all(i.grid[0] == T for i in record.layers.values())


_VIEW_LIKE = {torch.ops.aten.unbind, torch.ops.aten.split, torch.ops.aten._unsafe_view}


class _OpLog(TorchDispatchMode):
    """Every non-aliasing aten op of a forward with its output shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, list[tuple[int, ...]]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view or func.overloadpacket in _VIEW_LIKE:
            return out  # aliases allocate nothing
        outs = out if isinstance(out, (tuple, list)) else [out]
        self.ops.append((str(func), [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]))
        return out


def test_normal_forward_unchanged_and_builds_no_maps(loaded):
    model, fx, record = loaded
    x = fx["input"]
    # the modules' own layout: (batch * sites, heads, queries, keys)
    map_shapes = {
        (m.shape[0] * m.shape[1], *m.shape[2:]) if m.dim() == 5 else tuple(m.shape)
        for n, m in record.maps.items()
        if not n.startswith("local")
    }

    with torch.no_grad():
        before = model(x)
    extract(model, x)
    # the switch and the hooks are gone again
    assert all(not m.capture and m.attn_map is None for _, m in attention_modules(model))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

    with torch.no_grad(), _OpLog() as log:
        after = model(x)
    assert torch.equal(before, after)
    torch.testing.assert_close(record.logits, after, atol=1e-5, rtol=1e-5)
    ops = [op for op, _ in log.ops]
    assert not any("softmax" in op for op in ops)
    assert any("scaled_dot_product" in op for op in ops)
    # the fused kernel's own output is (…, queries, head_dim); any other op of map shape would
    # be a materialised score matrix
    built = [(op, s) for op, shapes in log.ops if "scaled_dot_product" not in op for s in shapes if s in map_shapes]
    assert not built, f"normal forward materialised attention-shaped tensors: {built[:3]}"


def test_extract_on_a_model_that_is_not_supported():
    with pytest.raises(AnalysisError, match="supports UniFormer and TimeSformer"):
        extract(torch.nn.Linear(3, 3), torch.zeros(1, 3, 2, 32, 32))


def test_anchor_attention_reads_rows(loaded):
    _, _, record = loaded
    for name, info in record.layers.items():
        t, h, w = (g - 1 for g in info.grid)
        a = anchor_attention(record, name, (t, h, w), head=0)
        assert a.shape == info.grid
        m = record.maps[name]
        if info.kind == "joint":
            c = int(info.has_cls)
            row = m[0, 0, c + (t * info.grid[1] + h) * info.grid[2] + w, c:]
            torch.testing.assert_close(a.flatten(), row)
        elif info.kind == "spatial":
            # only the anchor's frame is filled; it holds the patch part of that row
            assert a[:t].abs().sum() == 0
            row = m[0, t, 0, int(info.has_cls) + h * info.grid[2] + w, int(info.has_cls):]
            torch.testing.assert_close(a[t].flatten(), row)
        elif info.kind == "temporal":
            torch.testing.assert_close(a[:, h, w], m[0, h * info.grid[2] + w, 0, t])
            assert a.sum() == pytest.approx(1.0, abs=1e-5)
        else:  # kernel corner at the grid corner: only the inner 3x3x3 quarter survives
            k = m[0, 0].abs()
            torch.testing.assert_close(a[t - 2 :, h - 2 :, w - 2 :], k[:3, :3, :3])
    with pytest.raises(AnalysisError, match="outside"):
        anchor_attention(record, next(iter(record.maps)), (99, 0, 0))


def test_layer_selection_keeps_other_modules_fused(loaded):
    model, fx, record = loaded
    assert map_names(model) == list(record.maps)
    attn_names = [n for n in record.maps if not n.startswith("local")]
    pick = [attn_names[-1]] + [n for n in record.maps if n.startswith("local")][:1]
    with _OpLog() as log:
        part = extract(model, fx["input"], layers=pick)
    assert list(part.maps) == [n for n in record.maps if n in pick]
    for name in pick:
        torch.testing.assert_close(part.maps[name], record.maps[name])
        assert part.layers[name] == record.layers[name]
    assert sum("softmax" in op for op, _ in log.ops) == 1  # only the one selected attention
    torch.testing.assert_close(part.logits, record.logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(AnalysisError, match="no map named nope"):
        extract(model, fx["input"], layers=["nope"])


@pytest.mark.parametrize("attention_type", ["joint_space_time", "space_only"])
def test_timesformer_other_attention_types(attention_type):
    torch.manual_seed(0)
    model = TimeSformer(img_size=32, patch_size=16, num_classes=3, embed_dim=16, depth=1, num_heads=2,
                        num_frames=3, attention_type=attention_type, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 3, 32, 48)  # 2x3 patches, T = 3
    record = extract(model, x)
    with torch.no_grad(), attention_capture(model) as mods:
        model(x)
        raw = mods["blocks.0.attn"].attn_map
    T, N = 3, 6
    if attention_type == "joint_space_time":
        (name,) = record.maps
        assert name == "joint_attn_block0" and record.layers[name].grid == (3, 2, 3)
        m = record.maps[name]
        assert m.shape == (2, 2, 1 + T * N, 1 + T * N)
        for t, n, t2, n2 in [(0, 0, 2, 5), (1, 4, 0, 3), (2, 5, 2, 5)]:
            # record: cls then (t, n); module: 1 + n*T + t
            assert m[1, 1, 1 + t * N + n, 1 + t2 * N + n2] == raw[1, 1, 1 + n * T + t, 1 + n2 * T + t2]
            assert m[1, 0, 0, 1 + t2 * N + n2] == raw[1, 0, 0, 1 + n2 * T + t2]
    else:
        assert list(record.maps) == ["spatial_attn_block0"]
        m = record.maps["spatial_attn_block0"]
        assert m.shape == (2, T, 2, 1 + N, 1 + N)
        torch.testing.assert_close(m[1, 2], raw[1 * T + 2])
