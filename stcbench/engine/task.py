"""What a task plugs into the run engine (stcbench.engine.run), and the registry of tasks.

A task supplies its config class, its data module, its LightningModule, the validation metric that
selects best.ckpt, how it evaluates a trained run and how it summarises the result. The engine owns
everything else: the environment, the run folder, the Trainer, loggers and callbacks, checkpoints,
SIGTERM, metrics.json and wandb.

Tasks are named by the `task:` key of a config and registered by module path, so the engine never
imports a task (`register_task("video", "stcbench.training.task:VideoTask")`).
"""
from __future__ import annotations

import copy
import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stcbench.engine import schema
from stcbench.engine.scales import SIZE_KEYS
from stcbench.errors import ConfigError


@dataclass(frozen=True)
class ReportedMetric:
    """A test metric that tables and reports show for a task's runs: mean ± interval over seeds and the difference
    to a baseline cell. `key` names it in the record's `test` block (and in test_per_sequence.npz, for the paired
    comparison of one seed each); `higher_is_better` None: the verdict says only which way the interval lies."""

    key: str
    label: str = ""
    higher_is_better: bool | None = False
    decimals: int = 4

    def as_record(self) -> dict:
        return {**asdict(self), "label": self.label or self.key}


class Task:
    """Base of the tasks; subclasses fill in the hooks below."""

    name: str = ""
    config_class: type = object
    monitor: str = "val/loss"                   # logged validation metric; the lowest selects best.ckpt
    free_on_resume: dict = {}                   # config keys a resume may change besides the engine's (engine.resume)
    size_keys: tuple[str, ...] = SIZE_KEYS      # keys that resize a named scale (engine.scales): the run is `custom`
    reported_metrics: tuple[ReportedMetric, ...] = ()   # what tables show; () = every number of the test block

    def metrics_to_report(self, tested: dict) -> list[dict]:
        """The record's `reported_metrics`: the declared ones that the test measured, in their order; with none
        declared, every number of the `tested` metrics, with no direction (tables then show which way a
        difference goes, not which is better)."""
        declared = self.reported_metrics or tuple(
            ReportedMetric(key, higher_is_better=None) for key, value in tested.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool))
        return [metric.as_record() for metric in declared if metric.key in tested]

    def unmeasured_metrics(self, tested: dict) -> str | None:
        """A warning when a declared metric was not measured while the test measured metrics that are not declared
        (a misspelt key, or one written with its logged prefix); None otherwise (a metric that a variant of the task
        does not measure, such as the memory task's accuracy on the adding task, is no mistake)."""
        missing = [metric.key for metric in self.reported_metrics if metric.key not in tested]
        undeclared = sorted(set(tested) - {metric.key for metric in self.reported_metrics})
        if not (missing and undeclared):
            return None
        return (f"the task {self.name!r} declares the metric{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}, "
                f"which the test did not measure; it measured {', '.join(map(repr, undeclared))} besides the declared "
                f"ones, which tables leave out. A ReportedMetric key is the name the module logs after its "
                f"test_log_prefix and '/' (e.g. 'accuracy' for test/accuracy)")

    # ---- config
    def resolve_config(self, source, overrides: dict | None = None):
        """Defaults < `source` (a YAML path or shipped name, a mapping, or a config object) < `overrides`."""
        if isinstance(source, self.config_class):
            source = schema.to_dict(source)
        return schema.resolve(self.config_class, source, overrides)

    def size_changes(self, config, source, overrides: dict) -> list[str]:
        """The keys that `overrides` (or a config file of one's own, against the shipped config it descends from:
        engine.scales.scale_reference) change in the size of the named scale (epochs, data, width, ...:
        `size_keys`), for which a run is labelled `custom` (stcbench.engine.run.label_resized)."""
        from stcbench.engine.scales import NAMED_SCALES, scale_reference, size_changes, without_size

        if config.run.scale not in NAMED_SCALES:
            return []
        reference = scale_reference(source)
        try:
            as_shipped = self.resolve_config(reference, without_size(overrides, self.size_keys))
        except ConfigError:                # the reference alone with these overrides is no valid config: the file's
            as_shipped = self.resolve_config(source, without_size(overrides, self.size_keys))   # own keys are needed
        return size_changes(as_shipped, config, self.size_keys)

    # ---- the run folder
    def run_base(self, config) -> Path:
        """The folder that holds this run's folder (under config.run.output_dir)."""
        raise NotImplementedError

    def run_name(self, config) -> str | None:
        """The run folder's name; None: a new timestamped name."""
        return config.run.name

    def run_label(self, config, run_dir: Path) -> str:
        """The run's name in dashboards (wandb)."""
        return run_dir.name

    # ---- training
    def datamodule(self, config):
        raise NotImplementedError

    def module(self, config):
        raise NotImplementedError

    def callbacks(self, config) -> list:
        """Callbacks besides the engine's (checkpoints, epoch timer, progress bar)."""
        return []

    def check_resumable(self, config, module, checkpoint: dict, ckpt_path: Path) -> None:
        """Refuse a checkpoint that cannot continue the run built from `config`."""

    def evaluate(self, config, trainer, module, datamodule, run_dir: Path, callbacks: list) -> dict:
        """Test the trained run (its best and last checkpoints, each by `test_checkpoint`): the body of metrics.json.
        The default record (engine.evaluation.run_record) names what ran and what was tested; a task adds its own
        fields by overriding this with the same building blocks."""
        from stcbench.engine.evaluation import run_record, test_best_and_last

        tested = test_best_and_last(self, config, trainer, module, datamodule, run_dir)
        return run_record(self, config, trainer, module, tested, run_dir)

    def test_checkpoint(self, config, trainer, module, datamodule, path: Path, label: str):
        """Test one of the run's checkpoints (`label` "best" or "last") -> engine.evaluation.TestedCheckpoint.
        Default: its weights loaded into the run's module, `trainer.test`, metrics logged under the label's prefix
        (the module's `test_log_prefix`), per-sequence values from the module's `test_per_sequence` if it has them."""
        from stcbench.engine.evaluation import LOG_PREFIXES, TestedCheckpoint, test_loaded_weights

        metrics, per_sequence = test_loaded_weights(trainer, module, datamodule, path, LOG_PREFIXES[label])
        return TestedCheckpoint(label, path, metrics, per_sequence)

    def log_results(self, loggers: list, results: dict) -> None:
        """Send the test results to the dashboards (wandb)."""

    def summary(self, results: dict) -> str:
        """What `fit` prints at the end (default: the reported test metrics, with their labels and decimals)."""
        metrics = results.get("test") or {}
        shown = "  ".join(f"{metric['label']} {metrics[metric['key']]:.{metric['decimals']}f}"
                          for metric in self.metrics_to_report(metrics)
                          if isinstance(metrics[metric["key"]], (int, float)))
        return f"{self.name} (scale {results.get('scale')}, epoch {results.get('selected_epoch')}): test  {shown}"

    # ---- testing a checkpoint
    def checkpoint_to_test(self, path: str | Path) -> Path:
        """The checkpoint `stcbench test` reads for `path`: a .ckpt file, or a run folder's best checkpoint (the one
        selected on `monitor`), else its last."""
        from stcbench.engine.run_folder import existing_checkpoint

        best = Path(path) / "checkpoints" / "best.ckpt"
        return best if Path(path).is_dir() and best.is_file() else existing_checkpoint(path)

    def test_config(self, stored: dict, given: dict | None, overrides: dict | None):
        """The config of a test: the architecture (the model section) from the checkpoint's `stored` config; data,
        trainer and logging from `given` (default: the stored config), then `overrides`, which may not change the
        model."""
        refuse_model_overrides(overrides)
        base = schema.apply_overrides(copy.deepcopy(stored if given is None else given), overrides)
        if "model" in stored:
            base["model"] = copy.deepcopy(stored["model"])
        return self.resolve_config(base)

    def test(self, config, ckpt_path: Path, trainer) -> dict:
        """Test the checkpoint: the record `stcbench test` prints and writes (default: its test metrics, tested
        with a module and data module built from `config`)."""
        from stcbench.engine.evaluation import test_loaded_weights

        metrics, _ = test_loaded_weights(trainer, self.module(config), self.datamodule(config), ckpt_path)
        return metrics

    def test_summary(self, results: dict) -> str:
        """What `stcbench test` prints (default: the record as JSON)."""
        from stcbench.strict_json import dumps

        return dumps(results, default=str)


