"""Regenerate the published tables from run directories: our number beside the paper's.

`build_table(key, runs)` gives a `TableResult` (header + rows of strings); `render` writes
it as Markdown, LaTeX or CSV.  A value we have no run for is shown as missing
(`MISSING`, "—"; an empty field in CSV) and never filled in.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from stcbench.errors import ConfigError
from stcbench.reports.published import (ANCHOR_COLS, STC_TABLES, TABLE_KEYS, Column, PublishedTable, Row,
                                        anchors_for)
from stcbench.reports.runs import Run, select_run

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
    return MISSING if value is None else f"{value:.{decimals}f}"


def our_value(column: Column, run: Run | None, runs: list[Run], cell: str, options: dict,
              selection: str) -> float | None:
    if run is None:
        return None
    raw = run.value(column.split, column.metric, column.frame)
    if raw is None and column.split == "test_long" and column.dataset == "kth":
        long_run = select_run(runs, "kth40", cell, options, selection)    # a separate 10->40 test run
        raw = long_run.value("test", column.metric, column.frame) if long_run else None
    return None if raw is None else raw * column.scale


def _runs_for_row(table: PublishedTable, row: Row, runs: list[Run], selection: str) -> dict[str, Run | None]:
    return {ds: select_run(runs, ds, row.cell, row.options, selection) for ds in table.datasets}


def _scale_text(picked: dict[str, Run | None], multi: bool) -> tuple[str, str]:
    """(scale, selected-on) cells; tables spanning datasets list them per dataset."""
    def one(run: Run | None, attr: str) -> str:
        if run is None:
            return MISSING
        return run.describe_scale() if attr == "scale" else run.selected_on
    if not multi:
        (run,) = picked.values()
        return one(run, "scale"), one(run, "selected_on")
    found = {ds: r for ds, r in picked.items() if r is not None}
    if not found:
        return MISSING, MISSING
    return ("; ".join(f"{ds}: {one(r, 'scale')}" for ds, r in found.items()),
            "; ".join(sorted({one(r, 'selected_on') for r in found.values()})))


def _header(table: PublishedTable) -> list[str]:
    header = ["Method"]
    for col in table.columns:
        header += [f"{col.label} (ours)", f"{col.label} (paper)"]
    return header + ["scale", "selected on"]


def _row_cells(table: PublishedTable, row: Row, runs: list[Run], selection: str) -> list[str]:
    picked = _runs_for_row(table, row, runs, selection)
    cells = [row.label]
    for col in table.columns:
        ours = our_value(col, picked[col.dataset], runs, row.cell, row.options, selection)
        cells += [_fmt(ours, col.decimals), _fmt(row.values.get(col.key), col.decimals)]
    return cells + list(_scale_text(picked, len(table.datasets) > 1))


def _anchor_rows(table: PublishedTable, runs: list[Run], selection: str) -> list[list[str]]:
    """OpenSTL ConvLSTM rows, shown only where we have a convlstm run on that dataset."""
    if len(table.datasets) != 1 or table.key in ("4", "7", "11"):
        return []
    dataset = table.datasets[0]
    run = select_run(runs, dataset, "convlstm", None, selection)
    if run is None:
        return []
    rows = []
    for anchor in anchors_for(dataset, "convlstm"):
        cells = [f"{anchor.method} (OpenSTL, {anchor.epochs} ep)"]
        for col in table.columns:
            published = anchor.values.get(col.metric) if col.split == "test" else None
            ours = our_value(col, run, runs, "convlstm", {}, selection)
            cells += [_fmt(ours, col.decimals), _fmt(published, col.decimals)]
        rows.append(cells + [run.describe_scale(), run.selected_on])
    return rows


def build_table(key: str, runs: list[Run], selection: str = "newest") -> TableResult:
    key = str(key)
    if key not in STC_TABLES:
        raise ConfigError(f"unknown table {key!r}; choose one of {list(TABLE_KEYS)} or 'all'")
    table = STC_TABLES[key]
    rows = [_row_cells(table, row, runs, selection) for row in table.rows]
    rows += _anchor_rows(table, runs, selection)
    notes = [n for n in (table.notes,) if n]
    notes.append(f"Run per row: selection '{selection}' (docs/reports.md); '{MISSING}' = no run, never filled in.")
    return TableResult(key, f"Table {key}: {table.title}", table.source, _header(table), rows, notes)


# --- rendering ---------------------------------------------------------------------------------
def to_markdown(result: TableResult) -> str:
    lines = [f"### {result.title}", "", f"Source: {result.source}", "",
             "| " + " | ".join(result.header) + " |",
             "|" + "|".join("---" for _ in result.header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in result.rows]
    lines += [""] + [f"* {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "->": r"$\to$"}


def _latex(text: str) -> str:
    if text == MISSING:
        return "--"
    for raw, escaped in _LATEX_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def to_latex(result: TableResult) -> str:
    spec = "l" + "r" * (len(result.header) - 3) + "ll"
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{_latex(result.title)}. Source: {_latex(result.source)}.}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex(h) for h in result.header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex(c) for c in cells) + r" \\" for cells in result.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(result: TableResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table"] + result.header)
    for cells in result.rows:
        writer.writerow([result.key] + ["" if c == MISSING else c for c in cells])
    return buffer.getvalue()


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render(result: TableResult, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of {list(FORMATS)}")
    return RENDERERS[fmt](result)


def table_keys(selector: str) -> tuple[str, ...]:
    selector = str(selector)
    if selector == "all":
        return TABLE_KEYS
    if selector not in STC_TABLES:
        raise ConfigError(f"unknown table {selector!r}; choose one of {list(TABLE_KEYS)} or 'all'")
    return (selector,)
