"""The memory suite (`stcbench bench --suite memory`): every (cell, task, seed) at one scale, planned and run by
the engine's task suites (reports.task_suite) from the shipped configs (`scale_config`), then a table and figures.

Quick scale trains small networks briefly on CPU (T = 100, 2 x 64 neurons, 768 generated training sequences, 6
epochs) so that the whole suite finishes in minutes; its numbers show the pipeline and rough trends only, not the
papers' results (which use 3 layers, 64-256-256, and thousands of iterations). Small scale trains the same networks
to convergence (docs/memory.md).
"""
from __future__ import annotations

import csv
import io

import math
from pathlib import Path

import numpy as np

from stcbench.cells.registry import canonical_name
from stcbench.errors import ConfigError
from stcbench.memory import config as memory_config
from stcbench.memory.analysis import SPAN_PARTS
from stcbench.memory.runner import read_metrics
from stcbench.engine.io import atomic_write_json, atomic_write_text

DEFAULT_CELLS = ("lif", "alif", "plif", "glif", "tclif", "celif", "stclif")
DEFAULT_TASKS = ("adding", "copy")
DEFAULT_SEEDS = (42,)        # as `stcbench bench --suite memory` and the video suites
SCALES = ("quick", "small", "paper")

# Published numbers for the digit tasks (paper-results.md sections 12-13), 64-256-256 networks:
# (cell, recurrent) -> {task: accuracy %}.  Adding/copy have learning curves only (CE-LIF Fig. 5).
PUBLISHED = {
    ("lif", False): {"seq_digits": "62.42-72.06 [TC] / 63.45 [CE]", "pseq_digits": "10.00-11.30 [TC]"},
    ("plif", False): {"seq_digits": "83.71-87.92 [TC]"},
    ("glif", False): {"seq_digits": "94.80-95.27 [TC]"},
    ("tclif", False): {"seq_digits": "96.46-97.35 [TC]", "pseq_digits": "80.89-83.98 [TC]"},
    ("celif", False): {"seq_digits": "98.19-98.84 [CE]", "pseq_digits": "97.90-98.14 [CE]"},
    ("lif", True): {"seq_digits": "74.91-89.28 [TC]", "pseq_digits": "71.77-80.39 [TC]"},
    ("plif", True): {"seq_digits": "90.93-91.79 [TC]"},
    ("glif", True): {"seq_digits": "95.63-96.64 [TC]", "pseq_digits": "90.34-90.47 [TC]"},
    ("tclif", True): {"seq_digits": "98.79-99.20 [TC]", "pseq_digits": "92.69-95.36 [TC]"},
    ("alif", True): {"seq_digits": "98.70 [CE, Yin et al. ALIF]", "pseq_digits": "94.30 [CE, Yin et al. ALIF]"},
}
PUBLISHED_ADDING_COPY = ("CE-LIF paper Fig. 5 (curves only): feed-forward CE-LIF converges below the baseline on "
                         "adding (T = 100-800) and copy (T = 100-500); recurrent ALIF and LSTM stay at or near the "
                         "baseline on copy even at T = 100.")


def scale_config(task: str, scale: str) -> Path:
    """The shipped config of `task` at `scale`: memory/quick_<task>.yaml, memory/small_<task>.yaml or (paper, the
    CE-LIF paper's Table 5 setting) memory/<task>.yaml."""
    from stcbench.config_files import find_config

    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    return Path(find_config(f"memory/{'' if scale == 'paper' else scale + '_'}{task}"))


def cell_overrides(cell: str | None, task: str, seq_len: int) -> dict:
    """A cell's own setting in the suite: CE-LIF on copy takes beta = 1 - 1/T (CE-LIF paper Table 5)."""
    if task == "copy" and cell and canonical_name(cell) == "celif":
        return {"model.cell_options.beta": 1.0 - 1.0 / seq_len}
    return {}


def run_name(stem: str, cell: str | None, seed: int) -> str:
    """A suite run's folder name, under runs/memory/<task>_T<length>/<cell>/."""
    return f"seed{seed}"


def write_memory_results(out_dir: Path, runs: list[tuple[str, str, int, Path]], scale: str, runs_root: Path,
                         failed: list[tuple[str, str, str]] = (), unfinished: list[tuple[str, str, str]] = (),
                         changed: list[str] = ()) -> Path:
    """`memory_results.md` (the table against the task baselines and the published numbers), `.csv` and `.json` (the
    records the figures are drawn from: stcbench.reports.memory.write_memory_figures) in `out_dir`, of the finished
    runs among `runs` ((cell, task, seed, run folder) each); `failed` and `unfinished` ((cell, task, why) each) are
    named under the table; `changed` names the config keys the suite's call changed (--set): the scale's label then
    says so. Returns the path of the Markdown table."""
    records = [record for record in (suite_record(run_dir, runs_root) for _, _, _, run_dir in runs) if record]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [table_row(r) for r in records]
    label = scale_label(scale) + (f"; changed with --set: {', '.join(changed)}" if changed else "")
    atomic_write_json(out_dir / "memory_results.json", {"scale": scale, "label": label, "runs": records,
                                                       "skipped": list(unfinished), "failed": list(failed)})
    atomic_write_text(out_dir / "memory_results.csv", to_csv(rows))
    table = out_dir / "memory_results.md"
    atomic_write_text(table, to_markdown(rows, label, list(unfinished), list(failed)))
    return table


