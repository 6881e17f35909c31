"""A static report of a folder of runs: summary, ranking, paper tables, figures, costs.

`write_report(runs_root, out_dir)` writes
    out_dir/report.md (and report.html with html=True)
    out_dir/tables/table_<k>.{md,csv,tex}, summary.csv
    out_dir/figures/<dataset>_*.png, *.gif
    out_dir/analysis/<dataset>_<cell>.json  (cost / firing rates / gates per run, see analysis.py)
Everything comes from the run directories; a number we do not have is shown as "—".
"""
from __future__ import annotations

import csv
import html
import io
import math
import os
from pathlib import Path

import numpy as np

from stcbench.reports import figures
from stcbench.atomic import write_text as atomic_write_text
from stcbench.reports import stats
from stcbench.reports.published import Column
from stcbench.reports.runs import (DEFAULT_BASELINE, Run, RunGroup, discover_runs, is_tabled_tuning_run,
                                   leave_out_tuning, left_out_note, read_saved_arrays, select_group, warn_non_finite)
from stcbench.reports.tables import (csv_safe, FORMAT_SUFFIX, FORMATS, MISSING, SUMMARY_METRICS, TABLE_KEYS, build_table,
                                     comparison_fields, comparison_text, matching_baseline, render)

DATASET_TITLES = {"mmnist": "Moving MNIST 10->10", "taxibj": "TaxiBJ 4->4", "kth": "KTH 10->20 (and 10->40)"}
SUMMARY_FIELDS = ("mse", "mae", "ssim", "psnr", "mse_per_pixel")
PREDICTION_KEYS = {"inputs": ("inputs", "input", "context", "x"), "truth": ("trues", "true", "truth", "target", "y"),
                   "pred": ("preds", "pred", "predictions", "prediction")}


def _fmt(value, digits=4) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if abs(value) >= 1000 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.{digits}g}"


def default_groups(runs: list[Run]) -> dict[str, dict[str, RunGroup]]:
    """{dataset: {cell: seeds}}: the default cell options, the `newest` rule, and the other seeds of the
    selected run's setting."""
    table: dict[str, dict[str, RunGroup]] = {}
    for dataset in sorted({r.dataset for r in runs}):
        for cell in sorted({r.cell for r in runs if r.dataset == dataset}):
            group = select_group(runs, dataset, cell)
            if group is not None:
                table.setdefault(dataset, {})[cell] = group
    return table


def load_predictions(run: Run) -> dict[str, np.ndarray] | None:
    """First stored sequence of predictions.npz as {inputs, truth, pred} ([T, C, H, W] each)."""
    data = read_saved_arrays(run.path / "predictions.npz")
    if data is None:
        return None
    found = {}
    for role, names in PREDICTION_KEYS.items():
        key = next((n for n in names if n in data), None)
        if key is None or not len(data[key]):
            return None
        found[role] = np.asarray(data[key][0], dtype=np.float64)
    return found


def load_training_log(run: Run) -> list[dict]:
    """Rows of the run's CSV logs: the first training's (`logs/csv/metrics.csv`), then each resumption's
    (`logs/csv/resumed-<n>/`) in order. A resumption trains again from its checkpoint's step, so the rows an
    interrupted attempt logged from that step on are dropped: each step is drawn once, as the run kept it."""
    rows: list[dict] = []
    for path in sorted((run.path / "logs").glob("csv*/**/metrics.csv"), key=_resumption_number):
        with path.open(newline="") as handle:
            resumed = list(csv.DictReader(handle))
        steps = [step for step in map(_step_of, resumed) if step is not None]
        if steps:
            rows = [row for row in rows if (_step_of(row) is None or _step_of(row) < min(steps))]
        rows += resumed
    return rows


def _resumption_number(path: Path) -> int:
    """0 for the first training's log, n for logs/csv/resumed-<n>/metrics.csv."""
    number = path.parent.name.rpartition("-")[2]
    return int(number) if path.parent.name.startswith("resumed-") and number.isdigit() else 0


def _step_of(row: dict) -> float | None:
    try:
        return float(row["step"])
    except (KeyError, TypeError, ValueError):
        return None


