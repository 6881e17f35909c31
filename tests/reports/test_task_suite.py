"""`stcbench bench --config FILE`: any task's config over seeds and cells through the run engine, then its table."""
import json
from pathlib import Path

import pytest

from stcbench.cli import main
from stcbench.engine import task as task_registry

EXAMPLE_TASK = Path(__file__).resolve().parents[2] / "examples" / "my_task.py"
TINY_MEMORY = ["--set", "trainer.max_epochs=1", "--set", "data.train_samples=64", "--set", "data.val_samples=32",
               "--set", "data.test_samples=32", "--set", "data.seq_len=10", "--set", "logging.loggers=[csv]"]


@pytest.fixture
def line_task(tmp_path, monkeypatch):
    monkeypatch.setattr(task_registry, "TASKS", dict(task_registry.TASKS))      # the registration stays here
    plugin = tmp_path / "line_task.py"
    plugin.write_text(EXAMPLE_TASK.read_text())
    config = tmp_path / "line.yaml"
    config.write_text("task: line\ntrainer:\n  max_epochs: 2\n")
    return config, plugin


def test_a_task_of_ones_own_runs_over_seeds_and_is_tabled(line_task, tmp_path, capsys):
    config, plugin = line_task
    out = tmp_path / "bench"
    argv = ["bench", "--config", str(config), "--seeds", "0,1", "--set", f"plugins=[{plugin}]", "--out", str(out)]
    assert main(argv) == 0
    runs = [out / "runs" / "line" / f"line-seed{seed}" for seed in (0, 1)]
    values = [json.loads((run / "metrics.json").read_text())["test"]["mse"] for run in runs]
    row = next(line for line in (out / "table_summary.md").read_text().splitlines() if line.startswith("| line |"))
    assert row.split(" | ")[2].startswith(f"{sum(values) / 2:.4f} ± ") and row.split(" | ")[3] == "2"
    capsys.readouterr()
    # again: the finished runs are skipped, not trained again
    stamps = [(run / "metrics.json").stat().st_mtime_ns for run in runs]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("skip line/line seed") == 2
    assert [(run / "metrics.json").stat().st_mtime_ns for run in runs] == stamps
    # another setting under the same --out is refused before anything runs, naming the difference
    assert main(argv + ["--set", "trainer.max_epochs=3"]) == 2
    assert "trainer.max_epochs: 2 there, 3 here" in capsys.readouterr().err
    # keys the plan sets, and the suites' own flags, are refused with what to use
    assert main(argv + ["--set", "seed=5"]) == 2
    assert "use --seeds instead" in capsys.readouterr().err
    assert main(argv + ["--datasets", "mmnist"]) == 2
    assert "--datasets is for the suites" in capsys.readouterr().err


def test_an_interrupted_run_of_the_plan_is_resumed_from_its_last_checkpoint(line_task, tmp_path, capsys):
    config, plugin = line_task
    out = tmp_path / "bench"
    base = ["bench", "--config", str(config), "--seeds", "0", "--set", f"plugins=[{plugin}]", "--out", str(out)]
    assert main(base + ["--set", "trainer.stop_after_epochs=1", "--no-report"]) == 0
    run = out / "runs" / "line" / "line-seed0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    capsys.readouterr()
    assert main(base + ["--dry-run"]) == 0
    assert "[to resume] line line seed 0" in capsys.readouterr().out
    assert main(base) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_a_memory_config_over_cells_gets_the_memory_table(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--config", "memory/quick_adding", "--cells", "lif,plif", "--seeds", "0", "--out", str(out),
                 *TINY_MEMORY]) == 0
    table = (out / "table_memory.md").read_text()
    assert "| lif | 1 |" in table and "| plif | 1 |" in table
    assert sorted(p.parent.name for p in (out / "runs").rglob("metrics.json")) == [
        "quick_adding-lif-seed0", "quick_adding-plif-seed0"]