TASKS: dict[str, "str | type[Task]"] = {}


def register_task(name: str, target: "str | type[Task]") -> None:
    """`target`: a Task subclass, or "package.module:ClassName" of one (imported when the task is first used)."""
    TASKS[name] = target


def get_task(name: str | None) -> Task:
    name = name or "video"
    if name not in TASKS:
        import stcbench.cells  # noqa: F401  (imports the STCBENCH_PLUGINS modules, which may register tasks)
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)} (a task of your own registers "
                          f"with engine.task.register_task in a module named in plugins or STCBENCH_PLUGINS)")
    target = TASKS[name]
    if not isinstance(target, str):
        return target()
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def task_of(config: dict | Any) -> Task:
    """The task a config mapping names (`task:`, default video)."""
    name = config.get("task", "video") if isinstance(config, dict) else getattr(config, "task", "video")
    return get_task(name)


register_task("video", "stcbench.training.task:VideoTask")       # spatio-temporal prediction
register_task("memory", "stcbench.memory.task:MemoryTask")       # long-term memory probes


def refuse_model_overrides(overrides: dict | None, allowed: tuple[str, ...] = ()) -> None:
    """A tested model is the one its checkpoint trained: `--set model.<key>` is refused at test time
    unless the key is one of `allowed` (options that change how, not what, the model computes)."""
    for key in overrides or {}:
        section, _, field = key.partition(".")
        if section == "model" and field.split(".")[0] not in allowed:
            changeable = (f"only {', '.join('model.' + name for name in allowed)} may change at test time"
                          if allowed else "no model key may change at test time")
            raise ConfigError(f"{key} (from --set): the model under test is the one "
                              f"its checkpoint trained; drop it ({changeable})")
