"""`stcbench table --table memory`: memory runs aggregated over seeds, checked against scipy."""
import json
import math
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from stcbench.cli import main
from stcbench.reports.memory import discover_memory_runs, memory_table

BASELINE = 1 / 6


def write_run(root, task, cell, seed, loss, acc=None, name=None, recurrent=False, mtime=None, per_sequence=None,
              test_set=None):
    """A metrics.json shaped like the memory task's (no finished_at; the file's time says when)."""
    folder = root / "runs" / "memory" / f"{task}_T100" / cell.lower() / (name or f"seed{seed}")
    folder.mkdir(parents=True)
    test = {"loss": loss} if acc is None else {"loss": loss, "acc": acc}
    extra = {}
    if per_sequence is not None:
        np.savez(folder / "test_per_sequence.npz", loss=np.asarray(per_sequence), index=np.arange(len(per_sequence)))
        extra = {"test_per_sequence": "test_per_sequence.npz", "test_set": test_set}
    path = folder / "metrics.json"
    path.write_text(json.dumps({"task": "memory", "memory_task": task, "seq_len": 100, "cell": cell,
                                "recurrent": recurrent, "seed": seed, "scale": "small", "baseline": BASELINE,
                                "test": test, "epochs": 250, **extra}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def campaign(tmp_path):
    shares = {"lif": [0.99, 1.0, 1.01], "celif": [0.10, 0.12, 0.14], "stclif": [0.3, 0.9, 1.2]}
    for cell, values in shares.items():
        for seed, share in enumerate(values):
            write_run(tmp_path, "adding", cell, seed, share * BASELINE)
    write_run(tmp_path, "adding", "stclif", 2, 9.0 * BASELINE, name="seed2-first", mtime=1_000_000)  # older
    (tmp_path / "runs" / "video").mkdir()
    (tmp_path / "runs" / "video" / "metrics.json").write_text(json.dumps({"dataset": "mmnist", "test": {"mse": 1}}))
    return tmp_path, shares


def interval(values):
    values = np.asarray(values)
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean(), half


def test_memory_rows_are_means_with_t_intervals_and_welch_differences(campaign):
    root, shares = campaign
    records = discover_memory_runs(root)
    assert len(records) == 10                                      # the video run is not a memory run
    table = memory_table(records, "lif")
    rows = {row[2]: row for row in table.rows}
    assert [row[2] for row in table.rows] == ["lif", "celif", "stclif"]     # baseline first
    assert table.header[-1] == "loss / baseline minus lif's"
    mean, half = interval(shares["celif"])
    assert rows["celif"][3] == "3" and rows["celif"][4] == f"{mean:.3f} ± {half:.3f}"
    assert rows["celif"][5] == "below the baseline"
    assert rows["lif"][5] == "not distinguishable from it" and rows["lif"][7] == "the reference"
    assert rows["stclif"][4].startswith(f"{np.mean(shares['stclif']):.3f} ±")      # the newer seed-2 run
    welch = scipy_stats.ttest_ind(shares["celif"], shares["lif"], equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert rows["celif"][7] == (f"{np.mean(shares['celif']) - np.mean(shares['lif']):+.3f} "
                                f"[{low:+.3f}, {high:+.3f}] better")
    assert rows["stclif"][7].endswith("not distinguishable")


def test_recurrent_runs_aliases_and_diverged_seeds(tmp_path):
    for seed, share in enumerate([0.5, 0.6, math.nan]):
        write_run(tmp_path, "adding", "CE-LIF", seed, share * BASELINE)         # alias of celif
    for seed in range(2):
        write_run(tmp_path, "adding", "alif", seed, 0.9 * BASELINE, name=f"rec{seed}", recurrent=True)
        write_run(tmp_path, "adding", "alif", seed, 1.0 * BASELINE)
    rows = {row[2]: row for row in memory_table(discover_memory_runs(tmp_path), None).rows}
    assert set(rows) == {"celif", "alif", "alif (rec)"} and rows["alif (rec)"][4].startswith("0.900")
    mean, half = interval([0.5, 0.6])
    assert rows["celif"][3] == "3" and rows["celif"][4] == f"{mean:.3f} ± {half:.3f} (n = 2)"
    assert rows["celif"][5].endswith("(n = 2)")


def test_a_row_whose_every_seed_diverged_says_so_and_the_command_warns(tmp_path, capsys):
    write_run(tmp_path, "adding", "lif", 0, math.nan)
    write_run(tmp_path, "adding", "celif", 0, 0.5 * BASELINE)
    assert main(["table", "--runs", str(tmp_path), "--table", "memory"]) == 0
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if "| lif |" in line)
    assert "| — (n = 0) |" in row and "nan" not in row
    assert captured.err.count("not finite") == 1 and "seed0 has test loss nan" in captured.err


def test_one_seed_a_side_is_ranked_by_a_paired_bootstrap_over_test_sequences(tmp_path):
    from stcbench.reports.stats import paired_bootstrap

    rng = np.random.default_rng(0)
    lif = rng.uniform(0.1, 0.3, 200)
    ours = lif - 0.05 + rng.normal(0, 0.01, 200)       # lower on every sequence, by about 0.05
    write_run(tmp_path, "adding", "lif", 0, lif.mean(), per_sequence=lif, test_set="abc")
    write_run(tmp_path, "adding", "celif", 0, ours.mean(), per_sequence=ours, test_set="abc")
    write_run(tmp_path, "adding", "plif", 1, ours.mean(), per_sequence=ours, test_set="other")   # another seed
    write_run(tmp_path, "adding", "alif", 0, ours.mean())                                        # no file
    write_run(tmp_path, "adding", "tclif", 0, ours.mean(), per_sequence=ours, test_set="abc")
    tclif = tmp_path / "runs" / "memory" / "adding_T100" / "tclif" / "seed0" / "test_per_sequence.npz"
    np.savez(tclif, loss=ours, index=np.arange(1, 201))           # other positions of the same test set
    rows = {row[2]: row for row in memory_table(discover_memory_runs(tmp_path), "lif").rows}
    expected = paired_bootstrap(ours / BASELINE, lif / BASELINE)
    assert rows["celif"][7] == (f"{expected.mean:+.3f} [{expected.low:+.3f}, {expected.high:+.3f}] better "
                                f"(paired bootstrap over 200 test sequences, not over seeds)")
    assert expected.high < 0
    assert rows["plif"][7] == rows["alif"][7] == rows["tclif"][7] == (
        "cannot rank: n = 1 vs 1; one seed a side and no per-sequence losses of the same test sequences to pair")


def test_select_best_val_takes_the_rerun_with_the_lowest_validation_loss(tmp_path, capsys):
    import json as json_

    write_run(tmp_path, "adding", "lif", 0, 0.2 * BASELINE, name="seed0-good", mtime=1_000_000)
    write_run(tmp_path, "adding", "lif", 0, 0.8 * BASELINE, name="seed0-rerun")                  # newer, worse
    for name, val in (("seed0-good", 0.03), ("seed0-rerun", 0.12)):
        path = tmp_path / "runs" / "memory" / "adding_T100" / "lif" / name / "metrics.json"
        record = json_.loads(path.read_text())
        record["history"] = [{"epoch": 0, "step": 10, "val/loss": 0.5}, {"epoch": 1, "step": 20, "val/loss": val}]
        stamp = path.stat().st_mtime
        path.write_text(json_.dumps(record))
        os.utime(path, (stamp, stamp))
    records = discover_memory_runs(tmp_path)
    assert memory_table(records, None).rows[0][4] == "0.800"
    assert memory_table(records, None, selection="best-val").rows[0][4] == "0.200"
    assert main(["table", "--runs", str(tmp_path), "--table", "memory", "--select", "best-val"]) == 0
    out = capsys.readouterr().out
    assert "| adding T=100 | small, 250 ep | lif | 1 | 0.200 |" in out and "selection 'best-val'" in out


def test_runs_of_other_settings_are_not_pooled_as_seeds(tmp_path):
    import yaml

    for seed, (lr, share) in enumerate([(3e-3, 0.5), (3e-3, 0.6), (1e-1, 0.9)]):
        write_run(tmp_path, "adding", "lif", seed, share * BASELINE)
        folder = tmp_path / "runs" / "memory" / "adding_T100" / "lif" / f"seed{seed}"
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"task": "memory", "seed": seed, "data": {"task": "adding", "seq_len": 100},
             "optim": {"lr": lr}, "trainer": {"max_epochs": 250, "threads": 1 + seed},
             "run": {"name": f"seed{seed}", "output_dir": f"/elsewhere/{seed}"}}))
    rows = memory_table(discover_memory_runs(tmp_path), None).rows
    assert sorted((row[2].split(" [")[0], row[3]) for row in rows) == [("lif", "1"), ("lif", "2")]
    assert all(" ep, setting " in row[2] for row in rows)           # threads and folders do not split a setting
    from stcbench.reports.memory import cell_styles, plot_memory_curves

    records = discover_memory_runs(tmp_path)
    assert set(cell_styles(records)) == {row[2] for row in rows}     # a style per setting's row: figures draw each
    plot_memory_curves(records, tmp_path / "curves.png")             # (a KeyError before, after the runs trained)


