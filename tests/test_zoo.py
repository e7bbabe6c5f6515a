"""Model zoo: entries, labels, protocols, published numbers, timm registry, weight fetching.

Offline: every test runs with sockets blocked, so a code path that tried the network fails.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import pickle
import socket
from collections import OrderedDict
from pathlib import Path

import pytest
import timm
import torch

import uniformer.models  # noqa: F401  (registers the zoo with timm)
from uniformer import zoo
from uniformer.errors import CheckpointError, UnknownModelError, WeightsUnavailableError

TINY_UNIFORMER = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=16)
CSV = Path(zoo.__file__).resolve().parents[1] / "assets" / "published_results.csv"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.rstrip().endswith((".", "?")) and len(msg) < 1000


def fake_hf_cache(cache: Path, repo_id: str, filename: str, payload: bytes) -> Path:
    """Lay out a file the way huggingface_hub's cache stores it (refs/main -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True)
    snap.write_bytes(payload)
    return snap


def saved(tmp_path: Path, state: dict, name: str = "w.pth") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


# ================================================================================ entries
def test_zoo_lists_the_released_checkpoints():
    uf, ts = zoo.list_models("uniformer"), zoo.list_models("timesformer")
    official = [n for n in uf + ts if zoo.ZOO[n].kind == "official"]
    assert len([n for n in official if n in uf]) == 7 + 5 + 8 + 8 and len([n for n in official if n in ts]) == 9
    assert set(uf + ts) - set(official) == {"uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2",
                                            "uniformer_lab", "timesformer_lab", "uniformer_lab_gggg"}
    assert zoo.get_entry("uniformer_lab_gggg").arch["layout"] == "GGGG" and zoo.get_entry("uniformer_lab").arch[
        "layout"] == "LLGG"
    assert set(zoo.list_models(dataset="k600")) == {n for n in zoo.ZOO if zoo.ZOO[n].dataset == "K600"}
    assert "uniformer_small_k400_32x4" not in zoo.ZOO  # the official zoo has only a log for it
    e = zoo.get_entry("uniformer_base_k600_32x4")
    assert (e.hf_hub_id, e.hf_hub_filename) == ("Sense-X/uniformer_video", "uniformer_base_k600_32x4.pth")
    e = zoo.get_entry("uniformer_base_sthv2_32_prek600")
    assert e.hf_hub_filename == "uniformer_base_sthv2_32_prek600.pth" and e.num_classes == 174
    e = zoo.get_entry("timesformer_hr_k400_16x16")
    assert e.hf_hub_id == "facebook/timesformer-hr-finetuned-k400" and "TimeSformer_divST_16x16_448_K400.pyth" in e.url


def test_architectures_match_the_reference_sizes():
    for name in zoo.list_models("uniformer"):
        e = zoo.get_entry(name)
        if e.kind == "local":
            continue  # tiny bundled models: tests/test_bundled_models.py checks them against their weights
        expected = [3, 4, 8, 3] if "_small_" in name else [5, 8, 20, 7]
        assert e.arch["depth"] == expected and e.arch["embed_dim"] == [64, 128, 320, 512] and e.arch["head_dim"] == 64
    for name in zoo.list_models("timesformer"):
        e = zoo.get_entry(name)
        if e.kind == "local":
            continue
        assert e.arch["embed_dim"] == 768 and e.arch["depth"] == 12 and e.arch["num_frames"] == e.num_frames
        assert e.arch["img_size"] == (448 if "_hr_" in name else 224)


def test_labels_have_the_head_length_and_the_right_order():
    for name, e in zoo.ZOO.items():
        names = zoo.labels_for(name)
        assert len(names) == e.num_classes, name
        if e.labels is None:
            assert names[0] == "class 0" and "not shipped" in e.card()
    uf = zoo.labels_for("uniformer_small_k400_16x8")
    assert uf[:3] == ["riding a bike", "marching", "dodgeball"]
    alpha = zoo.labels_for("timesformer_base_k400_8x32")
    assert alpha == sorted(alpha) and alpha[0] == "abseiling"
    assert zoo.labels_for("timesformer_base_ssv2_8") == zoo.labels_for("uniformer_small_sthv2_16_prek400")
    assert zoo.labels_for("uniformer_small_sthv1_16_prek400")[173] == "class 173"
    order = zoo.label_permutation(uf, alpha)
    assert [uf[i] for i in order] == alpha
    with pytest.raises(ValueError):
        zoo.label_permutation(uf, alpha[:-1] + ["not a kinetics class"])