def test_a_plugin_the_config_names_is_refused_once_before_any_run(tmp_path, capsys):
    evil = tmp_path / "evil.py"
    evil.write_text("raise SystemExit('imported')\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"task: memory\nplugins: [{evil}]\n")
    out = tmp_path / "bench"
    assert main(["bench", "--config", str(config), "--seeds", "0,1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "imports only when you name it yourself" in err and err.count("\n") == 1
    assert not out.exists()


def test_the_lif_baseline_is_found_under_an_alias(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--config", "memory/quick_adding", "--cells", "LIF,plif", "--seeds", "0", "--out", str(out),
                 "--no-report", *TINY_MEMORY]) == 0
    assert main(["bench", "--config", "memory/quick_adding", "--cells", "LIF,plif", "--seeds", "0", "--out", str(out),
                 "--collect", *TINY_MEMORY]) == 0
    assert "loss / baseline minus lif's" in (out / "table_memory.md").read_text()
    assert (out / "runs" / "memory" / "adding_T10" / "lif" / "quick_adding-lif-seed0").is_dir()     # its own name


def test_a_named_baseline_that_no_run_will_have_is_refused_before_training(line_task, tmp_path, capsys):
    config, plugin = line_task
    out = tmp_path / "bench"
    assert main(["bench", "--config", str(config), "--seeds", "0", "--set", f"plugins=[{plugin}]", "--out", str(out),
                 "--baseline", "plif"]) == 2
    assert "--baseline plif: the plan does not train it" in capsys.readouterr().err and not (out / "runs").exists()


def test_a_config_over_cells_and_seeds_runs_as_slurm_jobs_that_train_through_the_engine(tmp_path, monkeypatch,
                                                                                       capsys):
    """`bench --config ... --launcher slurm`: one job per unfinished run, each made of absolute paths and trained by
    the task's engine when the job runs (here called in this process, as submitit would after unpickling it)."""
    import pickle

    from stcbench.reports import launch
    from stcbench.reports.task_suite import TaskRun

    jobs = []

    class Executor:
        def update_parameters(self, **kwargs):
            pass

        def submit(self, job):
            jobs.append(pickle.loads(pickle.dumps(job)))
            return type("Job", (), {"job_id": str(4200 + len(jobs))})()

    monkeypatch.setattr("stcbench.commands.bench.make_executor", lambda folder, options, cluster="slurm": Executor())
    monkeypatch.setattr("stcbench.commands.bench.require_sbatch", lambda: None)
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "--config", "memory/quick_adding", "--cells", "lif,plif", "--seeds", "0", "--out", "rel",
            "--launcher", "slurm", *TINY_MEMORY]
    assert main(argv) == 0
    assert len(jobs) == 2 and "submitting 2 jobs" in capsys.readouterr().out
    assert launch.submitted_jobs(Path("rel")) == {"adding/quick_adding-lif-seed0": "4201",
                                                  "adding/quick_adding-plif-seed0": "4202"}
    run = jobs[0].run
    assert isinstance(run, TaskRun) and run.config_path.is_absolute() and run.run_dir.is_absolute()
    assert Path(run.overrides["run.output_dir"]).is_absolute() and Path(run.overrides["data.data_root"]).is_absolute()
    monkeypatch.chdir(tmp_path / "rel")                         # a job starts in another folder
    jobs[0]()
    assert run.done and run.run_dir == tmp_path / "rel" / "runs" / "memory" / "adding_T10" / "lif" / "quick_adding-lif-seed0"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(argv + ["--collect"]) == 0                     # the finished run is tabled
    assert "| lif | 1 |" in (tmp_path / "rel" / "table_memory.md").read_text()
    monkeypatch.setattr(launch, "in_queue", lambda todo, out: {"adding/quick_adding-plif-seed0": "4202"})
    assert main(argv) == 0                                       # the queued one is not submitted twice
    assert len(jobs) == 2 and "job 4202 still holds adding/plif seed 0" in capsys.readouterr().out


def test_a_task_of_ones_own_named_with_set_plugins_trains_in_a_slurm_job_started_elsewhere(line_task, tmp_path,
                                                                                           monkeypatch, capsys,
                                                                                           isolated_registry):
    """The job loads the plugins named with --set (made absolute at submission, given relative here) before it
    looks up its task."""
    import pickle

    from stcbench import plugin_consent

    config, plugin = line_task
    jobs = []

    class Executor:
        def update_parameters(self, **kwargs):
            pass

        def submit(self, job):
            jobs.append(pickle.dumps(job))
            return type("Job", (), {"job_id": str(4200 + len(jobs))})()

    monkeypatch.setattr("stcbench.commands.bench.make_executor", lambda folder, options, cluster="slurm": Executor())
    monkeypatch.setattr("stcbench.commands.bench.require_sbatch", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--config", config.name, "--seeds", "0", "--out", "o", "--launcher", "slurm",
                 "--set", f"plugins=[{plugin.name}]"]) == 0
    from stcbench import cells

    monkeypatch.setattr(task_registry, "TASKS", {k: v for k, v in task_registry.TASKS.items() if k != "line"})
    monkeypatch.setattr(cells, "_LOADED_PLUGINS", {k: v for k, v in cells._LOADED_PLUGINS.items()
                                                   if "line_task" not in k})
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")                  # a job's process: nothing imported, another folder
    job = pickle.loads(jobs[0])
    assert plugin_consent.current() is None
    job()
    assert json.loads((tmp_path / "o" / "runs" / "line" / "line-seed0" / "metrics.json").read_text())["test"]


def test_a_config_naming_its_own_task_plugin_runs_when_trusted(line_task, tmp_path, capsys, isolated_registry):
    config, plugin = line_task
    named = tmp_path / "named.yaml"
    named.write_text(f"task: line\nplugins: [{plugin}]\ntrainer:\n  max_epochs: 1\n")
    assert main(["bench", "--config", str(named), "--seeds", "0", "--out", str(tmp_path / "a")]) == 2
    assert "code that stcbench imports only when you name it yourself" in capsys.readouterr().err
    assert main(["bench", "--config", str(named), "--seeds", "0", "--out", str(tmp_path / "b"),
                 "--trust-checkpoint"]) == 0


def test_bench_refuses_an_out_inside_another_bench_runs_folder(tmp_path, capsys):
    (tmp_path / "b1" / "runs").mkdir(parents=True)
    (tmp_path / "b1" / "table_summary.md").write_text("the suite's table")
    for out in (tmp_path / "b1" / "runs", tmp_path / "b1" / "runs" / "nested"):
        assert main(["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--out", str(out),
                     "--dry-run"]) == 2
        assert "lies inside the runs folder of the bench output" in capsys.readouterr().err
    assert not (tmp_path / "b1" / "runs" / "nested").exists()
