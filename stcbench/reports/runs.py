"""Finding finished runs and picking one per (dataset, cell, options) deterministically.

A run is a folder holding `metrics.json` (docs/architecture.md, "Run directories"); its
`config.yaml` (when present) supplies the cell options.  A run is *complete* when its
metrics.json has a `test` block.

Selection rules (documented in docs/reports.md):
* `newest` (default): the largest scale first (paper > small > quick > any other label), then the
  most epochs, then the newest `finished_at` / file time, then the path (for ties).
* `best-val`: the lowest validation MSE (`val.mse`), runs without one last, then as `newest`.

Seeds: `select_group` returns the selected run together with every complete run of the same
setting (the same config apart from the seed, the run's name and folders, logging and the
hardware: `setting_key`), one run per seed, so that tables and reports aggregate over seeds.
"""
from __future__ import annotations

import json
import os
import re
import math
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stcbench.engine import plugin_code
from stcbench.cell_names import normalize_name
from stcbench.errors import ConfigError
from stcbench.strict_json import number, restore_non_finite
from stcbench.record_io import read_text

PER_SEQUENCE_FILE = "test_per_sequence.npz"
SCALE_RANK = {"paper": 4, "reduced": 3, "small": 2, "quick": 1}      # "reduced": an older label
SELECTIONS = ("newest", "best-val")
DEFAULT_BASELINE = "lif"     # the cell tables and reports compare every row with

# (key, label, higher is better, decimals): what a video run's tables show when its record predates its task's
# declaration (metrics.json `reported_metrics`, engine.task.ReportedMetric).
VIDEO_METRICS = (("mse", "MSE", False, 2), ("mae", "MAE", False, 2), ("ssim", "SSIM", True, 4),
                 ("psnr", "PSNR", True, 2))

# Cell options that change which published row a run belongs to, with their defaults.
ROW_OPTION_DEFAULTS = {"temporal_circuit": True, "spatial_circuit": True, "circuit_groups": 16}


@dataclass
class Run:
    path: Path
    dataset: str
    cell: str
    metrics: dict
    config: dict = field(default_factory=dict)
    mtime: float = 0.0
    plugin_code: dict = field(default_factory=dict)     # engine.plugin_code: the digests of its plugins' files

    @property
    def complete(self) -> bool:
        return isinstance(self.metrics.get("test"), dict)

    @property
    def is_video(self) -> bool:
        """A video run (memory probes record `task: memory` and are tabled by --table memory)."""
        return self.task == "video"

    @property
    def tuning(self) -> bool:
        """A run that chose a setup (`run.tuning`), never pooled with reported runs (leave_out_tuning)."""
        run = self.config.get("run")
        return is_tuning_record(self.metrics) or (isinstance(run, dict) and run.get("tuning") is True)

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or "video")

    @property
    def reported_metrics(self) -> tuple[tuple[str, str, bool | None, int], ...]:
        """(key, label, higher is better, decimals) of each test metric the run's task reports (metrics.json
        `reported_metrics`; entries that are not such a declaration are skipped). A video record from before
        the declaration: the video metrics; another task's record that declares none: every number of its test
        block, without a direction."""
        declared = self.metrics.get("reported_metrics")
        if isinstance(declared, list):
            found = tuple(metric for metric in map(_reported_metric, declared) if metric)
            if found:
                return found
        if self.is_video and self.value("test", "mse") is not None:
            return VIDEO_METRICS
        test = self.metrics.get("test") if declared is not None or not self.is_video else None
        return tuple((key, key, None, 4) for key, value in (test or {}).items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool))

    @property
    def scale(self) -> str:
        return str(self.metrics.get("scale") or self.config.get("scale") or "unknown")

    @property
    def epochs(self):
        return self.metrics.get("epochs")

    @property
    def selected_on(self) -> str:
        return str(self.metrics.get("selected_on") or "?")

    @property
    def cell_options(self) -> dict:
        return find_cell_options(self.config) or find_cell_options(self.metrics)

    def row_options(self) -> dict:
        return canonical_row_options(self.cell_options)

    def value(self, split: str | None, metric: str, frame: int | None = None):
        """A raw number from metrics.json ("inf" read as +inf), or None when absent."""
        block = self.metrics if split is None else self.metrics.get(split)
        if not isinstance(block, dict):
            return None
        if frame is not None:
            series = (block.get("per_frame") or {}).get(metric)
            return number(series[frame]) if isinstance(series, list) and frame < len(series) else None
        value = block.get(metric)
        if isinstance(value, dict):     # {"macs_per_sequence": ..., "method": ...} as the runner writes flops
            value = value.get("macs_per_sequence", value.get("value"))
        return number(value)

    @property
    def seed(self):
        seed = self.metrics.get("seed", self.config.get("seed"))
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    def per_sequence(self, metric: str):
        """The selected checkpoint's per-test-sequence values of `metric` (test_per_sequence.npz, in
        test-set order), or None for runs recorded without them."""
        import numpy as np

        recorded = self.metrics.get("test_per_sequence")
        path = self.path / (recorded if isinstance(recorded, str) else PER_SEQUENCE_FILE)
        data = read_saved_arrays(path, warn=lambda text: None)       # unreadable: no pairing, as for no file
        if data is None or metric not in data:
            return None
        try:
            return np.asarray(data[metric], dtype=np.float64)
        except (TypeError, ValueError):
            return None

    @property
    def data_checksum(self) -> str | None:
        """The checksum of the data the run was trained and tested on (metrics.json `data.checksum`), if recorded."""
        data = self.metrics.get("data")
        checksum = data.get("checksum") if isinstance(data, dict) else None
        return checksum if isinstance(checksum, str) else None

    def tested_on_same_sequences(self, other: "Run") -> bool:
        """Whether the two runs' per-sequence test values pair up: the same data (where both record its
        checksum) and the same test-sequence indices in the same order."""
        if self.data_checksum and other.data_checksum and self.data_checksum != other.data_checksum:
            return False
        mine, theirs = self.per_sequence("index"), other.per_sequence("index")
        if mine is None or theirs is None:
            return True                      # older records: only the lengths can be checked (stats)
        return mine.shape == theirs.shape and bool((mine == theirs).all())

    def describe_scale(self) -> str:
        epochs = self.epochs
        return f"{self.scale}, {epochs} ep" if epochs is not None else self.scale


