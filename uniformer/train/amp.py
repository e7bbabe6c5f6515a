"""Mixed precision: which autocast dtype a ``run.amp`` setting means on a device."""
from __future__ import annotations

import torch

from uniformer.errors import ConfigError

__all__ = ["resolve_amp"]


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (None: fp32). CUDA auto: bf16 where supported, else fp16 (+ GradScaler)."""
    amp = amp.lower()
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
            raise ConfigError("run.amp = fp16 needs CUDA; on CPU use bf16 or none.")
        return torch.float16
    raise ConfigError(f"run.amp must be auto, none, bf16 or fp16, got {amp!r}.")

