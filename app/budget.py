"""The server's budget per request, its two lanes, and how a request learns its client left.

Why a module of its own: one caller could hold the server for minutes (TimeSformer-L at its
3-view protocol is 7,140 GFLOPs, 224 s on a CPU), and requests for a tiny model waited behind
it. The policy, in one place:

- **Budget.** Every model-running request is priced before anything is loaded
  (:mod:`uniformer.cost`: zoo GFLOPs × views × passes, summed over models) and refused above
  ``max_gflops`` with one sentence that says what was asked, the budget and the flag that raises
  it. Defaults: ``CPU_MAX_GFLOPS`` on a CPU, ``CUDA_MAX_GFLOPS`` with CUDA.
- **Lanes.** Requests up to ``light_gflops`` (default ``LIGHT_FRACTION`` of the budget: a small
  model at a few views) run in a lane of their own, so they never queue behind heavy ones; heavy
  requests share ``heavy_slots`` (the app's ``concurrency_limit``). Gradio's own limit for these
  events is the sum of both lanes plus the waiting room (:attr:`RequestBudget.capacity`), so the
  waiting happens here, where the lane is known; beyond ``max_waiting`` a request is refused as
  busy instead of piling up.
- **Cancellation.** A request runs inside :meth:`RequestBudget.scope` with a ``should_stop``
  check (:func:`client_gone`: its Gradio event is no longer alive, i.e. the client disconnected
  or cancelled); waiting for a lane, the model loop and the view loop stop at the next step.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from uniformer.cost import RequestCost, cancellation, check_cancelled
from uniformer.errors import UniformerLabError

log = logging.getLogger("uniformer_lab.app")

CPU_MAX_GFLOPS = 1_000.0     # about 30 s of a 2-core CPU; UniFormer-S at its 4-view protocol is 167
CUDA_MAX_GFLOPS = 20_000.0   # TimeSformer-L at its protocol (7,140) plus UniFormer-B 32x4 (1,036) fit
LIGHT_FRACTION = 0.05        # requests up to 5 % of the budget take the light lane
POLL_S = 0.25                # how often a waiting request checks whether its client is still there


class OverBudget(UniformerLabError):
    """A request that costs more than the server allows, or a server too busy to queue it."""


def default_max_gflops(device: torch.device | str) -> float:
    return CUDA_MAX_GFLOPS if torch.device(device).type == "cuda" else CPU_MAX_GFLOPS


class _Lane:
    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.slots = max(1, int(slots))
        self.free = threading.Semaphore(self.slots)
        self.waiting = 0
        self.lock = threading.Lock()


_SCOPE: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar("lab_scope", default=None)


class RequestBudget:
    """GFLOPs budget per request and the heavy / light lanes (see the module docstring)."""

    def __init__(self, max_gflops: float, *, light_gflops: float | None = None, heavy_slots: int = 2,
                 light_slots: int = 2, max_waiting: int = 16) -> None:
        self.max_gflops = float(max_gflops)
        self.light_gflops = float(light_gflops) if light_gflops is not None else LIGHT_FRACTION * self.max_gflops
        self.max_waiting = max(0, int(max_waiting))
        self.lanes = {"heavy": _Lane("heavy", heavy_slots), "light": _Lane("light", light_slots)}

    @classmethod
    def from_config(cls, config: Any, device: torch.device | str) -> RequestBudget:
        """From ``AppConfig`` (``max_request_gflops``, ``light_request_gflops``, ``concurrency_limit``, ...)."""
        top = config.max_request_gflops
        return cls(default_max_gflops(device) if top is None else top, light_gflops=config.light_request_gflops,
                   heavy_slots=config.concurrency_limit, light_slots=config.light_concurrency_limit,
                   max_waiting=config.queue_max_size)

    @property
    def capacity(self) -> int:
        """Gradio's concurrency limit for the events that go through :meth:`admit`."""
        return sum(lane.slots for lane in self.lanes.values()) + self.max_waiting

    def lane_for(self, cost: RequestCost) -> str:
        return "light" if cost.gflops <= self.light_gflops else "heavy"

    def check(self, cost: RequestCost) -> None:
        """Refuse a request over the budget, in one sentence."""
        if cost.gflops > self.max_gflops:
            raise OverBudget(
                f"This request asks for {cost.gflops:,.0f} GFLOPs ({cost.describe()}), more than this server allows "
                f"per request ({self.max_gflops:,.0f} GFLOPs); choose fewer views or models, or start the app with "
                f"--max-request-gflops {math.ceil(cost.gflops)} to allow it.")

    @contextlib.contextmanager
    def scope(self, should_stop: Callable[[], bool] | None = None) -> Iterator[None]:
        """One request: lane slots taken by :meth:`admit` inside are given back on exit, and
        ``uniformer.cost.check_cancelled`` asks ``should_stop``."""
        releases: list[Callable[[], None]] = []
        token = _SCOPE.set(releases)
        try:
            with cancellation(should_stop):
                yield
        finally:
            _SCOPE.reset(token)
            for release in reversed(releases):
                release()

    def admit(self, cost: RequestCost) -> str:
        """Check ``cost`` against the budget and, inside a :meth:`scope`, wait for a slot in its lane
        (stopping if the client goes away). Returns the lane's name. Outside a scope (scripts,
        tests calling a handler directly) only the budget is checked."""
        self.check(cost)
        name = self.lane_for(cost)
        releases = _SCOPE.get()
        if releases is None:
            return name
        lane = self.lanes[name]
        if not lane.free.acquire(blocking=False):
            with lane.lock:
                if lane.waiting >= self.max_waiting:
                    raise OverBudget(
                        f"The server is busy ({lane.slots} {name} request(s) running, {lane.waiting} waiting); try "
                        f"again in a minute, or ask for less: requests up to {self.light_gflops:,.0f} GFLOPs (a small "
                        "model at one view) have a lane of their own.")
                lane.waiting += 1
            try:
                while not lane.free.acquire(timeout=POLL_S):
                    check_cancelled()
            finally:
                with lane.lock:
                    lane.waiting -= 1
        releases.append(lane.free.release)
        check_cancelled()  # the client may have left while waiting
        log.debug("admitted %.0f GFLOPs to the %s lane", cost.gflops, name)
        return name


def client_gone(demo: Any, request: Any) -> Callable[[], bool]:
    """``should_stop`` for a Gradio handler: True once none of the session's running events is alive.

    Gradio marks a running event ``alive = False`` when its client disconnects, and drops it from
    the active jobs when the client cancels it; a sync handler's thread is never interrupted, so
    the handler has to ask. Reads Gradio's queue defensively: where that is missing (a handler
    called outside a served app), it never stops.
    """
    session = getattr(request, "session_hash", None) if request is not None else None
    queue = getattr(demo, "_queue", None)
    if session is None or queue is None:
        return lambda: False

    def gone() -> bool:
        jobs = list(getattr(queue, "active_jobs", None) or [])
        mine = [e for job in jobs if job for e in job if getattr(e, "session_hash", None) == session]
        return not any(getattr(e, "alive", True) for e in mine)

    return gone