def _series(rows: list[dict], key: str, x_key: str = "step") -> list[tuple[float, float]]:
    points = []
    for row in rows:
        try:
            points.append((float(row[x_key]), float(row[key])))
        except (KeyError, TypeError, ValueError):
            continue
    return points


# --- summary and ranking -------------------------------------------------------------------------
def _relative(path: Path, root: Path | None) -> str:
    try:
        return str(Path(path).relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def summary_rows(groups: dict[str, dict[str, RunGroup]], analyses: dict, runs_root: Path | None = None,
                 baseline: str | None = DEFAULT_BASELINE, runs: list[Run] | None = None) -> list[dict]:
    """Per (dataset, cell): each metric's mean over seeds (`<metric>`) and 95 % half-width
    (`<metric>_ci95`), n, the MSE comparison with `baseline` (its runs of the cell's setting where `runs` has
    them: tables.matching_baseline), costs; ranked by mean MSE."""
    rows = []
    for dataset, cells in groups.items():
        means = {cell: stats.summarize(group.values("test", "mse")) for cell, group in cells.items()}
        ranked = sorted(cells, key=lambda c: (means[c] is None, means[c].mean if means[c] else 0.0, c))
        for rank, cell in enumerate(ranked, 1):
            group = cells[cell]
            run = group.representative
            analysis = analyses.get((dataset, cell)) or {}
            row = {"dataset": dataset, "cell": cell, "rank_mse": rank, "n": group.n,
                   "seeds": " ".join(str(s) for s in group.seeds), "scale": run.describe_scale(),
                   "selected_on": run.selected_on}
            for key, split, metric in INTERVAL_SOURCES:
                values = group.values(split, metric)
                summary = stats.summarize(values)
                row[key] = summary.mean if summary else (values[0] if values else None)
                row[f"{key}_ci95"] = summary.half_width if summary else None
            if baseline:
                shown = cells.get(baseline)
                base = matching_baseline(shown, group, runs, "newest") if runs is not None else shown
                row[f"mse_vs_{baseline}"] = _mse_comparison(group, base, shown)
            params = run.value(None, "params") or analysis.get("params")
            row["params"] = int(params) if params else None
            flops = run.value(None, "flops") or analysis.get("flops")
            row["flops_g"] = flops / 1e9 if flops else None
            rates = analysis.get("firing_rates")
            row["firing_rate"] = float(np.mean(list(rates.values()))) if rates else None
            row["energy_uj"] = analysis.get("energy_uj_per_sequence")
            row["run"] = _relative(run.path, runs_root)
            rows.append(row)
    return rows


def _mse_comparison(group: RunGroup, base: RunGroup | None, shown: RunGroup | None = None) -> str:
    """The MSE difference to the baseline in raw metrics.json units, to the decimals of `stcbench table --table
    summary` (tables.SUMMARY_METRICS), so that the report and the table print the same figures."""
    ours, theirs = group.values("test", "mse"), base.values("test", "mse") if base else []
    decimals = next(d for metric, _, _, d in SUMMARY_METRICS if metric == "mse")
    column = Column("mse", "MSE", group.representative.dataset, "mse", decimals=decimals)
    return comparison_text(column, group, base, ours, theirs, shown=shown)


SUMMARY_COLUMNS = ("dataset", "rank_mse", "cell", "mse", "mae", "ssim", "psnr", "ssim_10to40", "psnr_10to40",
                   "params", "flops_g", "firing_rate", "energy_uj", "n", "scale", "selected_on")
INTERVAL_SOURCES = tuple((k, "test", k) for k in SUMMARY_FIELDS) + (("ssim_10to40", "test_long", "ssim"),
                                                                     ("psnr_10to40", "test_long", "psnr"))
INTERVAL_FIELDS = tuple(key for key, _, _ in INTERVAL_SOURCES)


def _fmt_interval(row: dict, key: str) -> str:
    """`mean ± half-width`, the half-width to the decimals the mean shows (never in exponent form beside a plain
    mean: 178.6 ± 130.2, not 178.6 ± 1.3e+02)."""
    half = row.get(f"{key}_ci95")
    text = _fmt(row.get(key))
    if half is None or row.get(key) is None:
        return text
    if "e" in text or not math.isfinite(half):
        return f"{text} ± {_fmt(half, 2)}"
    decimals = len(text.partition(".")[2])
    shown = f"{half:.{decimals}f}"
    if half and not float(shown):           # a half-width that the mean's decimals would round to zero
        shown = _fmt(half, 2)
    return f"{text} ± {shown}"


def summary_markdown(rows: list[dict], dataset: str, baseline: str | None = DEFAULT_BASELINE) -> str:
    """Metrics as mean ± 95 % half-width over seeds, n, and the MSE comparison with the baseline."""
    cols = [c for c in SUMMARY_COLUMNS if c != "dataset"]
    if dataset != "kth":
        cols = [c for c in cols if not c.endswith("10to40")]
    if baseline:
        cols.insert(cols.index("n") + 1, f"mse_vs_{baseline}")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in (r for r in rows if r["dataset"] == dataset):
        lines.append("| " + " | ".join(_fmt_interval(row, c) if c in INTERVAL_FIELDS else _fmt(row.get(c))
                                       for c in cols) + " |")
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    intervals = [f"{key}_ci95" for key in INTERVAL_FIELDS]
    comparisons = sorted({key for row in rows for key in row if key.startswith("mse_vs_")})
    split = [f"{key}{part}" for key in comparisons for part in ("", "_low", "_high", "_verdict")]
    writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_COLUMNS) + ["mse_per_pixel", "run", "seeds"] + intervals
                            + split, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        values = {k: ("" if v is None else v) for k, v in row.items()}
        for key in comparisons:               # "-5.32 [-7.62, -3.01] better" as numbers in columns of their own
            values.update(zip((key, f"{key}_low", f"{key}_high", f"{key}_verdict"),
                              comparison_fields(str(values.get(key, "")))))
        writer.writerow({key: csv_safe(value) for key, value in values.items()})
    return buffer.getvalue()


