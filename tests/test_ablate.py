"""The ablation runner's planning, statistics and report (training itself: see the slow test)."""
from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest

from uniformer.ablate import (
    CSV_COLUMNS,
    LAYOUTS,
    AblationError,
    RunResult,
    bundle,
    differences,
    layout_colour,
    plan_runs,
    step_budget,
    summarise,
    t_quantile_975,
    wilson_interval,
    write_report,
)
from uniformer.assets import LABELS_DIR
from uniformer.data.lab import CLASSES as LAB_CLASSES


def _row(layout: str, seed: int, top1: float, gflops: float = 1.0) -> RunResult:
    return RunResult(layout, seed, gflops, 2.0, top1, min(1.0, top1 + 0.1), 1000, 30.0)


def test_plan_is_seed_major_and_names_runs(tmp_path: Path) -> None:
    specs = plan_runs(["LLGG", "GGGG", "TS"], [0, 1], tmp_path, Path("u.toml"), Path("t.toml"))
    assert [s.name for s in specs] == ["LLGG_s0", "GGGG_s0", "TS_s0", "LLGG_s1", "GGGG_s1", "TS_s1"]
    assert specs[2].config == Path("t.toml") and specs[0].config == Path("u.toml")
    cmd = specs[1].train_command(["data.root=\"x\""])
    assert 'model.kwargs.layout="GGGG"' in cmd and "run.resume=auto" in cmd and "run.seed=0" in cmd
    assert not any("layout" in c for c in specs[2].train_command())  # TimeSformer has no stage layout


@pytest.mark.parametrize("bad", ["LLG", "LLXG", "llgg", "LLGGG"])
def test_plan_refuses_bad_layouts(tmp_path: Path, bad: str) -> None:
    with pytest.raises(AblationError, match="four letters"):
        plan_runs([bad], [0], tmp_path, Path("u.toml"), Path("t.toml"))


def test_t_quantiles_and_wilson() -> None:
    assert t_quantile_975(1) == pytest.approx(12.706)
    assert t_quantile_975(10) == pytest.approx(2.228)
    assert t_quantile_975(1000) == pytest.approx(1.9623, abs=1e-4)  # solved beyond the table, not 1.96
    # fractional degrees of freedom (Welch's); reference values of the t distribution's 0.975 quantile
    assert [round(t_quantile_975(d), 4) for d in (1.5, 2.5, 31)] == [6.0167, 3.5747, 2.0395]
    with pytest.raises(ValueError):
        t_quantile_975(0)
    lo, hi = wilson_interval(800, 1000)
    assert lo < 0.8 < hi and hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.8 * 0.2 / 1000), rel=0.02)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(50, 50)[1] == 1.0


def test_summary_mean_and_t_interval() -> None:
    rows = [_row("LLGG", 0, 0.80), _row("LLGG", 1, 0.84), _row("GGGG", 0, 0.70, gflops=3.0)]
    by = {s.layout: s for s in summarise(rows)}
    assert [s.layout for s in summarise(rows)] == ["LLGG", "GGGG"]  # paper order
    llgg = by["LLGG"]
    assert llgg.top1_mean == pytest.approx(0.82)
    sd = math.sqrt(2 * 0.02**2)
    assert llgg.top1_sd == pytest.approx(sd)
    half = 12.706 * sd / math.sqrt(2)
    assert llgg.top1_ci95 == pytest.approx((0.82 - half, min(1.0, 0.82 + half)))
    assert by["GGGG"].top1_ci95 is None and by["GGGG"].n_seeds == 1  # one seed: no interval claimed


def test_report_files(tmp_path: Path) -> None:
    rows = [_row(layout, s, 0.5 + 0.05 * i + 0.01 * s, gflops=0.5 + i)
            for i, layout in enumerate(["LLLL", "LLGG", "TS"]) for s in (0, 1)]
    write_report(rows, tmp_path, {"cpu": "test"})
    with (tmp_path / "ablation.csv").open() as f:
        got = list(csv.DictReader(f))
    assert tuple(got[0]) == CSV_COLUMNS and len(got) == 6
    assert {r["layout"] for r in got} == {"LLLL", "LLGG", "TS"}
    assert all(0.0 <= float(r["top1"]) <= 1.0 and int(r["n_eval"]) == 1000 for r in got)
    doc = json.loads((tmp_path / "ablation.json").read_text())
    assert len(doc["layouts"]) == 3 and doc["meta"]["cpu"] == "test"
    assert all(len(r["top1_wilson95"]) == 2 for r in doc["runs"])
    assert (tmp_path / "ablation.png").stat().st_size > 10_000
    assert not (tmp_path / "ablation_per_class.csv").exists()  # no run has per-class results
    rows[0].per_class, rows[1].per_class = {"slow": 0.75, "fast": 0.5}, {"slow": 1.0, "fast": 0.25}
    write_report(rows, tmp_path)
    with (tmp_path / "ablation_per_class.csv").open() as f:
        table = list(csv.reader(f))
    assert table == [["class", "LLLL_s0", "LLLL_s1"], ["slow", "0.7500", "1.0000"], ["fast", "0.5000", "0.2500"]]
    assert json.loads((tmp_path / "ablation.json").read_text())["runs"][1]["per_class"]["fast"] == 0.25
    with pytest.raises(AblationError, match="No finished run"):
        write_report([], tmp_path)


