"""Tables over seeds: mean ± Student-t interval, n, and the comparison with a baseline cell."""
import copy
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

from stcbench.cli import main
from stcbench.reports.runs import discover_runs, select_group
from stcbench.reports.tables import build_table, render
from tests.reports.helpers import make_run, video_metrics

TEMPLATE = Path(__file__).resolve().parents[2] / "results" / "quick" / "runs" / "mmnist" / "lif" / "quick-lif-seed42"
LIF_MSE, STC_MSE = (100.0, 110.0, 120.0), (50.0, 55.0, 61.0)
LIF_SSIM, STC_SSIM = (0.60, 0.61, 0.62), (0.61, 0.60, 0.62)


def real_run(root: Path, cell: str, seed: int, mse: float, ssim: float, options: dict | None = None,
             tag: str = "") -> Path:
    """A run folder shaped like a committed one (its metrics.json and config.yaml), with our numbers."""
    metrics = json.loads((TEMPLATE / "metrics.json").read_text())
    config = yaml.safe_load((TEMPLATE / "config.yaml").read_text())
    metrics = copy.deepcopy(metrics)
    metrics.update(cell=cell, seed=seed)
    metrics["test"].update(mse=mse, ssim=ssim, mae=2 * mse)
    config["seed"], config["model"]["cell"] = seed, cell
    config["model"]["cell_options"] = dict(options or {})
    config["run"]["name"] = f"small-{cell}-seed{seed}{tag}"
    run_dir = root / "mmnist" / cell / config["run"]["name"]
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


@pytest.fixture
def seeded_root(tmp_path):
    root = tmp_path / "runs"
    for seed, (lif, stc, lif_ssim, stc_ssim) in enumerate(zip(LIF_MSE, STC_MSE, LIF_SSIM, STC_SSIM)):
        real_run(root, "lif", seed, lif, lif_ssim)
        real_run(root, "stclif", seed, stc, stc_ssim)
    return root


def row(result, label):
    return next(r for r in result.rows if r[0] == label)


def column(result, label, name):
    return row(result, label)[result.header.index(name)]


def test_rows_are_means_with_t_intervals_over_three_seeds(seeded_root):
    result = build_table("2", discover_runs(seeded_root))
    half = scipy_stats.t.ppf(0.975, 2) * np.std(LIF_MSE, ddof=1) / np.sqrt(3)
    assert column(result, "Vanilla LIF", "MSE (ours)") == f"110.0 ± {half:.1f}"
    assert column(result, "Vanilla LIF", "n") == "3" and column(result, "STC-LIF", "n") == "3"
    assert column(result, "Vanilla LIF", "MSE vs lif") == "baseline"
    assert column(result, "PLIF", "MSE vs lif") == "—"


def test_comparison_with_the_baseline_is_a_welch_interval(seeded_root):
    result = build_table("2", discover_runs(seeded_root))
    ci = scipy_stats.ttest_ind(STC_MSE, LIF_MSE, equal_var=False).confidence_interval(0.95)
    diff = np.mean(STC_MSE) - np.mean(LIF_MSE)
    assert column(result, "STC-LIF", "MSE vs lif") == f"{diff:+.1f} [{ci.low:+.1f}, {ci.high:+.1f}] better"
    assert column(result, "STC-LIF", "SSIM vs lif").endswith("not distinguishable")
    flipped = build_table("2", discover_runs(seeded_root), baseline="stclif")
    assert column(flipped, "Vanilla LIF", "MSE vs stclif").endswith("worse")
    assert "MSE vs lif" not in build_table("2", discover_runs(seeded_root), baseline=None).header


