import csv
import json
import io

import numpy as np
import pytest

from stcbench.cli import main
from stcbench.errors import ConfigError
from stcbench.reports.runs import discover_runs, select_run
from stcbench.reports.tables import MISSING, build_table, render, summary_table
from tests.reports.helpers import make_run, video_metrics


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "a", test=video_metrics(120.25, 250.5, 0.61), epochs=2,
             params=3_304_960, flops=64.346e9, finished_at=100.0)
    make_run(root, "mmnist", "lif", "b", test=video_metrics(110.0, 240.0, 0.62), epochs=2, finished_at=200.0)
    make_run(root, "mmnist", "lif", "unfinished", test=None)
    make_run(root, "mmnist", "stclif", "groups1", test=video_metrics(40.0, 100.0, 0.9),
             cell_options={"circuit_groups": 1})
    make_run(root, "taxibj", "stclif", "t", test=video_metrics(0.5, 19.0, 0.97), scale="reduced", epochs=20)
    make_run(root, "kth", "glif", "k", test=video_metrics(50.0, 400.0, 0.8, psnr=22.5),
             test_long=video_metrics(60.0, 450.0, 0.79, psnr=21.25))
    make_run(root, "mmnist", "convlstm", "c", test=video_metrics(30.0, 91.0, 0.93, psnr=22.0))
    return root


def row(result, label):
    return next(r for r in result.rows if r[0] == label)


def test_newest_complete_run_is_reported(runs_root):
    result = build_table("2", discover_runs(runs_root))
    lif = row(result, "Vanilla LIF")
    assert lif[1:3] == ["110.0", "102.8"]          # run "b" (newer) beside the paper
    assert lif[-2:] == ["quick, 2 ep", "val"]


def test_best_val_selection(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "old", test=video_metrics(99.0, 1, 0.5), val={"mse": 1.0}, finished_at=1)
    make_run(root, "mmnist", "lif", "new", test=video_metrics(88.0, 1, 0.5), val={"mse": 2.0}, finished_at=2)
    runs = discover_runs(root)
    assert select_run(runs, "mmnist", "lif").path.name == "new"
    assert select_run(runs, "mmnist", "lif", selection="best-val").path.name == "old"
    with pytest.raises(ConfigError, match="best-val"):
        select_run(runs, "mmnist", "lif", selection="best")


def test_larger_scale_beats_newer_quick_run(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "paper", test=video_metrics(1, 1, 0.5), scale="paper", epochs=500, finished_at=1)
    make_run(root, "mmnist", "lif", "quick", test=video_metrics(2, 1, 0.5), scale="quick", finished_at=9)
    assert select_run(discover_runs(root), "mmnist", "lif").path.name == "paper"


def test_missing_runs_are_missing_not_invented(runs_root):
    result = build_table("2", discover_runs(runs_root))
    plif = row(result, "PLIF")
    assert plif[1] == MISSING and plif[2] == "99.2"
    # the circuit_groups=1 run belongs to Table 11, not to the default STC-LIF row
    assert row(result, "STC-LIF")[1] == MISSING


def test_table11_maps_circuit_groups(runs_root):
    result = build_table("11", discover_runs(runs_root))
    assert row(result, "STC-LIF, global convolution")[1:3] == ["40.0", "38.5"]
    assert row(result, "STC-LIF, group convolution (groups=16)")[1] == MISSING
    assert row(result, "Vanilla LIF")[5:7] == [MISSING, "3.305"]   # newest lif run has no params


def test_table7_params_and_flops(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "a", test=video_metrics(100.0, 200.0, 0.6), params=3_304_960,
             flops={"macs_per_sequence": 64_346_128_384, "method": "stcbench.training.network.flops_for_config"})
    make_run(root, "mmnist", "stclif", "notc", test=video_metrics(60.0, 160.0, 0.8),
             cell_options={"temporal_circuit": False})
    result = build_table("7", discover_runs(root))
    assert row(result, "Vanilla LIF (Baseline)")[5:9] == ["3.305", "3.305", "64.346", "64.346"]
    assert row(result, "STC-LIF w/o TC")[1:3] == ["60.0", "62.5"]
    assert row(result, "STC-LIF w/o SC")[1] == MISSING


