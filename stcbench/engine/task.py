"""What a task plugs into the run engine (stcbench.engine.run), and the registry of tasks.

A task supplies its config class, its data module, its LightningModule, the validation metric that
selects best.ckpt, how it evaluates a trained run and how it summarises the result. The engine owns
everything else: the environment, the run folder, the Trainer, loggers and callbacks, checkpoints,
SIGTERM, metrics.json and wandb.

Tasks are named by the `task:` key of a config and registered by module path, so the engine never
imports a task (`register_task("video", "stcbench.training.task:VideoTask")`).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from stcbench.engine import schema
from stcbench.errors import ConfigError


class Task:
    """Base of the tasks; subclasses fill in the hooks below."""

    name: str = ""
    config_class: type = object
    monitor: str = "val/loss"                   # logged validation metric; the lowest selects best.ckpt
    free_on_resume: dict = {}                   # config keys a resume may change besides the engine's (engine.resume)

    # ---- config
    def resolve_config(self, source, overrides: dict | None = None):
        """Defaults < `source` (a YAML path or shipped name, a mapping, or a config object) < `overrides`."""
        if isinstance(source, self.config_class):
            source = schema.to_dict(source)
        return schema.resolve(self.config_class, source, overrides)

    def size_changes(self, config, source, overrides: dict) -> list[str]:
        """The keys of `overrides` that change the size of `source`'s named scale (epochs, data, width, ...:
        engine.scales.SIZE_KEYS), for which a run is labelled `custom` (stcbench.engine.run.label_resized)."""
        from stcbench.engine.scales import NAMED_SCALES, size_changes, without_size

        if config.run.scale not in NAMED_SCALES:
            return []
        return size_changes(self.resolve_config(source, without_size(overrides)), config)

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
        """Test the trained run (its best and last checkpoints): the body of metrics.json."""
        raise NotImplementedError

    def log_results(self, loggers: list, results: dict) -> None:
        """Send the test results to the dashboards (wandb)."""

    def summary(self, results: dict) -> str:
        raise NotImplementedError

    # ---- testing a checkpoint
    def checkpoint_to_test(self, path: str | Path) -> Path:
        """The checkpoint `stcbench test` reads for `path`: a .ckpt file, or a run folder's best checkpoint (the one
        selected on `monitor`), else its last."""
        from stcbench.engine.run_folder import existing_checkpoint

        best = Path(path) / "checkpoints" / "best.ckpt"
        return best if Path(path).is_dir() and best.is_file() else existing_checkpoint(path)

    def test_config(self, stored: dict, given: dict | None, overrides: dict | None):
        """The config of a test: the architecture from the checkpoint's `stored` config; data, trainer and
        logging from `given` (default: the stored config), then `overrides`."""
        raise NotImplementedError

    def test(self, config, ckpt_path: Path, trainer) -> dict:
        """Test the checkpoint: the record `stcbench test` prints and writes."""
        raise NotImplementedError

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
