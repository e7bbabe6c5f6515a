"""What a request will cost before it runs, and a way to stop it between steps.

Why a module of its own: the compute a prediction needs is known before any weights are loaded:
the zoo's GFLOPs per view (the published figure, else counted on the ``meta`` device by
:mod:`uniformer.flops`) times the views (clips × crops) times the forward passes, summed over the
models asked for. A server compares that with its budget (``app/budget.py``); a CLI or a script
can print it. ``cancellation`` lets whoever runs the work (the app, for a client that went away)
stop it at the next step: :func:`check_cancelled` is called between models and between chunks of
views.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from uniformer.errors import RequestCancelled

__all__ = [
    "RequestCost",
    "RunCost",
    "cancellation",
    "check_cancelled",
    "gflops_per_view",
    "request_cost",
    "run_cost",
]


@dataclass(frozen=True)
class RunCost:
    """One model's share of a request: ``passes`` forward passes over ``views`` views."""

    model: str
    views: int
    gflops_per_view: float
    source: str            # "published" (zoo) or "counted" (meta device)
    passes: int = 1

    @property
    def gflops(self) -> float:
        return self.gflops_per_view * self.views * self.passes

    def describe(self) -> str:
        passes = f" × {self.passes} passes" if self.passes != 1 else ""
        views = f"{self.views} view{'s' if self.views != 1 else ''}"
        return f"{self.model}: {views}{passes} × {self.gflops_per_view:,.1f} GFLOPs"


@dataclass(frozen=True)
class RequestCost:
    """Every forward pass a request asks for, and their total."""

    runs: tuple[RunCost, ...]

    @property
    def gflops(self) -> float:
        return float(sum(r.gflops for r in self.runs))

    def describe(self) -> str:
        """``'timesformer_large_k400_96x4: 3 views × 2,380.0 GFLOPs'`` joined by ``' + '``."""
        return " + ".join(r.describe() for r in self.runs)


@lru_cache(maxsize=256)
def _counted(name: str, arch: str, input_size: tuple[int, ...]) -> float:
    from uniformer.flops import flops_for

    return float(flops_for(name).gflops_per_view)


def gflops_per_view(name: str) -> tuple[float, str]:
    """``(GFLOPs of one view, source)``: the zoo's published figure, else counted on ``meta`` (cached)."""
    from uniformer.zoo import get_entry

    entry = get_entry(name)
    pub = entry.published
    if pub is not None and pub.gflops_per_view:
        return float(pub.gflops_per_view), "published"
    return _counted(entry.name, repr(sorted(entry.arch.items())), entry.input_size), "counted"


def run_cost(name: str, views: tuple[int, int] | None = None, *, passes: int = 1) -> RunCost:
    """Cost of zoo model ``name`` at ``views = (clips, crops)`` (``None``: its test protocol)."""
    from uniformer.zoo import get_entry

    protocol = get_entry(name).protocol
    clips, crops = views if views is not None else (protocol.num_clips, protocol.num_crops)
    g, source = gflops_per_view(name)
    return RunCost(model=name, views=int(clips) * int(crops), gflops_per_view=g, source=source, passes=int(passes))


def request_cost(runs: Iterable[RunCost]) -> RequestCost:
    return RequestCost(tuple(runs))


# ============================================================================ cancellation
_STOP: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("uniformer_stop", default=None)


@contextlib.contextmanager
def cancellation(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """Within this block (this thread / context), :func:`check_cancelled` asks ``should_stop``."""
    token = _STOP.set(should_stop)
    try:
        yield
    finally:
        _STOP.reset(token)


def check_cancelled() -> None:
    """Raise :class:`~uniformer.errors.RequestCancelled` when the current work should stop."""
    should_stop = _STOP.get()
    if should_stop is not None and should_stop():
        raise RequestCancelled("The request was cancelled (its client disconnected or cancelled it); "
                               "the remaining work was skipped.")
