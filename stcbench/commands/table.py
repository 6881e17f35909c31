"""`stcbench table`: regenerate the STC-LIF paper tables from run directories."""
from __future__ import annotations

import sys
from pathlib import Path

from stcbench.errors import ConfigError
from stcbench.reports.runs import DEFAULT_BASELINE, SELECTIONS

FORMATS = ("markdown", "latex", "csv")     # = stcbench.reports.tables.FORMATS (a test checks), without importing it


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "table", help="the paper's tables (ours beside published) or the memory probes, from run directories",
        description="Each published number beside ours, with the scale and selection split of the run used; "
                    "several seeds of a setting as mean ± 95 % interval. Missing runs are shown as '—', never "
                    "filled in. --table memory: the memory-probe runs over seeds instead.")
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="folder searched (with its subfolders) for run directories (default runs/)")
    parser.add_argument("--table", default="all",
                        help="2, 3, 4, 5, 6, 7, 11 (a paper table), summary (every cell with runs, a new "
                             "neuron's too, per dataset or task, the metrics each task reports) or all (default: "
                             "the summary and every paper table); memory: the memory probes over seeds")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default markdown)")
    parser.add_argument("--select", choices=SELECTIONS, default="newest",
                        help="which run represents a (dataset, cell), or with --table memory a (task, cell, seed): "
                             "newest complete (default) or best-val")
    parser.add_argument("--out", type=Path, default=None,
                        help="write table_<key>.<ext> files here instead of printing")
    add_baseline_option(parser)
    parser.set_defaults(func=run)


def add_baseline_option(parser) -> None:
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"cell every row is compared with (mean difference, 95 %% interval, better / worse / "
                             f"not distinguishable; default {DEFAULT_BASELINE}); 'none' leaves the comparison out")


def resolve_baseline(name: str | None, runs: list) -> str | None:
    """The baseline cell's registry name, None for 'none'; a name that is neither a registered cell nor
    the cell of a run is a clear error."""
    if name is None or str(name).lower() == "none":
        return None
    from stcbench.cells.registry import get_cell_info, normalize_name

    try:
        return get_cell_info(name).name
    except ConfigError:
        if any(run.cell == normalize_name(name) for run in runs):
            return normalize_name(name)
        raise ConfigError(f"--baseline {name!r} is no registered cell and no run has it; pass a cell with runs "
                          f"(e.g. --baseline {DEFAULT_BASELINE}) or --baseline none") from None


def write_tables(runs_root: Path, keys, fmt: str, out: Path | None, selection: str = "newest",
                 baseline: str | None = DEFAULT_BASELINE) -> list[Path]:
    from stcbench.atomic import write_text as atomic_write_text
    from stcbench.reports.runs import (discover_runs, edited_plugin_notes, is_tabled_tuning_run, leave_out_tuning,
                                       warn_non_finite)
    from stcbench.reports.tables import FORMAT_SUFFIX, has_runs, make_table, render

    runs, tuning_note = leave_out_tuning(discover_runs(runs_root), is_tabled_tuning_run)
    baseline = baseline_with_runs(resolve_baseline(baseline, runs), runs, runs_root)
    tables = {key: make_table(key, runs, selection, baseline, source=f"the runs under {runs_root}") for key in keys}
    edited = edited_plugin_notes(runs)
    for table in tables.values():
        table.notes += ([tuning_note] if tuning_note else []) + edited
    if not any(has_runs(table) for table in tables.values()):
        raise ConfigError(no_runs_message(runs_root, keys, runs))
    warn_non_finite(runs)
    texts = {key: render(table, fmt) for key, table in tables.items()}
    if out is None:
        sys.stdout.write("\n".join(texts.values()))
        return []
    return [atomic_write_text(Path(out) / f"table_{key}.{FORMAT_SUFFIX[fmt]}", text) for key, text in texts.items()]


def baseline_with_runs(baseline: str | None, runs: list, runs_root: Path) -> str | None:
    """`baseline` if a run has it. Without such runs: the default baseline's columns are left out, with a line
    saying so; a baseline the user named is an error listing the cells that have runs (as --table memory)."""
    if not baseline or not runs or any(run.cell == baseline for run in runs):
        return baseline
    cells = ", ".join(sorted({run.cell for run in runs}))
    if baseline != DEFAULT_BASELINE:
        raise ConfigError(f"--baseline {baseline}: no run under {runs_root} has that cell; pass one of {cells} or "
                          f"--baseline none")
    print(f"note: no run under {runs_root} has the default baseline {baseline}, so the tables have no comparison "
          f"columns; pass --baseline one of {cells} for them", file=sys.stderr)
    return None


