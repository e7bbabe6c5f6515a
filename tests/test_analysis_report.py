"""``python -m analysis.report`` end to end on tiny zoo entries (golden weights, a generated clip).

This is the one test that renders PNG and writes standalone HTML.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from analysis.attention import extract
from analysis.metrics import redundancy_table
from analysis.redundancy import LayerRow
from analysis.report import load_clip, main, verdict
from tests.test_analysis_attention import FIXTURES
from uniformer import zoo
from uniformer.data.sampling import TestProtocol
from uniformer.zoo import ZooEntry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "tiny_report_uniformer": ("uniformer_golden_small.pt", "uniformer",
                              TestProtocol("uniformer_dense", num_frames=8, sampling_rate=2, num_clips=2,
                                           short_side=64, crop_size=64)),
    "tiny_report_timesformer": ("timesformer_golden_small.pt", "timesformer",
                                TestProtocol("timesformer_dense", num_frames=4, sampling_rate=4, target_fps=12,
                                             num_crops=3, short_side=64, crop_size=64)),
}


def _write_clip(path: Path, n: int = 24, h: int = 72, w: int = 96) -> Path:
    """A bar sweeping right over a gradient, mpeg4 in mp4."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        base = np.linspace(0, 200, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
        for i in range(n):
            img = base.copy()
            img[:, (4 * i) % (w - 8):(4 * i) % (w - 8) + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    fixtures = {p.name: p for p in FIXTURES}
    for name, (fx_name, family, protocol) in TINY.items():
        fx = torch.load(fixtures[fx_name], weights_only=True)
        arch = {k: v for k, v in fx["config"].items() if k != "num_classes"}
        zoo.add_entry(ZooEntry(name=name, family=family, arch=arch, dataset="K400",
                               num_classes=fx["config"]["num_classes"], labels=None, protocol=protocol, kind="local"))
        torch.save(fx["state_dict"], root / f"{name}.pth")
    yield root, _write_clip(root / "clip.mp4")
    for name in TINY:
        zoo.remove_entry(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
def test_report_end_to_end(setup, name, capsys):
    root, video = setup
    out = root / name
    ckpt = root / f"{name}.pth"
    assert main([str(video), "--model", name, "--checkpoint", str(ckpt), "--out", str(out), "--max-frames", "4"]) == 0
    assert "summary.md" in capsys.readouterr().out

    family = TINY[name][1]
    stems = ["redundancy_curve", "redundancy_axes", "anchor_attention", "efficiency_per_view", "efficiency_total"]
    stems += ["local_affinity_stage1", "local_affinity_stage2", "cam"] if family == "uniformer" else ["rollout"]
    for stem in stems:
        png, html = out / f"{stem}.png", out / f"{stem}.html"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        text = html.read_text(encoding="utf-8")
        # one local plotly.js for the folder, nothing fetched from the network: works offline
        assert "Plotly.newPlot" in text and re.findall(r"<script[^>]*\bsrc=\"([^\"]*)\"", text) == ["plotly.min.js"]
        assert len(text) < 1_000_000, stem
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert sorted(p.name for p in out.glob("*.js")) == ["plotly.min.js"]

    # the CSV holds what the metrics give on the same clip and weights
    model = zoo.create_model(name, checkpoint=ckpt)
    clip = load_clip(str(video), zoo.get_entry(name).protocol)
    expected = [r for r in redundancy_table(extract(model, clip.x), model=name) if r.head == -1]
    with (out / "redundancy_per_layer.csv").open() as fh:
        got = list(csv.DictReader(fh))
    assert [g["layer"] for g in got] == [r.layer for r in expected]
    for g, r in zip(got, expected):
        assert float(g["locality"]) == pytest.approx(r.locality, rel=1e-4)
        assert float(g["entropy"]) == pytest.approx(r.entropy, rel=1e-4)
    with (out / "redundancy_per_head.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) > len(got)

    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert name in summary and str(ckpt) in summary
    assert "| layer | kind |" in summary and "measured GFLOPs/view" in summary
    assert "| map | axis | source |" in summary and "spatial, attention" in summary  # per-axis reading
    with (out / "redundancy_axes.csv").open() as fh:
        axes = list(csv.DictReader(fh))
    assert {a["kind"] for a in axes} == {"spatial", "temporal"} and all(a["n_clips"] == "1" for a in axes)
    assert all(f"`{stem}.png`" in summary for stem in stems)
    verdict = summary.rstrip().split("## Verdict")[-1]  # the summary ends with one sentence per axis
    assert "**spatial**" in verdict and "**temporal**" in verdict and "uniform" in verdict


@pytest.mark.slow
def test_report_attribution_and_random_weights(setup):
    root, video = setup
    out = root / "attr"
    name = "tiny_report_uniformer"
    assert main([str(video), "--model", name, "--out", str(out), "--attribution", "occlusion",
                 "--occlusion-window", "8,32,32", "--anchor", "0,1,1", "--max-frames", "2"]) == 0
    assert (out / "attribution.png").is_file() and (out / "attribution.html").is_file()
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "random initialisation" in summary and "Occlusion took" in summary
    assert "> tiny_report_uniformer runs with random weights" in summary  # the caveat beside the prediction
    assert "(t=0, h=1, w=1)" in (out / "anchor_attention.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "no_such_model"], "Unknown model"),
        (["--model", "tiny_report_uniformer", "--checkpoint", "missing.pth"], "missing.pth"),
    ],
)
def test_report_errors_are_one_sentence(setup, tmp_path, capsys, args, message):
    _, video = setup
    assert main([str(video), *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_report_bad_video(setup, tmp_path, capsys):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("hello")
    assert main([str(bad), "--model", "tiny_report_uniformer", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _row(kind: str, layer: int, loc: float, floor: float, source: str = "attention") -> LayerRow:
    return LayerRow(name=f"l{layer}", kind=kind, source=source, layer_index=layer, rel_depth=layer / 9, stage=3,
                    block=layer, grid="4x7x7", locality_mean=loc, locality_ci95=None, uniform_locality=floor,
                    ratio=loc / floor, ratio_ci95=None, distance_mean=1.0, distance_ci95=None, entropy_mean=0.5,
                    cls_mass_mean=None, n_clips=1, clip_independent=source == "kernel")


def test_verdict_one_sentence_per_axis_from_the_first_third_of_attention_layers():
    # 6 attention layers: the first third is layers 0-1. Deeper layers and the kernels must not count.
    rows = [_row("spatial", i, loc, 0.1) for i, loc in enumerate([0.5, 0.3, 0.1, 0.1, 0.1, 0.1])]
    rows += [_row("temporal", i, 0.55, 0.5) for i in range(6)]
    rows += [_row("spatial", -1, 0.99, 0.36, source="kernel"), _row("temporal", -1, 0.99, 0.6, source="kernel")]
    lines = verdict(rows)
    spatial, temporal = lines[0], lines[1]
    assert spatial.startswith("- **spatial**: clearly local") and "first 2 attention layer(s)" in spatial
    assert "40.0%" in spatial and "10.0%" in spatial and "4.00×" in spatial
    assert temporal.startswith("- **temporal**: about uniform") and "1.10×" in temporal
    assert "random" not in " ".join(lines) and "random" in " ".join(verdict(rows, random_weights=True)).lower()


@pytest.mark.parametrize("loc, floor, words", [(0.15, 0.1, "somewhat more local"), (0.05, 0.1, "less local"),
                                               (0.95, 0.95, "cannot be judged")])
def test_verdict_wording(loc, floor, words):
    assert words in verdict([_row("spatial", 0, loc, floor)])[0]


def test_verdict_without_attention_layers():
    rows = [_row(k, 0, 0.9, 0.36, source="kernel") for k in ("spatial", "temporal")]
    lines = verdict(rows)
    assert all("no attention layer" in line for line in lines[:2])


def test_the_report_defaults_to_the_bundled_lab_model():
    from analysis.report import build_parser
    from uniformer.assets import DEFAULT_MODEL

    assert build_parser().parse_args(["clip.mp4", "--out", "o"]).model == DEFAULT_MODEL == "uniformer_lab"
