"""A task of a user's own plugs into the engine from a plugin file: registered there, found by fit and test."""
import json
import textwrap
from pathlib import Path

import pytest

from stcbench.cli import main
from stcbench.engine import task as task_registry

PLUGIN = textwrap.dedent('''
    """A task of a user's own (here the memory task under another name, with its own config class)."""
    from dataclasses import dataclass

    from stcbench.engine.schema import one_of, option
    from stcbench.engine.task import register_task
    from stcbench.memory.config import MemoryConfig
    from stcbench.memory.task import MemoryTask


    @dataclass
    class EchoConfig(MemoryConfig):
        task: str = option("echo", help="this task", check=one_of(["echo"]))


    class EchoTask(MemoryTask):
        name = "echo"
        config_class = EchoConfig


    register_task("echo", EchoTask)
''')


@pytest.fixture
def echo_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(task_registry, "TASKS", dict(task_registry.TASKS))      # the registration stays here
    path = tmp_path / "echo_task.py"
    path.write_text(PLUGIN)
    return path


def test_a_task_registered_in_a_plugin_file_runs_through_fit(echo_plugin, tmp_path, capsys):
    small = ["--set", "trainer.max_epochs=1", "--set", "data.train_samples=64", "--set", "data.val_samples=32",
             "--set", "data.test_samples=32", "--set", "data.seq_len=10", "--set", "logging.loggers=[csv]"]
    argv = ["fit", "--config", "memory/quick_adding", "--set", "task=echo", "--set", f"plugins=[{echo_plugin}]",
            "--output-dir", str(tmp_path / "runs"), *small]
    assert main(argv) == 0
    run_dir = next((tmp_path / "runs").rglob("metrics.json")).parent
    assert "task: echo" in (run_dir / "config.yaml").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["loss"] > 0
    # a fresh process: the run names the plugin, the user does not, so it is not imported
    import subprocess
    import sys

    refused = subprocess.run([sys.executable, "-m", "stcbench", "test", str(run_dir)], capture_output=True, text=True)
    assert refused.returncode == 2 and "imports only when you name it yourself" in refused.stderr
    out = tmp_path / "tested.json"
    assert main(["test", str(run_dir), "--set", f"plugins=[{echo_plugin}]", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["loss"] > 0
    capsys.readouterr()
    # without the plugin the task is unknown, and the message says how a task registers
    assert main(["fit", "--config", "memory/quick_adding", "--set", "task=nosuchtask", "--print-config"]) == 2
    assert "register_task" in capsys.readouterr().err


def test_the_engine_stores_the_config_of_a_module_that_does_not(tmp_path):
    """Resume checks and `test` read the run's config back from its checkpoints: a task's module that does not
    save it gets it from the engine; one that does keeps its own."""
    import lightning
    import torch

    from stcbench.engine.run import keep_config_in_checkpoints
    from stcbench.engine.schema import to_dict
    from stcbench.memory.config import resolve

    class Bare(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

    config = resolve("memory/quick_adding")
    bare = Bare()
    keep_config_in_checkpoints(bare, config)
    assert bare.hparams["config"] == to_dict(config)
    own = Bare()
    own.save_hyperparameters({"config": {"seed": 7}})
    keep_config_in_checkpoints(own, config)
    assert own.hparams["config"] == {"seed": 7}


EXAMPLE_TASK = Path(__file__).resolve().parents[2] / "examples" / "my_task.py"      # docs/architecture.md


def test_a_task_that_supplies_only_config_module_data_and_folder_is_evaluated_and_tested_by_the_engine(
        tmp_path, monkeypatch, capsys):
    """examples/my_task.py, the docs' example: the engine's defaults test the best and last checkpoints after fit
    (metrics.json), and `stcbench test`; a run stopped after an epoch and resumed ends as one never stopped."""
    monkeypatch.setattr(task_registry, "TASKS", dict(task_registry.TASKS))
    plugin = tmp_path / "line_task.py"
    plugin.write_text(EXAMPLE_TASK.read_text())
    config = tmp_path / "line.yaml"
    config.write_text("task: line\ntrainer:\n  max_epochs: 3\n")
    argv = ["fit", "--config", str(config), "--set", f"plugins=[{plugin}]", "--output-dir", str(tmp_path / "runs"),
            "--set", "run.name=one"]
    assert main(argv) == 0
    run_dir = tmp_path / "runs" / "line" / "one"
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["task"] == "line" and record["epochs"] == 3
    assert record["best"]["checkpoint"] == "checkpoints/best.ckpt"
    assert record["last"]["epoch"] == 3 and 1 <= record["selected_epoch"] <= 3
    assert 0 <= record["test"]["mse"] < 4.0 * 0.5          # learnt: the untrained line's error is of order 4
    assert record["last"]["test"]["mse"] >= 0 and "test  MSE " in capsys.readouterr().out   # its label
    out = tmp_path / "tested.json"
    assert main(["test", str(run_dir), "--set", f"plugins=[{plugin}]", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["mse"] == pytest.approx(record["test"]["mse"], rel=1e-6)
    # stopped after an epoch and resumed with the command it prints: the same numbers as the run never stopped
    stopped = ["fit", "--config", str(config), "--set", f"plugins=[{plugin}]", "--output-dir", str(tmp_path / "runs"),
               "--set", "run.name=two", "--set", "trainer.stop_after_epochs=1"]
    assert main(stopped) == 0
    assert main(["fit", "--ckpt-path", str(tmp_path / "runs" / "line" / "two"), "--set", f"plugins=[{plugin}]"]) == 0
    resumed = json.loads((tmp_path / "runs" / "line" / "two" / "metrics.json").read_text())
    assert resumed["test"] == record["test"] and resumed["last"]["test"] == record["last"]["test"]
    # its declared metric is tabled over seeds (read from the records: `table` imports no plugin)
    assert record["reported_metrics"] == [{"key": "mse", "label": "MSE", "higher_is_better": False, "decimals": 4}]
    assert record["val"]["monitor"] == "val/loss" and record["val"]["score"] >= 0         # what --select best-val ranks
    other_seed = ["fit", "--config", str(config), "--set", f"plugins=[{plugin}]", "--output-dir",
                  str(tmp_path / "runs"), "--set", "run.name=three", "--set", "seed=1"]
    assert main(other_seed) == 0
    capsys.readouterr()
    assert main(["table", "--runs", str(tmp_path / "runs"), "--table", "summary", "--baseline", "none"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| line |")]
    seeds = [json.loads((tmp_path / "runs" / "line" / name / "metrics.json").read_text())["test"]["mse"]
             for name in ("two", "three")]                                  # one run per seed: the newest
    assert len(rows) == 1 and rows[0][3] == "2"
    assert rows[0][2].startswith(f"{sum(seeds) / 2:.4f} ± ")


def test_a_misspelt_declared_metric_is_named_and_its_runs_still_table(tmp_path):
    """A ReportedMetric key the test did not measure, beside measured ones it does not declare, is a warning naming
    both (not a silently missing column); a record whose declaration matched nothing tables every test number."""
    from stcbench.engine.task import ReportedMetric, Task
    from stcbench.reports.runs import discover_runs
    from stcbench.reports.tables import summary_table

    class Typo(Task):
        name = "blobs"
        reported_metrics = (ReportedMetric("acuracy", higher_is_better=True), ReportedMetric("nll"))

    tested = {"accuracy": 0.9, "nll": 0.3}
    warning = Typo().unmeasured_metrics(tested)
    assert "'acuracy'" in warning and "'accuracy'" in warning and "test_log_prefix" in warning
    assert Typo().metrics_to_report(tested) == [{"key": "nll", "label": "nll", "higher_is_better": False,
                                                 "decimals": 4}]
    assert task_registry.get_task("memory").unmeasured_metrics({"loss": 0.1}) is None     # adding: no accuracy

    run = tmp_path / "runs" / "blobs" / "blobs" / "s0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "blobs", "dataset": "blobs", "seed": 0, "test": tested,
                                                  "reported_metrics": []}))
    table = summary_table(discover_runs(tmp_path / "runs"), baseline=None)
    assert table.header[2:4] == ["accuracy", "nll"] and table.rows[0][2:4] == ["0.9000", "0.3000"]
