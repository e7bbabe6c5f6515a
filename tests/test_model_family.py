"""The family table (uniformer.models.family), timm's public registration API, and the layering
rules around them: the models never import the zoo, no private timm API, nothing attached to
models built by timm, one assets directory."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

import uniformer.models  # noqa: F401  (registers the model files with timm)
from uniformer import zoo
from uniformer.errors import UnknownModelError
from uniformer.models import FAMILIES, TIMESFORMER, UNIFORMER, TimeSformer, UniFormer, get_family

ROOT = Path(__file__).resolve().parents[1]
TINY_UNIFORMER = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=16, img_size=32)
TINY_TIMESFORMER = dict(img_size=32, depth=1, embed_dim=32, num_heads=2, num_frames=2)


def _sources(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


# ============================================================================== the table
def test_get_family_from_names_models_classes_entries_and_records():
    uni, ts = UniFormer(num_classes=3, **TINY_UNIFORMER), TimeSformer(num_classes=3, **TINY_TIMESFORMER)
    assert get_family("uniformer") is get_family("UniFormer") is get_family(uni) is get_family(UniFormer) is UNIFORMER
    assert get_family(ts) is get_family(zoo.get_entry("timesformer_base_k400_8x32")) is TIMESFORMER
    record = type("Record", (), {"model": "timesformer"})()
    assert get_family(record) is TIMESFORMER and get_family(UNIFORMER) is UNIFORMER
    # a zoo model wrapped by torch.compile (no isinstance match) still has a family
    wrapper = nn.Module()
    wrapper._orig_mod = uni
    assert get_family(wrapper) is UNIFORMER
    assert {e.family for e in zoo.ZOO.values()} == set(FAMILIES)


@pytest.mark.parametrize("bad", ["resnet", nn.Linear(2, 2), nn.Linear, 3])
def test_unknown_family_is_one_sentence(bad):
    with pytest.raises(UnknownModelError) as info:
        get_family(bad)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(".")


@pytest.mark.parametrize("family, arch", [(UNIFORMER, TINY_UNIFORMER), (TIMESFORMER, TINY_TIMESFORMER)])
def test_family_fields_describe_the_built_model(family, arch):
    model = family.build(num_classes=5, **arch)
    assert isinstance(model, family.model_cls) and model.num_classes == 5
    assert isinstance(model.get_submodule(family.first_conv), (nn.Conv2d, nn.Conv3d))
    assert model.get_submodule(family.classifier) is model.get_classifier()
    sd = family.checkpoint_filter_fn({"model": model.state_dict()}, model)
    model.load_state_dict(sd, strict=True)
    assert family.has_local_blocks == bool(getattr(model, "local_blocks", dict)())
    assert family.has_cls_token == hasattr(model, "cls_token")
    # the first conv is what timm's pretrained cfg of every registered name says too
    for name in zoo.list_models(family.name):
        assert timm.models.get_pretrained_cfg(name).first_conv == family.first_conv


# ======================================================================= timm registration
def test_old_names_are_timm_models_listed_and_built():
    listed = timm.list_models("uniformer*")
    assert "uniformer_small_k400_16x8" in listed and "uniformer_tiny_synthetic_8x2" in listed
    assert "timesformer_tiny_synthetic_8x2" in timm.list_models("timesformer*", pretrained=True)
    model = timm.create_model("uniformer_small_k400_16x8", num_classes=3, **TINY_UNIFORMER)
    assert isinstance(model, UniFormer) and model.pretrained_cfg["architecture"] == "uniformer_small_k400_16x8"
    # nothing attached to the instance: the strict loader is a method of the class
    assert "load_pretrained" not in vars(model) and not hasattr(model, "zoo_entry")
    assert callable(UniFormer.load_pretrained) and callable(TimeSformer.load_pretrained)


@pytest.mark.slow
def test_bundled_models_load_through_timm():
    for name in ("uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2", "uniformer_lab",
                 "timesformer_lab", "uniformer_lab_gggg"):
        entry = zoo.get_entry(name)
        if not entry.local_path.is_file():
            pytest.fail(f"{entry.local_path} is part of the repository")
        via_timm = timm.create_model(name, pretrained=True)
        via_zoo = zoo.create_model(name, pretrained=True)
        for k, v in via_zoo.state_dict().items():
            assert torch.equal(via_timm.state_dict()[k], v), (name, k)


def test_no_private_timm_api_anywhere():
    private = ("timm.models._", "_clear_model_entries", "_model_entrypoints", "_model_to_module", "_registry")
    hits = [f"{p.relative_to(ROOT)}: {word}" for p in _sources("uniformer", "analysis", "app", "benchmarks")
            for word in private if word in p.read_text(encoding="utf-8")]
    assert hits == []


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_models_never_import_the_zoo():
    offenders = [str(p.relative_to(ROOT)) for p in _sources("uniformer/models")
                 if any(m == "uniformer.zoo" or m.startswith("uniformer.zoo.") for m in _imported_modules(p))]
    assert offenders == []


# ============================================================================== assets dir
@pytest.mark.slow
def test_assets_dir_is_one_place_and_honours_the_override(tmp_path):
    code = ("import app.state, uniformer.assets, uniformer.zoo, analysis.efficiency as e; "
            "print(app.state.ASSETS_DIR, uniformer.zoo.ASSETS, uniformer.assets.ASSETS_DIR, e.PUBLISHED_CSV.parent, "
            "uniformer.zoo.get_entry('uniformer_tiny_synthetic_8x2').local_path.parents[1])")
    env = {**os.environ, "UNIFORMER_LAB_ASSETS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(tmp_path)] * 5
