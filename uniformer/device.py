"""Where a model runs and in which precision: the one policy every entry point uses.

``resolve_device`` reads the ``--device`` / ``run.device`` text (``auto | cpu | cuda | cuda:N``)
the same way for the predict, evaluate and train CLIs and for the app; ``resolve_amp`` maps an
``amp`` setting (``auto | none | bf16 | fp16``) to an autocast dtype, and ``autocast`` opens the
matching context (a no-op for fp32).
"""
from __future__ import annotations

import contextlib
import platform
import re
from pathlib import Path

import torch

from uniformer.errors import ConfigError, UniformerLabError

__all__ = ["resolve_device", "resolve_amp", "autocast", "cpu_name"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto | cpu | cuda | cuda:N`` as a device; CUDA without a GPU, or N out of range, is a clear error.

    ``auto`` is CUDA when available, else the CPU. Under torchrun pass ``local_rank`` so that a
    plain ``cuda`` (or ``auto``) gives each local rank its own GPU.
    """
    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    m = _CUDA.fullmatch(text)
    if m is None:
        raise UniformerLabError(f"Unknown device '{name}'; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise UniformerLabError(f"Device '{name}' was requested but no CUDA device is available; use cpu.")
    count = torch.cuda.device_count()
    if m.group(1) is not None:
        index = int(m.group(1))
        if index >= count:
            raise UniformerLabError(f"Device '{name}' does not exist: this machine has {count} CUDA device(s), "
                                    f"cuda:0 to cuda:{count - 1}.")
        return torch.device("cuda", index)
    return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank % count)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (None: fp32). ``auto``: on CUDA bf16 where supported, else fp16 (+ GradScaler); CPU: fp32."""
    amp = str(amp).lower()
    if amp in ("none", "off", "fp32", "false"):
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16", "half"):
        if device.type != "cuda":
            raise ConfigError("amp = fp16 needs CUDA; on CPU use bf16 or none.")
        return torch.float16
    raise ConfigError(f"amp must be auto, none, bf16 or fp16, got {amp!r}.")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type; fp32 (``None``) is a no-op context."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_name() -> str:
    """The CPU's model name: every speed figure names it (this project's machines differ by CPU)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
