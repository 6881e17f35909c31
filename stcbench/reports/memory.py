"""The memory-probe table over seeds (`stcbench table --table memory`, docs/reports.md).

For each (task, scale, cell): the test loss as a share of the memoryless baseline (adding 1/6, copy
10 ln 8 / (T + 20)) as mean ± 95 % Student-t interval over seeds, whether that interval lies below the
baseline (the network remembers), the test accuracy of the classification tasks, and the difference of
the loss share to a baseline cell (Welch interval over seeds; for one seed a side, a paired bootstrap over
the test sequences both runs were tested on; better / worse / not distinguishable).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from stcbench.engine import plugin_code
from stcbench.cell_names import BUILTIN_CELLS, normalize_name
from stcbench.errors import ConfigError, StcbenchError
from stcbench.reports import stats
from stcbench.reports.runs import SELECTIONS, is_plain_name, setting_of
from stcbench.reports.tables import MISSING, TableResult, format_summary
from stcbench.strict_json import restore_non_finite
from stcbench.record_io import read_text

REMEMBERS, AT_BASELINE, ABOVE = "below the baseline", "not distinguishable from it", "above the baseline"
CHANCE = {"copy": "1/8", "seq_digits": "1/10", "pseq_digits": "1/10"}       # accuracy of guessing


REQUIRED = {"memory_task": str, "cell": str, "test": dict}


def discover_memory_runs(root: Path, warn=None) -> list[dict]:
    """metrics.json records of memory runs under `root`, each with `path` and `mtime` (when it was
    written) added. Video runs are passed over; an unreadable or malformed file is skipped, named to
    `warn` when given."""
    records = []
    for path in sorted(Path(root).rglob("metrics.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue                                   # a folder set aside (an interrupted --overwrite): no run
        try:
            record = restore_non_finite(json.loads(read_text(path)))
        except (OSError, ValueError, RecursionError) as exc:
            if warn:
                warn(f"skipped {path}: not a readable JSON file ({type(exc).__name__})")
            continue
        if isinstance(record, dict) and "dataset" in record and "memory_task" not in record:
            continue                                                      # a video run
        wrong = ([key for key, kind in REQUIRED.items() if not isinstance(record.get(key), kind)]
                 if isinstance(record, dict) else ["the whole record (not a JSON object)"])
        if wrong:
            if warn:
                warn(f"skipped {path}: {', '.join(wrong)} missing or of the wrong type")
            continue
        unplain = [key for key in ("memory_task", "cell") if not is_plain_name(record.get(key))]
        if unplain:           # figure files and table rows are named by them
            if warn:
                warn(f"skipped {path}: its {unplain[0]} {record.get(unplain[0])!r} is not a plain name")
            continue
        records.append({**record, "path": str(path.parent), "mtime": path.stat().st_mtime})
    return records


def cell_label(record: dict) -> str:
    """The registry name of the cell, '(rec)' for the recurrent variant: one row each."""
    return registry_name(str(record["cell"])) + (" (rec)" if record.get("recurrent") else "")


def registry_name(name: str) -> str:
    """The registry's name of a recorded cell: a built-in one's spelling normalized without importing the cells
    (torch, plugins); an alias or a plugin's name resolved by the registry, its spelling where that fails."""
    plain = normalize_name(name)
    if plain in BUILTIN_CELLS:
        return plain
    from stcbench.cells.registry import canonical_name

    try:
        return canonical_name(name)
    except (StcbenchError, ImportError):          # a plugin of STCBENCH_PLUGINS that cannot be imported here
        return plain


def loss_share(record: dict) -> float:
    """Test loss over the memoryless baseline; NaN for a diverged or incomplete run."""
    loss, baseline = record["test"].get("loss"), record.get("baseline")
    if isinstance(loss, (int, float)) and isinstance(baseline, (int, float)) and baseline:
        return loss / baseline
    return math.nan


