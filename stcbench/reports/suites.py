"""Benchmark suites: the matrix cells x datasets x seeds, run through the training runner.

* `quick`: the shipped `quick/<dataset>.yaml` with the cell overridden, on the embedded data
  (generated when missing), CPU-sized, labelled scale "quick".
* `paper`: the shipped `<dataset>/<cell>.yaml` (the paper protocol; meant for GPUs), scale "paper".
* `memory`: planned through reports.task_suite, one shipped config per memory task (commands/bench.py).

Each run is named `<suite>-<cell>-seed<seed>` under `<out>/runs/<dataset>/<cell>/`, so a
finished run (its metrics.json holds test results) is found again and skipped, with or
without its checkpoints; a run interrupted before writing metrics.json is run again.  `kth`
runs also test 10->40 (`test_long`), so there is no separate `kth40` entry in the matrix.

`make_committable(run_dir)` removes what a results folder meant for the repository does not
need once the report is written: the checkpoints, and the prediction sequences the report
does not show.
"""
from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stcbench.config_files import PACKAGED_CONFIGS
from stcbench.cell_names import normalize_name
from stcbench.errors import ConfigError
from stcbench.record_io import read_text

SUITES = ("quick", "small", "paper", "memory")
VIDEO_DATASETS = ("mmnist", "taxibj", "kth")
DEFAULT_SEEDS = (42,)
ANALYSIS_SEQUENCES = 4       # test sequences the report's analysis runs the network on (predictions.npz)
GRID_SEQUENCES = 1           # test sequences the report's prediction grid and GIF show
SIGTERM_EXIT_STATUS, CTRL_C_EXIT_STATUS = 143, 130     # = stcbench.engine.callbacks' (a test checks)


@dataclass
class PlannedRun:
    suite: str
    dataset: str
    cell: str
    seed: int
    config_path: Path
    overrides: dict = field(default_factory=dict)
    runs_root: Path = Path("runs")
    tag: str = ""
    resized: list = field(default_factory=list)     # size keys --set changes (check_configs): labelled custom
    scale_given: bool = False                       # --set run.scale named the label itself

    @property
    def name(self) -> str:
        return f"{self.suite}-{self.cell}-seed{self.seed}" + (f"-{self.tag}" if self.tag else "")

    def finished_metrics(self) -> Path | None:
        """metrics.json of this run if it has finished, i.e. holds test results (cell folder
        spelling may vary; the checkpoints may have been removed)."""
        dataset_dir = self.runs_root / self.dataset
        if not dataset_dir.is_dir():
            return None
        for candidate in sorted(dataset_dir.glob(f"*/{self.name}/metrics.json")):
            if normalize_name(candidate.parent.parent.name) == normalize_name(self.cell) and has_test_results(candidate):
                return candidate
        return None

    @property
    def done(self) -> bool:
        return self.finished_metrics() is not None

    def last_checkpoint(self) -> Path | None:
        """checkpoints/last.ckpt of an earlier, interrupted attempt of this run."""
        dataset_dir = self.runs_root / self.dataset
        for candidate in sorted(dataset_dir.glob(f"*/{self.name}/checkpoints/last.ckpt")):
            if normalize_name(candidate.parents[2].name) == normalize_name(self.cell):
                return candidate
        return None

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.overrides.items())
                         if k not in ("run.output_dir", "run.name", "model.cell", "seed"))
        state = "done, skip" if self.done else "to run" if self.last_checkpoint() is None else "to resume"
        resume = " (from its last.ckpt)" if state == "to resume" else ""
        return (f"[{state}] {self.dataset:7s} {self.cell:10s} seed {self.seed}{resume}  {self.config_path}  "
                f"{extra}").rstrip()


def has_test_results(metrics_path: Path) -> bool:
    try:
        metrics = json.loads(read_text(metrics_path))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(metrics, dict) and isinstance(metrics.get("test"), dict)


def registered_cells() -> list[str]:
    from stcbench.cells import list_cells

    return [info.name for info in list_cells()]


def resolve_cells(cells) -> list[str]:
    from stcbench.cells import get_cell_info

    if not cells:
        return registered_cells()
    return list(dict.fromkeys(get_cell_info(c).name for c in cells))


