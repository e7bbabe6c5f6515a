"""Fast inference: channels-last UniFormer, ``optimize_for_inference`` at fp32 / bf16, the precision policy."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from benchmarks.inference import randomise_bn  # the one randomiser: benchmarks and tests
from tests.conftest import FIXTURES
from uniformer import device as device_policy
from uniformer.device import resolve_precision
from uniformer.errors import ConfigError
from uniformer.models.optimize import InferenceModel, optimize_for_inference
from uniformer.models.timesformer import TimeSformer
from uniformer.models.uniformer import UniFormer
from uniformer.models.uniformer_blocks import is_channels_last

CL = torch.channels_last_3d
CPU = torch.device("cpu")


def _randomise_bn(model: nn.Module) -> nn.Module:
    return randomise_bn(model, seed=1)


def _tiny(**kw) -> UniFormer:
    torch.manual_seed(0)
    return _randomise_bn(UniFormer(depth=[1, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16, num_classes=7,
                                   **kw).eval())


def _clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 64, 64, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def no_fast_bf16(monkeypatch):
    monkeypatch.setattr(device_policy, "cpu_bf16_support", lambda: None)


@pytest.fixture
def fast_bf16_cpu():
    if device_policy.cpu_bf16_support() is None:
        pytest.skip("this CPU has no AMX / AVX-512-BF16: the refusal is tested instead")


LAYOUTS = [{"layout": "LLGG"}, {"layout": "LLLL"}, {"layout": "GGGG"}, {"layout": "LGLG"}, {"split": True}]


@pytest.mark.parametrize("kw", LAYOUTS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_channels_last_clip_runs_channels_last_and_matches(one_thread, kw):
    model = _tiny(**kw)
    x = _clip()
    with torch.no_grad():
        ref = model.forward_stages(x)
        out = model.forward_stages(x.contiguous(memory_format=CL))
    for key in ("patch_embed_outputs", "stage_outputs"):
        for a, b in zip(ref[key], out[key]):
            assert is_channels_last(b)  # every stage kept the clip's layout
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert all(a.is_contiguous() for a in ref["patch_embed_outputs"])  # the default clip: the official path
    torch.testing.assert_close(out["logits"], ref["logits"], rtol=0, atol=1e-5)


def test_channels_last_keeps_state_dict_and_golden_logits(one_thread):
    fix = torch.load(FIXTURES / "uniformer_golden_small.pt", map_location="cpu", weights_only=True)
    model = UniFormer(**fix["config"]).eval()
    model.load_state_dict(fix["state_dict"])
    assert list(model.state_dict()) == list(fix["state_dict"])
    with torch.no_grad():
        out = model(fix["input"].contiguous(memory_format=CL))
    torch.testing.assert_close(out, fix["logits"], rtol=0, atol=5e-5)


@pytest.mark.parametrize("kw", LAYOUTS[:3] + LAYOUTS[4:], ids=["LLGG", "LLLL", "GGGG", "split"])
def test_optimize_fp32_is_exact(one_thread, kw):
    model = _tiny(**kw)
    model.label_names = list("abcdefg")
    before = copy.deepcopy(model.state_dict())
    fast = optimize_for_inference(model)
    assert isinstance(fast, InferenceModel) and fast.precision == "fp32" and fast.channels_last
    assert fast.label_names == list("abcdefg")
    x = _clip()
    with torch.no_grad():
        ref, out = model(x), fast(x)
    assert ref.abs().max() > 0.1 and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    after = model.state_dict()  # the caller's model is untouched
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_optimize_fp32_timesformer_is_exact(one_thread):
    torch.manual_seed(0)
    ts = TimeSformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_frames=2,
                     num_classes=5).eval()
    x = torch.randn(2, 3, 2, 32, 32)
    fast = optimize_for_inference(ts)
    assert not fast.channels_last  # TimeSformer's tokens would only pay a copy
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ts(x), rtol=0, atol=1e-4)


def test_bf16_is_refused_in_one_sentence_without_fast_bf16(no_fast_bf16):
    with pytest.raises(ConfigError) as err:
        resolve_precision("bf16", CPU)
    msg = str(err.value)
    assert "AMX or AVX-512-BF16" in msg and msg.count(". ") == 0 and msg.endswith("use --precision fp32.")
    with pytest.raises(ConfigError, match="AMX or AVX-512-BF16"):
        optimize_for_inference(_tiny(), "bf16")
    assert resolve_precision("fp32", CPU) is None
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_cpu_flags_decide_fast_bf16(monkeypatch):
    class NoProbes:
        @staticmethod
        def _is_amx_tile_supported() -> bool:
            return False

        @staticmethod
        def _is_avx512_bf16_supported() -> bool:
            return False

    monkeypatch.setattr(device_policy.torch, "cpu", NoProbes)
    monkeypatch.setattr(device_policy, "_cpuinfo_flags", lambda: {"avx2", "amx_bf16", "amx_tile"})
    assert device_policy.cpu_bf16_support() == "AMX"
    monkeypatch.setattr(device_policy, "_cpuinfo_flags", lambda: {"avx512f", "avx512_bf16"})
    assert device_policy.cpu_bf16_support() == "AVX512-BF16"
    monkeypatch.setattr(device_policy, "_cpuinfo_flags", lambda: {"avx2", "fma"})
    assert device_policy.cpu_bf16_support() is None


def test_bf16_is_close_where_supported(one_thread, fast_bf16_cpu):
    model = _tiny()
    fast = optimize_for_inference(model, "bf16")
    assert fast.precision == "bf16"
    x = _clip()
    with torch.no_grad():
        ref, out = model(x), fast(x)
        shared = optimize_for_inference(model).with_precision("bf16")(x)
    assert out.dtype == torch.float32
    rel = ((out - ref).norm() / ref.norm()).item()
    assert 0 < rel < 2e-2  # really ran in bf16, and close
    torch.testing.assert_close(shared, out, rtol=0, atol=1e-6)


def test_bf16_runs_the_features_in_bf16_and_the_classifier_in_fp32(one_thread, fast_bf16_cpu):
    """bf16 logits round near-ties (top-1 agreement 99.0 % -> 99.9 % on the lab held-out set with an
    fp32 head), so only ``forward_features`` runs under autocast."""
    fast = optimize_for_inference(_tiny(), "bf16")
    seen: dict[str, torch.dtype] = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            seen[name] = out.dtype
        return hook

    fast.core.head.register_forward_hook(record("head"))
    fast.core.blocks4[-1].register_forward_hook(record("last block"))
    with torch.no_grad():
        fast(_clip())
    assert seen == {"last block": torch.bfloat16, "head": torch.float32}


def test_predictor_and_cli_precision(capsys, monkeypatch, one_thread):
    import json

    from tests.conftest import REPO_ROOT
    from uniformer import predict as predict_mod

    clip = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"
    p = predict_mod.Predictor(device="cpu", views=(1, 1))  # the bundled model, fp32 by default
    prepared = predict_mod.prepare_video(clip, p.protocol)
    pred = p.predict(clip, prepared=prepared)
    assert pred.precision == "fp32" and "(fp32)" in predict_mod.format_prediction(pred)
    with torch.no_grad():
        plain = p.model(prepared.views)
    torch.testing.assert_close(torch.tensor(pred.view_logits), plain, rtol=0, atol=1e-4)
    assert predict_mod.main([str(clip), "--views", "1x1", "--json", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"
    with pytest.raises(SystemExit):
        predict_mod.build_parser().parse_args([str(clip), "--precision", "fp16"])
    capsys.readouterr()
    monkeypatch.setattr(device_policy, "cpu_bf16_support", lambda: None)
    assert predict_mod.main([str(clip), "--views", "1x1", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bf16 needs a CPU with AMX or AVX-512-BF16") and "\n" not in err


def test_evaluate_precision_flag(tmp_path, capsys, monkeypatch, one_thread):
    import json

    from tests.test_bundled_models import TRAIN_DATA
    from uniformer.data.synthetic import generate_dataset
    from uniformer.evaluate import main

    generate_dataset(tmp_path, num_train=0, num_val=4, seed=7, config=TRAIN_DATA, workers=1)
    data = ["--model", "uniformer_tiny_synthetic_8x2", "--data", str(tmp_path / "val.txt"), "--root", str(tmp_path),
            "--workers", "0", "--device", "cpu"]
    assert main([*data, "--json"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert main([*data, "--json", "--amp", "none", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == fp32["top1"] and fp32["num_videos"] == 4
    monkeypatch.setattr(device_policy, "cpu_bf16_support", lambda: None)
    assert main([*data, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "AMX or AVX-512-BF16" in err and "\n" not in err


def test_app_predict_shows_the_precision(monkeypatch, one_thread):
    from app import tab_predict
    from app.state import AppConfig, AppState
    from tests.conftest import REPO_ROOT

    clip = str(REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4")
    name = "uniformer_tiny_synthetic_8x2"
    state = AppState(AppConfig(default_models=(name,), preload=False))
    result, cards, _frames, _status = tab_predict.predict(state, clip, [name], "1x1")
    assert result["models"][0]["precision"] == "fp32" and "on cpu, fp32" in cards
    monkeypatch.setattr(device_policy, "cpu_bf16_support", lambda: None)
    with pytest.raises(ConfigError, match="AMX or AVX-512-BF16"):
        tab_predict.predict(state, clip, [name], "1x1", precision="bf16")
    monkeypatch.undo()
    if device_policy.cpu_bf16_support() is not None:  # this CPU runs bf16: the same request works
        result, cards, _frames, _status = tab_predict.predict(state, clip, [name], "1x1", precision="bf16")
        assert result["models"][0]["precision"] == "bf16" and "on cpu, bf16" in cards


def test_precision_benchmark_refuses_without_fast_bf16(monkeypatch, capsys):
    from benchmarks import precision

    monkeypatch.setattr(device_policy, "cpu_bf16_support", lambda: None)
    assert precision.main(["--generate", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bf16 needs a CPU with AMX or AVX-512-BF16") and "\n" not in err


@pytest.mark.slow
def test_small_k400_fp32_and_bf16_within_the_issue_bounds(one_thread):
    """uniformer_small_k400_16x8 as released (random weights and BatchNorm statistics), a short clip."""
    from uniformer.zoo import create_model

    torch.manual_seed(0)
    model = _randomise_bn(create_model("uniformer_small_k400_16x8"))
    x = torch.randn(1, 3, 8, 96, 96)
    with torch.no_grad():
        ref = model(x)
        fast = optimize_for_inference(model)
        torch.testing.assert_close(fast(x), ref, rtol=0, atol=1e-4)
        if device_policy.cpu_bf16_support() is not None:
            out = fast.with_precision("bf16")(x)
            assert ((out - ref).norm() / ref.norm()).item() < 2e-2
