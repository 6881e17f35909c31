"""`run_memory_suite`: every (cell, task) at one scale, then a table and figures.

Called by `stcbench bench --suite memory`.  Quick scale trains small networks briefly on
CPU (T = 100, 2 x 64 neurons, 768 generated training sequences, 6 epochs) so that the whole
suite finishes in minutes; its numbers show the pipeline and rough trends only, not the
papers' results (which use 3 layers, 64-256-256, and thousands of iterations).
"""
from __future__ import annotations

import csv
import io

import math
from pathlib import Path

import numpy as np

from stcbench.cells import get_cell_info
from stcbench.cells.registry import canonical_name
from stcbench.errors import ConfigError, StcbenchError
from stcbench.memory import config as memory_config
from stcbench.memory.analysis import SPAN_PARTS
from stcbench.memory.runner import fit, read_metrics, remove_incomplete_run, run_dir_for
from stcbench.memory.task import MemoryTask
from stcbench.engine.io import atomic_write_json, atomic_write_text

DEFAULT_CELLS = ("lif", "alif", "plif", "glif", "tclif", "celif", "stclif")
DEFAULT_TASKS = ("adding", "copy")
DEFAULT_SEEDS = (42,)        # as `stcbench bench --suite memory` and the video suites
SCALES = ("quick", "small", "paper")

QUICK = {
    "data": {"seq_len": 100, "train_samples": 768, "val_samples": 256, "test_samples": 512, "batch_size": 128},
    "model": {"hidden": [64, 64]},
    "optim": {"lr": 3e-3},
    "trainer": {"max_epochs": 6, "threads": 1},
    "logging": {"loggers": ["csv"], "log_every_n_steps": 4},
    "run": {"scale": "quick"},
}
SMALL = {   # 2 x 64 at T = 100 on 2 CPU cores, long enough to converge (docs/memory.md, results/memory-small-sweep)
    "data": {"seq_len": 100, "train_samples": 4096, "val_samples": 512, "test_samples": 1024, "batch_size": 128},
    "model": {"hidden": [64, 64]},
    "optim": {"lr": 3e-3},
    "trainer": {"max_epochs": 250, "threads": 1},       # 32 iterations an epoch: 8000 iterations (the seed-100 rule)
    "logging": {"loggers": ["csv"], "log_every_n_steps": 32},
    "run": {"scale": "small"},
}
PAPER = {   # CE-LIF paper Table 5 / TC-LIF Table 6: 64-256-256, batch 256
    "data": {"train_samples": 50000, "val_samples": 2000, "test_samples": 10000, "batch_size": 256},
    "model": {"hidden": [64, 256, 256]},
    "trainer": {"max_epochs": 100, "threads": None},
    "logging": {"loggers": ["csv", "tensorboard"]},
    "run": {"scale": "paper"},
}
PAPER_TASK = {"adding": {"data": {"seq_len": 100}, "optim": {"lr": 5e-4}},
              "copy": {"data": {"seq_len": 100}, "optim": {"lr": 1e-3}},
              "seq_digits": {"optim": {"lr": 5e-4}}, "pseq_digits": {"optim": {"lr": 5e-4}}}

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


def suite_config(cell: str, task: str, scale: str, seed: int) -> dict:
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    cfg: dict = {}
    presets = {"quick": (QUICK, {}), "small": (SMALL, {}), "paper": (PAPER, PAPER_TASK.get(task, {}))}[scale]
    for layer in presets:
        for section, values in layer.items():
            cfg.setdefault(section, {}).update(values)
    cfg["seed"] = seed
    cfg["data"]["task"] = task
    cfg["model"]["cell"] = cell
    if task == "copy" and canonical_name(cell) == "celif":
        cfg["model"]["cell_options"] = {"beta": 1.0 - 1.0 / cfg["data"]["seq_len"]}   # CE-LIF Table 5: 1 - 1/T
    cfg["run"]["name"] = f"seed{seed}"
    return cfg


