"""Checkpoint reading, unwrapping, strict matching and the restricted unpickler (offline, tiny)."""
from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from uniformer.errors import CheckpointError
from uniformer.models import TimeSformer, UniFormer, timesformer_filter_fn, uniformer_filter_fn
from uniformer.models.checkpoint import (
    OpaqueObject,
    guess_family,
    load_checkpoint,
    match_state_dict,
    read_checkpoint,
    restricted_torch_load,
    unwrap_state_dict,
)

TINY_UNIFORMER = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=16, num_classes=5)
TINY_TIMESFORMER = dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_frames=2, num_classes=5)


def tiny_uniformer(**over) -> UniFormer:
    torch.manual_seed(0)
    return UniFormer(**{**TINY_UNIFORMER, **over}).eval()


def tiny_timesformer(**over) -> TimeSformer:
    torch.manual_seed(0)
    return TimeSformer(**{**TINY_TIMESFORMER, **over}).eval()


def trained_state(model: torch.nn.Module) -> OrderedDict:
    """A state dict that differs from any fresh init (including BN statistics)."""
    g = torch.Generator().manual_seed(1)
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        sd[k] = v.clone() if not v.is_floating_point() else torch.randn(v.shape, generator=g).abs() + 0.1
    return sd


def same_state(a: torch.nn.Module | dict, b: dict) -> bool:
    a = a.state_dict() if isinstance(a, torch.nn.Module) else a
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.rstrip().endswith((".", "?")) and len(msg) < 1500


