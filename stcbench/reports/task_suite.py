"""`stcbench bench --config FILE`: any task's config over seeds (and cells), through the run engine.

One run per (cell, seed), named `<config stem>[-<cell>]-seed<seed>`, under `<out>/runs` where the task's `run_base`
puts it. As in the suites: a finished run is skipped, an interrupted one resumed from its last.ckpt, a failed one
recorded under `<out>/failures/` while the others go on, and a run of that name trained with another setting is
refused before anything starts. The result is the summary table of the runs (every metric the task reports, over
seeds, against `--baseline`): `<out>/table_summary.md`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stcbench.errors import ConfigError
from stcbench.reports.suites import DEFAULT_SEEDS, has_test_results

# keys the plan sets for each run (what --set must not change), with the flag that sets them
TASK_PLANNED_KEYS = {"run.output_dir": "--out", "run.name": "--out (the runs are named by the plan)",
                     "seed": "--seeds", "model.cell": "--cells"}


@dataclass
class TaskRun:
    config_path: Path
    task_name: str
    cell_given: str | None               # --cells (model.cell), or None: the config's own
    seed: int
    run_dir: Path
    overrides: dict = field(default_factory=dict)
    data_name: str | None = None         # the config's data.dataset (a memory probe's data.task), where it has one

    @property
    def dataset(self) -> str:          # what failure records and progress lines name (as a video suite's dataset)
        return self.data_name or self.task_name

    @property
    def cell(self) -> str:
        return self.cell_given or self.run_dir.parent.name      # the table's name for a run without a cell

    @property
    def name(self) -> str:
        """The run's name in failure records and SLURM job names: its folder's name, which names the cell and seed
        (`<stem>-<cell>-seed<seed>`); a run whose folder name does not (the memory suite's `seed<N>`) is named by
        its folders below the runs root, joined with '-' (`adding_T100-lif-seed0`), so that runs stay apart."""
        if self.cell_given is None or self.cell_given in self.run_dir.name:
            return self.run_dir.name
        try:
            parts = self.run_dir.relative_to(Path(self.overrides["run.output_dir"])).parts
        except (KeyError, ValueError):
            return self.run_dir.name
        return "-".join(parts[1:]) if len(parts) > 2 else self.run_dir.name

    def finished_metrics(self) -> Path | None:
        metrics = self.run_dir / "metrics.json"
        return metrics if has_test_results(metrics) else None

    @property
    def done(self) -> bool:
        return self.finished_metrics() is not None

    def last_checkpoint(self) -> Path | None:
        last = self.run_dir / "checkpoints" / "last.ckpt"
        return last if last.is_file() else None

    def describe(self) -> str:
        state = "done, skip" if self.done else "to run" if self.last_checkpoint() is None else "to resume"
        return f"[{state}] {self.dataset} {self.cell} seed {self.seed}  {self.run_dir}"


def load_run_plugins(run: TaskRun) -> None:
    """Import the plugins named with --set for `run` and in its config file (consent-checked: those the user named,
    or all of them with --trust-checkpoint), before its task is looked up."""
    from stcbench.engine.environment import load_plugins
    from stcbench.engine.schema import load_config_dict
    from stcbench.plugin_consent import plugin_specs

    load_plugins(plugin_specs(run.overrides.get("plugins", [])) + config_plugins(load_config_dict(run.config_path)))


def config_plugins(config: dict) -> list[str]:
    from stcbench.plugin_consent import plugin_specs

    return plugin_specs(config.get("plugins", [])) if isinstance(config, dict) else []


def plan_task_suite(config_path: Path, *, cells=None, seeds=None, out: Path, extra_overrides: dict | None = None,
                    run_name: Callable[[str, str | None, int], str] | None = None,
                    cell_overrides: Callable[[str | None], dict] | None = None) -> list[TaskRun]:
    """The runs of `config_path` for every cell (with --cells; else the config's own) and seed, each config
    resolved now, so that a bad --set, seed or cell is one ConfigError before any run starts. `run_name(config
    stem, cell, seed)` names a run (default `<stem>[-<cell>]-seed<seed>`); `cell_overrides(cell)` adds a cell's own
    settings (the memory suite's CE-LIF on copy, say), which a --set of the same key overrides."""
    from stcbench.engine.environment import check_plugin_consent, load_plugins
    from stcbench.engine.schema import load_config_dict
    from stcbench.engine.task import task_of

    extra = dict(extra_overrides or {})
    for key, flag in TASK_PLANNED_KEYS.items():
        if key in extra:
            raise ConfigError(f"--set {key}: bench sets it for each planned run; use {flag} instead")
    config_path = Path(config_path)
    raw = load_config_dict(config_path)
    check_plugin_consent(config_plugins(raw))          # the config's own plugins: refused unless named or trusted
    load_plugins(config_plugins(raw))                  # its task may come from one
    task = task_of(raw)
    stem = re.sub(r"[^A-Za-z0-9_.=-]+", "-", config_path.stem)
    planned = []
    for cell in dict.fromkeys(map(registry_name, cells or [None])):
        for seed in dict.fromkeys(int(seed) for seed in seeds or DEFAULT_SEEDS):
            name = (run_name or default_run_name)(stem, cell, seed)
            overrides = {**(cell_overrides(cell) if cell_overrides else {}), **extra, "seed": seed,
                         "run.output_dir": str(Path(out) / "runs"), "run.name": name,
                         **({"model.cell": cell} if cell else {})}
            try:
                config = task.resolve_config(config_path, overrides)
                check_options_of_a_known_cell(config)
            except ConfigError as error:
                raise ConfigError(f"{error} (planned run {name}: check --set, --cells and --seeds)") from None
            check_plugin_consent(getattr(config, "plugins", []))   # before any run starts: one line, not one a run
            data = data_label(config)
            run = TaskRun(config_path, task.name, cell, seed, task.run_base(config) / task.run_name(config), overrides,
                          data)
            refuse_other_setting(run, config)
            planned.append(run)
    return planned


def check_options_of_a_known_cell(config) -> None:
    """The cell options of a planned run, where its config names a registered cell (a plugin's that is not loaded
    yet is checked when its run starts): one ConfigError before any run, as the video suites do."""
    from stcbench.cells.registry import check_cell_options, get_cell_info

    model = getattr(config, "model", None)
    cell = getattr(model, "cell", None)
    if not isinstance(cell, str):
        return
    try:
        get_cell_info(cell)
    except ConfigError:
        return
    check_cell_options(cell, dict(getattr(model, "cell_options", None) or {}))


def data_label(config) -> str | None:
    """What a run trains on, as progress lines and failure records name it: data.dataset, or a memory probe's
    data.task."""
    data = getattr(config, "data", None)
    for key in ("dataset", "task"):
        value = getattr(data, key, None)
        if isinstance(value, str):
            return value
    return None


def default_run_name(stem: str, cell: str | None, seed: int) -> str:
    return "-".join(filter(None, [stem, cell, f"seed{seed}"]))


def registry_name(cell: str | None) -> str | None:
    """A registered cell by its registry name (`LIF` -> `lif`); another task's own model choice as given."""
    from stcbench.cells import get_cell_info

    try:
        return get_cell_info(cell).name if cell else cell
    except ConfigError:
        return cell


def refuse_other_setting(run: TaskRun, config) -> None:
    """A run of this name, finished or interrupted, that was trained with another setting is not taken for the
    plan's run (the video suites' rule, reports.suites.refuse_other_setting)."""
    from stcbench.engine.resume import describe_changes, differences
    from stcbench.engine.schema import to_dict
    from stcbench.engine import plugin_code
    from stcbench.reports.runs import read_run_config, refuse_other_seed, setting_of

    if not (run.done or run.last_checkpoint() is not None):
        return
    stored = read_run_config(run.run_dir)
    refuse_other_seed(run.run_dir, stored, config.seed, "would take it for this plan's run")
    plugin_code.refuse_changed(run.run_dir, getattr(getattr(config, "model", None), "cell", None),
                               "bench would take it for this plan's run")
    changed = differences(setting_of(stored), setting_of(to_dict(config))) if stored else []
    if changed:
        raise ConfigError(f"the run {run.run_dir} was trained with another setting ({describe_changes(changed)}); "
                          f"bench never changes the setting of a run it has started: give the flags it was run with, "
                          f"or another --out for this setting")


def fit_task_run(run: TaskRun) -> Path:
    """Train one planned run through the engine: from its last.ckpt when an earlier attempt was interrupted; a
    finished run is left as it is."""
    from stcbench.engine.run import fit_from
    from stcbench.engine.task import get_task

    if run.done:
        return run.run_dir
    load_run_plugins(run)              # in a SLURM job: its task or cell may come from them
    task, last = get_task(run.task_name), run.last_checkpoint()
    if last is not None:
        return fit_from(task, run.config_path, ckpt_path=last, overrides=dict(run.overrides))
    return fit_from(task, run.config_path, overrides=dict(run.overrides), overwrite=True)


def absolute_task_run(run: TaskRun) -> TaskRun:
    """A copy of `run` whose config file, run folder, runs folder, data folder (where its config has a
    `data.data_root`) and plugin files named on the command line are absolute: for a SLURM job that starts in
    another folder."""
    import dataclasses

    from stcbench.data.specs import resolve_data_root
    from stcbench.engine.task import get_task
    from stcbench.plugin_consent import plugin_specs, recorded_plugin

    config = get_task(run.task_name).resolve_config(run.config_path, dict(run.overrides))
    overrides = {**run.overrides, "run.output_dir": str(Path(run.overrides["run.output_dir"]).absolute())}
    data_root = getattr(getattr(config, "data", None), "data_root", None)
    if isinstance(data_root, str):
        overrides["data.data_root"] = str(resolve_data_root(data_root).absolute())
    if "plugins" in overrides:
        overrides["plugins"] = [recorded_plugin(spec) for spec in plugin_specs(overrides["plugins"])]
    return dataclasses.replace(run, config_path=Path(run.config_path).absolute(), run_dir=run.run_dir.absolute(),
                               overrides=overrides)


def prepare_task_data(planned: list[TaskRun], log=print) -> None:
    """The data of the runs about to be submitted, prepared here once per distinct data section (the task's
    `prepare_data`: checked, or generated where the config says so), so that a job does not start only to find its
    data missing, and several jobs do not generate one folder at once."""
    from stcbench.engine.schema import to_dict
    from stcbench.engine.task import get_task

    seen = set()
    for run in planned:
        task = get_task(run.task_name)
        config = task.resolve_config(run.config_path, dict(run.overrides))
        key = (run.task_name, repr(to_dict(config).get("data")))
        if key not in seen:
            seen.add(key)
            task.datamodule(config).prepare_data()