def test_welch_difference_between_layouts() -> None:
    rows = [_row("LLGG", 0, 0.730), _row("LLGG", 1, 0.713), _row("LLLL", 0, 0.709), _row("LLLL", 1, 0.6875),
            _row("TS", 0, 0.2)]
    by = {d["layout"]: d for d in differences(rows)}
    assert set(by) == {"LLLL", "TS"} and by["LLLL"]["diff"] == pytest.approx(-0.02325)
    # Welch by hand: var/n 1.156e-4 and 7.225e-5, dof (sum)^2 / sum(each^2 / 1) = 1.899, t(1.899) = 4.53
    lo, hi = by["LLLL"]["ci95"]
    assert by["LLLL"]["dof"] == pytest.approx(1.899, abs=1e-3)
    assert (lo, hi) == pytest.approx((-0.02325 - 0.062075, -0.02325 + 0.062075), abs=2e-4)
    assert by["TS"]["ci95"] is None  # one seed: no interval claimed
    assert differences(rows, reference="GGGG") == []


def test_step_budget_names_one_recipe_or_each_budget_with_its_runs(tmp_path: Path) -> None:
    rows = [RunResult(x, s, 0.2, 0.6, 0.7, 0.9, 1000, 30.0, steps=3000, batch_size=16)
            for x in ("LLLL", "LLGG") for s in (0, 1)]
    assert step_budget(rows) == "3000 steps of 16 clips"
    rows[1].steps = 1500  # one run of another budget is not the same recipe
    assert step_budget(rows) == ("3000 steps of 16 clips (LLLL_s0, LLGG_s0, LLGG_s1); "
                                 "1500 steps of 16 clips (LLLL_s1)")
    write_report(rows, tmp_path, {"cpu": "test"})
    doc = json.loads((tmp_path / "ablation.json").read_text())
    assert doc["meta"]["step_budget"] == step_budget(rows) and doc["runs"][0]["steps"] == 3000


def test_the_report_names_the_commands_that_train_exactly_its_runs() -> None:
    import argparse

    from uniformer.ablate import _meta

    a = argparse.Namespace(out="runs/x", data="data/lab", heldout="/h", extra=["optim.epochs=12"])
    rows = [_row(x, s, 0.5) for x in ("TS", "LLGG", "LLLL") for s in (0, 1)] + [_row("LLLL", 2, 0.5),
                                                                                 _row("LLGG", 2, 0.5)]
    assert _meta(a, rows)["command"] == (
        "python -m uniformer.ablate --out runs/x --layouts LLLL,LLGG --seeds 0,1,2 --heldout /h --extra optim.epochs=12"
        " && python -m uniformer.ablate --out runs/x --layouts TS --seeds 0,1 --heldout /h --extra optim.epochs=12")


def test_layout_colours_are_fixed_by_name() -> None:
    """A missing layout must not recolour the others between two plots of a partial ablation."""
    colours = [layout_colour(layout) for layout in LAYOUTS]
    assert len(set(colours)) == len(LAYOUTS)
    assert layout_colour("GGGG") == colours[LAYOUTS.index("GGGG")]
    four_stage = ("".join(letters) for letters in itertools.product("LG", repeat=4))
    others = [layout_colour(layout) for layout in four_stage if layout not in LAYOUTS]
    assert len(others) == 11 and len(set(others)) == 11  # every other four-stage layout has a colour of its own
    assert not set(others) & set(colours)