# ============================================================================ containers
def _containers(sd: OrderedDict) -> dict[str, object]:
    no_counter = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    return {
        "plain": sd,
        "model": {"model": sd, "epoch": 3},
        "model_state_pyth": {"epoch": 1, "model_state": OrderedDict((f"model.{k}", v) for k, v in sd.items()),
                             "optimizer_state": {"state": {}, "param_groups": []},
                             "cfg": "MODEL:\n  ARCH: uniformer\n"},
        "state_dict_module": {"state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items())},
        "module_container": {"module": sd},
        "backbone_prefix": OrderedDict((f"backbone.{k}", v) for k, v in sd.items()),
        "nested": {"checkpoint": 1, "model": {"state_dict": sd}},
        "no_bn_counters": no_counter,
    }


@pytest.mark.parametrize("kind", list(_containers(OrderedDict())))
def test_every_container_loads_strictly(tmp_path, kind):
    src = tiny_uniformer()
    sd = trained_state(src)
    path = tmp_path / "ckpt.pth"
    torch.save(_containers(sd)[kind], path)
    model = tiny_uniformer()
    assert not same_state(model, sd)
    load_checkpoint(model, path, filter_fn=uniformer_filter_fn)
    assert same_state(model, sd)


def test_safetensors_and_legacy_torch_format(tmp_path):
    sd = trained_state(tiny_uniformer())
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    legacy = tmp_path / "w_legacy.pth"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    renamed = tmp_path / "w_safetensors_named.pth"  # safetensors content under a .pth name
    renamed.write_bytes(st.read_bytes())
    for path in (st, legacy, renamed):
        model = tiny_uniformer()
        load_checkpoint(model, path, filter_fn=uniformer_filter_fn)
        assert same_state(model, sd), path.name


def test_already_loaded_object_is_accepted():
    sd = trained_state(tiny_timesformer())
    model = tiny_timesformer()
    load_checkpoint(model, {"model_state": {f"model.{k}": v for k, v in sd.items()}}, filter_fn=timesformer_filter_fn)
    assert same_state(model, sd)


def test_official_timesformer_pyth_fixture_reproduces_golden_logits(fixtures_dir):
    obj = read_checkpoint(fixtures_dir / "timesformer_checkpoint_small_official_format.pyth")
    assert set(obj) >= {"epoch", "model_state", "optimizer_state", "cfg"}
    assert all(k.startswith("model.") for k in obj["model_state"])
    golden = torch.load(fixtures_dir / "timesformer_golden_small.pt", weights_only=True)
    model = TimeSformer(**golden["config"]).eval()
    load_checkpoint(model, fixtures_dir / "timesformer_checkpoint_small_official_format.pyth",
                    filter_fn=timesformer_filter_fn)
    with torch.no_grad():
        torch.testing.assert_close(model(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)


def test_hf_named_timesformer_weights_load_through_the_family_filter(fixtures_dir):
    keymap = dict(json.loads((fixtures_dir / "timesformer_keys_base_divst_8x224_k400.json").read_text())
                  ["hf_transformers_port"]["key_map"])
    golden = torch.load(fixtures_dir / "timesformer_golden_small.pt", weights_only=True)

    try:
        hf_sd = {keymap[k]: v for k, v in golden["state_dict"].items()}
    except KeyError:
        pytest.fail("the key map in the fixture does not cover the golden state dict")
    assert any(k.startswith("timesformer.embeddings") for k in hf_sd)
    model = TimeSformer(**golden["config"]).eval()
    load_checkpoint(model, {"state_dict": hf_sd}, filter_fn=timesformer_filter_fn)
    assert same_state(model, dict(golden["state_dict"]))


def test_use_ema_selects_ema_weights_only_when_asked():
    sd = trained_state(tiny_uniformer())
    ema = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in sd.items())
    obj = {"model": sd, "state_dict_ema": ema}
    assert same_state(unwrap_state_dict(obj), sd)
    assert same_state(unwrap_state_dict(obj, use_ema=True), ema)


# ======================================================================= restricted path
class CfgNode(dict):
    """Stand-in for yacs.config.CfgNode: a dict subclass with instance attributes."""

    side_effects: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__["_immutable"] = True

    def __setstate__(self, state):  # must never run when loading through our reader
        CfgNode.side_effects.append("setstate")
        self.__dict__.update(state)


def test_pyth_with_pickled_config_object_loads_without_running_its_code(tmp_path):
    sd = trained_state(tiny_timesformer())
    cfg = CfgNode(MODEL=CfgNode(NUM_CLASSES=5, ARCH="vit"), TRAIN=CfgNode(BATCH_SIZE=8))
    path = tmp_path / "official_like.pyth"
    torch.save({"epoch": 15, "model_state": OrderedDict((f"model.{k}", v) for k, v in sd.items()), "cfg": cfg}, path)
    with pytest.raises(pickle.UnpicklingError):  # the safe default refuses the class
        torch.load(path, weights_only=True)
    torch.load(path, weights_only=False)  # an unrestricted load does run the class's code ...
    assert "setstate" in CfgNode.side_effects
    CfgNode.side_effects.clear()
    obj = read_checkpoint(path)  # ... our reader takes the restricted path and does not
    assert CfgNode.side_effects == []
    assert isinstance(obj["cfg"], OpaqueObject) and not isinstance(obj["cfg"], CfgNode)
    assert obj["cfg"]["MODEL"]["NUM_CLASSES"] == 5  # dict content stays readable, inertly
    assert "CfgNode" in repr(obj["cfg"])
    model = tiny_timesformer()
    load_checkpoint(model, path, filter_fn=timesformer_filter_fn)
    assert same_state(model, sd)
    assert CfgNode.side_effects == []


class _Payload:
    """Pickles as ``callable(*args)``: what a malicious checkpoint would execute on load."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _payloads(marker):
    import builtins

    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(builtins.exec, code),
        "builtins.eval": _Payload(builtins.eval, f"__import__('os').system('touch {marker}')"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call"])
def test_malicious_reduce_payload_never_runs(tmp_path, name):
    marker = tmp_path / "side_effect.txt"
    payload = _payloads(marker)[name]
    sd = trained_state(tiny_uniformer())
    nested = tmp_path / "nested.pth"  # weights plus a payload: weights load, payload stays inert
    torch.save({"model": sd, "extra": payload}, nested)
    whole = tmp_path / "whole.pth"  # the file *is* the payload: refused
    torch.save(payload, whole)
    raw = tmp_path / "raw.pkl"  # a plain pickle, not a torch file
    raw.write_bytes(pickle.dumps(payload, protocol=2))

    model = tiny_uniformer()
    load_checkpoint(model, nested, filter_fn=uniformer_filter_fn)
    assert same_state(model, sd)
    obj, substituted = restricted_torch_load(nested)
    assert isinstance(obj["extra"], OpaqueObject) and substituted
    with pytest.raises(CheckpointError):
        load_checkpoint(tiny_uniformer(), whole, filter_fn=uniformer_filter_fn)
    with pytest.raises(CheckpointError):
        read_checkpoint(raw)
    assert not marker.exists(), f"{name} payload was executed"


# ================================================================================ errors
def _mp4_bytes() -> bytes:
    return b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 4


@pytest.mark.parametrize("case, expected", [
    ("missing", "not found"),
    ("directory", "directory"),
    ("empty", "empty"),
    ("random", "not a PyTorch or safetensors checkpoint"),
    ("text", "text file"),
    ("video", "video file"),
    ("html", "HTML page"),
    ("truncated", "truncated"),
    ("bad_safetensors", "safetensors"),
    ("plain_zip", "zip archive"),
])
def test_unreadable_files_give_one_sentence(tmp_path, case, expected):
    path = tmp_path / f"{case}.pth"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(1, 2000)))
    elif case == "text":
        path.write_text("epoch,loss\n1,0.5\n" * 50)
    elif case == "video":
        path = tmp_path / "clip.mp4"
        path.write_bytes(_mp4_bytes())
    elif case == "html":
        path.write_text("<!DOCTYPE html><html><body>Dropbox - sign in</body></html>")
    elif case == "truncated":
        good = tmp_path / "good.pth"
        torch.save(trained_state(tiny_uniformer()), good)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bad_safetensors":
        path = tmp_path / "w.safetensors"
        good = tmp_path / "good.safetensors"
        save_file({"a": torch.ones(100)}, str(good))
        path.write_bytes(good.read_bytes()[:-40])
    elif case == "plain_zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert expected in msg and one_sentence(msg), msg


@pytest.mark.parametrize("obj, expected", [
    ([torch.ones(1)], "holds a list"),
    ({}, "no weights"),
    ({"epoch": 3, "cfg": "x"}, "no state dict of tensors"),
    ({"model": {"a": torch.ones(1), "b": "not a tensor"}}, "non-tensor"),
])
def test_unwrap_rejects_non_state_dicts(obj, expected):
    with pytest.raises(CheckpointError) as info:
        unwrap_state_dict(obj)
    assert expected in str(info.value) and one_sentence(str(info.value))


# ============================================================================== matching
def _load_fails_and_leaves_model_untouched(model, source, **kw) -> str:
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, source, **kw)
    assert same_state(model, before), "a failed load modified the model"
    msg = str(info.value)
    assert one_sentence(msg), msg
    return msg


def test_other_family_is_named_in_the_error():
    uf_sd = trained_state(tiny_uniformer())
    msg = _load_fails_and_leaves_model_untouched(tiny_timesformer(), uf_sd, filter_fn=timesformer_filter_fn)
    assert "TimeSformer" in msg and "missing" in msg and "unexpected" in msg
    assert "looks like a UniFormer checkpoint" in msg and "uniformer_*" in msg
    ts_sd = trained_state(tiny_timesformer())
    msg = _load_fails_and_leaves_model_untouched(tiny_uniformer(), ts_sd, filter_fn=uniformer_filter_fn)
    assert "looks like a TimeSformer checkpoint" in msg and "timesformer_*" in msg


def test_other_size_is_named_in_the_error(fixtures_dir):
    # Real UniFormer-S (meta device: shapes only) against a UniFormer-B key/shape manifest.
    with torch.device("meta"):
        small = UniFormer(depth=[3, 4, 8, 3], num_classes=400)
    keys_b = json.loads((fixtures_dir / "uniformer_keys_base_k400.json").read_text())
    sd_b = OrderedDict((k, torch.empty(shape, device="meta")) for k, shape in keys_b)
    with pytest.raises(CheckpointError) as info:
        match_state_dict(small, sd_b)
    msg = str(info.value)
    assert "UniFormer-B" in msg and "[5, 8, 20, 7]" in msg and "[3, 4, 8, 3]" in msg
    assert "unexpected" in msg and one_sentence(msg)
    # and the manifest of S fits S exactly (so the check is not trivially failing)
    keys_s = json.loads((fixtures_dir / "uniformer_keys_small_k400.json").read_text())
    meta_sd = OrderedDict((k, torch.empty(s, device="meta")) for k, s in keys_s)
    assert len(match_state_dict(small, meta_sd)) == len(keys_s)


def test_other_class_count_is_named_and_ignore_head_finetunes():
    src = tiny_uniformer(num_classes=10)
    sd = trained_state(src)
    model = tiny_uniformer(num_classes=5)
    msg = _load_fails_and_leaves_model_untouched(model, sd, filter_fn=uniformer_filter_fn)
    assert "10 classes" in msg and "5" in msg and "num_classes=10" in msg and "head.weight [10, 64] vs [5, 64]" in msg
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    load_checkpoint(model, sd, filter_fn=uniformer_filter_fn, ignore_head=True)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in head_before.items())  # head kept at init
    assert all(torch.equal(after[k], sd[k]) for k in sd if not k.startswith("head."))


def test_timesformer_frames_and_resolution_hint():
    sd = trained_state(tiny_timesformer(num_frames=4, img_size=48))
    msg = _load_fails_and_leaves_model_untouched(tiny_timesformer(), sd, filter_fn=timesformer_filter_fn)
    assert "4 frames" in msg and "pos_embed" in msg and "matching zoo entry" in msg


def test_error_lists_at_most_eight_keys_per_kind():
    sd = trained_state(tiny_uniformer())
    extra = OrderedDict(sd, **{f"extra.{i}": torch.ones(1) for i in range(20)})
    with pytest.raises(CheckpointError) as info:
        match_state_dict(tiny_uniformer(), extra)
    msg = str(info.value)
    assert "20 keys unexpected" in msg and "extra.7" in msg and "extra.8," not in msg and "…" in msg


def test_missing_bn_counters_are_filled_other_missing_keys_are_not():
    model = tiny_uniformer()
    sd = trained_state(model)
    counters = [k for k in sd if k.endswith("num_batches_tracked")]
    assert counters
    out = match_state_dict(model, OrderedDict((k, v) for k, v in sd.items() if k not in counters))
    assert list(out) == list(model.state_dict())
    with pytest.raises(CheckpointError, match="1 key missing"):
        match_state_dict(model, OrderedDict((k, v) for k, v in sd.items() if k != "norm.weight"))


def test_guess_family():
    assert guess_family(tiny_uniformer().state_dict()) == "uniformer"
    assert guess_family(tiny_timesformer().state_dict()) == "timesformer"
    assert guess_family(["timesformer.embeddings.cls_token", "classifier.weight"]) == "timesformer-hf"
    assert guess_family(["fc.weight"]) is None


def test_a_lazy_read_maps_the_tensors_instead_of_reading_them(tmp_path, monkeypatch):
    """What reads only a training checkpoint's config (``stored_config``) must not read its weights
    as well: they are read again when the model loads."""
    from pathlib import Path

    from uniformer.train.checkpoint import stored_config

    def mapped_from(t: torch.Tensor, path) -> bool:  # is the tensor's memory a mapping of that file?
        for line in Path("/proc/self/maps").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5] == str(path):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= t.data_ptr() < hi:
                    return True
        return False

    obj = {"model": {"w": torch.arange(1 << 20, dtype=torch.float32)}, "config": {"model": {"family": "x"}}}
    p = tmp_path / "run.pt"
    torch.save(obj, p)
    eager, lazy = read_checkpoint(p)["model"]["w"], read_checkpoint(p, lazy=True)["model"]["w"]
    assert mapped_from(lazy, p) and not mapped_from(eager, p) and torch.equal(lazy, eager)
    legacy = tmp_path / "legacy.pt"  # the legacy format cannot be mapped: read as before
    torch.save(obj, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(legacy, lazy=True)["model"]["w"], eager)
    cut = tmp_path / "cut.pt"  # a truncated download, mapped: the same one sentence as a full read
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt .*download or save it again\.$"):
        read_checkpoint(cut, lazy=True)

    import uniformer.models.checkpoint as ckpt_module

    seen = []
    def spy(path, **kw):
        seen.append(kw)
        return read_checkpoint(path, **kw)

    monkeypatch.setattr(ckpt_module, "read_checkpoint", spy)
    assert stored_config(p) is None and seen == [{"lazy": True}]  # no "format": not a uniformer.train checkpoint
