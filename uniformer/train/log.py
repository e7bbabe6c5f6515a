"""The run's log: one CSV row per epoch (always) and TensorBoard scalars (when it imports); rank 0 only."""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RunLog"]


class RunLog:
    """CSV log (always) and TensorBoard (when available); rank 0 only."""

    FIELDS = [
        "epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5",
        "ema_top1", "ema_top5", "clips_per_s", "epoch_time_s", "skipped_steps",
    ]

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = out_dir / "log.csv"
        self.tb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except Exception:  # tensorboard not installed: the CSV is enough
                self.tb = None

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k)) for k in self.FIELDS])
        if self.tb is not None:
            step = int(row.get("step", 0))
            for k in self.FIELDS[2:]:
                v = row.get(k)
                if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)