def test_runs_of_two_versions_of_a_plugin_are_not_pooled_as_seeds(tmp_path):
    import json as json_

    for seed in range(3):
        write_run(tmp_path, "adding", "lif", seed, (0.5 + 0.1 * seed) * BASELINE)
        folder = tmp_path / "runs" / "memory" / "adding_T100" / "lif" / f"seed{seed}"
        code = {"cell.py": "a"} if seed == 0 else {"renamed_cell.py": "a"} if seed == 1 else {"cell.py": "b"}
        (folder / "plugin_code.json").write_text(json_.dumps(code))
    rows = memory_table(discover_memory_runs(tmp_path), None).rows
    assert sorted(row[3] for row in rows) == ["1", "2"]             # the same code wherever its file was: pooled


def test_copy_rows_carry_the_accuracy_and_its_chance(tmp_path):
    for seed, acc in enumerate([0.5, 0.6, 0.7]):
        write_run(tmp_path, "copy", "celif", seed, 0.5 * BASELINE, acc=acc)
    (row,) = memory_table(discover_memory_runs(tmp_path), None).rows
    mean, half = interval([0.5, 0.6, 0.7])
    assert row[:4] == ["copy T=100", "small, 250 ep", "celif", "3"] and row[6] == f"{mean:.3f} ± {half:.3f} (1/8)"
    assert len(row) == 7                                            # no baseline column