def canonical_row_options(options: dict | None) -> dict:
    """The row-distinguishing options with defaults; `circuit: temporal|spatial|both` (the cell's
    own spelling) is turned into the `temporal_circuit` / `spatial_circuit` pair."""
    options = dict(options or {})
    circuit = options.get("circuit", "both")
    implied = {"temporal_circuit": circuit in ("both", "temporal"), "spatial_circuit": circuit in ("both", "spatial")}
    result = {}
    for key, default in ROW_OPTION_DEFAULTS.items():
        value = options.get(key)
        if value is None:
            value = implied.get(key, default)
        result[key] = _canonical_option(value)
    return result


def _canonical_option(value):
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and value.lower() in ("global", "dense"):
        return 1
    return value


def find_cell_options(config: dict) -> dict:
    """The cell options of a resolved config, wherever the schema nests them."""
    if not isinstance(config, dict):
        return {}
    if isinstance(config.get("cell_options"), dict):
        return config["cell_options"]
    for value in config.values():
        if isinstance(value, dict):
            found = find_cell_options(value)
            if found:
                return found
    return {}


def load_run(metrics_path: Path, warn=None) -> Run | None:
    """The run of a metrics.json, or None (and a warning through `warn`) when the file is unreadable or
    not a run record: a run is used whole or not at all."""
    try:
        metrics = restore_non_finite(json.loads(read_text(metrics_path)))
    except (OSError, ValueError, RecursionError) as exc:     # unreadable, not UTF-8, not JSON
        problem = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8 JSON"
        return _skipped(metrics_path, problem, warn)
    problem = record_problem(metrics)
    if problem:
        return _skipped(metrics_path, problem, warn)
    run_dir = metrics_path.parent
    problem = config_problem(run_dir)
    if problem and warn is not None:
        warn(f"warning: the run of {metrics_path} is tabled from its record alone, its setting unknown: {problem}")
    dataset = metrics.get("dataset") or run_dir.parent.parent.name
    cell = metrics.get("cell") or run_dir.parent.name
    unplain = [f"{what} {name!r}" for what, name in (("dataset", dataset), ("cell", cell)) if not is_plain_name(name)]
    if unplain:           # the names become file names of figures and tables: never a path elsewhere
        return _skipped(metrics_path, f"its {unplain[0]} is not a plain name (letters, digits, '_', '-', '.', '+')",
                        warn)
    return Run(run_dir, normalize_name(dataset), normalize_name(cell), metrics, read_run_config(run_dir),
               metrics_path.stat().st_mtime, plugin_code.read_recorded(run_dir))


