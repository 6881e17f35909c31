"""Launching a suite: shards, isolated runs with failure records, resuming from last.ckpt, the rank
before a Trainer exists, SLURM job scripts, and submitit's local executor running real runs."""
import json
import os

import pytest
import yaml

from stcbench.cli import main
from stcbench.commands import bench
from stcbench.errors import ConfigError
from stcbench.reports import launch
from stcbench.reports.suites import PlannedRun, plan_suite
from stcbench.engine import cluster
from tests.reports.test_bench import FakeRunner, args_for, configs  # noqa: F401  (fixture)


def names(runs):
    return [(r.dataset, r.name) for r in runs]


def test_shards_are_disjoint_and_cover_the_plan(tmp_path):
    planned = plan_suite("paper", cells=["lif", "stclif", "plif"], datasets=["mmnist", "taxibj", "kth"],
                         seeds=[1, 2, 3], out=tmp_path)
    assert len(planned) == 27
    for count in (1, 2, 4, 5, 27, 40):
        shards = [names(launch.take_shard(planned, (index, count))) for index in range(count)]
        flat = [item for shard in shards for item in shard]
        assert sorted(flat) == sorted(names(planned)) and len(set(flat)) == len(flat)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_syntax():
    assert launch.parse_shard("3/8") == (3, 8) and launch.parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("8/8", "1", "-1/4", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            launch.parse_shard(bad)


def test_dry_run_prints_the_shard_one_run_per_line(tmp_path, configs, capsys):  # noqa: F811
    common = ["bench", "--suite", "quick", "--cells", "lif,convlstm,plif", "--datasets", "mmnist,taxibj",
              "--configs", str(configs), "--out", str(tmp_path / "o"), "--dry-run"]
    assert main(common) == 0
    everything = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    parts = []
    for index in range(3):
        assert main(common + ["--shard", f"{index}/3"]) == 0
        parts += [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert len(everything) == 6 and sorted(parts) == sorted(everything)
    assert main(common + ["--shard", "3/3"]) == 2


class FailingFor(FakeRunner):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def __call__(self, planned):
        if planned.cell == self.cell:
            raise RuntimeError("out of memory (simulated)")
        return super().__call__(planned)


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, configs, capsys):  # noqa: F811
    args = args_for(tmp_path, configs, cells=["lif", "convlstm"], datasets=["mmnist"], no_report=False)
    assert bench.run(args, fit=FailingFor("convlstm")) == 1
    captured = capsys.readouterr()
    assert "1 run failed" in captured.err and "mmnist/convlstm seed 42" in captured.err
    assert "out of memory (simulated)" in captured.err
    out = tmp_path / "bench"
    record = json.loads((out / "failures" / "mmnist-quick-convlstm-seed42.json").read_text())
    assert record["cell"] == "convlstm" and "RuntimeError" in record["traceback"]
    assert (out / "runs" / "mmnist" / "lif" / "quick-lif-seed42" / "metrics.json").is_file()
    assert (out / "report.md").is_file()                                    # from what has finished
    assert bench.run(args_for(tmp_path, configs, cells=["lif", "convlstm"], datasets=["mmnist"], collect=True),
                     fit=None) == 1                                        # --collect names it too
    again = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, cells=["lif", "convlstm"], datasets=["mmnist"]), fit=again) == 0
    assert again.calls == [("mmnist", "convlstm", 42)] and not (out / "failures").exists()


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    from stcbench.training import runner

    calls = []
    monkeypatch.setattr(runner, "fit", lambda config, **kwargs: calls.append(kwargs) or tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\n")
    run = PlannedRun("quick", "mmnist", "lif", 42, config, {"run.name": "quick-lif-seed42"}, tmp_path / "runs")
    launch.fit_planned(run)
    assert calls[-1] == {"overrides": run.overrides, "overwrite": True}
    last = tmp_path / "runs" / "mmnist" / "lif" / "quick-lif-seed42" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    launch.fit_planned(run)
    assert calls[-1] == {"ckpt_path": last, "overrides": run.overrides}


@pytest.mark.parametrize("env, zero", [
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "train"}, False),
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "train", "LOCAL_RANK": "1"}, True),
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "bash"}, True),   # interactive: not SLURM's
    ({"LOCAL_RANK": "1"}, False),
    ({"NODE_RANK": "1"}, False),
    ({"RANK": "0", "LOCAL_RANK": "0"}, True),
    ({}, True),
])
def test_the_rank_before_the_trainer_comes_from_the_cluster_environment(monkeypatch, env, zero):
    for key in ("SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_JOB_NAME", "RANK", "LOCAL_RANK", "NODE_RANK",
                "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from stcbench.engine.cluster import is_rank_zero

    assert cluster.is_rank_zero() is zero and is_rank_zero() is zero


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """srun and sbatch stand-ins: sbatch records each job script and answers with a job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    queued = tmp_path / "queued.txt"          # the job ids squeue lists as pending or running
    queued.write_text("")
    (bin_dir / "squeue").write_text(f"#!/bin/sh\nfor id in $(echo \"$4\" | tr ',' ' '); do grep -qx \"$id\" {queued} "
                                    f"&& echo $id; done\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\nn=$(ls {scripts} | wc -l)\ncp \"$1\" {scripts}/job$n.sh\n"
                                    f"echo \"Submitted batch job $((4200 + n))\"\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return scripts


def test_slurm_launcher_submits_one_job_per_unfinished_run(tmp_path, configs, fake_slurm, capsys):  # noqa: F811
    out = tmp_path / "o"
    FakeRunner()(plan_suite("quick", cells=["lif"], datasets=["mmnist"], out=out, configs_root=configs)[0])
    argv = ["bench", "--suite", "quick", "--cells", "lif,convlstm", "--datasets", "mmnist,taxibj", "--configs",
            str(configs), "--out", str(out), "--launcher", "slurm", "--slurm-partition", "gpu", "--slurm-gpus", "1",
            "--slurm-time", "600", "--slurm-account", "proj", "--data-root", str(tmp_path / "data")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    scripts = sorted(fake_slurm.iterdir())
    assert len(scripts) == 3 and text.count("  job 42") == 3                # the finished run is not submitted
    script = scripts[0].read_text()
    for line in ("--partition=gpu", "--gpus-per-node=1", "--ntasks-per-node=1", "--time=600", "--account=proj",
                 "--signal=USR2@", "--job-name=stcbench-mmnist-quick-convlstm-seed42"):
        assert line in script
    assert "--collect" in text
    # the embedded data the jobs read was made once, before they were submitted
    assert all(any(folder.iterdir()) for folder in (tmp_path / "data").iterdir()) and len(list((tmp_path / "data").iterdir())) == 2


def test_slurm_jobs_are_not_submitted_for_data_that_is_missing(tmp_path, configs, fake_slurm, capsys):  # noqa: F811
    """A run's job would queue, start and only then find its data missing: bench checks the data first."""
    argv = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "taxibj", "--configs", str(configs),
            "--out", str(tmp_path / "o"), "--launcher", "slurm", "--data-root", str(tmp_path / "empty"),
            "--set", "data.generate_if_missing=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "taxibj" in err.lower() and "--slurm-no-data-check" in err and not list(fake_slurm.iterdir())
    assert main(argv + ["--slurm-no-data-check"]) == 0 and len(list(fake_slurm.iterdir())) == 1   # mounted there


def test_a_job_gets_absolute_paths_and_leaves_a_finished_run_as_it_is(tmp_path, monkeypatch, configs):  # noqa: F811
    """A job started in another folder (--chdir) reads and writes where the command said; a second job of a run that
    another job finished does not train it again (or over it)."""
    from pathlib import Path

    from stcbench.training import runner

    monkeypatch.chdir(tmp_path)
    (run,) = plan_suite("quick", cells=["lif"], datasets=["mmnist"], out=Path("rel"),
                        configs_root=configs.relative_to(tmp_path), data_root="reldata",
                        extra_overrides={"plugins": ["my_cell.py", "installed.module"]})
    moved = launch.with_absolute_paths(run)
    assert moved.config_path.is_absolute() and moved.runs_root.is_absolute()
    for key in ("run.output_dir", "data.data_root"):
        assert moved.overrides[key].startswith(str(tmp_path))
    assert moved.overrides["plugins"] == [str(tmp_path / "my_cell.py"), "installed.module"]
    calls = []
    monkeypatch.setattr(runner, "fit", lambda config, **kwargs: calls.append(kwargs) or tmp_path)
    FakeRunner()(moved)
    assert moved.done and launch.fit_planned(moved) == moved.finished_metrics().parent and not calls


def test_a_run_whose_job_is_still_queued_is_not_submitted_twice(tmp_path, configs, fake_slurm, capsys):  # noqa: F811
    out = tmp_path / "o"
    argv = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--seeds", "0,1,2", "--configs",
            str(configs), "--out", str(out), "--launcher", "slurm", "--data-root", str(tmp_path / "data")]
    assert main(argv) == 0
    assert launch.submitted_jobs(out) == {f"mmnist/quick-lif-seed{seed}": str(4200 + seed) for seed in range(3)}
    assert "--gpus-per-node" not in sorted(fake_slurm.iterdir())[0].read_text()     # a CPU suite asks for no GPU
    (tmp_path / "queued.txt").write_text("4200\n4201\n")         # the third job left the queue without a result
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.count("not submitted again") == 2 and "job 4203: mmnist/lif seed 2" in text
    assert len(list(fake_slurm.iterdir())) == 4
    assert main(argv + ["--collect"]) == 0
    text = capsys.readouterr().out
    assert "2 jobs of them still queued or running in SLURM" in text and "without --collect" not in text
    assert main(argv + ["--slurm-resubmit"]) == 0 and len(list(fake_slurm.iterdir())) == 7


