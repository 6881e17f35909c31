"""Recompute the gradient-through-time analysis of finished memory runs from their best checkpoints.

Runs analysed before the analysis ran step by step (stcbench.memory.analysis) recorded only the
readout's share of the gradient; this rewrites gradient_through_time.{npz,png} of every memory run
under the given folders that still has checkpoints/best.ckpt, and prints each run's share of the
gradient that reaches the first 10 % of the steps.

    .venv/bin/python tools/redo_memory_gradients.py /path/to/memory-suite-folder [...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from stcbench.memory.task import redo_gradient_analysis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders searched for memory run folders")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    failed = False
    found = 0
    for root in args.roots:
        if not root.is_dir():
            parser.exit(2, f"redo_memory_gradients: error: {root} is not a folder; pass the folder of memory runs "
                           f"(e.g. a memory suite's --out)\n")
        for metrics in sorted(root.rglob("metrics.json")):
            run_dir = metrics.parent
            record = json.loads(metrics.read_text(encoding="utf-8"))
            if record.get("task") != "memory" or not (run_dir / "checkpoints" / "best.ckpt").is_file():
                continue
            found += 1
            try:
                result = redo_gradient_analysis(run_dir)
            except Exception as exc:                   # one run's problem does not stop the others
                print(f"{run_dir}: not analysed ({type(exc).__name__}: {exc})")
                failed = True
                continue
            early = [share[: max(1, len(share) // 10)].sum() for share in (result["per_step"], result["input_per_step"])]
            print(f"{run_dir}: first 10 % of the steps {early[0]:.3g} of dL/dS (last layer), {early[1]:.3g} of dL/dx")
    if not found:
        parser.exit(2, "redo_memory_gradients: error: no finished memory run with checkpoints/best.ckpt under "
                       f"{', '.join(map(str, args.roots))}\n")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
