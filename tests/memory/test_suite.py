import json
import warnings

import pytest
import yaml

from stcbench.errors import ConfigError

from stcbench.memory import suite


def tiny_quick_scale(**run) -> dict:
    """A quick scale small enough to train in a second."""
    return {
        "data": {"seq_len": 10, "train_samples": 64, "val_samples": 32, "test_samples": 32, "batch_size": 32},
        "model": {"hidden": [16]},
        "optim": {"lr": 1e-2},
        "trainer": {"max_epochs": 1, "threads": 1},
        "logging": {"loggers": ["csv"], "log_every_n_steps": 1},
        "run": {"scale": "quick", **run},
    }


def test_suite_writes_table_and_figures_and_skips_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "QUICK", tiny_quick_scale())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = suite.run_memory_suite(tmp_path / "out", cells=("lif", "no_such_cell"), tasks=("adding",))
    text = table.read_text()
    assert "quick scale, CPU, embedded data" in text and "| adding T=10 | lif | 42 |" in text
    assert "no_such_cell (adding)" in text
    for name in ("memory_results.csv", "memory_results.json"):
        assert (tmp_path / "out" / name).is_file(), name
    record = json.loads((tmp_path / "out" / "memory_results.json").read_text())["runs"][0]
    assert abs(record["baseline"] - 1 / 6) < 1e-12 and len(record["gradient_share"]) == 10
    assert len(record["input_gradient_share"]) == 10 and "| at the input | span |" in text
    assert len(record["memory_span"]["loss_share"]) == 4
    # the CSV holds one value per column: numbers parse as numbers, the span one column per quarter
    import csv
    with open(tmp_path / "out" / "memory_results.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["task"] == "adding" and int(row["seq_len"]) == 10
    spans = [float(row[f"span_q{q}"]) for q in (1, 2, 3, 4)]
    assert spans == pytest.approx(record["memory_span"]["loss_share"])
    assert float(row["loss/baseline"]) == pytest.approx(record["test"]["loss"] / record["baseline"])

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(suite, "fit", must_not_train)
    again = suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",))
    assert "| adding T=10 | lif | 42 |" in again.read_text()
    # collecting trains nothing: the finished run is tabled, the unfinished seed named
    collected = suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",), seeds=(42, 1),
                                       collect=True).read_text()
    assert "| adding T=10 | lif | 42 |" in collected and "| adding T=10 | lif | 1 |" not in collected
    assert "No finished run (collected without training): lif adding seed 1" in collected
    assert not (tmp_path / "out" / "runs" / "memory" / "adding_T10" / "lif" / "seed1").exists()
    before = {p: p.read_bytes() for p in (tmp_path / "out").glob("memory_results.*")}
    with pytest.raises(ConfigError, match="no finished run of these cells, tasks and seeds"):
        suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",), seeds=(7,), collect=True)
    assert {p: p.read_bytes() for p in (tmp_path / "out").glob("memory_results.*")} == before
    # a finished run of another scale or length is never taken for this suite's
    metrics = tmp_path / "out" / "runs" / "memory" / "adding_T10" / "lif" / "seed42" / "metrics.json"
    record = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**record, "scale": "small"}))
    with pytest.raises(ConfigError, match="holds a small-scale run, not a quick-scale one"):
        suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",))
    metrics.write_text(json.dumps({**record, "epochs": 7}))
    with pytest.raises(ConfigError, match="trained for 7 epochs, the quick scale trains 1"):
        suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",), collect=True)
    # nor one trained with another setting (here another learning rate) in the suite's folder
    metrics.write_text(json.dumps(record))
    config_file = metrics.parent / "config.yaml"
    stored = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**stored, "optim": {**stored["optim"], "lr": 0.05}}))
    with pytest.raises(ConfigError, match=r"another setting than the quick suite's \(optim.lr: 0.05 there"):
        suite.run_memory_suite(tmp_path / "out", cells=("lif",), tasks=("adding",), collect=True)


def test_a_failing_run_is_named_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "QUICK", tiny_quick_scale(gradient_analysis=False))
    real_fit = suite.fit

    def fit(cfg, **kwargs):
        if cfg["model"]["cell"] == "plif":
            raise ConfigError("run x is being trained by process 1 on elsewhere; wait for it")
        return real_fit(cfg, **kwargs)

    monkeypatch.setattr(suite, "fit", fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = suite.run_memory_suite(tmp_path / "out", cells=("plif", "lif"), tasks=("adding",)).read_text()
    assert "| adding T=10 | lif | 42 |" in table
    assert "Failed (the other runs went on): plif adding seed 42 failed: run x is being trained by process 1" in table
    from stcbench.commands.bench import memory_failures

    assert memory_failures(tmp_path / "out") == [("plif", "adding", "seed 42 failed: run x is being trained by "
                                                                     "process 1 on elsewhere; wait for it")]


def test_the_memory_plan_says_which_runs_resume(tmp_path, capsys):
    from stcbench.commands.bench import print_memory_plan

    runs = tmp_path / "out" / "runs"
    _, run_dir = suite.suite_run("lif", "adding", "quick", 1, runs)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"interrupted")
    print_memory_plan(tmp_path / "out", ["lif"], ["adding"], "quick", [0, 1])
    out = capsys.readouterr().out
    assert "adding / lif / seed 0: to run" in out and "adding / lif / seed 1: resumes from checkpoints/last.ckpt" in out
