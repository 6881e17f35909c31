"""Launching the runs of a benchmark suite: here one after another, or as SLURM jobs through submitit.

* Every run is isolated: a run that fails leaves `<out>/failures/<dataset>-<run name>.json` (its
  error and traceback) and the others go on; the record is removed once the run finishes.
* A run that was interrupted resumes from its own `checkpoints/last.ckpt`.
* `--shard i/n` keeps every n-th run starting at the i-th (0-based), so shards 0..n-1 are disjoint
  and cover the plan (for job arrays: `--shard $SLURM_ARRAY_TASK_ID/n`).
* SLURM: one job per run with the GPUs, time and partition given; a job that is preempted or
  reaches its time limit is requeued by submitit and resumes from its last.ckpt.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stcbench.errors import ConfigError
from stcbench.record_io import read_text

FAILURES = "failures"


def counted(n: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- shards -----------------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise ConfigError(f"--shard {text!r} must be I/N with 0 <= I < N (e.g. --shard 0/4 ... --shard 3/4, "
                          f"or --shard $SLURM_ARRAY_TASK_ID/N with --array=0-(N-1))")
    return int(match.group(1)), int(match.group(2))


def take_shard(planned: list, shard: tuple[int, int] | None) -> list:
    """Round robin, so each shard gets a similar mix of datasets and cells."""
    if shard is None:
        return list(planned)
    index, count = shard
    return list(planned[index::count])


# -- failure records --------------------------------------------------------------------------
def failure_path(out: Path, run) -> Path:
    return Path(out) / FAILURES / f"{run.dataset}-{run.name}.json"


def record_failure(out: Path, run, error: BaseException) -> Path:
    from stcbench.atomic import write_json

    return write_json(failure_path(out, run), {
        "dataset": run.dataset, "cell": run.cell, "seed": run.seed, "name": run.name,
        "config": str(run.config_path), "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
    })


def clear_failure(out: Path, run) -> None:
    failure_path(out, run).unlink(missing_ok=True)
    folder = Path(out) / FAILURES
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def recorded_failures(out: Path, planned: list) -> list[tuple[object, dict]]:
    """The planned runs that have not finished and whose last attempt failed, with the record."""
    found = []
    for run in planned:
        path = failure_path(out, run)
        if path.is_file() and not run.done:
            try:
                found.append((run, json.loads(read_text(path))))
            except (OSError, ValueError, RecursionError):
                found.append((run, {"error": f"unreadable failure record {path}"}))
    return found


def describe_failures(failures: list[tuple[object, dict]], out: Path) -> str:
    lines = [f"{counted(len(failures), 'run')} failed (details in {Path(out) / FAILURES}/):"]
    lines += [f"  {run.dataset}/{run.cell} seed {run.seed} ({run.name}): {record['error'].splitlines()[0][:300]}"
              for run, record in failures]
    return "\n".join(lines)


# -- one run ----------------------------------------------------------------------------------
def fit_planned(run) -> Path:
    """Train one planned run: from its own last.ckpt when an earlier attempt was interrupted; a run that has
    finished (another job of it finished first, say) is left as it is."""
    from stcbench.training import runner
    from stcbench.engine.schema import load_config_dict

    finished = run.finished_metrics()
    if finished is not None:
        return finished.parent
    last = run.last_checkpoint()
    config = load_config_dict(run.config_path)
    if last is not None:
        return runner.fit(config, ckpt_path=last, overrides=dict(run.overrides))
    return runner.fit(config, overrides=dict(run.overrides), overwrite=True)


def attempt(run, out: Path, fit: Callable, log: Callable[[str], None] = print) -> bool:
    """One run, isolated: an exception is recorded (and reported by the caller), never raised."""
    from stcbench.errors import RunBusyError

    try:
        fit(run)
    except RunBusyError as busy:        # another process (another bench, a resume) trains it: not a failure
        log(f"  still running elsewhere: {run.dataset}/{run.cell} seed {run.seed}: {str(busy).splitlines()[0][:300]}")
        return False
    except Exception as error:          # noqa: BLE001 - any failure of one run must not stop the suite
        if _rank_zero():
            record_failure(out, run, error)
        log(f"  failed: {run.dataset}/{run.cell} seed {run.seed}: {type(error).__name__}: "
            f"{str(error).splitlines()[0][:300] if str(error) else ''}")
        return False
    if _rank_zero():
        clear_failure(out, run)
    return True


def _rank_zero() -> bool:
    from stcbench.engine.cluster import is_rank_zero

    return is_rank_zero()


# -- SLURM through submitit -------------------------------------------------------------------
@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60
    gpus: int = 1
    cpus: int | None = None
    mem_gb: int | None = None
    account: str | None = None
    max_requeue: int = 3
    extra: dict = field(default_factory=dict)

    def executor_parameters(self) -> dict:
        params = {"timeout_min": self.time_min, "tasks_per_node": max(self.gpus, 1), "nodes": 1}
        if self.gpus:                          # a CPU job asks for no GPU resource at all
            params["gpus_per_node"] = self.gpus
        if self.cpus:
            params["cpus_per_task"] = self.cpus
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.account:
            params["slurm_account"] = self.account
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        return params


class RunJob:
    """The callable a SLURM job runs: one planned run, isolated and resumable.

    On preemption or at the time limit submitit calls `checkpoint`, which requeues the same job;
    the new attempt finds the run's last.ckpt and resumes from it."""

    def __init__(self, run, out: Path, consent=None, trust: bool | None = None, fit: Callable | None = None):
        from stcbench import plugin_consent
        from stcbench.checkpoints import trusted

        self.run, self.out = run, Path(out)
        self.fit = fit or fit_planned          # a module-level function (pickled with the job): trains `run`
        # what the submitting command allowed (plugins named by the user, --trust-checkpoint) holds in the job too
        self.consent = plugin_consent.current() if consent is None else consent
        self.trust = trusted() if trust is None else trust

    def __call__(self) -> str:
        from stcbench.checkpoints import checkpoint_trust
        from stcbench.engine.callbacks import SIGTERM_EXIT_CODE
        from stcbench.plugin_consent import consent_to_plugins

        with consent_to_plugins(self.consent), checkpoint_trust(self.trust):
            try:
                ok = attempt(self.run, self.out, self.fit)
            except SystemExit as stop:
                if stop.code == SIGTERM_EXIT_CODE:
                    wait_for_requeue_signal()
                raise
        if not ok and _rank_zero() and not failure_path(self.out, self.run).is_file():   # another process trains it
            return f"{self.run.dataset}/{self.run.cell} seed {self.run.seed}: trained by another process; nothing done"
        if not ok:
            raise RuntimeError(f"{self.run.dataset}/{self.run.cell} seed {self.run.seed} failed; see "
                               f"{failure_path(self.out, self.run)}")
        return str(self.run.finished_metrics())

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(self.run, self.out, self.consent, self.trust, self.fit))