def resolve_datasets(datasets) -> list[str]:
    datasets = [normalize_name(d) for d in (datasets or VIDEO_DATASETS)]
    for name in datasets:
        if name == "kth40":
            raise ConfigError("kth40 is not trained separately: a kth run also tests 10->40; use --datasets kth")
        if name not in VIDEO_DATASETS:
            raise ConfigError(f"unknown dataset {name!r} for a video suite; choose from {list(VIDEO_DATASETS)}")
    return list(dict.fromkeys(datasets))


def config_path_for(suite: str, dataset: str, cell: str, configs_root: Path) -> Path:
    generic = suite in ("quick", "small")
    path = configs_root / suite / f"{dataset}.yaml" if generic else configs_root / dataset / f"{cell}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (configs_root / suite).glob("*.yaml")) if generic else []
        hint = (f"the {suite} suite has configs for {', '.join(shipped) or 'no dataset'}: choose --datasets "
                f"among them" if generic else f"write {path} (copy a sibling config) or drop {cell!r} from --cells")
        raise ConfigError(f"config {path} for suite {suite!r} ({dataset}, {cell}) does not exist; {hint}")
    return path


# keys the plan sets for each run, which --set must not change: a run named for one cell or seed that trained
# another, or a run folder outside --out, would be taken for (or written over) another run
PLANNED_KEYS = {"run.output_dir": "--out", "run.name": "--tag", "seed": "--seeds", "model.cell": "--cells",
                "data.dataset": "--datasets", "data.data_root": "--data-root"}


def refuse_planned_keys(overrides: dict) -> None:
    for key, flag in PLANNED_KEYS.items():
        if key in overrides:
            raise ConfigError(f"--set {key}: bench sets it for each planned run (its folder, name, seed, cell and data "
                              f"follow from the plan); use {flag} instead")


def plan_suite(suite: str, *, cells=None, datasets=None, seeds=None, out: Path = Path("bench"),
               data_root: Path | None = None, configs_root: Path | None = None,
               extra_overrides: dict | None = None, tag: str = "") -> list[PlannedRun]:
    """The runs of a video suite. `tag` names a variant (e.g. an ablation set with --set) so that
    its runs do not collide with, or get skipped as, the default runs."""
    if suite not in ("quick", "small", "paper"):
        raise ConfigError(f"unknown video suite {suite!r}; choose one of {list(SUITES)}")
    if tag and not re.fullmatch(r"[A-Za-z0-9_.=-]+", tag):
        raise ConfigError(f"--tag {tag!r} must use only letters, digits and _ . = -")
    refuse_planned_keys(extra_overrides or {})
    runs_root = Path(out) / "runs"
    configs_root = Path(configs_root) if configs_root is not None else PACKAGED_CONFIGS
    planned = []
    check_configs_root(configs_root)
    if not datasets and suite in ("quick", "small"):        # default: the datasets the suite ships configs for
        datasets = [d for d in VIDEO_DATASETS if (configs_root / suite / f"{d}.yaml").is_file()]
    for dataset in resolve_datasets(datasets):
        for cell in resolve_cells(cells):
            if suite == "paper" and not cells and not (Path(configs_root) / dataset / f"{cell}.yaml").is_file():
                continue        # default cell list: only the cells with a paper config for this dataset
            for seed in dict.fromkeys(int(seed) for seed in seeds or DEFAULT_SEEDS):
                overrides = {"model.cell": cell, "seed": int(seed), "run.output_dir": str(runs_root),
                             "run.scale": suite, "run.save_predictions": True,
                             "run.predictions_limit": ANALYSIS_SEQUENCES}
                if suite in ("quick", "small"):
                    overrides["data.generate_if_missing"] = True
                if data_root is not None:
                    overrides["data.data_root"] = str(data_root)
                overrides.update(extra_overrides or {})
                run = PlannedRun(suite, dataset, cell, int(seed),
                                 config_path_for(suite, dataset, cell, Path(configs_root)), overrides, runs_root,
                                 tag, scale_given="run.scale" in (extra_overrides or {}))
                run.overrides["run.name"] = run.name
                planned.append(run)
    return planned


def check_configs_root(configs_root: Path) -> None:
    if not configs_root.is_dir():
        what = "is a file" if configs_root.exists() else "does not exist"
        raise ConfigError(f"--configs {configs_root} {what}; pass a folder laid out like stcbench/configs "
                          f"(<suite>/<dataset>.yaml, <dataset>/<cell>.yaml), or leave --configs out")


