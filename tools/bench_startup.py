"""Start-up time of the CLI as a ratio to `python -c "import torch"` on the same machine.

    .venv/bin/python tools/bench_startup.py [--repeats 7]

Each command runs `--repeats` times in a fresh interpreter; the medians are compared, so the
ratio holds on a loaded machine better than the seconds do. `python -X importtime` then lists
the heaviest modules each command imports (a check that does not depend on the load).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "stcbench --help": ["-m", "stcbench", "--help"],
    "stcbench --version": ["-m", "stcbench", "--version"],
    "stcbench fit --help": ["-m", "stcbench", "fit", "--help"],
    "stcbench evaluate --help": ["-m", "stcbench", "evaluate", "--help"],
    "stcbench bench --help": ["-m", "stcbench", "bench", "--help"],
}
REFERENCE = ("python -c 'import torch'", ["-c", "import torch"])


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def wall_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=environment(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_time(args: list[str], repeats: int) -> float:
    wall_time(args)                                   # warm the file cache
    return statistics.median(wall_time(args) for _ in range(repeats))


def heaviest_imports(args: list[str], top: int = 3) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time (microseconds -> seconds)."""
    out = subprocess.run([sys.executable, "-X", "importtime", *args], env=environment(), check=True,
                         capture_output=True, text=True).stderr
    totals = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name:
            totals[name] = max(totals.get(name, 0), int(cumulative))
    return sorted(((n, t / 1e6) for n, t in totals.items()), key=lambda item: -item[1])[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    reference = median_time(REFERENCE[1], args.repeats)
    print(f"{REFERENCE[0]}: {reference:.3f} s (median of {args.repeats})")
    print(f"{'command':28s} {'median s':>9s} {'ratio':>6s}  heaviest imports (-X importtime)")
    for label, command in COMMANDS.items():
        seconds = median_time(command, args.repeats)
        heavy = ", ".join(f"{name} {t:.3f}s" for name, t in heaviest_imports(command))
        print(f"{label:28s} {seconds:9.3f} {seconds / reference:5.2f}x  {heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
