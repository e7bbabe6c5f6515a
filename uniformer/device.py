"""Where a model runs and in which precision: the one policy every entry point uses.

``resolve_device`` reads the ``--device`` / ``run.device`` text (``auto | cpu | cuda | cuda:N``)
the same way for the predict, evaluate and train CLIs and for the app; ``resolve_amp`` maps an
``amp`` setting (``auto | none | bf16 | fp16``) to an autocast dtype, and ``autocast`` opens the
matching context (a no-op for fp32). ``resolve_precision`` is the inference precision policy
(``fp32 | bf16``, ``--precision`` of predict/evaluate, the app's choice, the benchmarks): bf16 only
where the hardware runs it fast (CUDA compute capability 8.0 or newer; a CPU with AMX or
AVX-512-BF16, :func:`cpu_bf16_support`), refused in one sentence elsewhere, because emulated bf16
is slower than fp32 and still loses precision.
"""
from __future__ import annotations

import contextlib
import platform
import re
from pathlib import Path

import torch

from uniformer.errors import ConfigError, UniformerLabError

__all__ = ["resolve_device", "resolve_amp", "autocast", "cpu_name", "PRECISIONS", "resolve_precision",
           "bf16_unsupported_reason", "cpu_bf16_support"]

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


PRECISIONS = ("fp32", "bf16")  # inference precisions offered by the CLIs and the app


def _cpuinfo_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support() -> str | None:
    """The CPU's fast bf16 instructions (``"AMX"`` or ``"AVX512-BF16"``), or None where it has none.

    PyTorch's own probes (what oneDNN dispatches on) first, ``/proc/cpuinfo`` flags as the fallback.
    """
    probes = getattr(torch, "cpu", None)
    try:
        if probes is not None and probes._is_amx_tile_supported():
            return "AMX"
        if probes is not None and probes._is_avx512_bf16_supported():
            return "AVX512-BF16"
    except (AttributeError, RuntimeError):
        pass
    flags = _cpuinfo_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def bf16_unsupported_reason(device: torch.device) -> str | None:
    """None where bf16 runs fast on ``device``; else the one sentence that says why it is refused."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8:
            return None
        return (f"bf16 needs a GPU of compute capability 8.0 or newer (Ampere); {torch.cuda.get_device_name(device)} "
                f"is {major}.{minor}, so use --precision fp32.")
    if device.type == "cpu":
        if cpu_bf16_support() is not None:
            return None
        return (f"bf16 needs a CPU with AMX or AVX-512-BF16 instructions and {cpu_name()} has neither "
                "(it would be emulated, slower than fp32), so use --precision fp32.")
    return f"bf16 inference is not supported on {device.type}; use --precision fp32."


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """``fp32`` -> None (no autocast), ``bf16`` -> ``torch.bfloat16`` where the hardware runs it fast.

    Anything else, or bf16 on hardware without fast bf16, is a ``ConfigError`` of one sentence.
    """
    text = str(precision).strip().lower()
    if text in ("fp32", "float32"):
        return None
    if text not in ("bf16", "bfloat16"):
        raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}.")
    reason = bf16_unsupported_reason(device)
    if reason is not None:
        raise ConfigError(reason)
    return torch.bfloat16