def overall_ranking(rows: list[dict]) -> list[tuple[str, float, int]]:
    """(cell, mean MSE rank over datasets, datasets) sorted best first."""
    ranks: dict[str, list[int]] = {}
    for row in rows:
        if row.get("mse") is not None:
            ranks.setdefault(row["cell"], []).append(row["rank_mse"])
    return sorted(((c, float(np.mean(r)), len(r)) for c, r in ranks.items()), key=lambda x: (-x[2], x[1], x[0]))


# --- figures -----------------------------------------------------------------------------------
def per_frame_series(groups: dict[str, RunGroup], metric: str = "mse") -> dict[str, list[list[float]]]:
    """{cell: one per-frame curve per seed} for the cells whose runs record `per_frame[metric]`."""
    series = {}
    for cell, group in groups.items():
        curves = [run.metrics["test"]["per_frame"][metric] for run in group.runs
                  if isinstance((run.metrics["test"].get("per_frame") or {}).get(metric), list)]
        if curves and len({len(c) for c in curves}) == 1:
            series[cell] = curves
    return series


def dataset_figures(dataset: str, groups: dict[str, RunGroup], analyses: dict,
                    fig_dir: Path) -> list[tuple[str, Path]]:
    made = []
    cells = {cell: group.representative for cell, group in groups.items()}
    series = per_frame_series(groups)
    if series:
        made.append(("MSE per predicted frame (test; mean over seeds with its 95 % confidence band)",
                     figures.per_frame_curves(
                         series, fig_dir / f"{dataset}_per_frame_mse.png", metric="mse",
                         title=f"{DATASET_TITLES.get(dataset, dataset)}: per-frame MSE (sum over pixels)")))
    logs = {cell: load_training_log(run) for cell, run in cells.items()}
    loss = {cell: _series(rows, "train/loss_step") for cell, rows in logs.items()}
    loss = {cell: points for cell, points in loss.items() if points}
    if loss:
        made.append(("Training loss (per step, from the CSV logs)", figures.xy_curves(
            loss, fig_dir / f"{dataset}_train_loss.png", xlabel="step", ylabel="train loss (per-pixel MSE)",
            title=f"{dataset}: training loss", log_y=True)))
    for cell, rows in sorted(logs.items()):
        gate_keys = sorted({k for row in rows for k in row if k.startswith(("gate", "gates/"))})
        gates = {k: _series(rows, k) for k in gate_keys}
        gates = {k: v for k, v in gates.items() if v}
        if gates:
            made.append((f"{cell}: circuit gates during training (logged)", figures.xy_curves(
                gates, fig_dir / f"{dataset}_{cell}_gates_training.png", xlabel="step", ylabel="gate value",
                title=f"{dataset} / {cell}: gates during training")))
    preds = {cell: load_predictions(run) for cell, run in cells.items()}
    preds = {cell: p for cell, p in preds.items() if p is not None}
    if preds:
        first = next(iter(preds.values()))
        grid = {cell: p["pred"] for cell, p in preds.items()}
        made.append(("Predictions (first test sequence)", figures.prediction_grid(
            first["inputs"], first["truth"], grid, fig_dir / f"{dataset}_predictions.png",
            title=f"{DATASET_TITLES.get(dataset, dataset)}: input, ground truth, predictions")))
        made.append(("Predictions as an animation (ground truth, then each model in the legend order)",
                     figures.prediction_gif(first["truth"], grid, fig_dir / f"{dataset}_predictions.gif",
                                            inputs=first["inputs"])))
    rates = {cell: list(a["firing_rates"].values()) for (ds, cell), a in analyses.items()
             if ds == dataset and a and a.get("firing_rates")}
    if rates:
        made.append(("Per-layer firing rates (test batch)", figures.firing_rates(
            rates, fig_dir / f"{dataset}_firing_rates.png", title=f"{dataset}: per-layer firing rates")))
    grads = {f"{cell}": a["grad_norm_through_time"] for (ds, cell), a in analyses.items()
             if ds == dataset and a and a.get("grad_norm_through_time")}
    if grads:
        made.append(("Gradient magnitude through time ||dL/ds_t|| (top layer, one batch)",
                     figures.gradient_through_time(grads, fig_dir / f"{dataset}_grad_through_time.png",
                                                   title=f"{dataset}: ||dL/ds_t|| of the top layer")))
    for (ds, cell), a in sorted(analyses.items()):
        if ds == dataset and a and a.get("gates"):
            gates = {layer: {k: np.asarray(v) for k, v in g.items()} for layer, g in a["gates"].items()}
            made.append((f"{cell}: circuit gates during inference (paper Fig. 2)", figures.gate_dynamics(
                gates, fig_dir / f"{dataset}_{cell}_gates.png", title=f"{dataset} / {cell}: gate dynamics")))
    return made


