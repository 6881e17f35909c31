"""The memory-probe table over seeds (`stcbench table --table memory`, docs/reports.md).

For each (task, scale, cell): the test loss as a share of the memoryless baseline (adding 1/6, copy
10 ln 8 / (T + 20)) as mean ± 95 % Student-t interval over seeds, whether that interval lies below the
baseline (the network remembers), the copy recall accuracy, and the difference of the loss share to a
baseline cell (Welch interval over seeds, better / worse / not distinguishable).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from stcbench.reports import stats
from stcbench.strict_json import restore_non_finite
from stcbench.reports.tables import MISSING, TableResult, format_summary

REMEMBERS, AT_BASELINE, ABOVE = "below the baseline", "not distinguishable from it", "above the baseline"


def discover_memory_runs(root: Path) -> list[dict]:
    """metrics.json records of memory runs under `root` (video runs and unreadable files are skipped)."""
    records = []
    for path in sorted(Path(root).rglob("metrics.json")):
        try:
            record = restore_non_finite(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("memory_task") and isinstance(record.get("test"), dict):
            records.append({**record, "path": str(path.parent)})
    return records


def loss_share(record: dict) -> float | None:
    loss, baseline = record["test"].get("loss"), record.get("baseline")
    return loss / baseline if isinstance(loss, (int, float)) and baseline else None


def against_memoryless(shares: list[float]) -> str:
    """Where the interval of loss/baseline lies relative to 1 (the memoryless predictor)."""
    summary = stats.summarize(shares)
    if summary is None:
        return MISSING
    if summary.half_width is None:
        return "n = 1: no interval"
    if summary.mean + summary.half_width < 1:
        return REMEMBERS
    if summary.mean - summary.half_width > 1:
        return ABOVE
    return AT_BASELINE


def difference_text(ours: list[float], base: list[float]) -> str:
    difference = stats.welch_difference(ours, base)
    if difference is None:
        return f"cannot rank: n = {len(ours)} vs {len(base)}"
    return (f"{difference.mean:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}] "
            f"{stats.verdict(difference, higher_is_better=False)}")


def newest_per_seed(records: list[dict]) -> list[dict]:
    """One record per seed: the most recently finished (a rerun replaces an older run)."""
    chosen = {}
    for record in sorted(records, key=lambda r: str(r.get("finished_at", ""))):
        chosen[record.get("seed")] = record
    return list(chosen.values())


def memory_table(records: list[dict], baseline: str | None = "lif") -> TableResult:
    groups = defaultdict(list)
    for record in records:
        task = f"{record['memory_task']} T={record.get('seq_len')}"
        groups[(task, str(record.get("scale")), record["cell"])].append(record)
    groups = {key: newest_per_seed(runs) for key, runs in groups.items()}
    header = ["task", "scale", "cell", "n", "test loss / memoryless baseline", "against the memoryless baseline",
              "copy recall accuracy (chance 1/8)"]
    if baseline:
        header.append(f"loss share − {baseline}")
    rows = []
    for (task, scale, cell), runs in sorted(groups.items(), key=lambda item: (*item[0][:2], item[0][2] != baseline,
                                                                             item[0][2])):
        shares = [s for s in (loss_share(r) for r in runs) if s is not None]
        accuracies = [r["test"]["acc"] for r in runs if isinstance(r["test"].get("acc"), (int, float))]
        row = [task, scale, cell, str(len(runs)), format_summary(shares, 3) if shares else MISSING,
               against_memoryless(shares), format_summary(accuracies, 3) if accuracies else MISSING]
        if baseline:
            base_runs = groups.get((task, scale, baseline))
            if cell == baseline:
                row.append("baseline")
            elif not base_runs:
                row.append(MISSING)
            else:
                row.append(difference_text(shares, [s for s in map(loss_share, base_runs) if s is not None]))
        rows.append(row)
    notes = ["loss / baseline: test loss of the checkpoint with the lowest validation loss over the memoryless "
             "predictor's (adding: 1/6; copy: 10 ln 8 / (T + 20)); < 1 means the network remembers.",
             "mean ± 95 % Student-t interval over seeds; 'below the baseline' when the whole interval is below 1.",
             "Differences: mean over seeds minus the baseline cell's, Welch 95 % interval; lower is better."]
    return TableResult("memory", "Memory probes over seeds", "runs found under the given folder", header, rows,
                       notes)