def is_tabled_tuning_run(run: Run) -> bool:
    """A tuning run among those the video and task tables read (memory runs: the memory table's own records)."""
    return run.tuning and run.task != "memory"


def is_tuning_record(record: dict) -> bool:
    return isinstance(record, dict) and record.get("tuning") is True


def leave_out_tuning(items: list, is_tuning) -> tuple[list, str | None]:
    """`items` without the tuning runs (`run.tuning`: runs that chose a setup on seeds that are not reported)
    where there are reported runs beside them, and a note saying so; a folder of tuning runs alone is kept whole
    (a sweep's own tables), with a note saying what they are."""
    tuning = [item for item in items if is_tuning(item)]
    if not tuning:
        return items, None
    if len(tuning) == len(items):
        return items, ("every run here is a tuning run (run.tuning: true): runs that chose a setup, not results "
                       "to report")
    reported = [item for item in items if not is_tuning(item)]
    note = (f"{len(tuning)} tuning run{'s' * (len(tuning) != 1)} (run.tuning: true, the seeds that chose the setup) "
            f"left out: never pooled with reported runs; table their folder alone to see them")
    shared = sorted({_seed_of(item) for item in tuning} & {_seed_of(item) for item in reported} - {None})
    if shared:
        seeds = ", ".join(str(seed) for seed in shared)
        note += (f". The reported runs share seed{'s' * (len(shared) != 1)} {seeds} with the tuning runs, so their "
                 f"results were seen while the setup was chosen: report seeds that no tuning run used")
    return reported, note


def _seed_of(item) -> int | None:
    """The seed of a Run or of a memory record (dict)."""
    seed = item.get("seed") if isinstance(item, dict) else item.seed
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def edited_plugin_notes(runs: list[Run]) -> list[str]:
    """A note per plugin file that changed since a cell's runs were trained with it: every run of that cell records
    another digest (plugin_code.json) than the file at the path its config.yaml names has now. A cell with a run of
    the current code is tabled with that run (its older runs are another setting, noted as such). The file is read
    (a bounded, non-blocking read), never imported."""
    current: dict[str, str | None] = {}
    runs_of: dict[tuple[str, str, str], list[bool]] = {}
    for run in runs:
        for path, recorded in _recorded_plugin_files(run):
            if path not in current:
                current[path] = _digest(Path(path))
            if current[path] is not None:
                runs_of.setdefault((path, run.dataset, run.cell), []).append(recorded == current[path])
    stale: dict[str, list[str]] = {}
    for (path, dataset, cell), same in sorted(runs_of.items()):
        if not any(same):
            stale.setdefault(path, []).append(f"{dataset}/{cell}")
    return [f"{path} has changed since {', '.join(cells)} ran it: those rows are of its earlier code "
            f"(plugin_code.json); train them again to table the new one" for path, cells in stale.items()]


def _recorded_plugin_files(run: Run) -> list[tuple[str, str]]:
    """(path, recorded digest) of the plugin files a run names whose file name is unique among its plugins."""
    paths = run.config.get("plugins") if isinstance(run.config.get("plugins"), list) else []
    names = [Path(p).name for p in paths if isinstance(p, str)]
    return [(p, run.plugin_code[Path(p).name]) for p in paths
            if isinstance(p, str) and names.count(Path(p).name) == 1 and Path(p).name in run.plugin_code]