def test_cli_table_7_over_seeds(seeded_root, capsys):
    for seed, mse in enumerate((70.0, 72.0, 75.0)):
        real_run(seeded_root, "stclif", seed, mse, 0.6, options={"temporal_circuit": False}, tag="-notc")
    assert main(["table", "--runs", str(seeded_root), "--table", "7"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "| n | MSE vs lif | MAE vs lif |" in lines["Method"]
    assert "| 72.3 ± " in lines["STC-LIF w/o TC"] and "| 3 |" in lines["STC-LIF w/o TC"]
    assert "better" in lines["STC-LIF w/o TC"] and "| — | 58.3 |" in lines["STC-LIF w/o SC"]
    assert "Welch t over seeds" in out


def test_cli_rejects_an_unknown_baseline(seeded_root, capsys):
    assert main(["table", "--runs", str(seeded_root), "--baseline", "nosuchcell"]) == 2
    assert "--baseline 'nosuchcell'" in capsys.readouterr().err


def test_other_settings_and_duplicate_seeds_are_not_pooled(seeded_root):
    other = real_run(seeded_root, "lif", 7, 10.0, 0.9)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["trainer"]["max_epochs"] = 50            # another setting: its own group, not a fourth seed
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["finished_at"] = "2020-01-01T00:00:00"
    (other / "metrics.json").write_text(json.dumps(metrics))
    group = select_group(discover_runs(seeded_root), "mmnist", "lif")
    assert group.seeds == [0, 1, 2]
    again = real_run(seeded_root, "lif", 0, 104.0, 0.6, tag="-rerun")
    metrics = json.loads((again / "metrics.json").read_text())
    metrics["finished_at"] = "2030-01-01T00:00:00"          # the newer run of seed 0
    (again / "metrics.json").write_text(json.dumps(metrics))
    group = select_group(discover_runs(seeded_root), "mmnist", "lif")
    assert group.n == 3 and sorted(group.values("test", "mse")) == [104.0, 110.0, 120.0]   # newest per seed
    assert again.name in [r.path.name for r in group.runs]


def test_one_seed_uses_the_paired_bootstrap_over_sequences(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    base = rng.uniform(80, 120, 32)
    make_run(root, "mmnist", "lif", "a", test=video_metrics(base.mean(), 1, 0.5),
             per_sequence={"mse": base, "ssim": np.full(32, 0.5)})
    ours = base - 10 + rng.normal(0, 1, 32)
    make_run(root, "mmnist", "stclif", "b", test=video_metrics(ours.mean(), 1, 0.5),
             per_sequence={"mse": ours, "ssim": np.full(32, 0.5)})
    make_run(root, "mmnist", "plif", "c", test=video_metrics(90.0, 1, 0.5))          # no per-sequence record
    result = build_table("2", discover_runs(root))
    text = column(result, "STC-LIF", "MSE vs lif")
    assert text.endswith("better (1 seed each: bootstrap over 32 test seq., not over seeds)")
    assert text.startswith(f"{ours.mean() - base.mean():+.1f} [")
    assert column(result, "STC-LIF", "SSIM vs lif").startswith("+0.000 [+0.000, +0.000] not distinguishable")
    assert column(result, "PLIF", "MSE vs lif") == "n = 1: cannot rank"
    assert column(result, "STC-LIF", "MSE (ours)") == f"{ours.mean():.1f}"     # one seed: the value alone


def test_latex_and_csv_carry_the_interval(seeded_root):
    result = build_table("2", discover_runs(seeded_root))
    assert r"110.0 $\pm$ " in render(result, "latex")
    rows = list(csv.DictReader(io.StringIO(render(result, "csv"))))          # numbers in columns of their own
    lif, stc = (next(row for row in rows if row["Method"] == name) for name in ("Vanilla LIF", "STC-LIF"))
    half = scipy_stats.t.ppf(0.975, 2) * np.std(LIF_MSE, ddof=1) / np.sqrt(3)
    assert (lif["MSE (ours)"], lif["MSE (ours) ci95"]) == ("110.0", f"{half:.1f}")
    ci = scipy_stats.ttest_ind(STC_MSE, LIF_MSE, equal_var=False).confidence_interval(0.95)
    assert (float(stc["MSE vs lif low"]), float(stc["MSE vs lif high"])) == (round(ci.low, 1), round(ci.high, 1))
    assert stc["MSE vs lif verdict"] == "better" and lif["MSE vs lif verdict"] == "baseline"


def test_committed_quick_results_still_print(capsys):
    assert main(["table", "--runs", str(TEMPLATE.parents[2]), "--table", "7"]) == 0
    out = capsys.readouterr().out
    assert "| Vanilla LIF (Baseline) | 161.2 | 102.8 |" in out and "n = 1: cannot rank" in out


def tuning_run(root, seed: int) -> Path:
    """An STC-LIF run of the seeded setting marked as a tuning run (run.tuning: true in its config.yaml)."""
    tuning = real_run(root, "stclif", seed, 10.0, 0.9, tag="-sweep")
    config = yaml.safe_load((tuning / "config.yaml").read_text())
    config["run"]["tuning"] = True
    (tuning / "config.yaml").write_text(yaml.safe_dump(config))
    return tuning


def test_a_tuning_seed_is_never_pooled_with_the_reported_ones(seeded_root, capsys):
    """The seed that chose the setup (run.tuning) is of the same setting as the reported seeds; `table` and the
    report leave it out where reported runs are beside it, and say so."""
    from stcbench.reports.report import write_report

    tuning = tuning_run(seeded_root, 100)
    assert main(["table", "--runs", str(seeded_root), "--table", "2"]) == 0
    out = capsys.readouterr().out
    stc = next(line for line in out.splitlines() if line.startswith("| STC-LIF |"))
    half = scipy_stats.t.ppf(0.975, 2) * np.std(STC_MSE, ddof=1) / np.sqrt(3)
    assert stc.startswith(f"| STC-LIF | {np.mean(STC_MSE):.1f} ± {half:.1f} |") and "1 tuning run" in out
    report = write_report(seeded_root, seeded_root.parent / "report", analyse=False).read_text()
    assert "1 tuning run (run.tuning: true" in report and "| stclif | 55.33 ± " in report
    assert main(["table", "--runs", str(tuning), "--table", "2", "--baseline", "none"]) == 0       # alone: tabled
    assert "| STC-LIF | 10.0 |" in capsys.readouterr().out
    assert "share seed" not in out                                  # seed 100 is not among the reported 0-2


def test_a_tuning_run_on_a_reported_seed_is_named(seeded_root, capsys):
    """A setup chosen on seed 1 leaves seed 1's reported results tuned: the note says so."""
    tuning_run(seeded_root, 1)
    assert main(["table", "--runs", str(seeded_root), "--table", "2"]) == 0
    out = capsys.readouterr().out
    assert "The reported runs share seed 1 with the tuning runs" in out and "report seeds that no tuning" in out


def test_a_comparison_says_when_a_seed_has_no_value_and_when_no_seed_differs(tmp_path):
    """A diverged seed (NaN) leaves the comparison with fewer seeds than the row: the column says how many it
    compared; seeds that all give the same value cannot rank."""
    root = tmp_path / "runs"
    for seed, (lif, stc) in enumerate(zip(LIF_MSE, (50.0, 55.0, float("nan")))):
        real_run(root, "lif", seed, lif, 0.6)
        real_run(root, "stclif", seed, stc, 0.6)
    result = build_table("2", discover_runs(root))
    assert column(result, "STC-LIF", "MSE vs lif").endswith("better (n = 2 vs 3 of 3 vs 3 runs)")
    assert column(result, "STC-LIF", "SSIM vs lif") == "cannot rank: the same value on every seed"


def test_a_comparison_with_baseline_runs_of_another_setting_says_so(seeded_root, tmp_path):
    """The baseline's row may be of another setting than the compared cell's (its newest runs trained wider): the
    difference is then no comparison of the cells alone, and the column says in what the settings differ."""
    root = tmp_path / "wide"
    for seed, (lif, stc) in enumerate(zip(LIF_MSE, STC_MSE)):
        real_run(root, "stclif", seed, stc, 0.6)
        wide = real_run(root, "lif", seed, lif, 0.6)
        config = yaml.safe_load((wide / "config.yaml").read_text())
        config["model"]["num_hidden"] = [32, 32]
        (wide / "config.yaml").write_text(yaml.safe_dump(config))
    result = build_table("2", discover_runs(root))
    assert column(result, "STC-LIF", "MSE vs lif").endswith("better (against lif of another setting: model.num_hidden)")
    assert "another setting" not in " ".join(map(" ".join, build_table("2", discover_runs(seeded_root)).rows))


def test_csv_keeps_what_a_cell_adds_in_a_note_column(tmp_path):
    """A diverged seed's marks stay beside the numbers: `(n = 2 vs 3 ...)` goes to `<column> note`."""
    root = tmp_path / "runs"
    for seed, (lif, stc) in enumerate(zip(LIF_MSE, (50.0, 55.0, float("nan")))):
        real_run(root, "lif", seed, lif, 0.6)
        real_run(root, "stclif", seed, stc, 0.6)
    rows = list(csv.DictReader(io.StringIO(render(build_table("2", discover_runs(root)), "csv"))))
    stc = next(row for row in rows if row["Method"] == "STC-LIF")
    assert stc["MSE (ours)"] == "52.5" and stc["MSE (ours) note"] == "(n = 2)"
    assert stc["MSE vs lif verdict"] == "better" and stc["MSE vs lif note"] == "(n = 2 vs 3 of 3 vs 3 runs)"


def newer_variant(root: Path, cell: str, seed: int, mse: float, tag: str, **model) -> Path:
    """A run of `cell` in another setting (model keys changed), finished after every other run."""
    run = real_run(root, cell, seed, mse, 0.6, tag=tag)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"].update(model)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["finished_at"] = "2099-01-01T00:00:00"
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_a_newer_baseline_variant_does_not_take_the_place_of_the_runs_of_the_cells_setting(seeded_root, capsys):
    """A LIF variant made later (--tag, model.fast) is LIF's row, but STC-LIF is compared with the LIF seeds of its
    own setting, and the column says so; the summary says which runs the LIF row leaves out."""
    newer_variant(seeded_root, "lif", 0, 130.0, "-fast", fast=True)
    result = build_table("2", discover_runs(seeded_root))
    assert column(result, "Vanilla LIF", "n") == "1"
    compared = column(result, "STC-LIF", "MSE vs lif")
    welch = scipy_stats.ttest_ind(STC_MSE, LIF_MSE, equal_var=False)
    assert compared.startswith(f"{np.mean(STC_MSE) - np.mean(LIF_MSE):+.1f} [")          # the three seeds of its setting
    assert compared.endswith("better (against the lif runs of this setting, n = 3, quick, 2 ep: not those of its row)")
    assert welch.pvalue < 0.05 and "another setting" not in compared
    assert main(["table", "--runs", str(seeded_root), "--table", "summary"]) == 0
    out = capsys.readouterr().out
    stc = next(line for line in out.splitlines() if line.startswith("| mmnist | stclif"))
    assert f"{np.mean(STC_MSE) - np.mean(LIF_MSE):+.2f}" in stc and "runs of this setting, n = 3" in stc
    assert "mmnist/lif: 3 runs of 1 other setting left out (differing in model.fast)" in out


def test_without_baseline_runs_of_its_setting_the_comparison_names_the_difference(seeded_root):
    """When no LIF run shares STC-LIF's setting, the row's LIF runs are used and the keys apart are named."""
    for seed in range(3):
        newer_variant(seeded_root, "stclif", seed, 40.0 + seed, "-wide", num_hidden=[32, 32])
    result = build_table("2", discover_runs(seeded_root))
    assert column(result, "STC-LIF", "MSE vs lif").endswith("(against lif of another setting: model.num_hidden)")


def test_the_reports_summary_compares_with_the_runs_of_the_cells_setting_and_names_what_it_leaves_out(seeded_root,
                                                                                                     tmp_path):
    from stcbench.reports.report import write_report

    newer_variant(seeded_root, "lif", 0, 130.0, "-fast", fast=True)
    report = write_report(seeded_root, tmp_path / "report", analyse=False).read_text()
    summary = report.split("## Moving MNIST")[1].split("## ")[0]
    stc = next(line for line in summary.splitlines() if "| stclif |" in line)
    assert f"{np.mean(STC_MSE) - np.mean(LIF_MSE):+.2f}" in stc and "runs of this setting, n = 3" in stc
    assert "* mmnist/lif: 3 runs of 1 other setting left out (differing in model.fast)" in summary


def test_a_diverged_seeds_huge_value_is_shown_in_exponent_form_with_a_finite_interval(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed, (lif, stc) in enumerate(zip(LIF_MSE, (50.0, 55.0, 1e200))):
        real_run(root, "lif", seed, lif, 0.6)
        real_run(root, "stclif", seed, stc, 0.6)
    result = build_table("2", discover_runs(root))
    mse, compared = column(result, "STC-LIF", "MSE (ours)"), column(result, "STC-LIF", "MSE vs lif")
    assert mse.startswith("3.333e+199 ± ") and len(mse) < 40
    assert compared.startswith("+3.333e+199 [") and "nan" not in compared and "not distinguishable" in compared