@pytest.mark.parametrize("flag, value", [("--slurm-time", "-5"), ("--slurm-gpus", "-1"), ("--slurm-cpus", "0"),
                                         ("--slurm-gpus", "2")])       # one run per job on one GPU: no DDP copies
def test_slurm_numbers_slurm_cannot_take_are_refused(tmp_path, configs, fake_slurm, capsys, flag, value):  # noqa: F811
    argv = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
            "--out", str(tmp_path / "o"), "--launcher", "slurm", flag, value]
    assert main(argv + ["--dry-run"]) == 2 and f"{flag} {value}" in capsys.readouterr().err
    assert main(argv) == 2 and not list(fake_slurm.iterdir())


def test_slurm_launcher_without_srun_is_one_clear_error(tmp_path, configs, fake_slurm, capsys):  # noqa: F811
    (tmp_path / "bin" / "srun").unlink()
    argv = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
            "--out", str(tmp_path / "o"), "--launcher", "slurm"]
    assert main(argv) == 2 and "needs SLURM's srun on PATH" in capsys.readouterr().err


def test_slurm_launcher_without_sbatch_is_one_clear_error(tmp_path, configs, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
            "--out", str(tmp_path / "o"), "--launcher", "slurm"]
    assert main(argv) == 2 and "sbatch" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def mmnist_root(tmp_path_factory):
    from stcbench.data import generate_dataset

    root = tmp_path_factory.mktemp("data")
    generate_dataset("mmnist", root, overrides={"test_sequences": "24"})
    return root