def check_configs(planned: list[PlannedRun], collect: bool = False) -> None:
    """Resolve every planned run's config (file < the suite's overrides, --set and the seed) before any run
    starts, so that a bad --set key or value, or a bad seed, is one ConfigError, not a failure of every run.
    Finished runs are checked against the plan's setting; with `collect` (nothing is trained) not against the data
    the plan would train on."""
    from stcbench.cells.registry import check_cell_options
    from stcbench.engine.environment import check_plugin_consent
    from stcbench.training.config import resolve_config

    resolved = {}
    _data_checksum.cache_clear()                  # the data may have changed since an earlier call
    for run in planned:
        key = (str(run.config_path), json.dumps(run.overrides, sort_keys=True, default=str))
        if key not in resolved:
            try:
                resolved[key] = resolve_config(run.config_path, run.overrides)
                check_cell_options(resolved[key].model.cell, dict(resolved[key].model.cell_options or {}))
            except ConfigError as error:
                raise ConfigError(f"{error} (planned run {run.dataset}/{run.cell} seed {run.seed}: check --set "
                                  f"and --seeds)") from None
            check_plugin_consent(resolved[key].plugins)     # before any run starts or job is submitted
        label_resized(run, resolved[key])
        refuse_other_setting(run, resolved[key], check_data=not collect)


def label_resized(run: PlannedRun, config) -> None:
    """A run whose --set changes the suite config's size (epochs, data, width, ...: Task.size_keys) is
    no longer of the suite's scale: labelled `custom`, as `fit` labels it, unless --set run.scale names a label."""
    from stcbench.training.task import VideoTask

    if run.scale_given:
        return                                           # --set run.scale gave the label
    run.resized = VideoTask().size_changes(config, run.config_path, run.overrides)
    if run.resized:
        run.overrides["run.scale"] = config.run.scale = "custom"


def refuse_other_setting(run: PlannedRun, config, check_data: bool = True) -> None:
    """A finished run of this name, or an interrupted one that bench would resume, that was trained with another
    setting (other epochs, data, model, cell options, ...) is not taken for this plan's run: one ConfigError naming
    the differences (engine.resume.differences)."""
    from stcbench.engine import plugin_code
    from stcbench.engine.resume import UNSET, describe_changes, differences
    from stcbench.engine.schema import to_dict
    from stcbench.reports.runs import refuse_other_seed, setting_of

    found = _earlier_attempt(run)
    if found is None:
        return
    run_dir, stored, state, finished = found
    use = "would take it for this plan's run" if state == "finished" else "would resume it with this setting"
    refuse_other_seed(run_dir, stored, config.seed, use)
    plugin_code.refuse_changed(run_dir, config.model.cell, f"bench {use}")
    if finished is not None and check_data:
        refuse_other_data(run_dir, finished.data_checksum, config, use)
    changed = differences(setting_of(stored), setting_of(to_dict(config)))
    if changed:
        same = "; ".join(filter(None, [
            " ".join(f"--set {key}={_cli_value(old)}" for key, old, _ in changed[:4] if old is not UNSET),
            " ".join(f"without --set {key}" for key, old, _ in changed[:4] if old is UNSET)]))
        raise ConfigError(f"the {state} run {run_dir} was trained with another setting ({describe_changes(changed)}); "
                          f"bench {use}. "
                          f"To collect or resume that suite, give the flags it was run with ({same}); bench never "
                          f"changes the setting of a run it has started, so for this setting (more epochs too) use "
                          f"another --out or --tag, or move that run folder away")


def refuse_other_data(run_dir: Path, recorded: str | None, config, use: str) -> None:
    """A finished run whose record names other data (its checksum `recorded`) than the data this plan would train
    on."""
    here = _data_checksum(config.data.dataset, config.data.data_root) if recorded else None
    if recorded and here and recorded != here:
        raise ConfigError(f"the finished run {run_dir} was trained on other data ({recorded[:19]}… there, "
                          f"{here[:19]}… in {config.data.data_root or 'the default data folder'} here); bench {use}. "
                          f"Pass the --data-root it was trained on, or another --out for this data")


@functools.lru_cache(maxsize=None)
def _data_checksum(dataset: str, data_root: str) -> str | None:
    """The checksum of the data a plan trains on, once per bench call (every finished run compares with it)."""
    from stcbench.data.checksum import dataset_checksum

    return dataset_checksum(dataset, data_root)