def against_memoryless(shares: list[float], n_row: int) -> str:
    """Where the interval of loss/baseline lies relative to 1 (the memoryless predictor)."""
    summary = stats.summarize(shares)
    if summary is None:
        return MISSING
    if summary.half_width is None:
        return "n = 1: no interval"
    verdict = REMEMBERS if summary.mean + summary.half_width < 1 else \
        ABOVE if summary.mean - summary.half_width > 1 else AT_BASELINE
    return verdict if summary.n == n_row else f"{verdict} (n = {summary.n})"


def per_sequence_shares(record: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(test-set positions, each of those test sequences' loss over the memoryless baseline) from
    test_per_sequence.npz of the run folder, or None for runs recorded without them."""
    name, baseline = record.get("test_per_sequence"), record.get("baseline")
    if not isinstance(name, str) or not isinstance(baseline, (int, float)) or not baseline or "path" not in record:
        return None
    try:
        with np.load(Path(record["path"]) / name, allow_pickle=False) as data:
            if "loss" not in data.files or "index" not in data.files:
                return None
            return np.asarray(data["index"]), np.asarray(data["loss"], dtype=np.float64) / baseline
    except (OSError, ValueError, RecursionError):
        return None


def paired_difference(ours: list[dict], base: list[dict]) -> stats.Difference | None:
    """One run a side, tested on the same sequences (same test-set fingerprint and the same positions in
    it): the paired bootstrap over test sequences of the loss share; else None."""
    pair = paired_shares(ours, base)
    return stats.paired_bootstrap(*pair) if pair is not None else None


def paired_shares(ours: list[dict], base: list[dict]) -> tuple | None:
    """The per-sequence loss shares of one run a side over the same test sequences, or None."""
    if len(ours) != 1 or len(base) != 1 or not ours[0].get("test_set") or \
            ours[0].get("test_set") != base[0].get("test_set"):
        return None
    a, b = per_sequence_shares(ours[0]), per_sequence_shares(base[0])
    if a is None or b is None or not np.array_equal(a[0], b[0]):
        return None
    return a[1], b[1]


def difference_text(ours: list[dict], base: list[dict]) -> str:
    """Loss share of `ours` minus `base`'s: Welch over seeds, or for one seed each the paired bootstrap
    over the test sequences."""
    a = [v for v in map(loss_share, ours) if math.isfinite(v)]
    b = [v for v in map(loss_share, base) if math.isfinite(v)]
    difference = stats.welch_difference(a, b) or (paired_difference(ours, base) if len(a) == len(b) == 1 else None)
    if difference is None:
        if stats.no_spread(a, b):
            return "cannot rank: the same loss on every seed"
        pair = paired_shares(ours, base) if len(a) == len(b) == 1 else None
        why = ("" if len(a) != 1 or len(b) != 1 else
               f"; {stats.no_bootstrap_reason(*pair)}" if pair is not None else
               "; one seed a side and no per-sequence losses of the same test sequences to pair")
        return f"cannot rank: n = {len(a)} vs {len(b)}{why}"
    if difference.method == "paired bootstrap":
        how = f" (paired bootstrap over {difference.n} test sequences, not over seeds)"
    else:
        how = f" (n = {len(a)} vs {len(b)} of {len(ours)} vs {len(base)} runs)" if (len(a), len(b)) != (
            len(ours), len(base)) else ""
    return (f"{difference.mean:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}] "
            f"{stats.verdict(difference, higher_is_better=False)}{how}")


def best_validation_loss(record: dict) -> float:
    """The lowest validation loss of the run's history (its best checkpoint's); inf without one."""
    losses = [h["val/loss"] for h in record.get("history") or []
              if isinstance(h, dict) and isinstance(h.get("val/loss"), (int, float)) and math.isfinite(h["val/loss"])]
    return min(losses, default=math.inf)


def one_per_seed(records: list[dict], selection: str = "newest") -> list[dict]:
    """One record per seed: the one written last (a rerun replaces an older run), or with `best-val` the
    one with the lowest validation loss (the newest of equals)."""
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown run selection {selection!r}; choose one of {list(SELECTIONS)}")
    rank = (lambda r: (r.get("mtime", 0.0),)) if selection == "newest" else \
        (lambda r: (-best_validation_loss(r), r.get("mtime", 0.0)))
    chosen = {}
    for record in sorted(records, key=rank):
        chosen[record.get("seed")] = record
    return list(chosen.values())


def memory_setting(record: dict) -> str:
    """What must agree for two memory runs to be seeds of one setting: the run's config.yaml resolved with
    today's defaults, without the keys that do not change results (reports.runs.NON_SETTING_KEYS); without
    a config.yaml, the epochs, width, readout and parameter count of metrics.json."""
    config = _resolved_config(Path(record["path"]) / "config.yaml") if "path" in record else None
    if config is None:
        setting = {key: record.get(key) for key in ("epochs", "hidden", "readout", "params", "recurrent")}
    else:
        setting = setting_of(config)
        if isinstance(setting.get("model"), dict) and "cell" in setting["model"]:    # an alias names the same cell
            setting["model"] = {**setting["model"], "cell": registry_name(str(setting["model"]["cell"]))}
    code = plugin_code.read_recorded(Path(record["path"])) if "path" in record else {}
    if code:                              # another version of a plugin's code is another setting
        setting["plugin_code"] = plugin_code.code_key(code)
    return json.dumps(setting, sort_keys=True, default=str)


def _resolved_config(path: Path) -> dict | None:
    import yaml

    from stcbench.engine.schema import to_dict
    from stcbench.memory.config import resolve

    try:
        return to_dict(resolve(yaml.safe_load(read_text(path))))
    except Exception:                 # unreadable, or written by a version with other keys: the raw file
        try:
            raw = yaml.safe_load(read_text(path))
        except (OSError, ValueError, RecursionError, yaml.YAMLError):
            return None
        return raw if isinstance(raw, dict) else None


def group_runs(records: list[dict], selection: str = "newest") -> dict[tuple, list[dict]]:
    """Runs by (task, T, scale, cell row); seeds pool only within one setting (memory_setting): a cell
    with runs of several settings gets a row per setting, labelled with its epochs and a short tag."""
    groups = defaultdict(list)
    for record in records:
        groups[(str(record["memory_task"]), int(record.get("seq_len") or 0), str(record.get("scale")),
                cell_label(record), memory_setting(record))].append(record)
    settings = defaultdict(set)
    for task, seq_len, scale, cell, setting in groups:
        settings[(task, seq_len, scale, cell)].add(setting)
    named = {}
    for (task, seq_len, scale, cell, setting), runs in groups.items():
        label = cell
        if len(settings[(task, seq_len, scale, cell)]) > 1:
            tag = hashlib.sha256(setting.encode()).hexdigest()[:6]
            label = f"{cell} [{runs[0].get('epochs')} ep, setting {tag}]"
        named[(task, seq_len, scale, label)] = one_per_seed(runs, selection)
    return named


def row_cell(label: str) -> str:
    """The cell of a row label (`lif`, or `lif [250 ep, setting 1a2b3c]` where lif has runs of several settings)."""
    return label.split(" [", 1)[0]


def settings_apart(ours: list[dict], theirs: list[dict]) -> list[str]:
    """The setting keys (memory_setting) in which two rows' runs differ beyond the cell, its options and its code."""
    from stcbench.engine.resume import differences

    mine, other = (json.loads(memory_setting(runs[0])) for runs in (ours, theirs))
    return [key for key, _, _ in differences(mine, other)
            if not (key in ("model.cell", "plugin_code") or key.startswith("model.cell_options"))]


def baseline_difference(groups: dict, panel: tuple, runs: list[dict], baseline: str) -> str:
    """The row's difference to the baseline cell's runs of the same setting (but for the cell); where the baseline
    has runs of one other setting only, to those, naming the keys apart; where it has several and none of this
    setting, none, saying why."""
    rows = [found for key, found in groups.items() if key[:3] == panel and row_cell(key[3]) == baseline]
    if not rows:
        return MISSING
    same = [found for found in rows if not settings_apart(runs, found)]
    if same:
        return difference_text(runs, same[0])
    if len(rows) > 1:
        return f"{MISSING} ({baseline} has runs of {len(rows)} settings, none of this row's)"
    apart = settings_apart(runs, rows[0])
    return difference_text(runs, rows[0]) + f" (against {baseline} of another setting: {', '.join(apart[:3])})"


def memory_baseline(name: str | None, records: list[dict]) -> str | None:
    """The baseline cell's row label if some run has it, else None (no comparison column)."""
    if name is None or str(name).lower() == "none":
        return None
    label = normalize_name(str(name))
    return label if any(cell_label(record) == label for record in records) else None


def memory_table(records: list[dict], baseline: str | None = "lif",
                 source: str = "the memory runs given", selection: str = "newest") -> TableResult:
    groups = group_runs(records, selection)
    header = ["task", "scale", "cell", "n", "test loss / memoryless baseline", "against the memoryless baseline",
              "test accuracy (chance)"]
    if baseline:
        header.append(f"loss / baseline minus {baseline}'s")
    rows = []
    order = sorted(groups, key=lambda key: (key[0], key[1], key[2], key[3] != baseline, key[3]))
    for task, seq_len, scale, cell in order:
        runs = groups[(task, seq_len, scale, cell)]
        shares = [loss_share(r) for r in runs]
        accuracies = [r["test"]["acc"] for r in runs if isinstance(r["test"].get("acc"), (int, float))]
        accuracy = (f"{format_summary(accuracies, 3, len(runs))} ({CHANCE.get(task, '?')})"
                    if accuracies else MISSING)
        epochs = {r.get("epochs") for r in runs}
        shown_scale = f"{scale}, {epochs.pop()} ep" if len(epochs) == 1 and None not in epochs else scale
        row = [f"{task} T={seq_len}", shown_scale, cell, str(len(runs)), format_summary(shares, 3, len(runs)),
               against_memoryless(shares, len(runs)), accuracy]
        if baseline:
            row.append("the reference" if row_cell(cell) == baseline else
                       baseline_difference(groups, (task, seq_len, scale), runs, baseline))
        rows.append(row)
    notes = ["loss / baseline: test loss of the checkpoint with the lowest validation loss over the memoryless "
             "predictor's (adding: 1/6; copy: 10 ln 8 / (T + 20); digits: ln 10); < 1 means the network "
             "remembers.",
             "mean ± 95 % Student-t interval over seeds; 'below the baseline' when the whole interval is below 1; "
             "(n = k): only k of the row's runs have a finite value (the others diverged).",
             f"Run per seed: selection '{selection}' (the newest run of a seed, or with 'best-val' the one with the "
             "lowest validation loss)."]
    if baseline:
        notes.append("Differences: mean over seeds minus the baseline cell's, Welch 95 % interval; with one seed a "
                     "side tested on the same sequences, the mean over test sequences with a paired bootstrap 95 % "
                     "interval; lower is better.")
    return TableResult("memory", "Memory probes over seeds", source, header, rows, notes)


def validation_curves(runs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, [seeds, iterations] validation loss / baseline) over the iterations every run has."""
    curves = [{h["step"]: h["val/loss"] / r["baseline"] for h in r.get("history") or []
               if isinstance(h.get("val/loss"), (int, float)) and "step" in h} for r in runs if r.get("baseline")]
    common = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
    return np.asarray(common), np.asarray([[curve[step] for step in common] for curve in curves])


def cell_styles(records: list[dict]) -> dict[str, dict]:
    """Colour, line style and marker of each row's cell label (a cell with runs of several settings has a label
    per setting, group_runs), the same in every memory figure of `records`."""
    from stcbench.reports.figures import line_style

    return {cell: line_style(index) for index, cell in enumerate(sorted({key[3] for key in group_runs(records)}))}


def _loss_figure(records: list[dict], path: Path, draw_cell) -> Path | None:
    """One panel per (task, T, scale) of validation loss / memoryless baseline against iterations;
    `draw_cell(ax, cell, runs, style)` draws each cell's runs in the cell's style."""
    from stcbench.reports.figures import plt

    groups, styles = group_runs(records), cell_styles(records)
    panels = sorted({key[:3] for key in groups})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for cell in sorted(key[3] for key in groups if key[:3] == panel):
            draw_cell(ax, cell, groups[(*panel, cell)], styles[cell])
        _finish_loss_panel(ax, panel)
    return _save(fig, path)


def plot_memory_curves(records: list[dict], path: Path) -> Path | None:
    """Validation loss / memoryless baseline against training iterations: per cell the mean over seeds
    with its 95 % t band, one panel per (task, T, scale)."""
    def draw(ax, cell, runs, style):
        steps, values = validation_curves(runs)
        if not len(steps):
            return
        mean = values.mean(axis=0)
        ax.plot(steps, mean, label=f"{cell} (n = {len(values)})", markevery=max(1, len(steps) // 8),
                markersize=4, linewidth=1.2, **style)
        if len(values) > 1:
            # 95 % Student-t band over seeds at each iteration: t(0.975, n-1) * s / sqrt(n)
            half = stats.t_quantile(len(values) - 1) * values.std(axis=0, ddof=1) / np.sqrt(len(values))
            ax.fill_between(steps, mean - half, mean + half, color=style["color"], alpha=0.15, linewidth=0)

    return _loss_figure(records, path, draw)


def plot_learning_curves(records: list[dict], path: Path) -> Path | None:
    """Every run's validation loss / memoryless baseline against training iterations (one thin line per
    seed, in its cell's colour): shows what the mean of memory_curves.png averages over."""
    def draw(ax, cell, runs, style):
        runs = sorted(runs, key=lambda r: str(r.get("seed")))
        for index, run in enumerate(runs):
            points = [(h["step"], h["val/loss"] / run["baseline"]) for h in run.get("history") or []
                      if isinstance(h.get("val/loss"), (int, float)) and "step" in h and run.get("baseline")]
            if points:
                label = f"{cell} ({len(runs)} seed{'s' if len(runs) > 1 else ''})" if index == 0 else None
                ax.plot(*zip(*points), label=label, linewidth=0.8, alpha=0.8, color=style["color"],
                        linestyle=style["linestyle"])

    return _loss_figure(records, path, draw)