def test_memory_table_command(campaign, capsys, tmp_path):
    root, _ = campaign
    assert main(["table", "--runs", str(root), "--table", "memory", "--baseline", "LIF"]) == 0
    out = capsys.readouterr().out
    assert "| adding T=100 | small, 250 ep | celif | 3 |" in out and "loss / baseline minus lif's" in out
    assert main(["table", "--runs", str(root), "--table", "memory", "--baseline", "alif"]) == 2
    assert "no memory run has that cell; pass one of celif, lif, stclif" in capsys.readouterr().err
    only_celif = tmp_path / "only"
    write_run(only_celif, "adding", "celif", 0, 0.5 * BASELINE)
    assert main(["table", "--runs", str(only_celif), "--table", "memory"]) == 0      # default baseline absent
    out = capsys.readouterr().out
    assert "vs lif" not in out and "minus lif's" not in out and "Differences:" not in out


def test_learning_curves_over_seeds(tmp_path):
    from stcbench.reports.memory import plot_memory_curves, validation_curves

    runs = [{"memory_task": "adding", "seq_len": 100, "scale": "small", "cell": "lif", "seed": seed,
             "baseline": 0.5, "test": {"loss": 0.4},
             "history": [{"step": 32 * (e + 1), "val/loss": 0.5 - 0.1 * e * (seed + 1)} for e in range(3)]
             + ([{"step": 128, "val/loss": 0.1}] if seed == 0 else [])} for seed in range(2)]
    steps, values = validation_curves(runs)
    assert steps.tolist() == [32, 64, 96]                              # the iterations both seeds have
    np.testing.assert_allclose(values, [[1.0, 0.8, 0.6], [1.0, 0.6, 0.2]])
    path = plot_memory_curves(runs, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_memory_curves([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_every_memory_figure_gives_a_cell_the_same_style(tmp_path):
    from stcbench.reports.figures import line_style
    from stcbench.reports.memory import cell_styles, plot_gradient_through_time, plot_learning_curves

    runs = [{"memory_task": "adding", "seq_len": 100, "scale": "small", "cell": cell, "seed": seed, "baseline": 0.5,
             "recurrent": cell == "alif", "test": {"loss": 0.4}, "gradient_norm": [1.0, 0.5],
             "gradient_share": [0.4, 0.6], "history": [{"step": 32, "val/loss": 0.4}, {"step": 64, "val/loss": 0.3}]}
            for cell in ("tclif", "alif", "lif") for seed in range(2)]
    styles = cell_styles(runs)
    assert list(styles) == ["alif (rec)", "lif", "tclif"] and styles["tclif"] == line_style(2)
    assert len({style["color"] for style in styles.values()}) == 3
    for path in (plot_learning_curves(runs, tmp_path / "l.png"),
                 plot_gradient_through_time(runs, "adding", tmp_path / "g.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_gradient_through_time(runs, "copy", tmp_path / "c.png") is None
    from stcbench.reports.memory import gradient_analysis

    folder = tmp_path / "run"
    folder.mkdir()
    np.savez(folder / "gradient_through_time.npz", norm=[1.0, 2.0], per_step=[0.3, 0.7], input_per_step=[0.9, 0.1])
    read = gradient_analysis({**runs[0], "path": str(folder)})          # the file wins over the record
    assert read["share"].tolist() == [0.3, 0.7] and read["input_share"].tolist() == [0.9, 0.1]
    np.savez(folder / "gradient_through_time.npz", norm=[1.0, 2.0])
    assert gradient_analysis({"path": str(folder)}) is None


def test_malformed_records_are_skipped_with_a_warning(tmp_path, capsys):
    write_run(tmp_path, "adding", "celif", 0, 0.5 * BASELINE)
    for name, text in (("empty", ""), ("list", "[1, 2]"), ("nocell", json.dumps({"memory_task": "adding",
                                                                                 "test": {"loss": 1}}))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(text)
    assert main(["table", "--runs", str(tmp_path), "--table", "memory"]) == 0
    captured = capsys.readouterr()
    assert "| adding T=100 | small, 250 ep | celif | 1 |" in captured.out and f"under {tmp_path}" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3 and "cell missing" in captured.err


def test_a_runs_folder_that_is_a_file_or_missing_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for runs, what in ((tmp_path / "f", "is a file"), (tmp_path / "none", "does not exist")):
        assert main(["table", "--runs", str(runs), "--table", "memory"]) == 2
        assert f"--runs {runs} {what}" in capsys.readouterr().err
    write_run(tmp_path, "adding", "celif", 0, 0.5 * BASELINE)
    assert main(["table", "--runs", str(tmp_path), "--table", "memory", "--out", str(tmp_path / "f")]) == 2
    assert f"{tmp_path / 'f'} is a file, not a folder; choose another --out" in capsys.readouterr().err


def test_seeds_of_a_cell_named_by_an_alias_are_one_setting(tmp_path):
    import yaml

    for seed, (name, share) in enumerate((("stclif", 0.5), ("STCLIFCell", 0.6), ("STC-LIF", 0.7))):
        write_run(tmp_path, "adding", name, seed, share * BASELINE, name=f"s{seed}")
        folder = tmp_path / "runs" / "memory" / "adding_T100" / name.lower() / f"s{seed}"
        (folder / "config.yaml").write_text(yaml.safe_dump({"task": "memory", "seed": seed, "data": {"task": "adding"},
                                                            "model": {"cell": name}}))
    rows = memory_table(discover_memory_runs(tmp_path), None).rows
    assert len(rows) == 1 and rows[0][2] == "stclif" and rows[0][3] == "3"


def test_tuning_runs_are_never_pooled_with_the_reported_seeds(campaign, capsys):
    """A seed that chose the setup (run.tuning) beside the reported ones is left out with a note; a folder of tuning
    runs alone is tabled."""
    root, shares = campaign
    write_run(root, "adding", "celif", 100, 0.5 * BASELINE, name="tuning-seed100")
    record = root / "runs" / "memory" / "adding_T100" / "celif" / "tuning-seed100" / "metrics.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "tuning": True}))
    assert main(["table", "--runs", str(root), "--table", "memory", "--baseline", "lif"]) == 0
    out = capsys.readouterr().out
    celif = next(line for line in out.splitlines() if "| celif |" in line)
    mean, half = interval(shares["celif"])
    assert f"{mean:.3f} ± {half:.3f}" in celif and " 3 |" in celif
    assert "1 tuning run (run.tuning: true, the seeds that chose the setup) left out" in out
    assert "share seed" not in out
    assert main(["table", "--runs", str(record.parent), "--table", "memory", "--baseline", "none"]) == 0
    alone = capsys.readouterr().out
    assert "0.500" in alone and "every run here is a tuning run" in alone
    write_run(root, "adding", "celif", 2, 0.5 * BASELINE, name="tuning-seed2")
    record = root / "runs" / "memory" / "adding_T100" / "celif" / "tuning-seed2" / "metrics.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "tuning": True}))
    assert main(["table", "--runs", str(root), "--table", "memory", "--baseline", "lif"]) == 0
    assert "2 tuning runs" in (out := capsys.readouterr().out) and "share seed 2 with the tuning runs" in out


def test_one_seed_each_over_too_few_paired_sequences_says_so(tmp_path):
    lif, ours = np.linspace(0.1, 0.2, 8), np.linspace(0.05, 0.15, 8)
    write_run(tmp_path, "adding", "lif", 0, lif.mean(), per_sequence=lif, test_set="abc")
    write_run(tmp_path, "adding", "celif", 0, ours.mean(), per_sequence=ours, test_set="abc")
    rows = {row[2]: row for row in memory_table(discover_memory_runs(tmp_path), "lif").rows}
    assert rows["celif"][7] == ("cannot rank: n = 1 vs 1; 8 test sequences paired, fewer than the 10 an interval "
                                "needs")


def test_the_difference_to_the_baseline_is_taken_within_one_setting_or_says_what_differs(tmp_path):
    import yaml

    def run(cell, seed, share, hidden, name=None):
        write_run(tmp_path, "adding", cell, seed, share * BASELINE, name=name)
        folder = tmp_path / "runs" / "memory" / "adding_T100" / cell / (name or f"seed{seed}")
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"task": "memory", "seed": seed, "data": {"task": "adding", "seq_len": 100},
             "model": {"cell": cell, "hidden": hidden}, "trainer": {"max_epochs": 250}}))

    for seed, (lif, plif) in enumerate([(0.50, 0.40), (0.52, 0.41), (0.55, 0.39)]):
        run("lif", seed, lif, [16])
        run("plif", seed, plif, [32])
    compared = row_of(memory_table(discover_memory_runs(tmp_path), "lif"), "plif")[-1]
    assert compared.endswith("(against lif of another setting: model.hidden)")
    for seed in range(3):
        run("lif", seed, 0.45, [64], name=f"wide{seed}")
    rows = memory_table(discover_memory_runs(tmp_path), "lif").rows
    assert next(r for r in rows if r[2] == "plif")[-1] == "— (lif has runs of 2 settings, none of this row's)"
    assert all(r[-1] == "the reference" for r in rows if r[2].startswith("lif"))
    for seed in range(3):
        run("lif", seed, 0.51, [32], name=f"same{seed}")
    same = next(r for r in memory_table(discover_memory_runs(tmp_path), "lif").rows if r[2] == "plif")[-1]
    assert "another setting" not in same and "none of" not in same and same.startswith("-0.")


def row_of(result, cell):
    return next(r for r in result.rows if r[2] == cell)