def test_submitit_local_executor_runs_isolated_processes_one_failing(mmnist_root, tmp_path):
    from tests.training.helpers import tiny_config

    out = tmp_path / "bench"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(mmnist_root, out / "runs", epochs=1)))
    overrides = {"run.output_dir": str(out / "runs"), "run.scale": "quick", "trainer.threads": 1}
    good = PlannedRun("quick", "mmnist", "lif", 42, config, {**overrides, "model.cell": "lif", "seed": 42},
                      out / "runs")
    bad = PlannedRun("quick", "mmnist", "plif", 42, config,
                     {**overrides, "model.cell": "plif", "seed": 42, "model.num_hidden": [15]}, out / "runs")
    for run in (good, bad):
        run.overrides["run.name"] = run.name
    executor = launch.make_executor(out / "slurm", launch.SlurmOptions(gpus=0, time_min=10), cluster="local")
    jobs = launch.submit([good, bad], out, executor, log=lambda _: None)
    states = []
    for job in jobs:
        try:
            job.result()
            states.append("ok")
        except Exception:       # submitit re-raises the job's failure here
            states.append("failed")
    assert states == ["ok", "failed"]
    assert len({job.job_id for job in jobs}) == 2 and all(job.job_id != str(os.getpid()) for job in jobs)
    assert good.done and not bad.done
    failures = launch.recorded_failures(out, [good, bad])
    assert [run.cell for run, _ in failures] == ["plif"]
    assert "multiple of 16" in failures[0][1]["error"] and "Traceback" in failures[0][1]["traceback"]


def test_a_slurm_job_keeps_the_plugin_consent_and_trust_of_the_submitting_command(tmp_path, monkeypatch):
    """A SLURM job runs in another process: what the bench command allowed travels with the job."""
    import pickle

    from stcbench import plugin_consent
    from stcbench.checkpoints import checkpoint_trust, trusted
    from stcbench.reports import launch

    seen = []
    monkeypatch.setattr(launch, "attempt", lambda run, out, fit: seen.append((plugin_consent.current(), trusted()))
                        or True)
    plugin = str(tmp_path / "mine.py")
    with plugin_consent.consent_to_plugins([plugin]), checkpoint_trust(True):
        job = launch.RunJob(FinishedRun(), tmp_path)
    job = pickle.loads(pickle.dumps(job))                    # as submitit sends it
    assert plugin_consent.current() is None and not trusted()   # the job's process: nothing set
    job()
    consent, trust = seen[0]
    assert plugin in consent and trust is True
    assert plugin_consent.current() is None and not trusted()