def test_protocols_follow_the_official_test_settings():
    for e in zoo.ZOO.values():
        p = e.protocol
        if e.kind == "local":  # the bundled models are tested as they were trained (64 px tiny, 112 px lab)
            assert (p.sampler, p.num_frames, p.sampling_rate, p.num_clips, p.num_crops, p.crop_size) == \
                ("uniformer_dense", 8, 2, 1, 1, e.arch["img_size"]), e.name
            continue
        assert p.mean == (0.45,) * 3 and p.std == (0.225,) * 3 and p.ensemble == "sum"
        assert e.input_size == (3, p.num_frames, p.crop_size, p.crop_size)
        if e.family == "uniformer" and e.dataset in ("K400", "K600"):
            t, r = map(int, e.name.rsplit("_", 1)[1].split("x"))
            got = (p.sampler, p.num_frames, p.sampling_rate, p.num_clips, p.num_crops)
            assert got == ("uniformer_dense", t, r, 4, 1)
            assert p.short_side == 224 and "256" in e.card() and not p.bgr
        elif e.family == "uniformer":
            assert (p.sampler, p.num_clips, p.num_crops, p.short_side) == ("uniformer_segment", 1, 3, 224)
            assert p.bgr and "BGR" in e.card(), e.name  # frames read with OpenCV, never converted
        elif e.dataset == "SSv2":
            assert p.sampler == "timesformer_segment" and p.bgr and (p.num_clips, p.num_crops) == (1, 3)
        else:
            assert p.sampler == "timesformer_dense" and not p.bgr and (p.num_clips, p.num_crops) == (1, 3)
    hr = zoo.get_entry("timesformer_hr_k600_16x16").protocol
    large = zoo.get_entry("timesformer_large_k400_96x4").protocol
    assert (hr.num_frames, hr.sampling_rate, hr.short_side, hr.crop_size) == (16, 16, 448, 448)
    assert (large.num_frames, large.sampling_rate, large.crop_size) == (96, 4, 224)
    assert zoo.get_entry("timesformer_base_k400_8x32").protocol.sampling_rate == 32
    assert zoo.get_entry("timesformer_large_ssv2_64").num_frames == 64


def test_published_numbers_come_from_the_csv():
    rows = list(csv.DictReader(CSV.open(encoding="utf-8")))
    for e in zoo.ZOO.values():
        pub = e.published
        if e.kind == "local":  # trained here: no published number, figures in its model card
            assert pub is None and e.file, e.name
            continue
        assert pub is not None, e.name
        assert pub.views == f"{e.protocol.num_clips}x{e.protocol.num_crops}"
        match = [r for r in rows if r["dataset"] == e.dataset and r["views"] == pub.views
                 and r["frames"] == str(e.num_frames) and r["top1"] and float(r["top1"]) == pub.top1
                 and r["source"] in pub.source]
        assert match, f"{e.name}: top-1 {pub.top1} not found in the CSV"
    # the released B 32x4 K600 checkpoint is the README's multi-node retrain, not the paper's number
    readme = [r for r in rows
              if r["variant"] == "UniFormer-B 32x4" and r["dataset"] == "K600" and "README" in r["source"]]
    b32 = zoo.get_entry("uniformer_base_k600_32x4").published
    assert readme and b32.top1 == float(readme[0]["top1"]) and "README" in b32.source
    s16 = zoo.get_entry("uniformer_small_k400_16x8").published
    assert s16.gflops_per_view is not None and s16.gflops_total == pytest.approx(4 * s16.gflops_per_view, rel=0.01)


def test_meta_device_builds_full_size_models_without_memory():
    model = zoo.create_model("uniformer_base_k400_32x4", device="meta")
    assert next(model.parameters()).is_meta and not model.training
    assert sum(p.numel() for p in model.parameters()) == 49_813_200  # reference README, 400 classes
    assert model.zoo_entry.input_size == (3, 32, 224, 224)
    assert model.pretrained_cfg["architecture"] == model.zoo_entry.name


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as info:
        zoo.get_entry("uniformer_small_k400_16x9")
    msg = str(info.value)
    assert "uniformer_small_k400_16x8" in msg and one_sentence(msg)
    with pytest.raises(UnknownModelError):
        zoo.create_model("resnet50")


# ============================================================================ timm registry
def test_every_entry_is_a_timm_model_with_its_pretrained_cfg():
    for name, e in zoo.ZOO.items():
        assert timm.is_model(name), name
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg.hf_hub_id == e.hf_hub_id and cfg.hf_hub_filename == e.hf_hub_filename
        assert cfg.num_classes == e.num_classes and cfg.mean == e.protocol.mean and cfg.std == e.protocol.std
        assert cfg.input_size == (3, e.protocol.crop_size, e.protocol.crop_size) and cfg.custom_load == "hf"
        assert cfg.file == (str(e.local_path) if e.file else None)


