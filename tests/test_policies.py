"""One place for each policy: views text, device, autocast dtype, whether a checkpoint head fits."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uniformer.data.sampling import parse_views
from uniformer.device import autocast, resolve_amp, resolve_device
from uniformer.errors import ConfigError, UniformerLabError
from uniformer.models.checkpoint import head_fits


@pytest.mark.parametrize("text, expected", [("4x1", (4, 1)), ("1x3", (1, 3)), (" 10 X 3 ", (10, 3)), ("2×1", (2, 1))])
def test_parse_views_accepts_clips_by_crops(text, expected):
    assert parse_views(text) == expected


@pytest.mark.parametrize("text", ["four", "", "0x1", "1x2", "1x0", "1x1x1", "-1x1", "1.5x1"])
def test_parse_views_refuses_other_text_in_one_sentence(text):
    with pytest.raises(UniformerLabError, match=r"must look like CLIPSxCROPS .* 1 or 3 crops"):
        parse_views(text)


def test_every_entry_point_uses_the_one_parse_views():
    import app.main
    import app.tab_predict
    import uniformer.evaluate
    import uniformer.predict
    import uniformer.train
    import uniformer.train.loop

    for module in (uniformer.predict, uniformer.evaluate, uniformer.train, uniformer.train.loop, app.main):
        assert getattr(module, "parse_views", parse_views) is parse_views, module.__name__
    assert app.tab_predict.parse_view_choice("2x3", (1, 1)) == (2, 3)
    with pytest.raises(UniformerLabError, match="CLIPSxCROPS"):
        app.tab_predict.parse_view_choice("1x2", (1, 1))


def test_resolve_device_cpu_and_auto(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_resolve_device_without_cuda_is_one_sentence(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UniformerLabError, match="no CUDA device is available; use cpu"):
        resolve_device(name)


def test_resolve_device_checks_the_gpu_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun: one GPU per local rank
    assert resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    with pytest.raises(UniformerLabError, match=r"has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps0", "cuda:-1"])
def test_resolve_device_names_the_accepted_values(name):
    with pytest.raises(UniformerLabError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_resolve_amp_and_autocast_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("none", cpu) is None
    assert resolve_amp("BF16", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        resolve_amp("fp16", cpu)
    with pytest.raises(ConfigError, match="auto, none, bf16 or fp16"):
        resolve_amp("fp8", cpu)
    lin = nn.Linear(4, 2)
    with autocast(cpu, torch.bfloat16):
        assert lin(torch.randn(1, 4)).dtype is torch.bfloat16
    with autocast(cpu, None):
        assert lin(torch.randn(1, 4)).dtype is torch.float32


def test_head_fits_compares_every_classifier_tensor():
    class Net(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.head = nn.Linear(4, n) if n else nn.Identity()

        def get_classifier(self) -> nn.Module:
            return self.head

    model = Net(3)
    assert head_fits(model, Net(3).state_dict())
    assert not head_fits(model, Net(5).state_dict())
    assert not head_fits(model, {"head.weight": torch.zeros(3, 4)})  # bias missing
    assert not head_fits(Net(0), Net(3).state_dict())  # no classifier parameters: nothing can fit
