"""Regenerate the published tables from run directories: our number beside the paper's.

`build_table(key, runs)` gives a `TableResult` (header + rows of strings); `render` writes
it as Markdown, LaTeX or CSV.  A value we have no run for is shown as missing
(`MISSING`, "—"; an empty field in CSV) and never filled in.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field

from stcbench.errors import ConfigError
from stcbench.reports.published import (STC_TABLES, TABLE_KEYS, Column, PublishedTable,
                                        anchors_for)
from stcbench.cell_names import normalize_name
from stcbench.reports import stats
from stcbench.reports.runs import (DEFAULT_BASELINE, VIDEO_METRICS, Run, RunGroup, left_out_note, select_group,
                                   select_run, setting_key)

MISSING = "—"
FORMATS = ("markdown", "latex", "csv")
FORMAT_SUFFIX = {"markdown": "md", "latex": "tex", "csv": "csv"}


@dataclass
class TableResult:
    key: str
    title: str
    source: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None, decimals: int) -> str:
    return MISSING if value is None else fixed(value, decimals)


def fixed(value: float, decimals: int, sign: str = "") -> str:
    """`value` with `decimals` decimals (`sign` "+": signed); a magnitude of 1e15 or more (a diverged run's) in
    exponent form instead of its hundreds of digits."""
    return f"{value:{sign}.{decimals}f}" if not math.isfinite(value) or abs(value) < 1e15 else f"{value:{sign}.4g}"


def our_value(column: Column, run: Run | None, runs: list[Run], cell: str, options: dict,
              selection: str) -> float | None:
    if run is None:
        return None
    raw = run.value(column.split, column.metric, column.frame)
    if raw is None and column.split == "test_long" and column.dataset == "kth":
        long_run = select_run(runs, "kth40", cell, options, selection)    # a separate 10->40 test run
        raw = long_run.value("test", column.metric, column.frame) if long_run else None
    return None if raw is None else raw * column.scale


def group_values(column: Column, group: RunGroup | None, runs: list[Run], cell: str, options: dict,
                 selection: str) -> list[float]:
    """Our value (published units) of every seed of `group` that has one."""
    if group is None:
        return []
    found = (our_value(column, run, runs, cell, options, selection) for run in group.runs)
    return [value for value in found if value is not None]


def format_summary(values: list[float], decimals: int, n_row: int | None = None) -> str:
    """`mean ± half-width` over seeds (the value alone for one seed); `(n = k)` when fewer seeds
    than the row's have this value."""
    summary = stats.summarize(values)
    if summary is None and values and all(math.isnan(value) for value in values):
        return f"{MISSING} (n = 0)"                                 # every run diverged
    if summary is None:
        return _fmt(values[0] if values else None, decimals)      # only non-finite values (PSNR inf)
    text = fixed(summary.mean, decimals)
    if summary.half_width is not None:
        text += f" ± {fixed(summary.half_width, decimals)}"
    if n_row is not None and summary.n != n_row:
        text += f" (n = {summary.n})"
    return text


def matching_baseline(base: RunGroup | None, ours: RunGroup | None, runs: list[Run],
                      selection: str) -> RunGroup | None:
    """The baseline runs to compare `ours` with: where the baseline cell has runs of ours' setting (the same config
    but for the cell), those (the selection rule's pick among them and its other seeds), even when its row shows
    another setting (a newer variant made with --tag, say); else those of ours' scale and epochs; else the row's
    own group, and the comparison names the keys in which the settings differ."""
    if base is None or ours is None or not settings_apart(ours, base):
        return base
    rep = base.representative
    candidates = [run for run in runs if run.complete and run.dataset == rep.dataset and run.cell == rep.cell
                  and run.row_options() == rep.row_options()]
    same = [run for run in candidates if not settings_apart(ours, RunGroup([run], run))]
    if same:
        return select_group(same, rep.dataset, rep.cell, None, selection) or base
    return baseline_at_scale(base, ours, runs, selection)


def baseline_at_scale(base: RunGroup | None, ours: RunGroup | None, runs: list[Run], selection: str) -> RunGroup | None:
    """The baseline's group of `ours`' scale and epochs where the baseline has runs of it (the selection rule's
    pick may be of another scale, e.g. one newer quick run among small ones); else the pick itself."""
    if base is None or ours is None or base.describe_scale() == ours.describe_scale():
        return base
    wanted = ours.describe_scale()
    alike = [run for run in runs if run.describe_scale() == wanted]
    rep = base.representative
    return select_group(alike, rep.dataset, rep.cell, None, selection) or base


def comparison_text(column: Column, ours: RunGroup | None, base: RunGroup | None, ours_values: list[float],
                    base_values: list[float], shown: RunGroup | None = None) -> str:
    """Mean difference to the baseline with its 95 % interval and the verdict (docs/reports.md); `shown`: the
    baseline's group that its own row shows, named where the comparison used other runs of it."""
    if ours is None or base is None or not ours_values or not base_values:
        return MISSING
    if [r.path for r in ours.runs] == [r.path for r in base.runs]:
        return "baseline"
    if shown is not None and [r.path for r in shown.runs] != [r.path for r in base.runs]:
        return _comparison(column, ours, base, ours_values, base_values) + (
            f" (against the {base.representative.cell} runs of this setting, n = {base.n}, "
            f"{base.describe_scale()}: not those of its row)")
    return _comparison(column, ours, base, ours_values, base_values)


def _comparison(column: Column, ours: RunGroup, base: RunGroup, ours_values: list[float],
                base_values: list[float]) -> str:
    if ours.describe_scale() != base.describe_scale():
        return f"{MISSING} (other scale: {ours.describe_scale()} vs {base.describe_scale()})"
    other = settings_apart(ours, base)
    apart = f" (against {base.representative.cell} of another setting: {', '.join(other[:3])})" if other else ""
    n_ours, n_base = stats.finite_count(ours_values), stats.finite_count(base_values)
    difference, why = stats.welch_difference(ours_values, base_values), None
    if difference is None and n_ours == 1 and n_base == 1 and len(ours.runs) == 1 and len(base.runs) == 1:
        difference, why = _bootstrap(column, ours.runs[0], base.runs[0])
    if difference is None:
        if n_ours == 1 and n_base == 1:
            return "n = 1: cannot rank" + (f" ({why})" if why else "") + apart
        if stats.no_spread(ours_values, base_values):
            return "cannot rank: the same value on every seed" + apart
        return f"cannot rank: n = {n_ours} vs {n_base}" + apart
    d = column.decimals
    mean, low, high = (fixed(value, d, "+") for value in (difference.mean, difference.low, difference.high))
    text = (f"{mean} [{low}, {high}] "
            f"{stats.verdict(difference, column.higher_is_better)}")
    if difference.method != "welch":
        text += f" (1 seed each: bootstrap over {difference.n} test seq., not over seeds)"
    elif n_ours < ours.n or n_base < base.n:        # a seed without a finite value (diverged, or not recorded)
        text += f" (n = {n_ours} vs {n_base} of {ours.n} vs {base.n} runs)"
    return text + apart


CELL_SETTING_KEYS = ("model.cell", "model.cell_options", "plugin_code")      # what differs between cells by design
RECORDED_LATER = ("data_checksum", "global_batch_size")       # absent from older records: unknown, not different


def settings_apart(ours: RunGroup, base: RunGroup) -> list[str]:
    """The setting keys (runs.setting_key) in which `ours` and the baseline's runs differ, beyond the cell itself:
    other data, width, epochs, ... make the difference no comparison of the cells alone. Paper-scale runs follow
    each cell's published protocol (its own config), so theirs differ by design and are not flagged."""
    from stcbench.engine.resume import differences

    if ours.representative.scale == base.representative.scale == "paper":
        return []
    mine, theirs = (json.loads(setting_key(group.representative)) for group in (ours, base))
    return [key for key, old, new in differences(mine, theirs)
            if not any(key == cell_key or key.startswith(f"{cell_key}.") for cell_key in CELL_SETTING_KEYS)
            and not (key in RECORDED_LATER and (old is None or new is None))]


def _bootstrap(column: Column, ours: Run, base: Run) -> tuple[stats.Difference | None, str | None]:
    """One seed each: the paired bootstrap over the test sequences both were tested on, or None and why the
    sequences that pair give no interval (None: no values that pair)."""
    if column.split != "test" or column.frame is not None:
        return None, None
    a, b = ours.per_sequence(column.metric), base.per_sequence(column.metric)
    if a is None or b is None or not ours.tested_on_same_sequences(base):
        return None, None
    difference = stats.paired_bootstrap(a * column.scale, b * column.scale)
    return difference, None if difference is not None else stats.no_bootstrap_reason(a, b)


def compared_columns(table: PublishedTable) -> tuple[Column, ...]:
    """Columns that get a difference-to-baseline column: whole-test-set metrics."""
    return tuple(c for c in table.columns if c.split is not None and c.frame is None)


def _groups_for_row(table: PublishedTable, cell: str, options: dict, runs: list[Run],
                    selection: str) -> dict[str, RunGroup | None]:
    return {ds: select_group(runs, ds, cell, options, selection) for ds in table.datasets}


def _per_dataset(groups: dict[str, RunGroup | None], describe) -> str:
    """One text for a one-dataset table; `ds: text; ...` for tables spanning datasets."""
    if len(groups) == 1:
        (group,) = groups.values()
        return MISSING if group is None else describe(group)
    found = {ds: g for ds, g in groups.items() if g is not None}
    if not found:
        return MISSING
    texts = [describe(g) for g in found.values()]
    if len(set(texts)) == 1:
        return texts[0]
    return "; ".join(f"{ds}: {text}" for ds, text in zip(found, texts))


def _header(table: PublishedTable, baseline: str | None) -> list[str]:
    header = ["Method"]
    for col in table.columns:
        header += [f"{col.label} (ours)", f"{col.label} (paper)"]
    header.append("n")
    if baseline:
        header += [f"{col.label} vs {baseline}" for col in compared_columns(table)]
    return header + ["scale", "selected on"]


def _cells(table: PublishedTable, label: str, cell: str, options: dict, published: dict, runs: list[Run],
           selection: str, baselines: dict[str, RunGroup | None] | None,
           groups: dict[str, RunGroup | None] | None = None) -> list[str]:
    groups = groups if groups is not None else _groups_for_row(table, cell, options, runs, selection)
    row_n = {ds: g.n for ds, g in groups.items() if g is not None}
    cells, values = [label], {}
    for col in table.columns:
        values[col.key] = group_values(col, groups[col.dataset], runs, cell, options, selection)
        cells += [format_summary(values[col.key], col.decimals, row_n.get(col.dataset)),
                  _fmt(published(col), col.decimals)]
    cells.append(_per_dataset(groups, lambda g: str(g.n)))
    if baselines is not None:
        alike = {ds: matching_baseline(baselines[ds], group, runs, selection) for ds, group in groups.items()}
        for col in compared_columns(table):
            base = alike[col.dataset]
            base_values = group_values(col, base, runs, base.representative.cell, {}, selection) if base else []
            cells.append(comparison_text(col, groups[col.dataset], base, values[col.key], base_values,
                                         shown=baselines[col.dataset]))
    return cells + [_per_dataset(groups, lambda g: g.describe_scale()),
                    _per_dataset(groups, lambda g: g.selected_on)]


def _anchor_rows(table: PublishedTable, runs: list[Run], selection: str,
                 baselines: dict[str, RunGroup | None] | None) -> list[list[str]]:
    """OpenSTL ConvLSTM rows, shown only where we have a convlstm run on that dataset."""
    if len(table.datasets) != 1 or table.key in ("4", "7", "11"):
        return []
    dataset = table.datasets[0]
    if select_run(runs, dataset, "convlstm", None, selection) is None:
        return []
    rows = []
    for anchor in anchors_for(dataset, "convlstm"):
        def published(col: Column, anchor=anchor):
            return anchor.values.get(col.metric) if col.split == "test" else None
        rows.append(_cells(table, f"{anchor.method} (OpenSTL, {anchor.epochs} ep)", "convlstm", {}, published, runs,
                           selection, baselines))
    return rows


def build_table(key: str, runs: list[Run], selection: str = "newest",
                baseline: str | None = DEFAULT_BASELINE) -> TableResult:
    """The published table `key` with ours beside it: mean ± 95 % interval over seeds, n, and (unless
    `baseline` is None) each whole-test-set metric's difference to the `baseline` cell."""
    key = str(key)
    if key not in STC_TABLES:
        raise ConfigError(f"unknown table {key!r}; choose one of {list(TABLE_KEYS)} or 'all'")
    table = STC_TABLES[key]
    baseline = normalize_name(baseline) if baseline else None
    baselines = ({ds: select_group(runs, ds, baseline, None, selection) for ds in table.datasets}
                 if baseline else None)
    row_groups = [_groups_for_row(table, row.cell, row.options, runs, selection) for row in table.rows]
    rows = [_cells(table, row.label, row.cell, row.options, lambda col, row=row: row.values.get(col.key), runs,
                   selection, baselines, groups) for row, groups in zip(table.rows, row_groups)]
    rows += _anchor_rows(table, runs, selection, baselines)
    notes = [n for n in (table.notes,) if n]
    notes.append(f"Run per row: selection '{selection}' (docs/reports.md); '{MISSING}' = no run, never filled in.")
    notes.append(SEEDS_NOTE)
    if baseline:
        notes.append(COMPARISON_NOTE.format(baseline=baseline, directions=VIDEO_DIRECTIONS))
    notes += [note for row, groups in zip(table.rows, row_groups) for group in groups.values()
              if (note := left_out_note(runs, group, row.options))]
    return TableResult(key, f"Table {key}: {table.title}", table.source, _header(table, baseline), rows, notes)


SUMMARY_KEY = "summary"
SUMMARY_METRICS = VIDEO_METRICS


def summary_table(runs: list[Run], selection: str = "newest", baseline: str | None = DEFAULT_BASELINE,
                  source: str = "our runs") -> TableResult:
    """Every cell that has runs (its default options), per dataset (a plugin task's runs: per task): each metric
    its task reports (metrics.json `reported_metrics`) as mean ± 95 % interval over seeds in metrics.json's units,
    n, and the difference to `baseline` (the cells of no paper table, a new neuron's among them, show here).
    Memory-probe runs have a table of their own (--table memory)."""
    baseline = normalize_name(baseline) if baseline else None
    runs = [run for run in runs if run.complete and run.task != "memory" and run.reported_metrics]
    reported = {dataset: _metrics_of(run for run in runs if run.dataset == dataset)
                for dataset in sorted({run.dataset for run in runs})}
    named = list(dict.fromkeys((key, label) for found in reported.values() for key, label, _, _ in found))
    header = ["Dataset", "Cell"] + [label for _, label in named] + ["n"]
    header += [f"{label} vs {baseline}" for _, label in named] if baseline else []
    rows, left_out = [], []
    for dataset, found in reported.items():
        own = {(key, label): (higher, decimals) for key, label, higher, decimals in reversed(found)}   # first wins
        columns = [Column(key, label, dataset, key, higher_is_better=own[key, label][0],
                          decimals=own[key, label][1]) if (key, label) in own else None for key, label in named]
        base = select_group(runs, dataset, baseline, None, selection) if baseline else None
        for cell in sorted({run.cell for run in runs if run.dataset == dataset}):
            group = select_group(runs, dataset, cell, None, selection)
            if group is None:
                continue
            rows.append(_summary_row(dataset, cell, group, columns, runs, selection, baseline, base))
            left_out += [note for note in (left_out_note(runs, group),) if note]
    notes = [f"Every cell with runs at its default cell options (one setting each: that of the run the selection picks) "
             f"and the metrics its task reports; values in the units of metrics.json (not the paper's). Run per "
             f"cell: selection '{selection}' (docs/reports.md).",
             SEEDS_NOTE]
    if baseline:
        metrics = [metric for found in reported.values() for metric in found]
        notes.append(COMPARISON_NOTE.format(baseline=baseline, directions=directions(metrics)))
        notes += [UNDIRECTED_NOTE] if any(higher is None for _, _, higher, _ in metrics) else []
    notes += left_out
    return TableResult(SUMMARY_KEY, "Summary: every cell with runs", source, header + ["scale", "selected on"],
                       rows, notes)


def directions(metrics: list[tuple]) -> str:
    """'lower MSE/MAE, higher SSIM/PSNR' for the (key, label, higher is better, decimals) of a table's metrics."""
    lower = "/".join(dict.fromkeys(label for _, label, higher, _ in metrics if higher is False))
    higher = "/".join(dict.fromkeys(label for _, label, higher, _ in metrics if higher is True))
    return ", ".join(filter(None, [lower and f"lower {lower}", higher and f"higher {higher}"])) or "no metric's direction"


def _metrics_of(runs) -> list[tuple]:
    """The metrics that any of `runs` reports, in the order of their first declaration."""
    return list(dict.fromkeys(metric for run in runs for metric in run.reported_metrics))


def _summary_row(dataset: str, cell: str, group: RunGroup, columns: list[Column | None], runs: list[Run],
                 selection: str, baseline: str | None, base: RunGroup | None) -> list[str]:
    """One summary row; a column the dataset's task does not report shows the missing mark."""
    values = [group_values(col, group, runs, cell, {}, selection) if col else None for col in columns]
    cells = [dataset, cell] + [format_summary(found, col.decimals, group.n) if col else MISSING
                               for col, found in zip(columns, values)]
    cells.append(str(group.n))
    if baseline:
        alike = matching_baseline(base, group, runs, selection)
        cells += [comparison_text(col, group, alike, found, group_values(col, alike, runs, baseline, {}, selection),
                                  shown=base) if col else MISSING for col, found in zip(columns, values)]
    return cells + [group.describe_scale(), group.selected_on]


SEEDS_NOTE = ("Ours: mean ± half-width of the 95 % confidence interval over seeds (Student t, n - 1 degrees of "
              "freedom); n = seeds (runs of the same setting); one seed shows its value alone.")
COMPARISON_NOTE = ("'vs {baseline}': ours - {baseline} on the same dataset, mean difference [95 % interval]: Welch t "
                   "over seeds; with one seed on each side, a paired bootstrap over the test sequences (at least 10; 10,000 "
                   "resamples, percentile interval; it covers the test sequences' noise, not another seed's). "
                   "'better' / 'worse' when the interval excludes 0 ({directions} is better), "
                   "else 'not distinguishable'.")
VIDEO_DIRECTIONS = "lower MSE/MAE, higher SSIM/PSNR"
UNDIRECTED_NOTE = ("A metric its task reports without a direction (which way is better): 'higher' / 'lower' when the "
                   "interval excludes 0.")


def has_runs(result: TableResult) -> bool:
    """Whether any row of `result` has a run of ours (its n is not missing)."""
    n = result.header.index("n")
    return any(cells[n] != MISSING for cells in result.rows)


# --- rendering ---------------------------------------------------------------------------------
def markdown_cell(text) -> str:
    """A value as one Markdown table cell: a '|' it holds (a name from a record, say) cannot open another column."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: TableResult) -> str:
    lines = [f"### {result.title}", "", f"Source: {result.source}", "",
             "| " + " | ".join(map(markdown_cell, result.header)) + " |",
             "|" + "|".join("---" for _ in result.header) + "|"]
    lines += ["| " + " | ".join(map(markdown_cell, cells)) + " |" for cells in result.rows]
    lines += [""] + [f"* {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "->": r"$\to$",
                  "±": r"$\pm$", "<": r"$<$", ">": r"$>$", MISSING: "---"}


def _latex(text: str) -> str:
    """Text as LaTeX source: special characters escaped (a backslash first, so that the escapes' own
    backslashes stay), the missing mark as an em dash."""
    text = text.replace("\\", "\x00")
    for raw, escaped in _LATEX_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text.replace("\x00", r"\textbackslash{}")


def to_latex(result: TableResult) -> str:
    spec = "l" + "r" * (len(result.header) - 3) + "ll"
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{_latex(result.title)}. Source: {_latex(result.source)}.}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex(h) for h in result.header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex(c) for c in cells) + r" \\" for cells in result.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if result.notes:
        lines += [r"\par\smallskip", r"{\footnotesize " + r" \\ ".join(_latex(note) for note in result.notes) + "}"]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?inf|nan"
_SUMMARY_CELL = re.compile(rf"^({_NUMBER})(?: ± ({_NUMBER}))?(?: (.*))?$")
_COMPARISON_CELL = re.compile(rf"^({_NUMBER}) \[({_NUMBER}), ({_NUMBER})\] (.*)$")


def to_csv(result: TableResult) -> str:
    """One row per table row, numbers in columns of their own for analysis: a `mean ± half-width` column becomes
    `<column>` and `<column> ci95`, a comparison column `<column>` (the mean difference), `<column> low`,
    `<column> high` and `<column> verdict`; what a cell adds in parentheses goes to `<column> note`, and a cell
    that is no number keeps its text in the first of its columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    kinds = [_column_kind(name, [cells[i] for cells in result.rows]) for i, name in enumerate(result.header)]
    noted = [kind != "text" and any(_csv_values(cells[i], kind)[-1] for cells in result.rows)
             for i, kind in enumerate(kinds)]
    writer.writerow(["table"] + [column for name, kind, note in zip(result.header, kinds, noted)
                                 for column in _csv_names(name, kind, note)])
    for cells in result.rows:
        writer.writerow([result.key] + [csv_safe(value) for cell, kind, note in zip(cells, kinds, noted)
                                        for value in _csv_values(cell, kind)[:None if note or kind == "text" else -1]])
    return buffer.getvalue()


def csv_safe(value):
    """A CSV field that a spreadsheet will not run as a formula: text starting with '=', '+', '-', '@' (other than a
    number) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not re.fullmatch(_NUMBER, value):
        return "'" + value
    return value


def _column_kind(name: str, cells: list[str]) -> str:
    if any(_COMPARISON_CELL.match(cell) for cell in cells):           # "d [low, high] verdict"
        return "comparison"
    return "summary" if any(" ± " in cell and _SUMMARY_CELL.match(cell) for cell in cells) else "text"


def _csv_names(name: str, kind: str, note: bool) -> list[str]:
    names = {"summary": [name, f"{name} ci95"], "comparison": [name, f"{name} low", f"{name} high",
                                                                f"{name} verdict"], "text": [name]}[kind]
    return names + [f"{name} note"] if note else names


def _csv_values(cell: str, kind: str) -> list[str]:
    """The cell's values in its columns, the note last (a text column: the cell alone)."""
    cell = "" if cell == MISSING else cell
    if kind == "summary":
        found = _SUMMARY_CELL.match(cell)
        return [found[1], found[2] or "", found[3] or ""] if found else [cell, "", ""]
    if kind == "comparison":
        difference, low, high, verdict = comparison_fields(cell)
        verdict, _, note = verdict.partition(" (")
        return [difference, low, high, verdict, f"({note}" if note else ""]
    return [cell]


def comparison_fields(cell: str) -> list[str]:
    """`-5.32 [-7.62, -3.01] better` as [mean difference, low, high, verdict]; other text as the verdict."""
    found = _COMPARISON_CELL.match(cell)
    return [found[1], found[2], found[3], found[4]] if found else ["", "", "", "" if cell == MISSING else cell]


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render(result: TableResult, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of {list(FORMATS)}")
    return RENDERERS[fmt](result)


def table_keys(selector: str) -> tuple[str, ...]:
    """The tables `stcbench table --table` names: one paper table, the summary of every cell, or all of them."""
    selector = str(selector)
    if selector == "all":
        return (SUMMARY_KEY, *TABLE_KEYS)
    if selector != SUMMARY_KEY and selector not in STC_TABLES:
        raise ConfigError(f"unknown table {selector!r}; choose one of {list(TABLE_KEYS)}, '{SUMMARY_KEY}', 'all' or "
                          f"'memory'")
    return (selector,)


def make_table(key: str, runs: list[Run], selection: str = "newest",
               baseline: str | None = DEFAULT_BASELINE, source: str = "our runs") -> TableResult:
    """`table_keys`' table `key`: the summary (its source named `source`) or a paper table."""
    if key == SUMMARY_KEY:
        return summary_table(runs, selection, baseline, source)
    return build_table(key, runs, selection, baseline)