@pytest.mark.slow
def test_timm_names_build_the_zoo_architecture():
    """The registered constructors and the zoo entries describe the same networks."""
    for name, e in zoo.ZOO.items():
        with torch.device("meta"):
            via_timm = timm.create_model(name)
        via_zoo = zoo.create_model(name, device="meta")
        assert type(via_timm) is type(via_zoo) and via_timm.num_classes == e.num_classes, name
        assert {k: v.shape for k, v in via_timm.state_dict().items()} == \
            {k: v.shape for k, v in via_zoo.state_dict().items()}, name
    assert sorted(timm.list_models("uniformer*") + timm.list_models("timesformer*")) == sorted(zoo.ZOO)
    assert set(timm.list_pretrained("uniformer*")) == set(zoo.list_models("uniformer"))


def test_timm_create_model_loads_a_file_strictly_through_the_filter(tmp_path):
    src = timm.create_model("uniformer_small_k400_16x8", **TINY_UNIFORMER)
    assert src.pretrained_cfg["architecture"] == "uniformer_small_k400_16x8" and not hasattr(src, "zoo_entry")
    sd = OrderedDict((k, torch.randn_like(v) if v.is_floating_point() else v) for k, v in src.state_dict().items())
    path = saved(tmp_path, {"model_state": {f"model.{k}": v for k, v in sd.items()}})
    model = timm.create_model("uniformer_small_k400_16x8", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)), **TINY_UNIFORMER)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    # a checkpoint of another size is refused, not half-loaded
    with pytest.raises(CheckpointError, match="stage depths"):
        timm.create_model("uniformer_small_k400_16x8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                          **{**TINY_UNIFORMER, "depth": [1, 1, 2, 1]})
    # timm convention: another num_classes than the pretrained cfg's re-initialises only the head
    ft = timm.create_model("uniformer_small_k400_16x8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                           num_classes=7, **TINY_UNIFORMER)
    assert ft.head.weight.shape == (7, 64) and torch.equal(ft.state_dict()["norm.weight"], sd["norm.weight"])


class TrainingConfig(dict):
    """A pickled config class, as in PySlowFast-style ``.pyth`` files (yacs ``CfgNode``)."""


def test_timm_file_overlay_uses_the_safe_reader(tmp_path):
    tiny = dict(img_size=32, depth=1, embed_dim=32, num_heads=2, num_frames=2)
    src = timm.create_model("timesformer_base_k400_8x32", **tiny)
    sd = OrderedDict((k, torch.randn_like(v)) for k, v in src.state_dict().items())
    path = saved(tmp_path, {"epoch": 15, "model_state": {f"model.{k}": v for k, v in sd.items()},
                            "cfg": TrainingConfig(MODEL=TrainingConfig(NUM_CLASSES=400))}, "train.pyth")
    with pytest.raises((RuntimeError, pickle.UnpicklingError)):  # timm's own reader (weights_only=True) refuses it
        timm.models.load_state_dict(str(path))
    model = timm.create_model("timesformer_base_k400_8x32", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)), **tiny)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    with pytest.raises(CheckpointError, match="not found"):
        timm.create_model("timesformer_base_k400_8x32", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / "missing.pyth")), **tiny)


def test_timm_create_model_reads_the_official_timesformer_pyth(fixtures_dir):
    golden = torch.load(fixtures_dir / "timesformer_golden_small.pt", weights_only=True)
    cfg = golden["config"]
    pyth = fixtures_dir / "timesformer_checkpoint_small_official_format.pyth"
    model = timm.create_model(
        "timesformer_base_k400_8x32", pretrained=True,
        pretrained_cfg_overlay=dict(file=str(pyth), num_classes=cfg["num_classes"]),
        **{k: cfg[k] for k in ("img_size", "depth", "embed_dim", "num_heads", "num_frames", "num_classes")},
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)


def test_timm_in_memory_state_dict_source_is_checked_too():
    src = timm.create_model("uniformer_small_k400_16x8", **TINY_UNIFORMER)
    good = timm.create_model("uniformer_small_k400_16x8", pretrained=True,
                             pretrained_cfg_overlay=dict(state_dict={"model": src.state_dict()}), **TINY_UNIFORMER)
    assert all(torch.equal(good.state_dict()[k], v) for k, v in src.state_dict().items())
    with pytest.raises(CheckpointError, match="looks like a UniFormer"):
        timm.create_model("timesformer_base_k400_8x32", pretrained=True,
                          pretrained_cfg_overlay=dict(state_dict=src.state_dict()),
                          img_size=32, depth=1, embed_dim=32, num_heads=2, num_frames=2)


