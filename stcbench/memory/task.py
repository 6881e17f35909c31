"""The memory-probe task (`task: memory`) as the run engine sees it (stcbench.engine.task).

Run folder runs/memory/<task>_T<len>/<cell>/<name>/ (name default seed<seed>). metrics.json holds the test
loss (and accuracy) of the best checkpoint (lowest validation loss) and of the last one, the per-epoch
history, the memoryless baseline, and a fingerprint of the test set; test_per_sequence.npz each test
sequence's loss (and accuracy) under the best checkpoint, for a paired comparison of two runs of one seed; with `run.gradient_analysis`, gradient_through_time.{npz,png} of the
best checkpoint.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback

from stcbench.checkpoints import load_checkpoint
from stcbench.engine.io import atomic_save_npz
from stcbench.engine.evaluation import load_weights, test_loaded_weights
from stcbench.engine.task import ReportedMetric, Task
from stcbench.errors import ConfigError
from stcbench.memory.config import MemoryConfig, resolve
from stcbench.record_io import read_text

ANALYSIS_SAMPLES = 256


class MemoryTask(Task):
    name = "memory"
    config_class = MemoryConfig
    free_on_resume = {"data": ("data_root", "num_workers")}
    monitor = "val/loss"
    reported_metrics = (ReportedMetric("loss", "loss", False, 4), ReportedMetric("acc", "accuracy", True, 4))

    def run_base(self, config: MemoryConfig) -> Path:
        return Path(config.run.output_dir) / "memory" / task_folder(config) / cell_folder(config)

    def run_name(self, config: MemoryConfig) -> str:
        return config.run.name or f"seed{config.seed}"

    def run_label(self, config: MemoryConfig, run_dir: Path) -> str:
        return f"{task_folder(config)}-{cell_folder(config)}"

    def datamodule(self, config: MemoryConfig):
        from stcbench.memory.module import MemoryDataModule

        return MemoryDataModule(config)

    def module(self, config: MemoryConfig):
        from stcbench.memory.module import MemoryModule

        return MemoryModule(config)

    def callbacks(self, config: MemoryConfig) -> list:
        return [EpochHistory()]

    def evaluate(self, config: MemoryConfig, trainer, module, datamodule, run_dir: Path, callbacks: list) -> dict:
        history = next(c for c in callbacks if isinstance(c, EpochHistory)).rows
        return evaluate_run(config, trainer, module, datamodule, run_dir, history, task=self)

    def summary(self, results: dict) -> str:
        test = results["test"]
        accuracy = f"  acc {test['acc']:.4f}" if "acc" in test else ""
        return (f"memory {results['memory_task']} T={results['seq_len']} / {results['cell']} (scale {results['scale']}, "
                f"epoch {results['epochs']})\n  test      loss {test['loss']:.4f}{accuracy}  "
                f"(memoryless baseline {results['baseline']:.4f})")

    def test_config(self, stored: dict, given: dict | None, overrides: dict | None) -> MemoryConfig:
        return super().test_config({**stored, "model": trained_architecture(stored)}, given, overrides)

    def test(self, config: MemoryConfig, ckpt_path: Path, trainer) -> dict:
        from stcbench.memory.module import MemoryDataModule, MemoryModule

        module = MemoryModule(config)
        metrics, _ = test_loaded_weights(trainer, module, MemoryDataModule(config), ckpt_path)
        return {**metrics, "baseline": module.spec.baseline, "cell": canonical_cell(config),
                "memory_task": module.spec.name}


def task_folder(config: MemoryConfig) -> str:
    from stcbench.memory.module import spec_of

    data = config.data
    length = data.seq_len if data.task in ("adding", "copy") else spec_of(config).steps
    return f"{data.task}_T{length}"


def canonical_cell(config: MemoryConfig) -> str:
    from stcbench.cells.registry import canonical_name

    return canonical_name(config.model.cell)


def cell_folder(config: MemoryConfig) -> str:
    name = canonical_cell(config)
    return f"{name}_rec" if config.model.recurrent else name


class EpochHistory(Callback):
    """Per-epoch train/val loss (and accuracy) for the learning curves in metrics.json."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key in ("train/loss_epoch", "val/loss", "train/acc", "val/acc"):
            if key in metrics:
                row[key.replace("_epoch", "")] = float(metrics[key])
        self.rows.append(row)

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state_dict):
        self.rows = list(state_dict.get("rows", []))


