"""Upload caps enforced while the bytes arrive, and uploads that end early cleaned up.

Why a module of its own: Gradio has one ``max_file_size`` for every upload, so the app's smaller
video cap (200 MB, against 1 GB for checkpoints) used to be checked only after the whole file was
stored; a refused file stayed in the upload folder, and a client that disconnected mid-upload
left its partial file behind plus a ``ClientDisconnect`` traceback in the log.

:class:`UploadGuard` is a small ASGI middleware on Gradio's ``/upload`` route. It reads the file
names in the multipart stream as it passes (``filename="clip.mp4"``) and counts the bytes: past
the cap of that kind of file (checkpoint suffixes: the checkpoint cap; anything else: the video
cap) or when the client disconnects, it raises Starlette's ``MultiPartException`` from inside
the body stream. Gradio's multipart parser catches exactly that exception, deletes its temporary
files and answers 413 (size) or 400, so nothing partial is left and the log gets one line. A
refused upload's remaining body is read and dropped (up to ``DRAIN_FACTOR`` times the cap) so
that a client which sends everything before reading the answer still receives the 413.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.formparsers import MultiPartException

log = logging.getLogger("uniformer_lab.app")

Message = dict[str, Any]
SLACK = 64 * 1024          # multipart boundaries and part headers on top of the file itself
DRAIN_FACTOR = 4           # how much of a refused body is still read (and dropped) before answering
_FILENAME = re.compile(rb'filename\*?=(?:"([^"\r\n]*)"|([^;\r\n]*))', re.IGNORECASE)


class _Upload:
    """Byte count and file kinds of one upload request."""

    def __init__(self, caps: dict[str, int], checkpoint_suffixes: tuple[str, ...]) -> None:
        self.caps = caps
        self.suffixes = checkpoint_suffixes
        self.received = 0
        self.kinds: set[str] = set()
        self.tail = b""

    def feed(self, body: bytes) -> None:
        self.received += len(body)
        window = self.tail + body
        for m in _FILENAME.finditer(window):
            name = (m.group(1) or m.group(2) or b"").decode("utf-8", "replace").strip().lower()
            self.kinds.add("checkpoint" if name.endswith(self.suffixes) else "video")
        self.tail = window[-512:]

    @property
    def kind(self) -> str:
        return "checkpoint" if self.kinds == {"checkpoint"} else "video"

    @property
    def cap(self) -> int:
        return self.caps[self.kind]


class UploadGuard:
    """ASGI middleware: per-kind upload caps while streaming, one log line per refusal or disconnect."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, video_bytes: int, checkpoint_bytes: int,
                 checkpoint_suffixes: Iterable[str]) -> None:
        self.app = app
        self.caps = {"video": int(video_bytes), "checkpoint": int(checkpoint_bytes)}
        self.suffixes = tuple(s.lower() for s in checkpoint_suffixes)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" \
                or not str(scope.get("path", "")).rstrip("/").endswith("/upload"):
            await self.app(scope, receive, send)
            return
        upload = _Upload(self.caps, self.suffixes)
        client = (scope.get("client") or ("?",))[0]
        finished = False

        async def guarded_receive() -> Message:
            nonlocal finished
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                log.warning("upload from %s ended by the client after %.1f MB; the partial file was deleted",
                            client, upload.received / 2**20)
                raise MultiPartException("The client disconnected during the upload.")
            if message["type"] != "http.request":
                return message
            upload.feed(message.get("body", b""))
            finished = not message.get("more_body", False)
            if upload.received > upload.cap + SLACK:
                cap_mb = upload.cap / 2**20
                log.info("upload from %s refused: over the %g MB %s cap; nothing was kept", client, cap_mb,
                         upload.kind)
                await _drain(receive, finished, DRAIN_FACTOR * upload.cap)
                finished = True
                raise MultiPartException(  # Gradio answers 413 for "maximum allowed size"
                    f"File size exceeded maximum allowed size of {upload.cap} bytes: this app accepts {upload.kind} "
                    f"files of at most {cap_mb:g} MB.")
            return message

        await self.app(scope, guarded_receive, send)


async def _drain(receive: Callable[[], Awaitable[Message]], finished: bool, limit: int) -> None:
    """Read and drop the rest of a refused body (bounded), so the client gets to read the answer."""
    dropped = 0
    while not finished and dropped < limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        finished = not message.get("more_body", False)


def upload_middleware(video_mb: float, checkpoint_mb: float, checkpoint_suffixes: Iterable[str]) -> Any:
    """The ``starlette.middleware.Middleware`` entry for ``gr.Blocks.launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    return Middleware(UploadGuard, video_bytes=int(video_mb * 2**20), checkpoint_bytes=int(checkpoint_mb * 2**20),
                      checkpoint_suffixes=tuple(checkpoint_suffixes))