class FinishedRun:
    """A stand-in for a planned run that pickles (module level)."""

    def finished_metrics(self):
        return None


@pytest.mark.parametrize("script, expected", [
    # the controller unreachable: nothing can be told, so nothing is taken for gone
    ('echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1', None),
    # a list holding a job that left the queue is refused; asked one by one, 101 is still there
    ('if [ "$4" = "101" ]; then echo 101; exit 0; fi\n'
     'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1', {"101"}),
])
def test_only_a_job_squeue_calls_unknown_counts_as_gone(tmp_path, monkeypatch, script, expected):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert launch.queued_jobs(["101", "102"]) == expected


def test_a_run_another_process_trains_is_still_running_not_failed(tmp_path):
    """Two benches on one --out: the run the other one trains is said to run elsewhere; no failure is recorded."""
    from stcbench.errors import RunBusyError

    def busy(run):
        raise RunBusyError("run x is being trained by process 1 on host")

    run = PlannedRun("quick", "mmnist", "lif", 42, tmp_path / "c.yaml", {}, tmp_path / "runs")
    said = []
    assert launch.attempt(run, tmp_path, busy, log=said.append) is False
    assert "still running elsewhere" in said[0] and not (tmp_path / "failures").exists()


class Requeued(Exception):
    pass


def test_a_job_stopped_by_sigterm_waits_for_the_requeue_signal(tmp_path, monkeypatch):
    """Preemption may send SIGTERM just before submitit's requeue signal (USR2): the job stopped by SIGTERM waits
    for it (submitit's handler then requeues the job) instead of ending first; without one it ends as stopped."""
    import signal
    import threading

    from stcbench.reports import launch

    def stopped_by_sigterm(run, out, fit):
        raise SystemExit(143)

    monkeypatch.setattr(launch, "attempt", stopped_by_sigterm)

    def requeue(signum, frame):
        raise Requeued

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGUSR2)).start()
        with pytest.raises(Requeued):
            launch.RunJob(FinishedRun(), tmp_path)()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    monkeypatch.setattr(launch, "REQUEUE_SIGNAL_WAIT_S", 0.2)
    with pytest.raises(SystemExit) as ended:
        launch.RunJob(FinishedRun(), tmp_path)()
    assert ended.value.code == 143


def test_a_job_whose_run_another_process_trains_ends_without_a_failure(tmp_path, monkeypatch):
    """A second job of a run (resubmitted while the first still runs) finds it busy: it says so and ends, instead of
    failing and pointing at a failure record that does not exist."""
    monkeypatch.setattr(launch, "attempt", lambda run, out, fit: False)         # busy: attempt records nothing

    class Busy(FinishedRun):
        dataset, cell, seed, name = "mmnist", "lif", 0, "quick-lif-seed0"

    assert "trained by another process" in launch.RunJob(Busy(), tmp_path)()


def test_submitting_a_run_again_clears_its_earlier_failure(tmp_path):
    class Run(FinishedRun):
        dataset, cell, seed, name, config_path = "mmnist", "lif", 0, "quick-lif-seed0", "c.yaml"

    launch.record_failure(tmp_path, Run(), RuntimeError("out of disk"))

    class Executor:
        def update_parameters(self, **kwargs):
            pass

        def submit(self, job):
            return type("Job", (), {"job_id": "4200"})()

    launch.submit([Run()], tmp_path, Executor(), log=lambda _: None, absolute=lambda run: run)
    assert not launch.failure_path(tmp_path, Run()).exists()


def test_a_job_asks_for_the_cpus_its_runs_threads_use(tmp_path):
    from stcbench.commands.bench import threads_of
    from stcbench.config_files import find_config
    from stcbench.reports.task_suite import plan_task_suite

    quick = plan_suite("quick", cells=["lif"], datasets=["mmnist"], out=tmp_path)              # trainer.threads: 2
    memory = plan_task_suite(find_config("memory/quick_adding"), out=tmp_path)                 # threads: 1
    assert (threads_of(quick), threads_of(memory), threads_of(quick + memory)) == (2, 1, 2)
