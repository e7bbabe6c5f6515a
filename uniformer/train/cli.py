"""Command line of ``python -m uniformer.train`` (and ``torchrun -m uniformer.train``).

    python -m uniformer.train --config configs/synthetic_uniformer_tiny.toml optim.lr=1e-3
    torchrun --nproc_per_node 2 -m uniformer.train --config configs/synthetic_uniformer_tiny.toml

Bad input (a config error, a missing file) is one ``error:`` line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from uniformer.errors import ConfigError, UniformerLabError
from uniformer.train.config import dump_toml, load_config

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python -m uniformer.train",
        description="Train a video classifier (single process or torchrun/DDP).",
        epilog="Overrides: section.key=value, e.g. optim.lr=1e-3 data.num_frames=8 model.kwargs.depth=[1,1,2,1]",
    )
    p.add_argument("--config", help="TOML (or JSON) config file")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shortcut for run.device")
    p.add_argument("--out-dir", help="shortcut for run.out_dir")
    p.add_argument("--resume", help="shortcut for run.resume (auto or a checkpoint path)")
    p.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    p.add_argument("overrides", nargs="*", help="section.key=value")
    return p.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, or 2 after a one-line error)."""
    args, unknown = _parse_args(argv)
    try:
        if unknown:
            raise ConfigError(f"Unknown option {unknown[0]}; overrides look like section.key=value.")
        overrides = list(args.overrides)
        if args.device:
            overrides.append(f"run.device={args.device}")
        if args.out_dir:
            overrides.append(f"run.out_dir={json.dumps(args.out_dir)}")
        if args.resume:
            overrides.append(f"run.resume={json.dumps(args.resume)}")
        cfg = load_config(args.config, overrides)
        if args.print_config:
            print(dump_toml(cfg))
            return 0
        from uniformer.train.loop import train  # timm, data, models: only once there is something to train

        train(cfg)
    except UniformerLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