# --- the report ---------------------------------------------------------------------------------
def write_report(runs_root: Path, out_dir: Path, *, suite: str = "", html_report: bool = False, html: bool = False,
                 analyse: bool = True, header: str | None = None, configs_root: Path | None = None,
                 baseline: str | None = DEFAULT_BASELINE, missing: list[str] | None = None) -> Path:
    """`missing`: one line for each planned run that the report lacks (failed, or not run yet)."""
    out_dir = Path(out_dir)
    runs, tuning_note = leave_out_tuning(discover_runs(runs_root), is_tabled_tuning_run)
    warn_non_finite(runs)
    groups = default_groups(runs)
    picked = {dataset: {cell: g.representative for cell, g in cells.items()} for dataset, cells in groups.items()}
    analyses = {}
    if analyse:
        from stcbench.reports.analysis import analyse_runs

        analyses = analyse_runs(picked, out_dir / "analysis")
    table_dir, fig_dir = out_dir / "tables", out_dir / "figures"
    tables = {key: build_table(key, runs, baseline=baseline) for key in TABLE_KEYS}
    for result in tables.values():
        result.notes += [tuning_note] if tuning_note else []
    for key, result in tables.items():
        for fmt in FORMATS:
            atomic_write_text(table_dir / f"table_{key}.{FORMAT_SUFFIX[fmt]}", render(result, fmt))
    rows = summary_rows(groups, analyses, Path(runs_root), baseline, runs)
    atomic_write_text(table_dir / "summary.csv", summary_csv(rows))

    md = [f"# stcbench report{f' — suite {suite}' if suite else ''}", ""]
    if header:
        md += [header, ""]
    md += [f"{len(runs)} run directories under `{Path(os.path.relpath(runs_root, out_dir)).as_posix()}`; per (dataset, cell) the "
           "run chosen by the `newest` rule and the other seeds of its setting (docs/reports.md). Metrics are "
           "means over the n seeds ± the half-width of their 95 % confidence interval (Student t); params, "
           "flops_g, firing_rate and energy_uj are those of the chosen run; "
           + (f"`mse_vs_{baseline}` is the MSE difference to {baseline} with its 95 % interval (Welch t over seeds; "
              "one seed each: paired bootstrap over the test sequences). " if baseline else "")
           + "'—' = not available." + (f" {tuning_note[0].upper()}{tuning_note[1:]}." if tuning_note else ""), ""]
    if baseline and not any(run.cell == baseline for run in runs):
        md += [f"**No run of the baseline `{baseline}`** under these runs, so the `mse_vs_{baseline}` columns are "
               f"empty: add it to the cells (`--cells {baseline},...`) or pass `--baseline` a cell that has runs.", ""]
    if missing:
        md += ["## Planned runs missing from this report", ""] + [f"* {line}" for line in missing] + [""]
    md += ["## Overall ranking (mean MSE rank over the datasets a cell ran on, cells that ran on more datasets "
           "first; ranks of means: see the intervals below)", "",
           "| cell | mean rank | datasets |", "|---|---|---|"]
    md += [f"| {c} | {r:.2f} | {n} |" for c, r, n in overall_ranking(rows)] + [""]
    for dataset, cells in groups.items():
        md += [f"## {DATASET_TITLES.get(dataset, dataset)}", "", summary_markdown(rows, dataset, baseline)]
        md += [f"* {note}" for note in (left_out_note(runs, group) for group in cells.values()) if note]
        md += [""] if md[-1] != "" else []
        for caption, path in dataset_figures(dataset, cells, analyses, fig_dir):
            md += [f"**{caption}**", "", f"![{caption}]({path.relative_to(out_dir).as_posix()})", ""]
    if configs_root is not None:
        md += paper_size_section(Path(configs_root), list(picked) or ["mmnist"])
    md += ["## Paper tables (ours beside published)", ""]
    md += [render(result, "markdown") for result in tables.values()]
    text = "\n".join(md)
    report = atomic_write_text(out_dir / "report.md", text)
    if html or html_report:
        atomic_write_text(out_dir / "report.html", markdown_to_html(text))
    return report