REQUEUE_SIGNAL_WAIT_S = 25.0     # within SLURM's default KillWait (30 s) after SIGTERM


def wait_for_requeue_signal(seconds: float | None = None) -> None:
    """On preemption SLURM may send SIGTERM a moment before submitit's requeue signal (USR2); Lightning stops the
    run at the SIGTERM. Wait here for the requeue signal, whose handler (submitit's, in place again once Lightning
    has stopped) requeues the job and ends this process; the next attempt resumes from last.ckpt. Without one
    (a plain scancel), the job ends as stopped once `seconds` have passed."""
    import sys
    import time

    seconds = REQUEUE_SIGNAL_WAIT_S if seconds is None else seconds
    print(f"stcbench: SIGTERM in a SLURM job: waiting up to {seconds:.0f} s for the requeue signal (preemption)",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))


def make_executor(folder: Path, options: SlurmOptions, cluster: str = "slurm"):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=options.max_requeue)
    executor.update_parameters(name="stcbench", **options.executor_parameters())
    return executor


SUBMITTED = "submitted.json"      # in <out>/slurm: {"<dataset>/<run name>": job id} of the jobs submitted


def submitted_jobs(out: Path) -> dict[str, str]:
    """The jobs an earlier call submitted for the runs of `out` ({} when none or unreadable)."""
    try:
        jobs = json.loads(read_text(Path(out) / "slurm" / SUBMITTED))
    except (OSError, ValueError, RecursionError):
        return {}
    return {str(k): str(v) for k, v in jobs.items()} if isinstance(jobs, dict) else {}


def job_key(run) -> str:
    return f"{run.dataset}/{run.name}"


def submit(planned: list, out: Path, executor, log: Callable[[str], None] = print, fit: Callable | None = None,
           absolute: Callable | None = None) -> list:
    """One job per run (each recorded in <out>/slurm/submitted.json); returns the submitit jobs. Every path a job
    reads or writes is made absolute here (`absolute`, default: a video suite's runs), so that a job started in
    another folder (--chdir) finds them; `fit` trains a run in its job (default: a video suite's)."""
    from stcbench.atomic import write_json

    jobs, recorded = [], submitted_jobs(out)
    for run in planned:
        executor.update_parameters(name=f"stcbench-{run.dataset}-{run.name}")
        job = executor.submit(RunJob((absolute or with_absolute_paths)(run), Path(out).absolute(), fit=fit))
        clear_failure(out, run)                # an earlier attempt's failure: the new job is what counts now
        log(f"  job {job.job_id}: {run.dataset}/{run.cell} seed {run.seed} ({run.name})")
        jobs.append(job)
        recorded[job_key(run)] = str(job.job_id)
        write_json(Path(out) / "slurm" / SUBMITTED, recorded)
    return jobs


