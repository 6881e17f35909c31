"""`stcbench demo`: the README's first job, a few minutes on 2 CPU cores.

Generates the embedded Moving MNIST default when absent, trains a small STC-LIF, a small LIF and
the non-spiking ConvLSTM with the shipped config demo/mmnist (setting and cells chosen by measurement:
docs/scales.md), tests them, prints a metrics table (with `follows`, whether the predictions move with the digits:
stcbench.metrics.motion) and writes a PNG of context / ground truth / predictions.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from stcbench.commands.demo import DEFAULT_CELLS
from stcbench.errors import ConfigError

FOLLOWS_SEQUENCES = 256         # test sequences kept for `follows` (all 32 of demo/mmnist; a bound for --config)
METRIC_COLUMNS = (("mse", "MSE"), ("mae", "MAE"), ("ssim", "SSIM"), ("psnr", "PSNR"), ("mse_per_pixel", "MSE/px"))


def shipped_config_path(name: str = "demo/mmnist") -> Path:
    """The packaged <name>.yaml (demo/mmnist, quick/mmnist, ...)."""
    from stcbench.config_files import packaged_config

    path = packaged_config(name)
    if path is None:
        raise ConfigError(f"the shipped config {name}.yaml is missing from the installed package; "
                          f"reinstall stcbench or pass --config")
    return path


def run_demo(out_dir: Path, *, data_root: str | None = None, cells=DEFAULT_CELLS, config: Path | None = None,
             max_epochs: int | None = None, seed: int = 42) -> dict:
    from stcbench.engine.schema import load_config_dict
    from stcbench.training.runner import fit

    out_dir = Path(out_dir)
    base = load_config_dict(config or shipped_config_path())
    rows = {}
    for cell in cells:
        overrides = {"model.cell": cell, "seed": seed, "run.output_dir": str(out_dir / "runs"),
                     "run.name": "demo", "run.save_predictions": True,
                     "run.predictions_limit": FOLLOWS_SEQUENCES,
                     "data.generate_if_missing": True, "logging.loggers": ["csv"],
                     "logging.progress_bar": "rich" if sys.stdout.isatty() else "none"}
        if data_root is not None:
            overrides["data.data_root"] = str(data_root)
        if max_epochs is not None:
            overrides["trainer.max_epochs"] = int(max_epochs)
        _remove_previous(out_dir / "runs", cell)
        started = time.time()
        run_dir = fit(base, overrides=overrides)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows[cell] = {"run_dir": str(run_dir), "seconds": round(time.time() - started, 1),
                      "params": metrics.get("params"), "test": metrics["test"],
                      "follows": follows_of(run_dir)}
    table = format_table(rows)
    figure = write_figure(out_dir / "demo_predictions.png", rows)
    summary = {"cells": rows, "figure": str(figure), "table": table, "comparison": compare_with_baseline(rows)}
    from stcbench.engine.io import atomic_write_json

    atomic_write_json(out_dir / "demo_summary.json", summary)
    return summary


def follows_of(run_dir: Path) -> float:
    """The run's `follows` score over its saved test predictions (stcbench.metrics.motion)."""
    from stcbench.metrics.motion import follow_score

    with np.load(Path(run_dir) / "predictions.npz") as data:
        return round(follow_score(data["context"], data["truth"], data["pred"])["follows"], 3)


def _remove_previous(runs_root: Path, cell: str) -> None:
    """A second demo replaces the first one's run of the same cell (fixed run name), unless a process still
    trains it (then one line saying so)."""
    from stcbench.engine.run_folder import remove_run_dir

    for run_dir in runs_root.glob(f"*/{cell}/demo"):
        remove_run_dir(run_dir)


def format_table(rows: dict) -> str:
    header = ["cell", "params"] + [title for _, title in METRIC_COLUMNS] + ["follows", "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell, row in rows.items():
        values = [cell, f"{row['params']:,}" if isinstance(row.get("params"), int) else "?"]
        for key, _ in METRIC_COLUMNS:
            value = row["test"].get(key)
            values.append(f"{value:.4g}" if isinstance(value, (int, float)) else "—")
        follows = row.get("follows")
        values.append(f"{follows:.2f}" if isinstance(follows, (int, float)) else "—")
        values.append(f"{row['seconds']:.0f}")
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def write_figure(path: Path, rows: dict) -> Path:
    """Context, ground truth and each cell's prediction of the saved test sequence whose digits move farthest
    (chosen on the ground truth alone, the same for every cell): where the digits hardly move, no figure can
    show whether predictions follow them."""
    from stcbench.metrics.motion import farthest_moving
    from stcbench.reports.figures import prediction_grid

    predictions, context, truth, shown, count = {}, None, None, None, 0
    for cell, row in rows.items():
        with np.load(Path(row["run_dir"]) / "predictions.npz") as data:
            if shown is None:
                shown, count = farthest_moving(data["context"], data["truth"]), len(data["truth"])
            context, truth = data["context"][shown], data["truth"][shown]
            predictions[cell] = data["pred"][shown]
    return Path(prediction_grid(context, truth, predictions, path,
                                title=f"stcbench demo (demo scale, embedded Moving MNIST): test sequence {shown + 1} "
                                      f"of {count}, the one whose digits move farthest"))


def compare_with_baseline(rows: dict) -> list[str]:
    """One seed per cell cannot rank cells across training runs; say so, and give each cell's MSE
    difference to the baseline with a paired bootstrap over the same test sequences."""
    from stcbench.reports.runs import DEFAULT_BASELINE, load_run
    from stcbench.reports.stats import paired_bootstrap, verdict

    runs = {cell: load_run(Path(row["run_dir"]) / "metrics.json") for cell, row in rows.items()}
    base = runs.get(DEFAULT_BASELINE)
    base_mse = base.per_sequence("mse") if base is not None else None
    if base_mse is None or len(runs) < 2:
        return [f"(no comparison: it needs {DEFAULT_BASELINE} and another cell, e.g. "
                f"--cells stclif,{DEFAULT_BASELINE})"]
    lines = ["One seed per cell: this cannot say which cell trains better (that needs several seeds: "
             "stcbench bench --suite small --seeds 0,1,2); it says how sure each difference is on these "
             "test sequences."]
    for cell, run in runs.items():
        if cell == DEFAULT_BASELINE or run is None or base_mse is None:
            continue
        ours = run.per_sequence("mse")
        difference = paired_bootstrap(ours, base_mse) if ours is not None else None
        if difference is not None:
            lines.append(f"MSE {cell} - {DEFAULT_BASELINE}: {difference.mean:+.2f} [{difference.low:+.2f}, "
                         f"{difference.high:+.2f}] (95 %, paired bootstrap over {difference.n} test sequences): "
                         f"{verdict(difference, higher_is_better=False)}")
    return lines