# ======================================================================= create_model
def test_create_model_with_checkpoint_labels_and_head_rules(tmp_path):
    src = zoo.create_model("uniformer_small_k400_16x8", **TINY_UNIFORMER)
    assert not src.training and src.zoo_entry.dataset == "K400" and src.label_names[0] == "riding a bike"
    sd = OrderedDict((k, torch.randn_like(v) if v.is_floating_point() else v) for k, v in src.state_dict().items())
    path = saved(tmp_path, sd)
    model = zoo.create_model("uniformer_small_k400_16x8", checkpoint=path, **TINY_UNIFORMER)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    # explicit new class count: backbone loaded, head fresh, generic label names
    ft = zoo.create_model("uniformer_small_k400_16x8", checkpoint=path, num_classes=3, **TINY_UNIFORMER)
    assert ft.head.weight.shape == (3, 64) and ft.label_names == ["class 0", "class 1", "class 2"]
    assert torch.equal(ft.state_dict()["blocks1.0.attn.weight"], sd["blocks1.0.attn.weight"])
    # a fine-tuned 3-class checkpoint keeps its own head when asked for 3 classes
    path3 = saved(tmp_path, ft.state_dict(), "ft3.pth")
    again = zoo.create_model("uniformer_small_k400_16x8", checkpoint=path3, num_classes=3, **TINY_UNIFORMER)
    assert torch.equal(again.head.weight, ft.head.weight)
    # the 3-class checkpoint does not silently fit the 400-class entry
    with pytest.raises(CheckpointError) as info:
        zoo.create_model("uniformer_small_k400_16x8", checkpoint=path3, **TINY_UNIFORMER)
    assert "3 classes" in str(info.value) and one_sentence(str(info.value))
    with pytest.raises(CheckpointError, match="not found"):
        zoo.create_model("uniformer_small_k400_16x8", checkpoint=tmp_path / "nope.pth", **TINY_UNIFORMER)


# ======================================================================= fetch_weights
def test_fetch_weights_offline_gives_one_actionable_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        zoo.fetch_weights("uniformer_small_k400_16x8", cache_dir=tmp_path)
    msg = str(info.value)
    assert one_sentence(msg), msg
    assert "uniformer_small_k400_16x8.pth" in msg and "huggingface.co/Sense-X/uniformer_video" in msg
    assert "--checkpoint PATH" in msg and "HF_HUB_OFFLINE" in msg
    with pytest.raises(WeightsUnavailableError) as info:
        zoo.fetch_weights("timesformer_base_k400_8x32", cache_dir=tmp_path)
    assert "facebook/timesformer-base-finetuned-k400" in str(info.value) and "dropbox" in str(info.value)


def test_fetch_weights_finds_the_file_in_the_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd = timm.create_model("uniformer_small_k400_16x8", **TINY_UNIFORMER).state_dict()
    buf = tmp_path / "src.pth"
    torch.save(sd, buf)
    placed = fake_hf_cache(tmp_path / "hub", "Sense-X/uniformer_video", "uniformer_small_k400_16x8.pth",
                           buf.read_bytes())
    found = zoo.fetch_weights("uniformer_small_k400_16x8", cache_dir=tmp_path / "hub")
    assert found.resolve() == placed.resolve()
    # create_model(pretrained=True) goes through the same lookup (default cache dir redirected)
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = zoo.create_model("uniformer_small_k400_16x8", pretrained=True, **TINY_UNIFORMER)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