def run_memory_suite(out_dir: str | Path, cells=DEFAULT_CELLS, tasks=DEFAULT_TASKS, scale: str = "quick",
                     seeds=None, runs_dir: str | Path | None = None, collect: bool = False) -> Path:
    """Train every (cell, task, seed) at `scale`, skipping runs that already have metrics.json,
    and write into `out_dir`: `memory_results.md` (table vs the task baselines and the published
    numbers) and `memory_results.csv` / `.json` (the figures of these runs:
    stcbench.reports.memory.write_memory_figures, which `stcbench bench` calls).  Runs go to `runs_dir` (default `<out_dir>/runs`;
    checkpoints stay there).  Cells that are not registered are reported, not trained; `None` for
    cells, tasks or seeds means the defaults (seed 42, as `stcbench bench`).  With `collect`, nothing is trained: the tables cover
    the runs that have finished and list the others as not finished.
    Returns the path of the Markdown table."""
    cells = tuple(cells) if cells else DEFAULT_CELLS
    tasks = tuple(tasks) if tasks else DEFAULT_TASKS
    seeds = tuple(seeds) if seeds else DEFAULT_SEEDS
    out_dir = Path(out_dir)
    runs_root = Path(runs_dir) if runs_dir is not None else out_dir / "runs"
    records, skipped, failed = [], [], []
    for task in tasks:
        for cell in cells:
            try:
                get_cell_info(cell)
            except ConfigError as exc:
                skipped.append((cell, task, str(exc).split(";")[0]))
                continue
            for seed in seeds:
                if collect and finished_record(cell, task, scale, seed, runs_root) is None:
                    skipped.append((cell, task, f"seed {seed} has no finished run"))
                    continue
                try:
                    records.append(run_one(cell, task, scale, seed, runs_root))
                except RunFailed as failure:          # the other runs go on; bench exits 1 naming it
                    failed.append((cell, task, f"seed {seed} failed: {failure}"))
    if collect and not records:
        raise ConfigError(f"no finished run of these cells, tasks and seeds under {runs_root} "
                          f"({'; '.join(f'{c} {t}: {why}' for c, t, why in skipped[:3])}); check --cells, "
                          f"--tasks, --seeds and --scale against the runs there")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [table_row(r) for r in records]
    atomic_write_json(out_dir / "memory_results.json", {"scale": scale, "label": scale_label(scale), "runs": records,
                                                       "skipped": skipped, "failed": failed})
    atomic_write_text(out_dir / "memory_results.csv", to_csv(rows))
    table = out_dir / "memory_results.md"
    atomic_write_text(table, to_markdown(rows, scale, skipped, failed))
    return table


class RunFailed(Exception):
    """A run of the suite could not train (bad data, a run another process holds, ...): its message."""


def suite_run(cell: str, task: str, scale: str, seed: int, runs_root: Path) -> tuple[dict, Path]:
    """The suite's config of one run and its run folder under `runs_root`."""
    cfg = suite_config(cell, task, scale, seed)
    cfg["run"]["output_dir"] = str(runs_root)
    return cfg, run_dir_for(memory_config.resolve(cfg))


def finished_record(cell: str, task: str, scale: str, seed: int, runs_root: Path) -> dict | None:
    cfg, run_dir = suite_run(cell, task, scale, seed, runs_root)
    return check_same_setting(read_metrics(run_dir), cfg, run_dir)


def check_same_setting(record: dict | None, cfg: dict, run_dir: Path) -> dict | None:
    """A finished run counts for this suite only if it ran this scale for this many epochs."""
    if record is None:
        return None
    scale, epochs = cfg["run"]["scale"], cfg["trainer"]["max_epochs"]
    if record.get("scale") != scale:
        raise ConfigError(f"{run_dir} holds a {record.get('scale')}-scale run, not a {scale}-scale one; "
                          f"pass another --out for the {scale} scale")
    if record.get("epochs") != epochs:
        raise ConfigError(f"{run_dir} was trained for {record.get('epochs')} epochs, the {scale} scale trains "
                          f"{epochs}; continue it with stcbench fit --ckpt-path {run_dir} --set "
                          f"trainer.max_epochs={epochs}, or pass another --out")
    changed = setting_changes(cfg, run_dir)
    if changed:
        from stcbench.engine.resume import describe_changes

        raise ConfigError(f"{run_dir} was trained with another setting than the {scale} suite's "
                          f"({describe_changes(changed)}); the suite would take it for its run: pass another --out, "
                          f"or move that run folder away")
    return record


def setting_changes(cfg: dict, run_dir: Path) -> list:
    """(key, there, here) where the run folder's config.yaml differs from the suite's `cfg` in what a resume may
    not change (engine.resume: the model, data, optimiser, seed, ...); [] for a run folder without one."""
    from stcbench.engine import schema
    from stcbench.engine.resume import resume_changes

    stored = run_dir / "config.yaml"
    if not stored.is_file():
        return []
    return resume_changes(schema.load_config_dict(stored), schema.to_dict(memory_config.resolve(cfg)),
                          MemoryTask.free_on_resume)


def run_one(cell: str, task: str, scale: str, seed: int, runs_root: Path) -> dict:
    cfg, run_dir = suite_run(cell, task, scale, seed, runs_root)
    record = check_same_setting(read_metrics(run_dir), cfg, run_dir)
    if record is None:
        last = run_dir / "checkpoints" / "last.ckpt"
        try:
            if last.is_file():
                fit(cfg, ckpt_path=last)
            else:
                remove_incomplete_run(run_dir)
                fit(cfg)
        except StcbenchError as exc:
            raise RunFailed(str(exc)) from exc
        record = read_metrics(run_dir)
        if record is None:
            raise RunFailed(f"{run_dir} has no metrics.json after training (stopped early?)")
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
        data, epochs = SMALL["data"], SMALL["trainer"]["max_epochs"]
        iterations = epochs * math.ceil(data["train_samples"] / data["batch_size"])
        return (f"small scale, CPU, generated sequences (T = {data['seq_len']}, 2 x 64 neurons, "
                f"{data['train_samples']} training sequences, batch {data['batch_size']}, {epochs} epochs = "
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


def to_markdown(rows: list[dict], scale: str, skipped: list, failed: list = ()) -> str:
    lines = [f"# Memory probes - {scale_label(scale)}", "",
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