def evaluate_run(config: MemoryConfig, trainer, module, datamodule, run_dir: Path, history: list,
                 task: Task | None = None) -> dict:
    """metrics.json of a memory run: the engine's tests of the best and last checkpoints, with the probe's task,
    memoryless baseline, test-set fingerprint and (adding) memory span of the best checkpoint."""
    from stcbench.engine.evaluation import load_weights, save_selected_per_sequence, test_best_and_last
    from stcbench.memory.module import spec_of

    spec = spec_of(config)
    task = task or MemoryTask()
    tested = test_best_and_last(task, config, trainer, module, datamodule, run_dir)
    load_weights(module, tested["best"].path)        # the analyses below are of the selected checkpoint
    per_sequence_file = save_selected_per_sequence(trainer, run_dir, tested)
    span = memory_span(module, config)
    if config.run.gradient_analysis and trainer.is_global_zero:
        save_gradient_analysis(module, datamodule, run_dir, f"{spec.name} T={config.data.seq_len}, {config.model.cell}")
    return {
        "task": "memory",
        "memory_task": spec.name,
        "seq_len": config.data.seq_len if spec.name in ("adding", "copy") else spec.steps,
        "steps": spec.steps,
        "cell": canonical_cell(config),
        "recurrent": config.model.recurrent,
        "hidden": config.model.hidden,
        "readout": config.model.readout,
        "scale": config.run.scale,
        "seed": config.seed,
        "tuning": config.run.tuning,
        "data_source": spec.source,
        "selected_on": "val",
        "params": sum(p.numel() for p in module.parameters()),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "baseline": spec.baseline,
        "baseline_formula": spec.baseline_formula,
        "test": tested["best"].metrics,
        "last": tested["last"].metrics,
        "reported_metrics": task.metrics_to_report(tested["best"].metrics),
        "test_per_sequence": per_sequence_file,
        "test_set": test_set_fingerprint(datamodule),
        **({"memory_span": span} if span else {}),
        "history": history,
    }


def memory_span(module, config: MemoryConfig) -> dict | None:
    """Adding: the best checkpoint's loss share by where the marked steps lie (analysis.adding_memory_span,
    on sequences drawn apart from the training, validation and test ones); None for the other tasks."""
    from stcbench.memory.analysis import adding_memory_span

    if module.spec.name != "adding":
        return None
    return adding_memory_span(module.net, module.spec, int(config.seed))


def test_set_fingerprint(datamodule) -> str:
    """sha256 of the test inputs and targets (first 16 hex digits): two runs with the same fingerprint
    were tested on the same sequences, so their per-sequence losses can be paired."""
    digest = hashlib.sha256()
    for tensor in datamodule.splits["test"].tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_gradient_analysis(module, datamodule, run_dir: Path, title: str) -> dict:
    from stcbench.memory.analysis import gradient_through_time, plot_gradient_through_time

    datamodule.setup("test")
    x, y = datamodule.splits["val"].tensors
    x, y = x[:ANALYSIS_SAMPLES], y[:ANALYSIS_SAMPLES]
    result = gradient_through_time(module.net, module.spec, x, y)
    inputs = gradient_through_time(module.net, module.spec, x, y, wrt="input")
    atomic_save_npz(run_dir / "gradient_through_time.npz", grad=result["grad"].astype(np.float32),
                    per_step=result["per_step"], norm=result["norm"], input_per_step=inputs["per_step"],
                    input_norm=inputs["norm"])
    plot_gradient_through_time({module.config.model.cell: result, "network input": inputs},
                               run_dir / "gradient_through_time.png", title)
    return {**result, "input_per_step": inputs["per_step"], "input_norm": inputs["norm"]}


def redo_gradient_analysis(run_dir: Path) -> dict:
    """Recompute gradient_through_time.{npz,png} of a finished run from its best checkpoint (for runs
    analysed before the analysis ran step by step, stcbench.memory.analysis), and for adding its
    `memory_span` in metrics.json; the run's other files and records are left as they are."""
    from stcbench.memory.module import MemoryDataModule, MemoryModule

    run_dir = Path(run_dir)
    best = run_dir / "checkpoints" / "best.ckpt"
    if not best.is_file():
        raise ConfigError(f"{run_dir} has no checkpoints/best.ckpt; the analysis needs the run's best checkpoint")
    stored = load_checkpoint(best).get("hyper_parameters", {}).get("config")
    if not isinstance(stored, dict) or stored.get("task") != "memory":
        raise ConfigError(f"{best} is not a checkpoint of a memory run")
    from stcbench.engine.environment import load_plugins
    from stcbench.engine.portable import resumed_data_root

    load_plugins(stored.get("plugins") or [])          # cells registered by the run's plugins
    config = resolve(copy.deepcopy(stored))
    config.data.data_root = resumed_data_root(config, {"hyper_parameters": {"config": stored}}) or config.data.data_root
    module = MemoryModule(config)
    load_weights(module, best)
    title = f"{module.spec.name} T={config.data.seq_len}, {config.model.cell}"
    result = save_gradient_analysis(module, MemoryDataModule(config), run_dir, title)
    span = memory_span(module, config)
    metrics_path = run_dir / "metrics.json"
    if span and metrics_path.is_file():
        from stcbench.engine.io import atomic_write_json
        from stcbench.strict_json import restore_non_finite

        record = restore_non_finite(json.loads(read_text(metrics_path)))
        atomic_write_json(metrics_path, {**record, "memory_span": span})
    return {**result, "memory_span": span}


def trained_architecture(stored: dict) -> dict:
    """The stored model section, with CE-LIF's `te_steps` pinned to the trained length so that a
    test on another sequence length loads (longer sequences reuse the last TE row)."""
    from stcbench.cells import get_cell_info
    from stcbench.memory.module import spec_of

    model = copy.deepcopy(stored.get("model") or {})
    if not model:
        raise ConfigError("the checkpoint holds no model section; test it with its own task")
    if "te_steps" in get_cell_info(model["cell"]).parameters():
        model.setdefault("cell_options", {}).setdefault("te_steps", spec_of(resolve(stored)).steps)
    return model