def test_taxibj_scaled_and_per_frame(runs_root):
    runs = discover_runs(runs_root)
    assert row(build_table("3", runs), "STC-LIF")[1:3] == ["50.0", "56.4"]     # 0.5 x 100
    frames = row(build_table("4", runs), "STC-LIF")
    assert frames[1:3] == ["40.0", "48.1"] and frames[7:9] == ["55.0", "63.0"]   # 0.5*0.8*100, 0.5*1.1*100
    assert frames[-2] == "reduced, 20 ep"


def test_kth_long_rollout_columns(runs_root):
    glif = row(build_table("5", discover_runs(runs_root)), "GLIF")
    assert glif[1:9] == ["0.800", "0.805", "22.50", "22.41", "0.790", "0.795", "21.25", "21.90"]


def test_table6_spans_datasets(runs_root):
    result = build_table("6", discover_runs(runs_root))
    assert all(r[1] == MISSING for r in result.rows)
    assert len(result.header) == 1 + 2 * 10 + 1 + 10 + 2      # ours/paper pairs, n, 10 columns vs lif, scale


def test_convlstm_anchor_rows_only_with_a_run(runs_root):
    runs = discover_runs(runs_root)
    labels = [r[0] for r in build_table("2", runs).rows]
    assert "ConvLSTM-S (OpenSTL, 200 ep)" in labels and "ConvLSTM-S (OpenSTL, 2000 ep)" in labels
    anchor = row(build_table("2", runs), "ConvLSTM-S (OpenSTL, 200 ep)")
    assert anchor[1:3] == ["30.0", "29.8"]
    assert not any(r[0].startswith("ConvLSTM") for r in build_table("3", runs).rows)


def test_three_formats(runs_root):
    result = build_table("2", discover_runs(runs_root))
    md = render(result, "markdown")
    assert "| Vanilla LIF | 110.0 | 102.8 |" in md and "| PLIF | — | 99.2 |" in md
    tex = render(result, "latex")
    assert r"\begin{tabular}" in tex and "PLIF & --- & 99.2" in tex and "10$\\to$10" in tex
    from stcbench.reports.tables import _latex

    assert _latex(r"a\b < 1 & 5 % -> x_y ± 0.1 —") == (r"a\textbackslash{}b $<$ 1 \& 5 \% $\to$ x\_y $\pm$ 0.1 "
                                                      r"---")
    notes = tex.split(r"\end{tabular}")[1]
    assert r"\footnotesize" in notes and "Run per row: selection" in notes    # the notes under the table
    rows = list(csv.reader(io.StringIO(render(result, "csv"))))
    assert rows[0][:3] == ["table", "Method", "MSE (ours)"]
    plif = next(r for r in rows if r[1] == "PLIF")
    assert plif[2] == "" and plif[3] == "99.2"
    with pytest.raises(ConfigError, match="markdown"):
        render(result, "html")


def test_cli_writes_files(runs_root, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["table", "--runs", str(runs_root), "--table", "all", "--format", "csv", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"table_{k}.csv" for k in ("summary", "2", "3", "4", "5", "6",
                                                                                     "7", "11"))
    assert main(["table", "--runs", str(runs_root), "--table", "3"]) == 0
    assert "Table 3: TaxiBJ" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["table", "--runs", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["table", "--runs", str(tmp_path), "--table", "9"]) == 2
    assert "unknown table '9'" in capsys.readouterr().err


def test_iso_finished_at_and_options_from_metrics(tmp_path):
    root = tmp_path / "runs"
    a = make_run(root, "mmnist", "lif", "later", test=video_metrics(1, 1, 0.5))
    b = make_run(root, "mmnist", "lif", "earlier", test=video_metrics(2, 1, 0.5))
    for run_dir, stamp in ((a, "2024-05-02T10:00:00"), (b, "2024-05-01T23:00:00")):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["finished_at"] = stamp
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert select_run(discover_runs(root), "mmnist", "lif").path.name == "later"
    c = make_run(root, "mmnist", "stclif", "g1", test=video_metrics(3, 1, 0.5))
    (c / "config.yaml").unlink()
    metrics = json.loads((c / "metrics.json").read_text())
    metrics["model"] = {"cell_options": {"circuit_groups": 1}}
    (c / "metrics.json").write_text(json.dumps(metrics))
    runs = discover_runs(root)
    assert select_run(runs, "mmnist", "stclif", {"circuit_groups": 1}).path.name == "g1"
    assert select_run(runs, "mmnist", "stclif") is None


def test_circuit_option_spelling_maps_to_table7_rows(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "stclif", "spatial", test=video_metrics(61.0, 1, 0.5), cell_options={"circuit": "spatial"})
    make_run(root, "mmnist", "stclif", "temporal", test=video_metrics(57.0, 1, 0.5), cell_options={"circuit": "temporal"})
    make_run(root, "mmnist", "stclif", "both", test=video_metrics(45.0, 1, 0.5), cell_options={"circuit": "both"})
    result = build_table("7", discover_runs(root))
    assert row(result, "STC-LIF w/o TC")[1] == "61.0"      # spatial circuit only = without the temporal one
    assert row(result, "STC-LIF w/o SC")[1] == "57.0"
    assert row(result, "STC-LIF")[1] == "45.0"


def test_a_run_with_a_non_finite_metric_is_named_on_stderr(tmp_path, capsys):
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "a", test=video_metrics(197.2, 300.0, 0.5), seed=1)
    diverged = make_run(root, "mmnist", "lif", "b", test={**video_metrics(1.0, 310.0, 0.6), "mse": "nan"}, seed=2)
    assert main(["table", "--runs", str(root), "--table", "2", "--baseline", "none"]) == 0
    captured = capsys.readouterr()
    assert "| 197.2 (n = 1) |" in captured.out
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and str(diverged / "metrics.json") in warnings[0] and "test.mse = nan" in warnings[0]