def _digest(path: Path, limit: int = 16 << 20) -> str | None:
    """SHA-256 of a regular file of at most `limit` bytes, read without blocking; None otherwise."""
    import hashlib
    import os
    import stat

    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = b""
        while len(data) <= limit:
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                return hashlib.sha256(data).hexdigest()
            data += chunk
        return None
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _reported_metric(entry) -> tuple[str, str, bool | None, int] | None:
    """One `reported_metrics` entry of a record as (key, label, higher is better, decimals), or None when it is
    not one (a record is read, never trusted)."""
    if not isinstance(entry, dict):
        return None
    key, label = entry.get("key"), entry.get("label", entry.get("key"))
    higher, decimals = entry.get("higher_is_better"), entry.get("decimals", 4)
    if not (isinstance(key, str) and key and isinstance(label, str) and label
            and (higher is None or isinstance(higher, bool))
            and isinstance(decimals, int) and not isinstance(decimals, bool) and 0 <= decimals <= 8):
        return None
    return key, label, higher, decimals


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def is_plain_name(name) -> bool:
    """A dataset, cell or task name as records may give it: one plain file-name part (no '/', no leading '.', no
    markup), since tables and figure files are named by it."""
    return isinstance(name, str) and PLAIN_NAME.fullmatch(name) is not None


def config_problem(run_dir: Path) -> str | None:
    """Why a run folder's config.yaml, where it has one, cannot be used (its setting would be unknown); None."""
    path = Path(run_dir) / "config.yaml"
    if not os.path.lexists(path):
        return None
    try:
        config = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        return "its config.yaml is not valid YAML (or holds a tag that a safe load refuses)"
    except OSError as exc:
        return f"its config.yaml cannot be read ({exc.strerror})"
    except (ValueError, RecursionError):
        return "its config.yaml is not UTF-8 text, or nests too deeply"
    return None if config is None or isinstance(config, dict) else "its config.yaml is not a mapping"


def refuse_other_seed(run_dir: Path, stored: dict | None, seed: int, use: str) -> None:
    """The folder a plan names for `seed` holds a run of another seed (a folder copied or renamed): it is not the
    plan's run, whatever its name says."""
    recorded = stored.get("seed") if isinstance(stored, dict) else None
    if recorded is not None and recorded != seed:
        raise ConfigError(f"{run_dir} holds a run of seed {recorded}, not of the plan's seed {seed} (a folder copied "
                          f"or renamed?); bench {use}: move that folder away, then run bench again")


def read_run_config(run_dir: Path) -> dict:
    """A run folder's config.yaml as a mapping; {} when it is missing or unreadable."""
    try:
        config = yaml.safe_load(read_text(Path(run_dir) / "config.yaml")) or {}
    except (yaml.YAMLError, OSError, ValueError, RecursionError):
        return {}
    return config if isinstance(config, dict) else {}


def discover_runs(root: Path, warn=None) -> list[Run]:
    """Every readable run below `root` (any depth), sorted by path; each one skipped is reported
    through `warn` (default: a warning line on stderr)."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"runs folder {root} does not exist; pass --runs DIR pointing at your runs/ folder")
    if not root.is_dir():
        raise ConfigError(f"--runs {root} is a file; pass the folder holding the run directories")
    warn = warn or _warn_on_stderr
    found = [p for p in sorted(root.rglob("metrics.json"))
             if not any(part.startswith(".") for part in p.relative_to(root).parts)]    # set aside, not runs
    runs = [load_run(p, warn) for p in found]
    return [r for r in runs if r is not None]


def read_saved_arrays(path: Path, warn=None) -> dict | None:
    """The arrays of a run's .npz file (predictions.npz: a few sequences), or None where it is missing or cannot be
    read as numpy arrays (truncated, or not numpy's), which is said through `warn` (default: stderr)."""
    import zipfile

    import numpy as np

    if not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, OverflowError, zipfile.BadZipFile) as exc:
        (warn or _warn_on_stderr)(f"warning: {path} cannot be read ({type(exc).__name__}); left out of the report")
        return None
    if not all(isinstance(array, np.ndarray) for array in arrays.values()):
        (warn or _warn_on_stderr)(f"warning: {path} holds members that are not numpy arrays; left out of the report")
        return None
    return arrays


BLOCKS = ("test", "val", "test_long", "last", "best")


def record_problem(metrics) -> str | None:
    """Why a parsed metrics.json cannot be used as a run record, or None."""
    if not isinstance(metrics, dict):
        return f"holds {type(metrics).__name__}, not a mapping"
    for key in ("dataset", "cell", "scale", "selected_on"):
        if key in metrics and not isinstance(metrics[key], (str, type(None))):
            return f"{key} is {metrics[key]!r}, not a string"
    for block in BLOCKS:
        if block in metrics and not isinstance(metrics[block], (dict, type(None))):
            return f"{block} is {metrics[block]!r}, not a mapping"
    for key, value in (metrics.get("test") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float, list, dict, type(None))):
            return f"test.{key} is {value!r}, not a number"
    return None


