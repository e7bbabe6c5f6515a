"""Run the app in-process on a free port: for the tests, the screenshot script and benchmarks.

``tiny_models()`` registers two tiny zoo entries (a 4-stage UniFormer and a 2-block divided
TimeSformer, 64 px, 10 classes, random weights) so that a full app round trip takes a second,
and ``serve(...)`` builds, launches and closes the app.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TINY_UNIFORMER = "uniformer_tiny_app_test"
TINY_TIMESFORMER = "timesformer_tiny_app_test"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tiny_models(uniformer: str = TINY_UNIFORMER, timesformer: str = TINY_TIMESFORMER) -> Iterator[list[str]]:
    """Temporarily add two tiny zoo entries (random weights; no files on disk)."""
    from uniformer.data.sampling import TestProtocol
    from uniformer.zoo import ZooEntry, add_entry, remove_entry

    entries = [
        ZooEntry(
            name=uniformer, family="uniformer", arch=dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 48, 64], head_dim=16),
            dataset="test", num_classes=10, labels=None, kind="local",
            protocol=TestProtocol("uniformer_dense", num_frames=8, sampling_rate=4, num_clips=2, short_side=64,
                                  crop_size=64),
        ),
        ZooEntry(
            name=timesformer, family="timesformer",
            arch=dict(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_frames=4),
            dataset="test", num_classes=10, labels=None, kind="local",
            protocol=TestProtocol("timesformer_dense", num_frames=4, sampling_rate=8, num_crops=3, short_side=64,
                                  crop_size=64),
        ),
    ]
    for e in entries:
        add_entry(e)
    try:
        yield [e.name for e in entries]
    finally:
        for e in entries:
            remove_entry(e.name)


@dataclass
class Served:
    demo: Any
    state: Any
    url: str


@contextlib.contextmanager
def serve(state: Any = None, *, port: int | None = None, **overrides: Any) -> Iterator[Served]:
    """Build the app (from ``state`` or ``AppConfig`` overrides), launch it on ``127.0.0.1`` and
    close it on exit."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.layout import build_app, launch_kwargs

    demo = build_app(state, **overrides)
    state = demo.lab_state
    port = port or free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(state))
    try:
        yield Served(demo=demo, state=state, url=f"http://127.0.0.1:{port}/")
    finally:
        demo.close()
