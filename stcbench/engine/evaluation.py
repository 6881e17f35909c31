"""Testing a trained run: the engine tests the checkpoint selected on validation (best.ckpt, the lowest
`Task.monitor`) and the last one, each through `Task.test_checkpoint`, and keeps the selected one's values per
test sequence (test_per_sequence.npz) for paired comparisons of two runs (engine.per_sequence).

Each checkpoint's test metrics are logged under a prefix of their own (LOG_PREFIXES), so that the loggers keep the
two tests apart. `run_record` is the record a task gets for free (the body of metrics.json); the two tasks add
their own fields to the blocks it is built from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stcbench.checkpoints import load_checkpoint, load_weights_into
from stcbench.engine.per_sequence import save_per_sequence
from stcbench.engine.run_paths import relative_to_run
from stcbench.errors import StcbenchError

LOG_PREFIXES = {"best": "test", "last": "test_last"}


@dataclass
class TestedCheckpoint:
    label: str                                  # "best" (selected on validation) or "last"
    path: Path
    metrics: dict                               # the test metrics, named without their logged prefix
    per_sequence: dict | None = None            # {metric: one value per test sequence, "index"}
    extra: dict = field(default_factory=dict)   # what a task adds to the checkpoint's block (e.g. a longer test)


def checkpoints_to_test(run_dir: Path) -> dict[str, Path]:
    """The run's best and last checkpoints that exist, in that order."""
    folder = Path(run_dir) / "checkpoints"
    found = {label: folder / f"{label}.ckpt" for label in LOG_PREFIXES}
    found = {label: path for label, path in found.items() if path.is_file()}
    if not found:
        raise StcbenchError(f"no checkpoint to test in {folder}")
    return found


def test_best_and_last(task, config, trainer, module, datamodule, run_dir: Path) -> dict[str, TestedCheckpoint]:
    """{"best": ..., "last": ...}: each existing checkpoint tested by `task.test_checkpoint`."""
    return {label: task.test_checkpoint(config, trainer, module, datamodule, path, label)
            for label, path in checkpoints_to_test(run_dir).items()}


def selected(tested: dict[str, TestedCheckpoint]) -> TestedCheckpoint:
    """The checkpoint a run reports: the one selected on validation, else (none selected) the last."""
    return tested.get("best") or tested["last"]


def save_selected_per_sequence(trainer, run_dir: Path, tested: dict[str, TestedCheckpoint]) -> str | None:
    """test_per_sequence.npz of the reported checkpoint (written once, by the first process); its name in the run."""
    return save_per_sequence(run_dir, selected(tested).per_sequence) if trainer.is_global_zero else None


def test_loaded_weights(trainer, module, datamodule, path: Path, log_prefix: str = "test") -> tuple[dict, dict | None]:
    """Test a checkpoint with a module of its run: its weights loaded (safely, checkpoints.load_checkpoint), its
    metrics logged under `log_prefix` by a module that honours `test_log_prefix`. Returns the metrics (named
    without the prefix) and the module's `test_per_sequence`, if it keeps one."""
    load_weights(module, path)
    previous = getattr(module, "test_log_prefix", LOG_PREFIXES["best"])
    module.test_log_prefix = log_prefix
    try:
        (found,) = trainer.test(module, datamodule=datamodule, verbose=False)
    finally:
        module.test_log_prefix = previous
    mine = {key: value for key, value in found.items() if key.startswith(f"{log_prefix}/")}
    mine = mine or {key: value for key, value in found.items() if "/" in key}   # a module logging under its own
    metrics = {key.partition("/")[2]: float(value) for key, value in mine.items()}
    return metrics, getattr(module, "test_per_sequence", None)


def load_weights(module, path: Path) -> None:
    load_weights_into(module, load_checkpoint(path), path)      # refused before anything uses it, if unsafe


def checkpoint_epoch(path: Path) -> int | None:
    """The epochs a checkpoint had completed (None: unreadable, or converted weights that record none)."""
    try:
        checkpoint = load_checkpoint(path)
    except StcbenchError:
        return None
    epoch = checkpoint.get("epoch")
    return int(epoch) + 1 if isinstance(epoch, int) and epoch >= 0 else None   # Lightning saves the index


def checkpoint_blocks(tested: dict[str, TestedCheckpoint], run_dir: Path) -> dict:
    """The record's fields on what was tested: `selected_epoch`, the reported `test` metrics (and the task's
    additions), `best` (its checkpoint and epoch) and `last` (its checkpoint, epoch and test metrics)."""
    blocks = {label: {"checkpoint": relative_to_run(one.path, run_dir), "epoch": checkpoint_epoch(one.path),
                      "test": one.metrics, **one.extra} for label, one in tested.items()}
    chosen = blocks["best" if "best" in blocks else "last"]
    record = {"selected_epoch": chosen["epoch"], **{key: value for key, value in chosen.items()
                                                     if key not in ("checkpoint", "epoch")}}
    if "last" in blocks:
        record["last"] = blocks["last"]
    if "best" in blocks:
        record["best"] = {key: value for key, value in blocks["best"].items() if key in ("checkpoint", "epoch")}
    return record


def run_record(task, config, trainer, module, tested: dict[str, TestedCheckpoint], run_dir: Path) -> dict:
    """The record of a run of a task that adds nothing of its own: what ran, how long, and what was tested."""
    cell = getattr(getattr(config, "model", None), "cell", None)
    warn_unmeasured_metrics(task, selected(tested).metrics, trainer)
    return {
        "task": task.name,
        "dataset": task.name,                   # how tables name the runs' data (the folders' names otherwise)
        **({"cell": str(cell)} if cell else {}),
        "seed": getattr(config, "seed", None),
        "tuning": bool(getattr(getattr(config, "run", None), "tuning", False)),
        "scale": getattr(getattr(config, "run", None), "scale", None),
        "selected_on": "val",
        "val": {"monitor": task.monitor, "score": best_validation_score(trainer)},
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "params": int(sum(p.numel() for p in module.parameters())),
        **checkpoint_blocks(tested, run_dir),
        "reported_metrics": task.metrics_to_report(selected(tested).metrics),
        "test_per_sequence": save_selected_per_sequence(trainer, run_dir, tested),
    }


def best_validation_score(trainer) -> float | None:
    """The lowest `Task.monitor` value of the run, the one that selected best.ckpt (`stcbench table --select
    best-val` ranks a cell's runs by it)."""
    score = getattr(trainer.checkpoint_callback, "best_model_score", None)
    return float(score) if score is not None else None


def warn_unmeasured_metrics(task, tested: dict, trainer) -> None:
    """A line on stderr when the task's declared metrics look misspelt (Task.unmeasured_metrics)."""
    import sys

    problem = task.unmeasured_metrics(tested)
    if problem and trainer.is_global_zero:
        print(f"warning: {problem}", file=sys.stderr)
