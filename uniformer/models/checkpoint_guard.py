"""Bounds and sanity checks that a checkpoint passes *before* it is unpickled or loaded.

Why a module of its own: :mod:`uniformer.models.checkpoint` reads files safely (no pickled code
runs), but a safe reader can still be made to allocate gigabytes or to load garbage:

- **Decompression bombs.** A torch zip may deflate its storage entries: 3 MB of zeros can claim
  3 GB. :func:`declared_bytes` reads what a file *declares* it will take in memory without
  inflating anything (the zip central directory via :func:`zipfile.ZipFile.infolist`, the
  safetensors JSON header, the size of a legacy file, whose storages are stored raw), and
  :func:`check_declared` refuses it above :func:`model_budget` (what the target model can use:
  its state-dict bytes times ``MODEL_MARGIN`` plus ``MODEL_SLACK_BYTES``, room for optimizer
  state, EMA copies and float64 saves) or above ``ABSOLUTE_CAP_BYTES``. Refusing therefore costs
  what reading a directory listing costs.
- **Weights a model cannot use.** :func:`check_tensors` refuses NaN/Inf, bool and complex
  tensors, and tensors without values (meta) or with another layout (sparse), naming the first
  offending tensor, instead of predicting ``NaN`` or failing inside ``load_state_dict`` with the
  reason cut off.
- **What the safe reader had to neutralise.** Pickled Python objects that the restricted
  unpickler replaced by inert placeholders are reported through :func:`checkpoint_notes`, so the
  CLI and the app can show them next to the result (not only in a log line).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import struct
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from uniformer.errors import CheckpointError

__all__ = [
    "ABSOLUTE_CAP_BYTES",
    "MODEL_MARGIN",
    "add_note",
    "check_declared",
    "check_tensors",
    "checkpoint_notes",
    "declared_bytes",
    "model_budget",
    "state_dict_bytes",
]

# The largest released checkpoint here (TimeSformer, 121 M parameters) is 0.5 GB of float32; a
# PySlowFast training checkpoint with optimizer state is about twice that.
ABSOLUTE_CAP_BYTES = 4 * 2**30
MODEL_MARGIN = 4                   # weights + optimizer state + an EMA copy, or float64 weights
MODEL_SLACK_BYTES = 64 * 2**20     # configs, schedulers, counters of small models
_MAX_SAFETENSORS_HEADER = 100 * 2**20  # safetensors' own limit on its JSON header
# torch's legacy (non-zip) format starts with a pickled magic number (a 10-byte LONG1).
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


# ================================================================================= sizes
def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``model.state_dict()`` (parameters and buffers as the model holds them)."""
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values()))


def model_budget(model: nn.Module) -> int:
    """The most a checkpoint for ``model`` may declare: its weights with a margin, under the cap."""
    return min(ABSOLUTE_CAP_BYTES, MODEL_MARGIN * state_dict_bytes(model) + MODEL_SLACK_BYTES)


def is_legacy_torch(head: bytes) -> bool:
    """Whether a pickle stream is torch's legacy format (its first pickle is torch's magic number)."""
    return head[:1] == b"\x80" and _LEGACY_MAGIC in head[:32]


def declared_bytes(p: Path, head: bytes, size: int) -> tuple[str, int]:
    """``(what, bytes)``: what the file will take in memory once read, from its metadata only.

    Zip: the sum of every entry's declared uncompressed size (central directory; nothing is
    inflated; torch's reader allocates exactly these sizes and fails on a stream that inflates to
    more). Safetensors: the extent of the tensors in its header. Legacy torch / other: the file
    size (storages are stored raw).
    """
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(p) as z:
                return "uncompressed zip storage", int(sum(i.file_size for i in z.infolist()))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
            return "file", size  # broken archives get their own message from the reader
    if len(head) >= 8:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER) and head[8:9] == b"{":
            try:
                with p.open("rb") as f:
                    f.seek(8)
                    header = json.loads(f.read(n))
                ends = [int(v["data_offsets"][1]) for k, v in header.items()
                        if k != "__metadata__" and isinstance(v, Mapping)]
                return "safetensors tensor data", max(ends, default=0)
            except (ValueError, KeyError, TypeError, IndexError, OSError):
                return "file", size  # the safetensors reader names the damage
    return "file", size


def check_declared(p: Path, head: bytes, size: int, max_bytes: int | None) -> None:
    """Refuse ``p`` when what it declares exceeds ``max_bytes`` (default: the absolute cap)."""
    limit = ABSOLUTE_CAP_BYTES if max_bytes is None else min(int(max_bytes), ABSOLUTE_CAP_BYTES)
    what, need = declared_bytes(p, head, size)
    if need > limit:
        ratio = f", {need / max(size, 1):.0f} times its {_mb(size)} on disk" if need > 4 * size else ""
        raise CheckpointError(
            f"{p} declares {_mb(need)} of {what}{ratio}, more than the target model can use ({_mb(limit)}); "
            "it was refused before reading, as a decompression bomb or the wrong file would be.")


def _mb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


# =============================================================================== tensors
_REAL_INTEGERS = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def _problem(t: torch.Tensor) -> str | None:
    """Why a model cannot use tensor ``t``, or None."""
    if t.is_meta:
        return "is a meta tensor (a shape without values, saved from a model that was never materialised)"
    if t.layout != torch.strided:
        return f"has the {str(t.layout).replace('torch.', '')} layout; save dense tensors (tensor.to_dense())"
    if t.is_quantized:
        return f"is quantized ({str(t.dtype).replace('torch.', '')}); save the float weights"
    if t.dtype == torch.bool or t.is_complex():
        return f"has dtype {str(t.dtype).replace('torch.', '')}; weights must be real floating-point or integer"
    if t.is_floating_point():
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            kinds = [w for w, m in (("NaN", torch.isnan(t)), ("Inf", torch.isinf(t))) if bool(m.any())]
            return f"has {bad} non-finite value{'s' if bad != 1 else ''} ({'/'.join(kinds)}) among its {t.numel()}"
        return None
    if t.dtype not in _REAL_INTEGERS:
        return f"has dtype {str(t.dtype).replace('torch.', '')}, which this loader does not accept"
    return None


def check_tensors(sd: Mapping[str, torch.Tensor], *, what: str = "The checkpoint") -> None:
    """Refuse a state dict holding a tensor that would load as garbage or fail inside
    ``load_state_dict``; the message names the first such tensor and why."""
    for name, t in sd.items():
        reason = _problem(t)
        if reason is not None:
            raise CheckpointError(f"{what} cannot be used: tensor '{name}' {reason}.")


# ================================================================================= notes
_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("uniformer_checkpoint_notes", default=None)


@contextlib.contextmanager
def checkpoint_notes() -> Iterator[list[str]]:
    """Collect what reading checkpoints in this block had to tell the user (per thread/context)."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def add_note(text: str) -> None:
    """Record a note for the innermost :func:`checkpoint_notes` block, if any (else nothing)."""
    notes = _NOTES.get()
    if notes is not None and text not in notes:
        notes.append(text)