def warn_non_finite(runs: list[Run], warn=None) -> None:
    """A warning per complete run with a NaN or infinite test metric (a diverged run): the tables leave such a
    value out of the mean over seeds, so that column's n is smaller. A PSNR of +inf (an exact prediction) is a
    result, not a warning."""
    warn = warn or _warn_on_stderr
    for run in runs:
        for name in non_finite_metrics(run):
            warn(f"warning: the run of {run.path / 'metrics.json'} has {name} = {run.value(*name.split('.'))}, "
                 f"not finite: it is left out of that metric's mean, so its n is smaller")


def non_finite_metrics(run: Run) -> list[str]:
    """`block.metric` of every NaN or infinite whole-test-set metric of video run `run` (PSNR +inf excepted)."""
    if not (run.complete and run.is_video):
        return []
    found = []
    for split in ("test", "test_long"):
        for metric in run.metrics.get(split) or {}:
            value = run.value(split, metric)
            if value is not None and not math.isfinite(value) and not (metric.startswith("psnr") and value > 0):
                found.append(f"{split}.{metric}")
    return found


def _skipped(path: Path, problem: str, warn) -> None:
    if warn is not None:
        warn(f"warning: skipped the run of {path}: {problem}")
    return None


def _warn_on_stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def finished_timestamp(run: Run) -> float:
    """`finished_at` (ISO time or seconds) from metrics.json, else the file's modification time."""
    finished = run.metrics.get("finished_at")
    if isinstance(finished, (int, float)):
        return float(finished)
    if isinstance(finished, str):
        try:
            return datetime.fromisoformat(finished).timestamp()
        except ValueError:
            pass
    return run.mtime


def _newest_key(run: Run):
    stamp = finished_timestamp(run)
    epochs = run.epochs if isinstance(run.epochs, (int, float)) else -1
    return (SCALE_RANK.get(run.scale, 0), epochs, stamp, str(run.path))


def select_run(runs: list[Run], dataset: str, cell: str, options: dict | None = None,
               selection: str = "newest") -> Run | None:
    """The run reported for (dataset, cell, row options), or None when there is none."""
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown run selection {selection!r}; choose one of {list(SELECTIONS)}")
    wanted = canonical_row_options(options)
    dataset, cell = normalize_name(dataset), normalize_name(cell)
    candidates = [r for r in runs if r.complete and r.dataset == dataset and r.cell == cell
                  and r.row_options() == wanted]
    if not candidates:
        return None
    if selection == "best-val":
        def val_key(run: Run):
            val = run.value("val", "mse")
            val = val if val is not None else run.value("val", "score")      # another task: its monitor's best
            return (0 if val is not None else 1, val if val is not None else 0.0)
        best = min(val_key(r) for r in candidates)
        candidates = [r for r in candidates if val_key(r) == best]
    return max(candidates, key=_newest_key)


# --- seeds --------------------------------------------------------------------------------------
# Config keys that do not change what a run measures: the seed, names and folders, logging and
# where/how fast it ran.
NON_SETTING_KEYS = {
    None: ("seed", "run", "logging", "plugins"),
    "data": ("data_root", "num_workers", "generate_if_missing"),
    "trainer": ("threads", "accelerator", "devices", "strategy", "num_nodes", "deterministic", "benchmark",
                "stop_after_epochs", "tf32"),
}


@dataclass
class RunGroup:
    """Complete runs of one setting, one per seed (sorted by seed); `representative` is the run the
    selection rule picked (its scale and split are shown)."""

    runs: list[Run]
    representative: Run

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    def values(self, split: str | None, metric: str, frame: int | None = None) -> list[float]:
        """The metric of every run that has it (finite or not)."""
        found = (r.value(split, metric, frame) for r in self.runs)
        return [v for v in found if v is not None]

    def describe_scale(self) -> str:
        return self.representative.describe_scale()

    @property
    def selected_on(self) -> str:
        return self.representative.selected_on


