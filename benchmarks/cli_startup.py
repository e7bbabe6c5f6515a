"""Start-up cost of the CLIs against a bare ``import torch`` (issue 15: ``--help`` within 1.5×).

    python -m benchmarks.cli_startup                 # 5 rounds
    python -m benchmarks.cli_startup --rounds 9 --json

Each command is a fresh process; one round runs every command once, in turn, so a machine that
gets busier or quieter mid-run shifts all of them alike (interleaved, not one block per command).
The ratio is median(command) / median(``python -c "import torch"``). ``python -X importtime -m
uniformer.predict --help 2>&1 | sort -t'|' -k2 -n | tail -30`` shows where the time goes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from uniformer.device import cpu_name

REPO_ROOT = Path(__file__).resolve().parents[1]

BASELINE = "import torch"
COMMANDS: dict[str, list[str]] = {
    BASELINE: ["-c", "import torch"],
    "uniformer.predict --help": ["-m", "uniformer.predict", "--help"],
    "uniformer.evaluate --help": ["-m", "uniformer.evaluate", "--help"],
    "uniformer.train --help": ["-m", "uniformer.train", "--help"],
}


def _wall(args: list[str], timeout: float) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise SystemExit(f"error: python {' '.join(args)} failed: {err[:300]}")
    return wall


def measure(rounds: int = 5, timeout: float = 300) -> dict:
    """Wall times per command over ``rounds`` interleaved rounds (one warm-up round discarded)."""
    runs: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for r in range(rounds + 1):
        for name, args in COMMANDS.items():
            wall = _wall(args, timeout)
            if r:  # round 0 fills the page cache
                runs[name].append(wall)
    base = statistics.median(runs[BASELINE])
    return {
        "cpu": cpu_name(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "rounds": rounds,
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "commands": {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                            "ratio_to_import_torch": statistics.median(t) / base, "runs_s": t}
                     for name, t in runs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (after one warm-up round)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    res = measure(args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"CPU: {res['cpu']} ({res['cpu_count']} cores), Python {res['python']}, {res['rounds']} interleaved "
          f"rounds, load average after {res['loadavg_after']}")
    for name, c in res["commands"].items():
        print(f"  python {' '.join(COMMANDS[name]):<34} median {c['median_s']:.2f} s "
              f"(min {c['min_s']:.2f}, max {c['max_s']:.2f})  ×{c['ratio_to_import_torch']:.2f} of import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