@pytest.mark.slow
def test_ablation_end_to_end_is_resumable(tmp_path: Path) -> None:
    """Two layouts and the TimeSformer row, trained for two steps each on a few lab clips."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "uniformer.ablate", "--out", str(tmp_path / "runs"), "--layouts", "LLGG,GGGG,TS",
            "--seeds", "0", "--data", str(tmp_path / "lab"), "--heldout", str(tmp_path / "heldout"),
            "--train-clips", "24", "--val-clips", "12", "--heldout-clips", "12", "--report", str(tmp_path / "report"),
            "--extra", "optim.epochs=1", "run.steps_per_epoch=2", "data.batch_size=4", "data.num_workers=0",
            "run.eval_every=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "report" / "ablation.csv").open() as f:
        rows = {r["layout"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"LLGG", "GGGG", "TS"}
    assert all(int(r["n_eval"]) == 12 and 0 <= float(r["top1"]) <= 1 for r in rows.values())
    with (tmp_path / "report" / "ablation_per_class.csv").open() as f:
        per_class = list(csv.DictReader(f))
    assert [r["class"] for r in per_class] == list(LAB_CLASSES) and set(per_class[0]) == {"class", "LLGG_s0",
                                                                                          "GGGG_s0", "TS_s0"}
    held = json.loads((tmp_path / "runs" / "TS_s0" / "heldout.json").read_text())
    assert held["per_class"].keys() == set(LAB_CLASSES) and held["time_reversal"]["n"] == 8  # 4 pairs, 1 clip each
    runs = json.loads((tmp_path / "report" / "ablation.json").read_text())["runs"]
    assert all(len(r["time_reversal"]["pairs"]) == 4 for r in runs)
    assert float(rows["GGGG"]["gflops"]) > float(rows["LLGG"]["gflops"])  # global attention over 28x28 tokens
    assert (tmp_path / "runs" / "GGGG_s0" / "config.toml").read_text().count('layout = "GGGG"') == 1
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)  # all done: nothing retrains
    assert again.returncode == 0 and "training" not in again.stdout
    rewrite = [*args[:7], "--seeds", "0", "--report", str(tmp_path / "report"), "--report-only"]
    # a run evaluated before heldout.json kept per-class results, whose evaluation output is damaged:
    # the report still comes out, without that run's per-class column
    ts = tmp_path / "runs" / "TS_s0"
    (ts / "heldout.json").write_text(json.dumps({k: held[k] for k in ("top1", "top5", "n_eval", "heldout")}))
    (ts / "heldout.out").write_text('{"per_class": [{"class": "slow"')
    assert subprocess.run(rewrite, capture_output=True, text=True, env=env, timeout=600).returncode == 0
    with (tmp_path / "report" / "ablation_per_class.csv").open() as f:
        assert set(next(csv.reader(f))) == {"class", "LLGG_s0", "GGGG_s0"}
    meta = json.loads((tmp_path / "report" / "ablation.json").read_text())["meta"]
    assert meta["step_budget"] == "2 steps of 4 clips"
    assert meta["command"].startswith(f"python -m uniformer.ablate --out {tmp_path / 'runs'} --layouts LLGG,GGGG,TS "
                                      "--seeds 0") and "--report-only" in meta["invoked"]
    lines = bundle(tmp_path / "runs", tmp_path / "ckpt", LABELS_DIR / "lab_motion.txt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "timesformer_lab.safetensors", "uniformer_lab.safetensors", "uniformer_lab_gggg.safetensors"]
    assert lines[0].startswith("uniformer_lab: LLGG_s0, held-out top-1") and "n=12" in lines[0]


def test_bundle_skips_unfinished_runs_and_refuses_other_classes(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    run = tmp_path / "runs" / "LLGG_s0"
    run.mkdir(parents=True)
    save_file({"head.weight": torch.zeros(3, 4)}, str(run / "model.safetensors"),
              metadata={"classes": json.dumps(["a", "b", "c"])})
    assert bundle(tmp_path / "runs", tmp_path / "ckpt", labels) == [
        "uniformer_lab: LLGG_s0 has not finished yet; nothing bundled.",
        "timesformer_lab: TS_s0 has not finished yet; nothing bundled.",
        "uniformer_lab_gggg: GGGG_s0 has not finished yet; nothing bundled."]
    (run / "heldout.json").write_text(json.dumps({"top1": 0.5, "top5": 0.9, "n_eval": 10}))
    with pytest.raises(AblationError, match="trained on classes"):
        bundle(tmp_path / "runs", tmp_path / "ckpt", labels)
    assert not (tmp_path / "ckpt").exists()  # nothing half-copied