def paper_size_section(configs_root: Path, datasets: list[str]) -> list[str]:
    """Params/FLOPs of the paper-size networks of stcbench/configs/<dataset>/<cell>.yaml (computed, not trained)."""
    from stcbench.reports.analysis import paper_size_costs

    rows = paper_size_costs(configs_root, [d for d in datasets if (configs_root / d).is_dir()])
    if not rows:
        return []
    lines = ["## Cost of the paper-size networks (computed from stcbench/configs/<dataset>/<cell>.yaml)", "",
             "Parameters and FLOPs (fvcore multiply-accumulates, one test sequence, batch 1) of the "
             "3x256 networks; compare with STC-LIF Table 7 (MMNIST: LIF 3.305M / 64.346G, "
             "STC-LIF 3.922M / 76.449G).", "",
             "| dataset | cell | params | FLOPs (G) | steps |", "|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['cell']} | {r['params']:,} | {r['flops'] / 1e9:.3f} | {r['steps']} |"
              if "error" not in r else f"| {r['dataset']} | {r['cell']} | {MISSING} | {MISSING} | not built: "
              f"{r['error'][:80]} |" for r in rows]
    return lines + [""]


REPORT_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em;line-height:1.4}"
                "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
                "font-size:12px}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 2px}img{max-width:100%}")


def markdown_to_html(text: str, title: str = "stcbench report") -> str:
    """The report's Markdown as one HTML page: CommonMark plus tables (markdown-it-py); raw HTML
    in the text is escaped, not passed through."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{REPORT_STYLE}</style></head><body>\n{body}</body></html>\n")