def suite_record(run_dir: Path, runs_root: Path) -> dict:
    """A finished run's metrics.json (with test results) with its folder (relative to `runs_root`) and its gradient
    shares; None for a run without one, or whose record cannot be read (a line on stderr says so)."""
    import sys

    try:
        record = read_metrics(run_dir)
    except (OSError, ValueError, RecursionError) as exc:
        print(f"warning: skipped the run of {run_dir}: its metrics.json cannot be read ({type(exc).__name__})",
              file=sys.stderr)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("test"), dict):
        return None
    record["run_dir"] = str(run_dir.relative_to(runs_root))
    grad = run_dir / "gradient_through_time.npz"
    if grad.is_file():
        with np.load(grad) as z:
            record["gradient_norm"] = [float(f"{v:.4g}") for v in z["norm"]]
            record["gradient_share"] = [float(f"{v:.4g}") for v in z["per_step"]]
            if "input_per_step" in z.files:
                record["input_gradient_share"] = [float(f"{v:.4g}") for v in z["input_per_step"]]
    return record


def scale_label(scale: str) -> str:
    if scale == "quick":
        return ("quick scale, CPU, embedded data (generated sequences; T = 100, 2 x 64 neurons, 768 training "
                "sequences, 6 epochs = 36 iterations) - shows the pipeline and rough trends, not the papers' numbers")
    if scale == "small":
        config = memory_config.resolve(str(scale_config("adding", "small")))
        data, epochs = config.data, config.trainer.max_epochs
        iterations = epochs * math.ceil(data.train_samples / data.batch_size)
        return (f"small scale, CPU, generated sequences (T = {data.seq_len}, 2 x 64 neurons, "
                f"{data.train_samples} training sequences, batch {data.batch_size}, {epochs} epochs = "
                f"{iterations} iterations, the checkpoint with the lowest validation loss)")
    return "paper scale (CE-LIF Table 5 settings: 64-256-256, batch 256)"


def early_share(record: dict, key: str = "gradient_share") -> float | None:
    """Share of the last hidden layer's gradient (`key` "input_gradient_share": of the gradient at the network
    input) that reaches the first 10% of the steps."""
    share = record.get(key)
    if not share:
        return None
    return float(np.sum(share[: max(1, len(share) // 10)]))


def table_row(record: dict) -> dict:
    test = record["test"]
    task = record["memory_task"]
    key = (canonical_name(record["cell"]), bool(record["recurrent"]))
    published = PUBLISHED.get(key, {}).get(task, "")
    span = (record.get("memory_span") or {}).get("loss_share") or [None] * SPAN_PARTS
    return {
        "task": task,
        "seq_len": record["seq_len"],
        "cell": record["cell"] + (" (rec)" if record["recurrent"] else ""),
        "seed": record["seed"],
        "params": record["params"],
        "test_loss": test.get("loss"),
        "baseline": record["baseline"],
        "loss/baseline": test["loss"] / record["baseline"] if record["baseline"] else math.nan,
        "test_acc": test.get("acc"),
        "early_grad_share": early_share(record),
        "early_input_grad_share": early_share(record, "input_gradient_share"),
        **{f"span_q{part + 1}": span[part] for part in range(SPAN_PARTS)},
        "epochs": record["epochs"],
        "published": published,
    }


def span_text(row: dict) -> str:
    """The span columns of a table row as one cell: "q1 / q2 / q3 / q4", or "-" without a span."""
    parts = [row[f"span_q{part + 1}"] for part in range(SPAN_PARTS)]
    return " / ".join(f"{v:.2f}" for v in parts) if all(v is not None for v in parts) else "-"


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict], label: str, skipped: list, failed: list = ()) -> str:
    lines = [f"# Memory probes - {label}", "",
             "test_loss: MSE (adding) or per-step cross-entropy over all T + 20 steps (copy) of the checkpoint "
             "with the lowest validation loss; baseline: the best memoryless predictor (adding 1/6, copy "
             "10 ln 8 / (T + 20)); loss/baseline < 1 means the network remembers something. test_acc (copy): "
             "accuracy on the 10 recall steps (chance 1/8). early grad share: share of |dL/dS_t| of the last "
             "hidden layer that reaches the first 10% of the steps (Fig. 4/6 style; see the PNGs); at the input: "
             "the same for |dL/dx_t| of the network input (uniform: 0.100). span (adding): loss/baseline on "
             "sequences whose two marked steps both fall in the first, second, third, last quarter (1 = remembers "
             "nothing from there).", "",
             "| task | cell | seed | params | test loss | baseline | loss/baseline | test acc | early grad share "
             "| at the input | span | epochs | published |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} T={r['seq_len']} | {r['cell']} | {r['seed']} | {r['params']} | {fmt(r['test_loss'])} | "
                     f"{fmt(r['baseline'])} | {fmt(r['loss/baseline'], 3)} | {fmt(r['test_acc'], 3)} | "
                     f"{fmt(r['early_grad_share'], 3)} | {fmt(r['early_input_grad_share'], 3)} | {span_text(r)} | "
                     f"{r['epochs']} | "
                     f"{r['published'] or '-'} |")
    lines += ["", f"Published: {PUBLISHED_ADDING_COPY} Digit-task accuracies (paper-results.md sections 12-13) "
                  f"are listed in the last column when the suite runs those tasks."]
    unregistered = [(c, t) for c, t, why in skipped if "has no finished run" not in why]
    unfinished = [(c, t, why) for c, t, why in skipped if "has no finished run" in why]
    if unregistered:
        lines += ["", "Not run (cell not registered in this build): "
                  + ", ".join(f"{c} ({t})" for c, t in unregistered)]
    if unfinished:
        lines += ["", "No finished run (collected without training): "
                  + ", ".join(f"{c} {t} {why.split(' has')[0]}" for c, t, why in unfinished)]
    if failed:
        lines += ["", "Failed (the other runs went on): " + "; ".join(f"{c} {t} {why}" for c, t, why in failed)]
    return "\n".join(lines) + "\n"