def other_settings(runs: list[Run], group: RunGroup, options: dict | None = None) -> dict[str, list[Run]]:
    """The complete runs of `group`'s dataset, cell and row `options` whose setting is not the group's: a table
    shows one setting per row (the one of the run the selection picked), so these are left out. {setting key: runs}"""
    chosen = group.representative
    wanted, mine = canonical_row_options(options), setting_key(chosen)
    found: dict[str, list[Run]] = {}
    for run in runs:
        if run.complete and run.dataset == chosen.dataset and run.cell == chosen.cell and run.row_options() == wanted:
            key = setting_key(run)
            if key != mine:
                found.setdefault(key, []).append(run)
    return found


def left_out_note(runs: list[Run], group: RunGroup | None, options: dict | None = None) -> str | None:
    """One line naming the runs of other settings that `group`'s row leaves out, and how they differ; None if none."""
    from stcbench.engine.resume import differences

    others = other_settings(runs, group, options) if group is not None else {}
    if not others:
        return None
    chosen = group.representative
    mine = json.loads(setting_key(chosen))
    first = ("scale", "plugin_code", "data_checksum", "global_batch_size")      # the telling ones, then the rest
    keys = sorted({key for other in others for key, _, _ in differences(mine, json.loads(other))},
                  key=lambda key: (first.index(key) if key in first else len(first), key))
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    count = sum(len(found) for found in others.values())
    return (f"{chosen.dataset}/{chosen.cell}: {count} run{'s' * (count != 1)} of {len(others)} other "
            f"setting{'s' * (len(others) != 1)} left out (differing in {shown}); the row is the setting of the run "
            f"the selection picked ({chosen.path.name}); give each setting its own --runs folder to table it")


def setting_of(config: dict) -> dict:
    """A resolved config without the NON_SETTING_KEYS: what two seeds of one setting share."""
    setting = {}
    for key, value in config.items():
        if key in NON_SETTING_KEYS[None]:
            continue
        if isinstance(value, dict) and key in NON_SETTING_KEYS:
            value = {k: v for k, v in value.items() if k not in NON_SETTING_KEYS[key]}
        setting[key] = value
    return setting


def setting_key(run: Run) -> str:
    """What must agree for two runs to be seeds of one setting: the resolved config without the
    NON_SETTING_KEYS, with the registry's names of the cell and dataset, the data's checksum and the global batch
    (the devices are not part of the setting, but the batch they make together is) (or, without a
    config.yaml, the scale, epochs and model of metrics.json)."""
    if run.config:
        setting = {**setting_of(run.config), "scale": run.scale, "data_checksum": run.data_checksum,
                   "global_batch_size": run.metrics.get("global_batch_size")}     # DDP: devices x per-device batch
        for section, key, name in (("model", "cell", run.cell), ("data", "dataset", run.dataset)):
            if isinstance(setting.get(section), dict) and key in setting[section]:
                setting[section] = {**setting[section], key: name}      # an alias names the same cell or data
        if run.plugin_code:                 # another version of a plugin's code is another setting
            setting["plugin_code"] = plugin_code.code_key(run.plugin_code)
    else:
        setting = {"scale": run.scale, "max_epochs": run.metrics.get("max_epochs", run.epochs),
                   "model": run.metrics.get("model")}
    return json.dumps(setting, sort_keys=True, default=str)


def select_group(runs: list[Run], dataset: str, cell: str, options: dict | None = None,
                 selection: str = "newest") -> RunGroup | None:
    """The run `select_run` picks and the other seeds of its setting (newest run per seed)."""
    chosen = select_run(runs, dataset, cell, options, selection)
    if chosen is None:
        return None
    key = setting_key(chosen)
    wanted = canonical_row_options(options)
    same = [r for r in runs if r.complete and r.dataset == chosen.dataset and r.cell == chosen.cell
            and r.row_options() == wanted and setting_key(r) == key]
    per_seed: dict = {}
    for run in sorted(same, key=_newest_key):
        per_seed[run.seed if run.seed is not None else str(run.path)] = run
    per_seed[chosen.seed if chosen.seed is not None else str(chosen.path)] = chosen
    ordered = sorted(per_seed.items(), key=lambda item: (isinstance(item[0], str), item[0]))
    return RunGroup([run for _, run in ordered], chosen)
