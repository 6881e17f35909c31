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

from stcbench.errors import ConfigError
from stcbench.record_io import read_text

DEMO_RUNS = "demo_runs.json"     # the run folders the demos in an --out made: the only ones a demo replaces
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


def run_demo(out_dir: Path, *, cells, data_root: str | None = None, config: Path | None = None,
             max_epochs: int | None = None, seed: int = 42) -> dict:
    from stcbench.engine.schema import load_config_dict
    from stcbench.training.runner import fit

    out_dir = Path(out_dir)
    base = load_config_dict(config or shipped_config_path())
    planned = {cell: _demo_overrides(out_dir, cell, seed, data_root, max_epochs) for cell in cells}
    run_dirs = {cell: planned_run_dir(base, overrides) for cell, overrides in planned.items()}  # every config checked
    earlier = _demo_runs(out_dir)
    for run_dir in run_dirs.values():
        _refuse_foreign(run_dir, earlier, out_dir)
    rows = {}
    for cell, overrides in planned.items():
        run_dir = run_dirs[cell]
        _record_demo_run(out_dir, run_dir)
        started = time.time()
        # a second demo replaces the first one's run of the cell, which comes back if the new one stops before
        # its first checkpoint (the engine's --overwrite)
        run_dir = fit(base, overrides=overrides, overwrite=True)
        metrics = json.loads(read_text(run_dir / "metrics.json"))
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


def _demo_overrides(out_dir: Path, cell: str, seed: int, data_root, max_epochs) -> dict:
    overrides = {"model.cell": cell, "seed": seed, "run.output_dir": str(out_dir / "runs"),
                 "run.name": "demo", "run.save_predictions": True,
                 "run.predictions_limit": FOLLOWS_SEQUENCES,
                 "data.generate_if_missing": True, "logging.loggers": ["csv"],
                 "logging.progress_bar": "rich" if sys.stdout.isatty() else "none"}
    if data_root is not None:
        overrides["data.data_root"] = str(data_root)
    if max_epochs is not None:              # no longer the demo's setting: labelled custom, without the note
        overrides["trainer.max_epochs"] = int(max_epochs)   # that points to a --scale the demo does not have
        overrides["run.scale"] = "custom"
    return overrides


def planned_run_dir(base: dict, overrides: dict) -> Path:
    """The run folder of one demo cell; resolving its config first refuses a bad cell, --epochs or config before
    anything is removed or trained."""
    from stcbench.cells.registry import resolve_name
    from stcbench.engine.environment import load_plugins, with_environment_plugins
    from stcbench.training.config import resolve_config
    from stcbench.training.task import VideoTask

    config = resolve_config(base, overrides)
    load_plugins(with_environment_plugins(config.plugins))        # with consent; a plugin may register the cell
    resolve_name(config.model.cell)
    return VideoTask().run_base(config) / config.run.name


def _demo_runs(out_dir: Path) -> set[Path]:
    """The run folders earlier demos in `out_dir` made (DEMO_RUNS, and the runs of a demo_summary.json)."""
    made = set()
    for name, read in ((DEMO_RUNS, lambda data: data.get("runs", [])),
                       ("demo_summary.json", lambda data: [row.get("run_dir") for row in data.get("cells", {}).values()
                                                           if isinstance(row, dict)])):
        try:
            data = json.loads(read_text(out_dir / name))
            made |= {_resolved(out_dir, entry) for entry in read(data) if isinstance(entry, str)}
        except (OSError, ValueError, RecursionError, AttributeError):
            continue
    return made


def _resolved(out_dir: Path, entry: str) -> Path:
    path = Path(entry)
    inside = out_dir / path
    return (inside if not path.is_absolute() and inside.exists() else path).resolve()


def _refuse_foreign(run_dir: Path, earlier: set[Path], out_dir: Path) -> None:
    """A demo replaces only runs that an earlier demo in the same --out made."""
    if not (run_dir.exists() or run_dir.is_symlink()):
        return
    if run_dir.is_symlink() or run_dir.resolve() not in earlier:
        raise ConfigError(f"{run_dir} exists and is not a run of an earlier `stcbench demo --out {out_dir}`, so "
                          f"the demo does not replace it; pass another --out, or move that folder away")


def _record_demo_run(out_dir: Path, run_dir: Path) -> None:
    """Note the run folder before it is made, so that a later demo may replace it even if this one stops."""
    from stcbench.atomic import write_json

    try:
        runs = json.loads(read_text(out_dir / DEMO_RUNS)).get("runs", [])
    except (OSError, ValueError, RecursionError, AttributeError):
        runs = []
    entry = run_dir.resolve().relative_to(out_dir.resolve()).as_posix()
    if entry not in runs:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / DEMO_RUNS, {"runs": [*runs, entry]})


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
    from stcbench.reports.stats import no_bootstrap_reason, paired_bootstrap, verdict

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
        elif ours is not None and ours.shape == base_mse.shape:
            lines.append(f"MSE {cell} - {DEFAULT_BASELINE}: {(ours - base_mse).mean():+.2f} over {len(ours)} test "
                         f"sequences; no interval: {no_bootstrap_reason(ours, base_mse)}")
    return lines