def _earlier_attempt(run: PlannedRun):
    """(run folder, its config, "finished" | "interrupted", the finished Run or None) of an earlier attempt of this
    run, if it left a config; else None."""
    from stcbench.reports.runs import load_run, read_run_config

    metrics = run.finished_metrics()
    if metrics is not None:
        finished = load_run(metrics)
        return ((metrics.parent, finished.config, "finished", finished) if finished is not None and finished.config
                else None)
    last = run.last_checkpoint()
    stored = read_run_config(last.parents[1]) if last is not None else {}
    return (last.parents[1], stored, "interrupted", None) if stored else None


def _cli_value(value) -> str:
    """A value as `--set key=value` takes it, quoted for the shell where it needs it."""
    import shlex

    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    if any(ch < " " for ch in text):          # a newline or control character: YAML's quoted form, on one line
        text = json.dumps(text)
    return shlex.quote(text)


def default_fit() -> Callable:
    """The training runner's fit for a planned run: resumed from its last.ckpt when an earlier
    attempt was interrupted, else started afresh."""
    from stcbench.reports.launch import fit_planned

    return fit_planned


def execute(planned: list[PlannedRun], fit: Callable[[PlannedRun], Path] | None = None,
            log: Callable[[str], None] = print, out: Path | None = None) -> dict[str, list[PlannedRun]]:
    """Run every planned run that has not finished, one after another. Returns {"ran": [...],
    "skipped": [...], "failed": [...]}: a run that fails is recorded under `out`/failures/ (default:
    beside its runs folder) and the others go on."""
    from stcbench.reports.launch import attempt

    fit = fit or default_fit()
    outcome = {"ran": [], "skipped": [], "failed": []}
    for index, run in enumerate(planned, 1):
        if run.done:
            log(f"[{index}/{len(planned)}] skip {run.dataset}/{run.cell} seed {run.seed}: finished")
            outcome["skipped"].append(run)
            continue
        resume = " from its last.ckpt" if run.last_checkpoint() is not None else ""
        log(f"[{index}/{len(planned)}] run  {run.dataset}/{run.cell} seed {run.seed} ({run.config_path}){resume}")
        with bench_resume_hint():
            ok = attempt(run, Path(out) if out is not None else run.runs_root.parent, fit, log)
        outcome["ran" if ok else "failed"].append(run)
    return outcome


@contextmanager
def bench_resume_hint():
    """A run stopped by SIGTERM or Ctrl-C exits (143, 130) with the training runner's hint, `stcbench fit
    --ckpt-path`; inside a suite, running the same bench command again resumes it too."""
    try:
        yield
    except SystemExit as stop:
        from stcbench.engine.cluster import is_rank_zero

        if stop.code in (SIGTERM_EXIT_STATUS, CTRL_C_EXIT_STATUS) and is_rank_zero():
            print("or run the same stcbench bench command again: it skips the finished runs and resumes this one "
                  "(from its last.ckpt when it has one)", file=sys.stderr)
        raise


def make_committable(run_dir: Path, keep_sequences: int = GRID_SEQUENCES) -> bool:
    """Remove the run's checkpoints and cut predictions.npz to the sequences the report shows; whether there
    were checkpoints to remove.

    Call it after the report is written: its analysis (cost, firing rates, gates) runs the
    checkpoint and is cached in `<out>/analysis/`, which the report reuses afterwards."""
    from stcbench.engine.run_folder import training_lock

    checkpoints = Path(run_dir) / "checkpoints"
    with training_lock(run_dir):        # a run that a process trains on (a resume) is refused: ConfigError
        had_checkpoints = checkpoints.is_dir()
        shutil.rmtree(checkpoints, ignore_errors=True)
        predictions = Path(run_dir) / "predictions.npz"
        if predictions.is_file():
            trim_predictions(predictions, keep_sequences)
    return had_checkpoints                # (the lock's release removes its file, a killed run's stale one too)


def trim_predictions(path: Path, keep_sequences: int) -> None:

    from stcbench.engine.io import atomic_save_npz

    from stcbench.reports.runs import read_saved_arrays

    arrays = read_saved_arrays(path, warn=lambda text: None)     # an unreadable file is left as it is
    if arrays is None:
        return
    if all(array.ndim == 0 or len(array) <= keep_sequences for array in arrays.values()):
        return
    atomic_save_npz(path, **{key: array[:keep_sequences] if array.ndim else array for key, array in arrays.items()})