def plot_gradient_through_time(records: list[dict], task: str, path: Path) -> Path | None:
    """The gradient-through-time analysis of one task's best checkpoints (stcbench.memory.analysis), per
    cell the mean over seeds: the norm of dL/dS_t of the last hidden layer, each step's share of its
    summed magnitude, and (where recorded) each step's share of |dL/dx_t| of the network input."""
    from stcbench.reports.figures import plt

    groups = {key: runs for key, runs in group_runs(records).items() if key[0] == task}
    styles = cell_styles(records)
    curves = {}
    for key, runs in sorted(groups.items()):
        analyses = [a for a in map(gradient_analysis, runs) if a is not None]
        if analyses and len({len(a["share"]) for a in analyses}) == 1:
            curves[key] = {name: np.mean([a[name] for a in analyses], axis=0) for name in analyses[0]
                           if all(name in a for a in analyses)}
            curves[key]["n"] = len(analyses)
    if not curves:
        return None
    with_input = any("input_share" in curve for curve in curves.values())
    fig, axes = plt.subplots(1, 3 if with_input else 2, figsize=(16 if with_input else 11, 3.8))
    settings = sorted({key[1:3] for key in curves})          # (T, scale): one line style each, when several
    for (_, seq_len, scale, cell), curve in curves.items():
        style = {**styles[cell], "markevery": max(1, len(curve["share"]) // 10), "markersize": 4}
        if len(settings) > 1:
            style["linestyle"] = ("-", "--", ":", "-.")[settings.index((seq_len, scale)) % 4]
        label = f"{cell}, T={seq_len}, {scale} (n = {curve['n']})"
        axes[0].semilogy(np.maximum(curve["norm"], 1e-30), label=label, **style)
        axes[1].plot(curve["share"], label=label, **style)
        if "input_share" in curve:
            axes[2].plot(curve["input_share"], label=label, **style)
    axes[0].set_ylabel("||dL/dS_t|| (last hidden layer)")
    axes[1].set_ylabel("Grad[t] = share of sum |dL/dS_t,n|")
    if with_input:
        axes[2].set_ylabel("share of sum |dL/dx_t| (network input)")
    for ax in axes:
        ax.set_xlabel("time step t")
        ax.legend(fontsize=7)
    fig.suptitle(f"Gradient through time, {task} (best checkpoints, 256 validation samples; mean over seeds)")
    return _save(fig, path)


def gradient_analysis(record: dict) -> dict | None:
    """{"norm", "share"[, "input_share"]} of the run's gradient-through-time analysis, from
    gradient_through_time.npz in its run folder, else from the record; None when the run has none."""
    path = Path(record["path"]) / "gradient_through_time.npz" if "path" in record else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                names = {"norm": "norm", "share": "per_step", "input_share": "input_per_step"}
                found = {name: np.asarray(data[key], dtype=np.float64) for name, key in names.items()
                         if key in data.files}
        except (OSError, ValueError, RecursionError):
            return None
        return found if "norm" in found and "share" in found else None
    if record.get("gradient_norm") and record.get("gradient_share"):
        return {"norm": np.asarray(record["gradient_norm"], dtype=np.float64),
                "share": np.asarray(record["gradient_share"], dtype=np.float64)}
    return None


def write_memory_figures(records: list[dict], out_dir: Path) -> list[Path]:
    """memory_curves.png, learning_curves.png and gradient_through_time_<task>.png of `records` in
    `out_dir`; gradient figures of tasks these records do not have are removed, so that every figure
    in the folder shows the same runs."""
    out_dir = Path(out_dir)
    tasks = sorted({str(r["memory_task"]) for r in records})
    written = [plot_memory_curves(records, out_dir / "memory_curves.png"),
               plot_learning_curves(records, out_dir / "learning_curves.png")]
    written += [plot_gradient_through_time(records, task, out_dir / f"gradient_through_time_{task}.png")
                for task in tasks]
    kept = {path for path in written if path is not None}
    for stale in out_dir.glob("gradient_through_time_*.png"):
        if stale not in kept:
            stale.unlink()
    return sorted(kept)


def _finish_loss_panel(ax, panel: tuple) -> None:
    """Baseline line, labels, and a y range from 0 to 1.6, or higher where a curve's second half lies above that
    (cells that never learn sit at 1.7-2 times the baseline on copy at small sizes); the first iterations' peaks
    may leave the range (at most 10)."""
    late = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    late = [y[len(y) // 2:] for y in late]
    highest = max((float(np.max(y[np.isfinite(y)])) for y in late if np.isfinite(y).any()), default=0.0)
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="memoryless baseline")
    ax.set_title(f"{panel[0]} T={panel[1]} ({panel[2]} scale)")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation loss / memoryless baseline")
    ax.set_ylim(0, min(max(1.6, 1.05 * highest), 10.0))
    ax.legend(fontsize=7)


def _save(fig, path: Path) -> Path:
    from stcbench.atomic import save_figure
    from stcbench.reports.figures import plt

    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return Path(path)