def with_absolute_paths(run):
    """A copy of planned run `run` whose config file, runs folder, data folder and plugin files are absolute."""
    import dataclasses

    from stcbench.data.specs import resolve_data_root
    from stcbench.training.config import resolve_config

    from stcbench.plugin_consent import plugin_specs, recorded_plugin

    data_root = resolve_config(run.config_path, run.overrides).data.data_root
    overrides = {**run.overrides, "run.output_dir": str(Path(run.runs_root).absolute()),
                 "data.data_root": str(resolve_data_root(data_root).absolute())}
    if "plugins" in overrides:                              # plugin files named on the command line
        overrides["plugins"] = [recorded_plugin(spec) for spec in plugin_specs(overrides["plugins"])]
    return dataclasses.replace(run, config_path=Path(run.config_path).absolute(),
                               runs_root=Path(run.runs_root).absolute(), overrides=overrides)


def prepare_data_for_jobs(planned: list, log: Callable[[str], None] = print) -> None:
    """The data of the jobs about to be submitted, checked here, once: a job would otherwise find a missing dataset
    only once it started. The check reads the files' headers only (KTH's frame cache is left to the jobs); an
    embedded default that the config generates when missing is generated now, so that several jobs do not generate
    the same folder at once."""
    from stcbench.data.check import verify_files
    from stcbench.data.specs import get_dataset_spec, resolve_data_root
    from stcbench.errors import DataError
    from stcbench.training.config import resolve_config

    seen = set()
    for run in planned:
        config = resolve_config(run.config_path, run.overrides)
        root = resolve_data_root(config.data.data_root)
        key = (config.data.dataset, str(root), config.data.generate_if_missing)
        if key in seen:
            continue
        seen.add(key)
        folder = get_dataset_spec(config.data.dataset).folder_path(root)
        if config.data.generate_if_missing and (not folder.exists() or not any(folder.iterdir())):
            from stcbench.training.datamodule import build_datamodule

            build_datamodule(config).prepare_data()           # generates the embedded default
            continue
        try:
            verify_files(config.data.dataset, root)
        except DataError as error:
            raise DataError(f"{error} (checked before submitting; if the data is mounted on the compute nodes "
                            f"only, pass --slurm-no-data-check)") from None


def queued_jobs(job_ids: list[str]) -> set[str] | None:
    """Which of `job_ids` SLURM still holds (pending, running, requeued); None when squeue cannot tell."""
    if not job_ids:
        return set()
    listed = _squeue(job_ids)
    if listed is None or listed[0] == 0:
        return None if listed is None else listed[1] & set(job_ids)
    if not listed[2]:
        return None
    alive = set()           # squeue refuses a list holding a job that has left the queue: ask job by job
    for job_id in job_ids:
        one = _squeue([job_id])
        if one is None or (one[0] != 0 and not one[2]):
            return None     # squeue failed for another reason (the controller unreachable, say): cannot tell
        alive |= one[1] & {job_id}
    return alive


def _squeue(job_ids: list[str]) -> tuple[int, set[str], bool] | None:
    """(exit status, the job ids squeue lists, whether it said a job id is unknown) for `job_ids`; None when
    squeue cannot be run."""
    import subprocess

    try:
        listed = subprocess.run(["squeue", "--noheader", "--format=%i", "--jobs", ",".join(job_ids)],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    unknown = "invalid job id" in (listed.stderr + listed.stdout).lower()
    return listed.returncode, {line.split("_")[0].strip() for line in listed.stdout.split()}, unknown


def in_queue(planned: list, out: Path) -> dict[str, str] | None:
    """{job key: job id} of the planned runs whose submitted job SLURM still holds; None when that cannot be told."""
    recorded = submitted_jobs(out)
    mine = {job_key(run): recorded[job_key(run)] for run in planned if job_key(run) in recorded}
    alive = queued_jobs(sorted(set(mine.values())))
    return None if alive is None else {key: job for key, job in mine.items() if job in alive}


def require_sbatch() -> None:
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"--launcher slurm needs SLURM's {' and '.join(missing)} on PATH (run it on a login node); "
                          f"elsewhere use --launcher local, or --shard I/N inside your own job array")