def test_an_exact_prediction_psnr_is_no_warning(tmp_path, capsys):
    root = tmp_path / "runs"
    make_run(root, "kth", "lif", "a", test={**video_metrics(1.0, 2.0, 0.9), "psnr": "inf"})
    assert main(["table", "--runs", str(root), "--table", "5"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("table", ["all", "7", "summary"])
def test_no_run_for_the_table_is_one_line_and_writes_nothing(tmp_path, capsys, table):
    empty, memory = tmp_path / "empty", tmp_path / "memory"
    empty.mkdir()
    run = make_run(memory, "addingt100", "lif", "seed0", test={"loss": 0.5})
    _record(run, metrics={"task": "memory"})
    which = f"table {table}" if table != "all" else "any of the tables"
    memory_held = "it holds 1 run of the memory task and no video run"
    for root, held in ((empty, "it holds no run"), (memory, memory_held)):
        assert main(["table", "--runs", str(root), "--table", table, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"no runs for {which} under {root}" in err[0]
        assert held in err[0] and "--table memory" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_summary_lists_every_cell_a_new_neuron_too_over_seeds_against_the_baseline(tmp_path, capsys):
    """A cell of no paper table (a plugin's) shows in `--table summary`: mean ± t interval over its seeds, n,
    and the Welch difference to the baseline; memory runs are not listed."""
    from scipy import stats as scipy_stats

    root = tmp_path / "runs"
    mine, lif = [100.0, 104.0, 96.0], [120.0, 122.0, 118.0]
    for seed, (a, b) in enumerate(zip(mine, lif)):
        make_run(root, "mmnist", "mylif", f"s{seed}", test=video_metrics(a, 20.0, 0.5), seed=seed)
        make_run(root, "mmnist", "lif", f"s{seed}", test=video_metrics(b, 20.0, 0.5), seed=seed)
    make_run(root, "addingt100", "lif", "seed0", test={"loss": 0.5})
    diverged = root / "memory" / "seed1"                    # a memory run's NaN is --table memory's to report
    diverged.mkdir(parents=True)
    (diverged / "metrics.json").write_text(json.dumps({"task": "memory", "memory_task": "adding", "cell": "lif",
                                                       "test": {"loss": float("nan")}}))
    assert main(["table", "--runs", str(root), "--table", "summary"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "not finite" not in captured.err and f"Source: the runs under {root}" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| mmnist | mylif |"))
    half = scipy_stats.t.ppf(0.975, 2) * scipy_stats.sem(mine)
    assert f"| 100.00 ± {half:.2f} |" in row and "| 3 |" in row
    welch = scipy_stats.ttest_ind(mine, lif, equal_var=False).confidence_interval(0.95)
    assert f"-20.00 [{welch.low:+.2f}, {welch.high:+.2f}] better" in row
    assert "addingt100" not in printed
    # a baseline named without runs: one line naming the cells that have runs (exit 2)
    assert main(["table", "--runs", str(root), "--table", "summary", "--baseline", "plif"]) == 2
    assert "--baseline plif: no run under" in capsys.readouterr().err
    # the default baseline without runs: no comparison columns, and a line saying so
    assert main(["table", "--runs", str(root / "mmnist" / "mylif"), "--table", "summary"]) == 0
    captured = capsys.readouterr()
    assert "no run under" in captured.err and "vs lif" not in captured.out


def test_a_cell_of_another_scale_than_the_baseline_is_not_compared(tmp_path, capsys):
    """The summary keeps one row per cell: a cell with quick runs only sits beside a small-scale baseline, and its
    difference column names the mismatch instead of comparing runs of different sizes."""
    root = tmp_path / "runs"
    for seed, mse in enumerate([140.0, 139.0, 138.0]):
        make_run(root, "mmnist", "lif", f"s{seed}", test=video_metrics(mse, 300.0, 0.5), seed=seed, scale="small",
                 epochs=12)
    make_run(root, "mmnist", "alif", "q", test=video_metrics(160.0, 320.0, 0.4), scale="quick", epochs=2)
    assert main(["table", "--runs", str(root), "--table", "summary"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| mmnist | alif |"))
    assert "(other scale: quick, 2 ep vs small, 12 ep)" in row and "cannot rank" not in row


def _record(run_dir, **changes):
    """Edit a fabricated run's metrics.json and config.yaml (what another run would have recorded)."""
    import yaml

    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(changes.get("metrics", {}))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for section, values in changes.get("config", {}).items():
        config.setdefault(section, {}).update(values)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


def test_seeds_on_other_data_are_not_pooled_and_aliases_are(tmp_path):
    """Two seeds whose data checksums differ are two settings; a cell or dataset named by an alias is the same."""
    root = tmp_path / "runs"
    a = make_run(root, "mmnist", "lif", "a", test=video_metrics(100.0, 1, 0.5), seed=1)
    b = make_run(root, "mmnist", "lif", "b", test=video_metrics(300.0, 1, 0.5), seed=2, finished_at=9e9)
    c = make_run(root, "mmnist", "lif", "c", test=video_metrics(310.0, 1, 0.5), seed=3, finished_at=9e9)
    _record(a, metrics={"data": {"checksum": "sha256:aaa"}})
    for run, alias in ((b, "LIF"), (c, "Lif")):
        _record(run, metrics={"data": {"checksum": "sha256:bbb"}}, config={"model": {"cell": alias},
                                                                        "data": {"dataset": "movingmnist"}})
    _record(a, config={"data": {"dataset": "mmnist"}})
    from stcbench.reports.runs import select_group

    group = select_group(discover_runs(root), "mmnist", "lif")
    assert sorted(r.path.name for r in group.runs) == ["b", "c"]


def test_seeds_trained_with_another_global_batch_are_not_pooled(tmp_path):
    """The devices are not part of a setting, but the batch they make together is: a DDP run on two devices with
    the same per-device batch trained with twice the batch, so it is not a seed of the one-device runs."""
    root = tmp_path / "runs"
    one = [make_run(root, "mmnist", "lif", f"one{seed}", test=video_metrics(100.0 + seed, 1, 0.5), seed=seed)
           for seed in (1, 2)]
    two = make_run(root, "mmnist", "lif", "two", test=video_metrics(300.0, 1, 0.5), seed=3, finished_at=9e9)
    for run in one:
        _record(run, metrics={"global_batch_size": 4}, config={"trainer": {"devices": 1}})
    _record(two, metrics={"global_batch_size": 8}, config={"trainer": {"devices": 2}})
    from stcbench.reports.runs import select_group

    assert [r.path.name for r in select_group(discover_runs(root), "mmnist", "lif").runs] == ["two"]
    _record(two, metrics={"global_batch_size": 4})
    assert len(select_group(discover_runs(root), "mmnist", "lif").runs) == 3


def test_a_row_names_the_runs_of_other_settings_it_leaves_out(tmp_path):
    """A table shows one setting per cell; runs of another (an edited neuron, other epochs) are named, not dropped
    without a word."""
    root = tmp_path / "runs"
    old = [make_run(root, "mmnist", "lif", f"old{seed}", test=video_metrics(100.0, 1, 0.5), seed=seed)
           for seed in (1, 2, 3)]
    new = make_run(root, "mmnist", "lif", "new", test=video_metrics(90.0, 1, 0.5), seed=1, finished_at=9e9)
    for run in old:
        _record(run, config={"trainer": {"max_epochs": 2}})
    _record(new, config={"trainer": {"max_epochs": 4}})
    notes = summary_table(discover_runs(root)).notes
    assert [n for n in notes if "left out" in n] == [
        "mmnist/lif: 3 runs of 1 other setting left out (differing in trainer.max_epochs); the row is the setting "
        "of the run the selection picked (new); give each setting its own --runs folder to table it"]
    for run in old:
        _record(run, config={"trainer": {"max_epochs": 4}})
    assert not [n for n in summary_table(discover_runs(root)).notes if "left out" in n]


def test_the_bootstrap_pairs_only_runs_tested_on_the_same_sequences(tmp_path):
    root = tmp_path / "runs"
    mse = [100.0 + 10 * (i % 4) for i in range(12)]
    lif = make_run(root, "mmnist", "lif", "l", test=video_metrics(115.0, 1, 0.5),
                   per_sequence={"mse": mse, "index": list(range(12))})
    plif = make_run(root, "mmnist", "plif", "p", test=video_metrics(105.0, 1, 0.5),
                    per_sequence={"mse": [v - 10 for v in mse], "index": list(range(12))})
    def table():
        return render(summary_table(discover_runs(root)), "markdown")

    assert "bootstrap over 12 test seq., not over seeds)" in table()
    _record(plif, metrics={"data": {"checksum": "sha256:other"}})
    _record(lif, metrics={"data": {"checksum": "sha256:mine"}})
    assert "seq.," not in table() and "n = 1: cannot rank" in table()
    _record(plif, metrics={"data": {"checksum": "sha256:mine"}})
    assert "bootstrap over 12 test seq." in table()
    np.savez(plif / "test_per_sequence.npz", mse=np.array(mse) - 10, index=np.arange(12, 24))
    assert "seq.," not in table()


def test_a_cell_is_compared_with_the_baseline_runs_of_its_own_scale_where_there_are_some(tmp_path, capsys):
    from scipy import stats as scipy_stats

    root = tmp_path / "runs"
    for seed, mse in enumerate([140.0, 139.0, 138.0]):
        make_run(root, "mmnist", "lif", f"s{seed}", test=video_metrics(mse, 300.0, 0.5), seed=seed, scale="small",
                 epochs=12)
    quick_lif, quick_alif = [160.0, 150.0], [150.0, 142.0]
    for seed, (lif, alif) in enumerate(zip(quick_lif, quick_alif)):
        make_run(root, "mmnist", "lif", f"q{seed}", test=video_metrics(lif, 300.0, 0.5), seed=seed)
        make_run(root, "mmnist", "alif", f"q{seed}", test=video_metrics(alif, 300.0, 0.5), seed=seed)
    assert main(["table", "--runs", str(root), "--table", "summary"]) == 0
    out = capsys.readouterr().out
    alif = next(line for line in out.splitlines() if line.startswith("| mmnist | alif |"))
    welch = scipy_stats.ttest_ind(quick_alif, quick_lif, equal_var=False).confidence_interval(0.95)
    assert f"-9.00 [{welch.low:+.2f}, {welch.high:+.2f}]" in alif and "other scale" not in alif
    lif = next(line for line in out.splitlines() if line.startswith("| mmnist | lif |"))
    assert "| baseline |" in lif and "small, 12 ep" in lif


def test_the_summary_shows_the_metrics_each_task_reports(tmp_path):
    """A task's runs show the metrics its records declare (a video record from before the declaration: the video
    metrics); a metric without a direction gets higher / lower; a malformed declaration is skipped."""
    from scipy import stats as scipy_stats

    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "v", test=video_metrics(120.0, 250.0, 0.6))             # no declaration
    declared = [{"key": "reward", "label": "Reward", "higher_is_better": True, "decimals": 1},
                {"key": "steps", "label": "Steps", "higher_is_better": None, "decimals": 0},
                {"key": "bad", "label": "Bad", "higher_is_better": 1}, "not a declaration"]
    rewards = {"lif": [10.0, 12.0, 11.0], "plif": [20.0, 21.0, 23.0]}
    for cell, values in rewards.items():
        for seed, reward in enumerate(values):
            run = make_run(root, "walk", cell, f"s{seed}", test={"reward": reward, "steps": 100.0 - seed, "bad": 1.0},
                           seed=seed)
            _record(run, metrics={"task": "walk", "reported_metrics": declared})
    result = summary_table(discover_runs(root))
    assert result.header[:7] == ["Dataset", "Cell", "MSE", "MAE", "SSIM", "PSNR", "Reward"]
    assert "Steps" in result.header and "Bad" not in result.header
    walk = next(r for r in result.rows if r[:2] == ["walk", "plif"])
    mean = sum(rewards["plif"]) / 3
    half = scipy_stats.t.ppf(0.975, 2) * np.std(rewards["plif"], ddof=1) / np.sqrt(3)
    assert walk[result.header.index("Reward")] == f"{mean:.1f} ± {half:.1f}"
    assert walk[result.header.index("MSE")] == MISSING and walk[result.header.index("Reward vs lif")].endswith("better")
    assert walk[result.header.index("Steps vs lif")].endswith("not distinguishable")     # the same steps on each side
    video = next(r for r in result.rows if r[:2] == ["mmnist", "lif"])
    assert video[result.header.index("MSE")] == "120.00" and video[result.header.index("Reward")] == MISSING


def test_tasks_that_declare_the_same_metric_share_its_column(tmp_path):
    """A task of one's own reporting MSE to 4 decimals beside the video task's MSE (2 decimals): one MSE column,
    each dataset's values with its own decimals."""
    root = tmp_path / "runs"
    make_run(root, "mmnist", "lif", "v", test=video_metrics(120.0, 250.0, 0.6))
    line = make_run(root, "line", "line", "s0", test={"mse": 0.123456})
    _record(line, metrics={"task": "line", "reported_metrics": [{"key": "mse", "label": "MSE", "higher_is_better":
                                                                 False, "decimals": 4}]})
    result = summary_table(discover_runs(root))
    assert result.header.count("MSE") == 1 and result.header.count("MSE vs lif") == 1
    rows = {row[0]: row for row in result.rows}
    assert rows["line"][2] == "0.1235" and rows["mmnist"][2] == "120.00"
    assert "lower MSE/MAE, higher SSIM/PSNR is better" in " ".join(result.notes)


def test_one_seed_each_over_too_few_paired_sequences_says_why_it_cannot_rank(tmp_path):
    root = tmp_path / "runs"
    for cell, shift in (("lif", 0.0), ("plif", -10.0)):
        make_run(root, "mmnist", cell, "r", test=video_metrics(115.0 + shift, 1, 0.5),
                 per_sequence={"mse": [100.0 + shift, 110.0 + shift, 120.0 + shift, 130.0 + shift],
                               "index": [0, 1, 2, 3]})
    plif = next(row for row in summary_table(discover_runs(root)).rows if row[1] == "plif")
    assert plif[7] == "n = 1: cannot rank (4 test sequences paired, fewer than the 10 an interval needs)"


def test_a_plugin_file_edited_since_its_runs_is_named_under_the_tables(tmp_path, capsys):
    """Runs of a plugin neuron record its file's digest; when the file has other contents now, the tables say
    that their rows are of the earlier code (the file is hashed, never imported)."""
    import hashlib

    plugin = tmp_path / "my_lif.py"
    plugin.write_text("raise SystemExit('imported')\n")
    root = tmp_path / "runs"
    run = make_run(root, "mmnist", "mylif", "s0", test=video_metrics(100.0, 200.0, 0.6))
    (run / "plugin_code.json").write_text(json.dumps({"my_lif.py": hashlib.sha256(plugin.read_bytes()).hexdigest()}))
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "plugins": [str(plugin)]}))
    assert main(["table", "--runs", str(root), "--table", "summary", "--baseline", "none"]) == 0
    assert "has changed since" not in capsys.readouterr().out
    plugin.write_text("raise SystemExit('edited')\n")
    assert main(["table", "--runs", str(root), "--table", "summary", "--baseline", "none"]) == 0
    assert f"{plugin} has changed since mmnist/mylif ran it" in capsys.readouterr().out


def test_no_edited_plugin_note_when_the_cell_is_tabled_with_a_run_of_the_current_code(tmp_path, capsys):
    import hashlib

    import yaml

    plugin = tmp_path / "my_lif.py"
    root = tmp_path / "runs"
    for name, version, when in (("old", "V = 1\n", 100.0), ("new", "V = 2\n", 200.0)):
        run = make_run(root, "mmnist", "mylif", name, test=video_metrics(100.0, 200.0, 0.6), finished_at=when)
        (run / "plugin_code.json").write_text(json.dumps({"my_lif.py": hashlib.sha256(version.encode()).hexdigest()}))
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "plugins": [str(plugin)]}))
    plugin.write_text("V = 2\n")
    assert main(["table", "--runs", str(root), "--table", "summary", "--baseline", "none"]) == 0
    assert "has changed since" not in capsys.readouterr().out
