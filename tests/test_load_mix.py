"""The mixed load test (benchmarks/load_mix.py): light and heavy clients reported apart (issue 17).

Refusals are built by the app's own budget, so a change of its sentences fails here; the served
run uses the two tiny random-weight models in-process for about two seconds of load.
"""
from __future__ import annotations

import threading

import pytest

from app.budget import OverBudget, RequestBudget
from benchmarks.load_mix import ClientClass, class_summary, is_refusal, markdown_mixed, run_mixed
from benchmarks.load_test import Outcome
from tests.conftest import REPO_ROOT
from uniformer.cost import RequestCost, RunCost

CLIP = REPO_ROOT / "assets" / "clips" / "pedestrians_576p_10s.mp4"


def _cost(gflops: float) -> RequestCost:
    return RequestCost((RunCost(model="m", views=1, gflops_per_view=gflops, source="published"),))


def _budget_refusals() -> list[str]:
    """The two sentences the budget refuses with: over the budget, and a full waiting room."""
    budget = RequestBudget(100.0, light_gflops=1.0, heavy_slots=1, light_slots=1, max_waiting=0)
    messages = []
    with pytest.raises(OverBudget) as over:
        budget.check(_cost(500.0))
    messages.append(str(over.value))
    with budget.scope():
        budget.admit(_cost(50.0))  # the only heavy slot
        box: dict = {}

        def second() -> None:
            try:
                with budget.scope():
                    budget.admit(_cost(50.0))
            except OverBudget as err:
                box["error"] = err

        t = threading.Thread(target=second)
        t.start()
        t.join(60)
    messages.append(str(box["error"]))
    return messages


def test_budget_refusals_are_counted_apart_from_errors_with_their_message():
    over, busy = _budget_refusals()
    assert is_refusal(f"AppError: {over}") and is_refusal(f"AppError: {busy}")
    assert not is_refusal("AppError: The video 'x.mp4' could not be decoded.")
    outcome = Outcome(latencies=[0.5, 1.0, 2.0], errors=[f"AppError: {over}", f"AppError: {over}", "ConnectError: x"])
    s = class_summary(ClientClass("heavy", 2, "m", "protocol"), outcome, wall=10.0, gflops=500.0)
    assert (s["requests"], s["ok"], s["errors"], s["refusals"]) == (6, 3, 1, 2)
    assert s["refusal_samples"] == [f"AppError: {over}"] and s["error_samples"] == ["ConnectError: x"]
    assert s["latency_s"]["p50"] == 1.0 and s["latency_s"]["max"] == 2.0
    text = markdown_mixed({"duration_s": 10.0, "url": "u", "endpoint": "/predict", "light_request_gflops": 1.0,
                           "classes": {"heavy": s}})
    assert "| heavy | 2 | m @ protocol | 500.00 | 6 | 3 | 1 | 2 | 1.00 |" in text
    assert f"- heavy refused: AppError: {over}" in text


@pytest.mark.slow
def test_mixed_run_reports_light_heavy_and_refused_requests_apart(tiny):
    from app.testing import serve

    # tiny[0] costs 0.016 GFLOPs per view: 1x1 is light, 1x3 heavy, 4x3 over the budget
    with serve(default_models=tiny, views=(1, 1), light_request_gflops=0.02, max_request_gflops=0.1) as s:
        classes = [ClientClass("light", 1, tiny[0], "1x1"), ClientClass("heavy", 1, tiny[0], "1x3"),
                   ClientClass("refused", 1, tiny[0], "4x3")]
        r = run_mixed(s.url, classes, duration=2.0, clip=CLIP, server_pid=None, settle=0.0, light_gflops=0.02,
                      log=lambda _msg: None)
    light, heavy, refused = (r["classes"][k] for k in ("light", "heavy", "refused"))
    for c in (light, heavy):
        assert c["ok"] >= 1 and c["errors"] == 0 and c["refusals"] == 0, c
        assert c["requests"] == c["ok"] and c["latency_s"]["p50"] <= c["latency_s"]["p99"] <= c["latency_s"]["max"]
    assert light["gflops_per_request"] <= 0.02 < heavy["gflops_per_request"] <= 0.1
    assert refused["ok"] == 0 and refused["errors"] == 0 and refused["refusals"] >= 1
    assert "more than this server allows" in refused["refusal_samples"][0]
    assert refused["latency_s"]["p50"] is None
    assert (r["ok"], r["errors"], r["refusals"]) == (light["ok"] + heavy["ok"], 0, refused["refusals"])