def test_one_weight_policy_bundled_cache_download_random(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    name = "uniformer_small_k400_16x8"
    bundled = zoo.resolve_weights("uniformer_tiny_synthetic_8x2")
    assert bundled.source == "bundled" and bundled.path == zoo.get_entry("uniformer_tiny_synthetic_8x2").local_path
    # nothing cached: random unless downloads are allowed; deciding never touches the network
    assert zoo.resolve_weights(name).random and "meaningless" in zoo.resolve_weights(name).describe()
    assert zoo.resolve_weights(name, allow_download=True) == zoo.WeightsChoice(None, "download")
    with pytest.raises(WeightsUnavailableError) as info:  # evaluation: one sentence, not random weights
        zoo.resolve_weights(name, allow_download=False, fetch=True, required=True)
    assert one_sentence(str(info.value)) and "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(WeightsUnavailableError, match="download failed"):  # allowed, but sockets are blocked here
        zoo.resolve_weights(name, allow_download=True, fetch=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert zoo.resolve_weights(name, allow_download=None).random  # None: HF_HUB_OFFLINE decides
    placed = fake_hf_cache(tmp_path / "hub", "Sense-X/uniformer_video", f"{name}.pth", b"weights")
    cached = zoo.resolve_weights(name, allow_download=True, fetch=True, required=True)
    assert cached.source == "hub cache" and cached.path.resolve() == placed.resolve()


def test_hub_copy_of_timesformer_with_hf_key_names(tmp_path, monkeypatch, fixtures_dir):
    golden = torch.load(fixtures_dir / "timesformer_golden_small.pt", weights_only=True)
    keymap = dict(json.loads((fixtures_dir / "timesformer_keys_base_divst_8x224_k400.json").read_text())
                  ["hf_transformers_port"]["key_map"])
    hf_sd = {keymap[k]: v for k, v in golden["state_dict"].items()}
    raw = tmp_path / "pytorch_model.bin"
    torch.save(hf_sd, raw)
    fake_hf_cache(tmp_path / "hub", "facebook/timesformer-base-finetuned-k400", "pytorch_model.bin", raw.read_bytes())
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = golden["config"]
    model = zoo.create_model("timesformer_base_k400_8x32", pretrained=True, num_classes=cfg["num_classes"],
                             **{k: cfg[k] for k in ("img_size", "depth", "embed_dim", "num_heads", "num_frames")})
    with torch.no_grad():
        torch.testing.assert_close(model(golden["input"]), golden["logits"], atol=1e-4, rtol=1e-4)


# ====================================================================== bundled entries
def test_entry_added_at_run_time_is_built_and_loaded_through_its_family(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "CHECKPOINTS_DIR", tmp_path)
    base = zoo.get_entry("uniformer_small_k400_16x8")
    entry = dataclasses.replace(
        base, name="uniformer_tiny_test_bundled", arch={**TINY_UNIFORMER, "img_size": 64}, dataset="synthetic",
        num_classes=4, labels=None, hf_hub_id=None, hf_hub_filename=None, url=None,
        file="uniformer_tiny_test_bundled.pth", published=None, kind="local", notes=(),
    )
    try:
        with pytest.raises(UnknownModelError):
            zoo.get_entry(entry.name)
        zoo.add_entry(entry)
        assert entry.name in zoo.list_models(dataset="synthetic")
        assert not timm.is_model(entry.name)  # timm names come from the model files only
        with pytest.raises(WeightsUnavailableError, match="bundled weights"):
            zoo.fetch_weights(entry.name)
        assert zoo.resolve_weights(entry.name).random
        src = zoo.create_model(entry.name)
        assert src.pretrained_cfg["architecture"] == entry.name and src.pretrained_cfg["num_classes"] == 4
        torch.save(src.state_dict(), tmp_path / entry.file)
        assert zoo.fetch_weights(entry.name) == tmp_path / entry.file
        assert zoo.resolve_weights(entry.name) == zoo.WeightsChoice(tmp_path / entry.file, "bundled")
        model = zoo.create_model(entry.name, pretrained=True)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in src.state_dict().items())
        assert zoo.labels_for(entry.name) == ["class 0", "class 1", "class 2", "class 3"]
        with pytest.raises(UnknownModelError, match="family"):
            zoo.add_entry(dataclasses.replace(entry, name="x_tiny", family="resnet"))
    finally:
        zoo.remove_entry(entry.name)
    assert entry.name not in zoo.ZOO


def test_synthetic_entries_are_flagged():
    # The flag drives the "trained on synthetic clips" note of every prediction: an entry of a
    # synthetic dataset (synthetic-motion, the lab's synthetic-lab) must carry it.
    from uniformer.zoo import ZOO

    flagged = {e.name for e in ZOO.values() if e.synthetic}
    assert flagged == {e.name for e in ZOO.values() if e.dataset.startswith("synthetic")}
    assert {"uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"} <= flagged

def test_published_accuracy_is_the_released_weights_figure():
    # Sense-X/UniFormer video_classification/README.md (model zoo): B 32f SSv2 K400-pretrained 71.1
    # (the paper's Table 3 prints 71.2); the K600-pretrained one is 71.2 in both.
    assert zoo.get_entry("uniformer_base_sthv2_32_prek400").published.top1 == 71.1
    assert zoo.get_entry("uniformer_base_sthv2_32_prek600").published.top1 == 71.2
