"""`stcbench bench --suite memory`: each task's shipped config over cells and seeds through the engine's task suites,
then memory_results.{md,csv,json} and the summary."""
import csv
import json

import pytest
import yaml

from stcbench.cli import main

TINY = ["--set", "trainer.max_epochs=1", "--set", "data.train_samples=64", "--set", "data.val_samples=32",
        "--set", "data.test_samples=32", "--set", "data.seq_len=10", "--set", "model.hidden=[16]",
        "--set", "logging.loggers=[csv]"]


def suite(out, *extra) -> int:
    return main(["bench", "--suite", "memory", "--tasks", "adding", "--out", str(out), *TINY, *extra])


def test_suite_writes_table_and_figures_and_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert suite(out, "--cells", "lif") == 0
    text = (out / "memory_results.md").read_text()
    assert "quick scale, CPU, embedded data" in text and "| adding T=10 | lif | 42 |" in text
    assert "changed with --set: data.seq_len, data.test_samples" in text        # not the quick scale as shipped
    record = json.loads((out / "memory_results.json").read_text())["runs"][0]
    assert abs(record["baseline"] - 1 / 6) < 1e-12 and len(record["gradient_share"]) == 10
    assert len(record["input_gradient_share"]) == 10 and "| at the input | span |" in text
    assert len(record["memory_span"]["loss_share"]) == 4 and record["run_dir"] == "memory/adding_T10/lif/seed42"
    # the CSV holds one value per column: numbers parse as numbers, the span one column per quarter
    with open(out / "memory_results.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["task"] == "adding" and int(row["seq_len"]) == 10
    assert [float(row[f"span_q{q}"]) for q in (1, 2, 3, 4)] == pytest.approx(record["memory_span"]["loss_share"])
    assert float(row["loss/baseline"]) == pytest.approx(record["test"]["loss"] / record["baseline"])
    assert (out / "memory_summary.md").is_file() and (out / "memory_curves.png").is_file()
    metrics = out / "runs" / "memory" / "adding_T10" / "lif" / "seed42" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    capsys.readouterr()
    assert suite(out, "--cells", "lif") == 0                                  # finished: skipped, not trained
    assert "skip adding/lif seed 42: finished" in capsys.readouterr().out and metrics.stat().st_mtime_ns == stamp
    # collecting trains nothing: the finished run is tabled, the unfinished seed named
    assert suite(out, "--cells", "lif", "--seeds", "42,1", "--collect") == 0
    collected = (out / "memory_results.md").read_text()
    assert "| adding T=10 | lif | 42 |" in collected and "| adding T=10 | lif | 1 |" not in collected
    assert "No finished run (collected without training): lif adding seed 1" in collected
    assert not (out / "runs" / "memory" / "adding_T10" / "lif" / "seed1").exists()
    before = {p: p.read_bytes() for p in out.glob("memory_results.*")}
    capsys.readouterr()
    assert suite(out, "--cells", "lif", "--seeds", "7", "--collect") == 0     # nothing finished: nothing written
    assert "no planned run has finished" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.glob("memory_results.*")} == before
    # a run of the suite's name trained with another setting (here another learning rate) is refused
    config_file = metrics.parent / "config.yaml"
    stored = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**stored, "optim": {**stored["optim"], "lr": 0.05}}))
    assert suite(out, "--cells", "lif", "--collect") == 2
    assert "optim.lr: 0.05 there, 0.003 here" in capsys.readouterr().err


def test_a_failing_run_is_named_and_the_others_go_on(tmp_path, capsys):
    """A run that fails leaves a failure record; the others train, the table names it, bench exits 1."""
    out = tmp_path / "out"
    argv = ["bench", "--suite", "memory", "--tasks", "adding", "--cells", "plif,lif", "--out", str(out), *TINY]
    from stcbench.cli import build_parser
    from stcbench.commands import bench
    from stcbench.reports.task_suite import fit_task_run

    def fit(run):
        if run.cell == "plif":
            raise RuntimeError("out of disk")
        return fit_task_run(run)

    args = build_parser().parse_args(argv)
    assert bench.run(args, fit=fit) == 1
    table = (out / "memory_results.md").read_text()
    assert "| adding T=10 | lif | 42 |" in table
    assert "Failed (the other runs went on): plif adding seed 42 failed: RuntimeError: out of disk" in table
    assert [p.name for p in (out / "failures").iterdir()] == ["adding-adding_T10-plif-seed42.json"]


def test_the_memory_plan_says_which_runs_resume(tmp_path, capsys):
    run_dir = tmp_path / "out" / "runs" / "memory" / "adding_T100" / "lif" / "seed1"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"interrupted")
    assert main(["bench", "--suite", "memory", "--tasks", "adding", "--cells", "lif", "--seeds", "0,1", "--out",
                 str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[to run] adding lif seed 0" in out and "[to resume] adding lif seed 1" in out


def test_an_adding_sequence_too_short_for_the_span_test_is_refused_before_anything(tmp_path, capsys):
    argv = ["fit", "--config", "memory/quick_adding", "--set", "data.seq_len=4", "--output-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "data.seq_len 4 is too short for the adding task" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_suite_refuses_a_task_set_with_set(tmp_path, capsys):
    assert main(["bench", "--suite", "memory", "--cells", "lif", "--set", "data.task=copy", "--out", str(tmp_path / "o"),
                 "--dry-run"]) == 2
    assert "--set data.task: the memory suite sets each run's task from --tasks" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_plugin_cell_edited_since_its_memory_run_is_refused_not_skipped(tmp_path, capsys, isolated_registry):
    from pathlib import Path

    plugin = tmp_path / "mycell.py"
    plugin.write_text((Path(__file__).resolve().parents[2] / "examples" / "my_cell.py").read_text())
    out = tmp_path / "out"
    assert suite(out, "--cells", "my_lif", "--set", f"plugins=[{plugin}]") == 0
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    capsys.readouterr()
    assert suite(out, "--cells", "my_lif", "--set", f"plugins=[{plugin}]") == 2
    assert "has changed since the run" in capsys.readouterr().err


def test_a_cell_option_a_planned_cell_does_not_take_is_one_line_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert suite(out, "--cells", "lif", "--set", "model.cell_options.nonsense=1") == 2
    assert "cell 'lif' does not take ['nonsense']" in capsys.readouterr().err
    assert not out.exists()