def no_runs_message(runs_root: Path, keys, runs: list) -> str:
    """Why no table has a run of ours: what `runs_root` holds, and what to pass instead."""
    from stcbench.reports.launch import counted
    from stcbench.reports.published import STC_TABLES

    which = f"table {keys[0]}" if len(keys) == 1 else "any of the tables"
    needed = ", ".join(sorted({dataset for key in keys if key in STC_TABLES for dataset in STC_TABLES[key].datasets}))
    held = "it holds no run (no metrics.json below it)"
    if runs and not any(run.is_video for run in runs):
        tasks = sorted({run.task for run in runs})
        if "summary" in keys and tasks != ["memory"]:
            return (f"no runs for {which} under {runs_root}: its {counted(len(runs), 'run')} of the "
                    f"{' and '.join(tasks)} task{'s' * (len(tasks) > 1)} record no number in their test block "
                    f"(metrics.json `test`); the module must log its test metrics as <test_log_prefix>/<name> "
                    f"(docs/architecture.md, Adding a task)")
        table = "--table memory for memory-probe runs" if tasks == ["memory"] else "--table summary for a task's runs"
        return (f"no runs for {which} under {runs_root}: it holds {counted(len(runs), 'run')} of the "
                f"{' and '.join(tasks)} task{'s' * (len(tasks) > 1)} and no video run; pass {table}, or --runs the "
                f"folder of a video suite's runs")
    if runs:
        what = (f"none of a cell and dataset ({needed}) {which} has a row for" if needed
                else "none of them a video run (a metrics.json with a test MSE)")
        held = f"it holds {counted(len(runs), 'run')} of {', '.join(sorted({run.dataset for run in runs}))}, {what}"
    return (f"no runs for {which} under {runs_root}: {held}; pass --runs the folder of a video suite's runs "
            f"(e.g. --runs results/quick), or --table memory for memory-probe runs")


def write_memory_table(runs_root: Path, fmt: str, out: Path | None, baseline: str | None,
                       selection: str = "newest") -> list[Path]:
    from stcbench.atomic import write_text as atomic_write_text
    from stcbench.reports.tables import FORMAT_SUFFIX, render

    text = render(memory_table_for(runs_root, baseline, selection=selection), fmt)
    if out is None:
        sys.stdout.write(text)
        return []
    return [atomic_write_text(Path(out) / f"table_memory.{FORMAT_SUFFIX[fmt]}", text)]


def memory_table_for(runs_root: Path, baseline: str | None, strict: bool = True, records: list | None = None,
                     source: str | None = None, selection: str = "newest"):
    """The memory table of the runs under `runs_root` (or of `records`). The default baseline is left out
    when no run has it; another missing baseline is a clear error naming the cells that have runs (with
    `strict`; else the column is left out)."""
    from stcbench.reports.memory import cell_label, discover_memory_runs, memory_baseline, memory_table
    from stcbench.reports.runs import is_tuning_record, leave_out_tuning

    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        what = "is a file" if runs_root.exists() else "does not exist"
        raise ConfigError(f"--runs {runs_root} {what}; pass the folder of a memory suite "
                          f"(e.g. --runs results/memory-small-sweep)")
    if records is None:
        records = discover_memory_runs(runs_root, warn=lambda text: print(f"warning: {text}", file=sys.stderr))
        warn_diverged_memory_runs(records)
    records, tuning_note = leave_out_tuning(records, is_tuning_record)
    if not records:
        raise ConfigError(f"no memory runs under {runs_root}; pass the folder of a memory suite "
                          f"(e.g. --runs results/memory-small-sweep)")
    base = memory_baseline(baseline, records)
    asked = strict and baseline is not None and str(baseline).lower() not in ("none", DEFAULT_BASELINE)
    if base is None and asked:
        cells = sorted({cell_label(record) for record in records})
        raise ConfigError(f"--baseline {baseline!r}: no memory run has that cell; pass one of {', '.join(cells)} "
                          f"or --baseline none")
    table = memory_table(records, base, source=source or f"the memory runs under {runs_root}", selection=selection)
    table.notes += [tuning_note] if tuning_note else []
    return table


def warn_diverged_memory_runs(records: list[dict]) -> None:
    """A warning per memory run whose test loss is not finite: its row shows the finite seeds only."""
    import math

    from stcbench.reports.memory import loss_share

    for record in records:
        if not math.isfinite(loss_share(record)):
            print(f"warning: the memory run {record['path']} has test loss {record['test'].get('loss')}, not finite: "
                  f"it is left out of its row's mean, so that row's n is smaller", file=sys.stderr)


def run(args) -> int:
    from stcbench.atomic import check_output_folder
    from stcbench.reports.tables import table_keys

    if args.out is not None:
        from stcbench.engine.run_folder import refuse_folder_inside_run

        check_output_folder(args.out, "--out", "--out")
        refuse_folder_inside_run(args.out, "--out")
    if str(args.table) == "memory":
        for path in write_memory_table(args.runs, args.format, args.out, args.baseline, args.select):
            print(path)
        return 0

    written = write_tables(args.runs, table_keys(args.table), args.format, args.out, args.select, args.baseline)
    for path in written:
        print(path)
    return 0
