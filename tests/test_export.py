"""ONNX export: the file ONNX Runtime runs gives PyTorch's logits, at any batch size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uniformer import export as export_mod
from uniformer.models.family import UNIFORMER
from uniformer.models.uniformer import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("model", ["uniformer_tiny_synthetic_8x2", "timesformer_tiny_synthetic_8x2"])
def test_cli_exports_the_bundled_tiny_models_within_1e4(model, tmp_path, capsys):
    out = tmp_path / f"{model}.onnx"
    assert export_mod.main(["--model", model, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    diff = float(printed.split("max abs diff ")[1].split()[0])
    assert diff <= 1e-4 and "opset 20" in printed
    # an independent check: a batch the export never saw, against the trained weights
    from uniformer.zoo import create_model, resolve_weights

    torch_model = create_model(model, checkpoint=resolve_weights(model).path)
    x = torch.randn(5, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    got = export_mod.onnx_session(out).run(["logits"], {"video": x.numpy()})[0]
    with torch.inference_mode():
        ref = torch_model(x).numpy()
    assert got.shape == (5, 12) and np.abs(got - ref).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["LLLL", "GGGG", "LGLG"])
def test_any_uniformer_layout_exports(layout, tmp_path):
    torch.manual_seed(0)
    model = UNIFORMER.build(**{**ARCHS["tiny"], "depth": [1, 1, 1, 1]}, num_classes=7, layout=layout).eval()
    report = export_mod.export_and_verify(model, tmp_path / "m.onnx", frames=4, size=32)
    assert report.max_abs_diff <= 1e-4 and report.input_shape == (1, 3, 4, 32, 32)
    assert ("Softmax" in report.ops) == ("G" in layout)   # attention only where a stage is global


def test_layout_on_timesformer_is_one_sentence(tmp_path, capsys):
    code = export_mod.main(["--model", "timesformer_tiny_synthetic_8x2", "--out", str(tmp_path / "x.onnx"),
                            "--layout", "LLLL"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 0 and "UniFormer" in err
