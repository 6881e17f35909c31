"""`stcbench bench`: run a benchmark suite (cells x datasets x seeds) and write its report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stcbench.atomic import check_output_folder
from stcbench.checkpoints import add_trust_argument
from stcbench.cell_names import cell_names_help, normalize_name
from stcbench.config_files import PACKAGED_CONFIGS
from stcbench.commands.table import add_baseline_option, resolve_baseline
from stcbench.errors import ConfigError
from stcbench.reports.runs import DEFAULT_BASELINE
from stcbench.reports.launch import (SlurmOptions, counted, describe_failures, make_executor, parse_shard,
                                     recorded_failures, require_sbatch, submit, take_shard)
from stcbench.reports.suites import SUITES, check_configs, execute, make_committable, plan_suite
from stcbench.record_io import read_text


class ListedValues(argparse.Action):
    """Space- or comma-separated values: `--cells lif stclif` and `--cells lif,stclif` are the same."""

    def __init__(self, *args, convert=str, **kwargs):
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(self, parser, namespace, values, option_string=None):
        items = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
        if not items:
            parser.error(f"{option_string} {' '.join(values)!r}: no {self.dest} given; name at least one, or leave "
                         f"{option_string} out for the default")
        try:
            setattr(namespace, self.dest, [self.convert(item) for item in items])
        except ValueError:
            parser.error(f"{option_string}: expected {self.convert.__name__} values, got {values}")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run a benchmark suite and write tables, figures and a static report",
        description="quick: the shipped config quick/<dataset> with the cell overridden, on the embedded data "
                    "(CPU-sized). small: the shipped config small/<dataset>, the scale whose comparisons discriminate on "
                    "2 CPU cores (docs/scales.md). paper: the shipped <dataset>/<cell> configs (GPU). memory: the long-term memory "
                    "probes. --config FILE instead of a suite: any task's config (a task of your own too) over "
                    "--seeds and --cells, with the summary table of its metrics. Finished runs (metrics.json with test "
                    "results) are skipped.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", choices=SUITES)
    which.add_argument("--config", default=None,
                       help="a config file (or shipped config name) of any task: one run per --cells value (the config's own cell without "
                            "it) and seed, then table_summary.md in --out (docs/architecture.md, Adding a task)")
    parser.add_argument("--cells", nargs="+", action=ListedValues, default=None,
                        help=f"cells to run, space- or comma-separated (default: every registered cell: "
                             f"{cell_names_help()}, and those of the plugins named with --set plugins=[...] or, for every "
                             f"suite, STCBENCH_PLUGINS)")
    parser.add_argument("--datasets", nargs="+", action=ListedValues, default=None,
                        help="mmnist taxibj kth (kth also tests 10->40)")
    parser.add_argument("--tasks", nargs="+", action=ListedValues, default=None,
                        help="memory suite: adding, copy, seq_digits, pseq_digits (default: adding copy)")
    parser.add_argument("--seeds", nargs="+", action=ListedValues, convert=int, default=None, help="default: 42")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: bench/<suite>)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="dataset folder (default: the config's; the shipped configs': $STCBENCH_DATA_ROOT, else "
                             "datasets/)")
    parser.add_argument("--configs", type=Path, default=None,
                        help="configs folder (default: the configs shipped in the package, stcbench/configs)")
    parser.add_argument("--scale", default=None, help="memory suite: quick (default, minutes), small (2 x 64 neurons, "
                                                      "8000 iterations; docs/memory.md) or paper (GPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key in every run, e.g. --set trainer.max_epochs=1 "
                             "(repeatable)")
    parser.add_argument("--tag", default="", help="video suites: suffix of the run names for a variant set up with --set "
                        "(e.g. --tag groups1 --set model.cell_options.circuit_groups=1)")
    parser.add_argument("--keep-checkpoints", action=argparse.BooleanOptionalAction, default=None,
                        help="video suites: keep each run's checkpoints/ and full predictions.npz (default: no when "
                             "training: once the report is written they are removed and predictions.npz is cut to "
                             "the sequence the report shows, so --out can be committed; --no-report removes nothing; "
                             "--collect removes nothing unless given --no-keep-checkpoints)")
    parser.add_argument("--reference-loop", action="store_true",
                        help="deprecated, no effect: the reference loop is the default (--set model.fast=true "
                             "selects the fast path)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the planned runs, one per line (the list --shard partitions), and exit")
    parser.add_argument("--launcher", choices=("local", "slurm"), default="local",
                        help="local: the runs one after another in this process (default); slurm: one SLURM job per "
                             "run through submitit, requeued on preemption or at the time limit and resumed from "
                             "its last.ckpt (then collect with --collect)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="run only every N-th planned run starting at the I-th (0 <= I < N): shards are disjoint "
                             "and cover the plan, e.g. --shard $SLURM_ARRAY_TASK_ID/8 in a job array; no report "
                             "is written (run --collect once all shards have finished)")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: write the tables and report from the runs that have finished and name "
                             "the failed ones")
    slurm = parser.add_argument_group("--launcher slurm")
    slurm.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's)")
    slurm.add_argument("--slurm-time", type=int, default=24 * 60, metavar="MINUTES",
                       help="time limit of each job (default 1440); a run that needs longer is requeued and resumed")
    slurm.add_argument("--slurm-gpus", type=int, default=None, metavar="N",
                       help="GPUs per job: 1 or 0 (a CPU job); default 1 for --suite paper, 0 for the CPU suites; "
                            "with --config and the memory suite, 1 where the runs' trainer.accelerator is gpu or auto")
    slurm.add_argument("--slurm-no-data-check", action="store_true",
                       help="submit without checking the data here first (for data mounted on the compute nodes "
                            "only); by default each dataset's files are checked, and an embedded default generated, "
                            "before any job is submitted")
    slurm.add_argument("--slurm-resubmit", action="store_true",
                       help="submit again runs whose earlier job SLURM still holds (or whose state squeue cannot "
                            "tell); by default they are left to that job")
    slurm.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="CPUs per task")
    slurm.add_argument("--slurm-mem-gb", type=int, default=None, metavar="GB", help="memory per job")
    slurm.add_argument("--slurm-account", default=None, help="account to charge")
    slurm.add_argument("--slurm-max-requeue", type=int, default=3, metavar="N",
                       help="how often a job that reaches its time limit is requeued (preemptions do not count)")
    parser.add_argument("--no-report", action="store_true", help="run only; do not write the report")
    parser.add_argument("--html", action="store_true", help="also write report.html")
    add_baseline_option(parser)
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    from stcbench.engine.schema import parse_override

    return dict(parse_override(item) for item in items)


SUITE_OUTPUTS = ("memory_results.json", "table_summary.md", "table_memory.md", "slurm/submitted.json",
                 "tables/summary.csv")       # what only a bench output holds beside its runs/


def refuse_out_inside_suite_runs(out: Path) -> None:
    """A bench --out inside another bench's runs/ folder: its runs would join that suite's tables and report."""
    out = Path(out).absolute()
    for folder in (out, *out.parents):
        if folder.name == "runs" and any((folder.parent / name).exists() for name in SUITE_OUTPUTS):
            raise ConfigError(f"--out {out} lies inside the runs folder of the bench output {folder.parent}: its "
                              f"runs would join that suite's tables; choose a folder outside it")


def load_named_plugins(args) -> None:
    """The plugins given with --set plugins=[...] (the user names them: no consent needed)."""
    from stcbench.engine.environment import load_plugins
    from stcbench.plugin_consent import plugins_named

    load_plugins(plugins_named(args))


def run(args, fit=None) -> int:
    from stcbench.engine.run_folder import refuse_folder_inside_run

    config = getattr(args, "config", None)
    out = args.out or Path("bench") / (Path(config).stem if config is not None else args.suite)
    check_output_folder(out, "--out", "--out")
    refuse_folder_inside_run(out, "--out")
    refuse_out_inside_suite_runs(out)
    if config is not None:
        return run_config(args, out, fit)
    if getattr(args, "reference_loop", False):
        print("stcbench bench: --reference-loop is deprecated and has no effect: the reference loop is the "
              "default (model.fast: false); --set model.fast=true selects the fast path", file=sys.stderr)
    if args.suite == "memory":
        return run_memory(args, out, fit)
    if args.tasks:
        raise ConfigError("--tasks is for --suite memory; use --datasets for video suites")
    if getattr(args, "scale", None):
        raise ConfigError(f"--scale is for --suite memory: a video suite is its own scale (--suite {args.suite}); "
                          f"to label runs of other sizes use --set run.scale=...")
    baseline = report_baseline(args, out)         # a bad --baseline stops here, before any run
    if args.data_root is not None:
        check_output_folder(args.data_root, "--data-root", "--data-root")
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    launcher = getattr(args, "launcher", "local")
    if launcher == "slurm":
        check_slurm_options(args)
    if launcher == "slurm" and not args.dry_run and not getattr(args, "collect", False):
        require_sbatch()
    load_named_plugins(args)                      # their cells may be named in --cells
    planned = plan_suite(args.suite, cells=args.cells, datasets=args.datasets, seeds=args.seeds, out=out,
                         data_root=args.data_root, configs_root=args.configs,
                         extra_overrides=parse_overrides(args.overrides), tag=getattr(args, "tag", ""))
    check_configs(planned, collect=getattr(args, "collect", False))   # a bad --set or --seeds stops here
    refuse_baseline_without_runs(baseline, planned, out)
    planned = take_shard(planned, shard)
    part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    print(f"suite {args.suite}: {counted(len(planned), 'run')}{part} -> {out / 'runs'}")
    for item in planned:
        print("  " + item.describe())
    if args.dry_run:
        if shard is None and not args.no_report:
            print("report ->", out / "report.md")
        return 0
    failures, status = train_or_collect(args, planned, out, shard, fit, "tables or report")
    if status is not None:
        return status
    from stcbench.reports.report import write_report

    print(write_report(out / "runs", out, suite=args.suite, html=args.html, baseline=baseline,
                       configs_root=args.configs or PACKAGED_CONFIGS,
                       header=suite_header(args, planned), missing=missing_runs(planned, failures, out)))
    keep = getattr(args, "keep_checkpoints", None)
    finished = [item.finished_metrics().parent for item in planned if item.done]
    if keep:
        for run_dir in finished:                  # a later call without the flag leaves them too
            (run_dir / KEEP_MARKER).touch()
    elif keep is None and getattr(args, "collect", False):
        kept = [run_dir for run_dir in finished if any((run_dir / "checkpoints").glob("*.ckpt"))]
        if kept:
            print(f"kept the checkpoints of {counted(len(kept), 'run')} (--collect removes nothing; add "
                  f"--no-keep-checkpoints to make --out committable)")
    else:
        strip = [run_dir for run_dir in finished if keep is False or not (run_dir / KEEP_MARKER).exists()]
        cleaned = [run_dir for run_dir in strip if strip_if_idle(run_dir)]
        for run_dir in cleaned:
            (run_dir / KEEP_MARKER).unlink(missing_ok=True)
        if cleaned:
            print(f"removed the checkpoints of {counted(len(cleaned), 'run')} and cut their predictions.npz to "
                  f"what the report shows (keep them with --keep-checkpoints)")
    print_pending(planned, failures, out)
    return finish(failures, out)


def train_or_collect(args, planned: list, out: Path, shard, fit, written: str, task_runs: bool = False) -> tuple:
    """Train the unfinished runs of `planned` here, or submit them as SLURM jobs (not with --collect), then read
    their failures. Returns (failures, exit status): the status where nothing is to be tabled now (jobs submitted,
    a shard, --no-report, no finished run; said in a line naming what is not `written`), else None. `task_runs`:
    runs of reports.task_suite (bench --config, the memory suite), else a video suite's."""
    from stcbench.reports.task_suite import absolute_task_run, fit_task_run, prepare_task_data

    if not getattr(args, "collect", False):
        if getattr(args, "launcher", "local") == "slurm":
            how = dict(fit=fit_task_run, absolute=absolute_task_run, prepare=prepare_task_data) if task_runs else {}
            return [], submit_to_slurm(args, planned, out, **how)
        execute(planned, fit=fit or (fit_task_run if task_runs else None), out=out)
    failures = recorded_failures(out, planned)
    no_report = getattr(args, "no_report", False)
    if shard is None and not no_report and any(item.done for item in planned):
        return failures, None
    if shard is not None and not no_report:
        print(f"shard finished: write the {written} with the same command, --collect instead of --shard, once every "
              f"shard has finished")
    elif not any(item.done for item in planned) and getattr(args, "collect", False):
        queued = submitted_note(planned, out)
        print(f"no planned run has finished under {out / 'runs'}: no {written} written "
              + (f"({queued})" if queued else "(run the same command without --collect to train them)"))
    return failures, finish(failures, out)


def print_pending(planned: list, failures: list, out: Path) -> None:
    """A line on the planned runs that have neither finished nor failed: still queued on SLURM, or to train."""
    failed = {(run.dataset, run.name) for run, _ in failures}
    pending = [item for item in planned if not item.done and (item.dataset, item.name) not in failed]
    if pending:
        queued = submitted_note(pending, out)
        print(f"not finished yet: {counted(len(pending), 'planned run')}; "
              + (f"{queued}" if queued else "run the same command without --collect to train them, then with "
                 "--collect"))


CONFIG_REFUSED = {"datasets": "--datasets", "tasks": "--tasks", "scale": "--scale", "tag": "--tag",
                  "data_root": "--data-root (use --set data.data_root=...)", "configs": "--configs",
                  "keep_checkpoints": "--keep-checkpoints (the runs keep theirs)", "html": "--html"}


def refuse_suite_flags(args) -> None:
    """The suites' own flags, which `bench --config` has no use for: one line naming the first one given."""
    given = [flag for key, flag in CONFIG_REFUSED.items()
             if getattr(args, key, None) not in (None, "", False, []) or (key == "keep_checkpoints"
                                                                         and args.keep_checkpoints is False)]
    if given:
        raise ConfigError(f"{given[0]} is for the suites (--suite); with --config give --cells, --seeds, --set and "
                          f"--out")


def run_config(args, out: Path, fit=None) -> int:
    """`bench --config FILE`: the config's task over --cells and --seeds through the run engine
    (reports.task_suite), then the summary table."""
    from stcbench.commands.table import write_memory_table, write_tables
    from stcbench.config_files import check_config_file, find_config
    from stcbench.reports.task_suite import (plan_task_suite, registry_name)

    refuse_suite_flags(args)
    args.config = check_config_file(find_config(args.config))      # a file, or a shipped config's name
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    launcher = getattr(args, "launcher", "local")
    load_named_plugins(args)                      # the task or its cells may come from them
    planned = plan_task_suite(args.config, cells=args.cells, seeds=args.seeds, out=out,
                              extra_overrides=parse_overrides(args.overrides))
    if launcher == "slurm":
        check_slurm_options(args, gpu=any(wants_gpu(item) for item in planned))
        if not args.dry_run and not getattr(args, "collect", False):
            require_sbatch()
    named = None if str(args.baseline).lower() == "none" else registry_name(args.baseline)
    refuse_baseline_without_runs(named, planned, out)            # before anything trains
    planned = take_shard(planned, shard)
    print(f"config {args.config}: {counted(len(planned), 'run')}{f' (shard {args.shard})' if shard else ''} -> "
          f"{out / 'runs'}")
    for item in planned:
        print("  " + item.describe())
    if args.dry_run:
        return 0
    failures, status = train_or_collect(args, planned, out, shard, fit, "table", task_runs=True)
    if status is not None:
        return status
    cells = {normalize_name(item.cell) for item in planned}
    baseline = args.baseline if normalize_name(args.baseline) != DEFAULT_BASELINE or DEFAULT_BASELINE in cells else None
    memory = all(item.task_name == "memory" for item in planned)       # memory probes have a table of their own
    written = (write_memory_table(out / "runs", "markdown", out, baseline or "none") if memory else
               write_tables(out / "runs", ["summary"], "markdown", out, baseline=baseline))
    for path in written:
        print(f"table -> {path}")
    print_pending(planned, failures, out)
    return finish(failures, out)


def strip_if_idle(run_dir: Path) -> bool:
    """make_committable, unless a process trains the run on (a resume): then it is left whole, and said."""
    from stcbench.errors import RunBusyError

    try:
        return make_committable(run_dir)
    except RunBusyError as busy:
        print(f"kept the checkpoints of {run_dir}: {busy}")
        return False


def submitted_note(pending: list, out: Path) -> str:
    """What became of the unfinished runs that were submitted to SLURM: still queued, or not."""
    from stcbench.reports.launch import in_queue, job_key, submitted_jobs

    recorded = submitted_jobs(out)
    submitted = [run for run in pending if job_key(run) in recorded]
    if not submitted:
        return ""
    queued = in_queue(submitted, out)
    if queued is None:
        return (f"{len(submitted)} of them {'was' if len(submitted) == 1 else 'were'} submitted to SLURM (squeue "
                f"cannot tell whether they still run); run --collect again when they have finished")
    gone = len(submitted) - len(queued)
    text = (f"{counted(len(queued), 'job')} of them still queued or running in SLURM: run --collect again when "
            f"{'it has' if len(queued) == 1 else 'they have'} finished" if queued else "")
    if gone:
        text += ("; " if text else "") + (f"{counted(gone, 'submitted job')} left the queue without a result "
                                          f"(see {Path(out) / 'slurm'}/ and {Path(out) / 'failures'}/): submit again with "
                                          f"--launcher slurm")
    return text


KEEP_MARKER = ".keep-checkpoints"      # in a run folder: bench was asked to keep its checkpoints


def missing_runs(planned: list, failures: list, out: Path) -> list[str]:
    """One line for each planned run without a result: its failure (the record's first line) or 'not run yet'."""
    from stcbench.reports.launch import failure_path

    failed = {id(run): record for run, record in failures}
    lines = []
    for run in (item for item in planned if not item.done):
        record = failed.get(id(run))
        what = (f"failed: {str(record.get('error', '')).splitlines()[0][:300]} "
                f"(`{failure_path(out, run).relative_to(out).as_posix()}`)" if record is not None
                else "not run yet (or still running)")
        lines.append(f"{run.dataset}/{run.cell} seed {run.seed} ({run.name}): {what}")
    return lines


def finish(failures: list, out: Path) -> int:
    """Exit status 1 naming the failed runs, else 0."""
    if failures:
        print(describe_failures(failures, out), file=sys.stderr)
        return 1
    return 0


def check_slurm_options(args, gpu: bool | None = None) -> None:
    """The SLURM options as numbers SLURM takes; the GPUs per job default to the suite's kind (CPU or GPU), or with
    --config to whether its runs ask for a GPU (`gpu`)."""
    if args.slurm_gpus is None:
        args.slurm_gpus = int(gpu if gpu is not None else args.suite == "paper")
    for flag, value, least in (("--slurm-time", args.slurm_time, 1), ("--slurm-gpus", args.slurm_gpus, 0),
                               ("--slurm-cpus", args.slurm_cpus, 1), ("--slurm-mem-gb", args.slurm_mem_gb, 1),
                               ("--slurm-max-requeue", args.slurm_max_requeue, 0)):
        if value is not None and value < least:
            raise ConfigError(f"{flag} {value}: give a number of at least {least}")
    if args.slurm_gpus > 1:
        raise ConfigError(f"--slurm-gpus {args.slurm_gpus}: a bench job trains one run on one GPU (the matrix runs "
                          f"in parallel as one job per run); give --slurm-gpus 1, and train a single run on several "
                          f"GPUs with `srun ... stcbench fit --set trainer.devices=N --set trainer.strategy=ddp` "
                          f"(docs/training.md)")


def threads_of(planned: list) -> int | None:
    """The most CPU threads a planned run's config asks for (trainer.threads), the CPUs its job asks SLURM for
    without --slurm-cpus; None where none sets it (SLURM's default)."""
    threads = [getattr(getattr(planned_config(run), "trainer", None), "threads", None) for run in planned]
    return max((t for t in threads if isinstance(t, int) and t > 0), default=None)


def planned_config(run):
    """The resolved config of a planned run: a suite's (video) or any task's (bench --config, the memory suite)."""
    from stcbench.engine.task import get_task
    from stcbench.training.config import resolve_config

    if hasattr(run, "task_name"):
        return get_task(run.task_name).resolve_config(run.config_path, dict(run.overrides))
    return resolve_config(run.config_path, run.overrides)


def wants_gpu(run) -> bool:
    """A planned run whose config would train on a GPU where there is one (trainer.accelerator gpu, cuda or auto):
    its SLURM job asks for one unless --slurm-gpus says otherwise."""
    return getattr(getattr(planned_config(run), "trainer", None), "accelerator", None) in ("gpu", "cuda", "auto")


def submit_to_slurm(args, planned: list, out: Path, fit=None, absolute=None, prepare=None) -> int:
    """One SLURM job per unfinished run of `planned` (a video suite's unless `fit`, `absolute` and `prepare` say how
    to train a run, make its paths absolute and prepare its data: reports.launch.submit)."""
    from stcbench.reports.launch import in_queue, job_key, prepare_data_for_jobs

    todo = [item for item in planned if not item.done]
    if not todo:
        print("every planned run has finished; write the report with --collect")
        return 0
    if not getattr(args, "slurm_resubmit", False):
        queued = in_queue(todo, out)
        if queued is None:
            raise ConfigError("runs of this plan were submitted to SLURM before and squeue cannot tell whether their "
                              "jobs still run; check with squeue, then pass --slurm-resubmit to submit them again")
        for item in (item for item in todo if job_key(item) in queued):
            print(f"  job {queued[job_key(item)]} still holds {item.dataset}/{item.cell} seed {item.seed} "
                  f"({item.name}): not submitted again")
        todo = [item for item in todo if job_key(item) not in queued]
        if not todo:
            print("every unfinished run has a job in the queue; write the report with --collect once they finish")
            return 0
    options = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time, gpus=args.slurm_gpus,
                           cpus=args.slurm_cpus or threads_of(todo), mem_gb=args.slurm_mem_gb,
                           account=args.slurm_account, max_requeue=args.slurm_max_requeue)
    folder = out / "slurm"
    if not getattr(args, "slurm_no_data_check", False):
        (prepare or prepare_data_for_jobs)(todo)  # a job never queues only to find its data missing
    print(f"submitting {counted(len(todo), 'job')}; logs in {folder}/")
    submit(todo, out, make_executor(folder, options), fit=fit, absolute=absolute)
    print("when they have finished: the same command with --collect writes the tables and the report")
    return 0


def refuse_baseline_without_runs(baseline: str | None, planned: list, out: Path) -> None:
    """A baseline named with --baseline that the plan does not train and no run in --out has: the report could
    only leave its columns empty, so it is refused before anything runs (the default, lif, gets a note instead)."""
    from stcbench.reports.runs import discover_runs

    if not baseline or baseline == DEFAULT_BASELINE or any(item.cell == baseline for item in planned):
        return
    runs = discover_runs(out / "runs") if (out / "runs").is_dir() else []
    if not any(run.cell == baseline for run in runs):
        cells = ", ".join(sorted({item.cell for item in planned} | {run.cell for run in runs}))
        raise ConfigError(f"--baseline {baseline}: the plan does not train it and no run under {out / 'runs'} has it; "
                          f"add it to --cells or pass one of {cells}, or --baseline none")


def report_baseline(args, out: Path) -> str | None:
    """The report's baseline cell (--baseline), checked against the registry and the runs in --out."""
    from stcbench.reports.runs import discover_runs

    runs = discover_runs(out / "runs") if (out / "runs").is_dir() else []
    return resolve_baseline(getattr(args, "baseline", DEFAULT_BASELINE), runs)


SCALE_NOTES = {
    "quick": "**Reduced scale (`quick`)**: CPU, the small embedded synthetic/generated datasets, a tiny "
             "model (stcbench/configs/quick/<dataset>.yaml: 2 x 16 hidden channels, a few epochs on a few hundred "
             "sequences). These numbers check that the pipeline works and how cells compare at this size; "
             "they are **not** comparable with the published numbers shown beside them.",
    "small": "**Small scale (`small`)**: CPU, the embedded default datasets (real MNIST digits for Moving "
             "MNIST), 2 x 64 hidden channels (GroupNorm(16) with 4 channels per group), "
             "stcbench/configs/small/<dataset>.yaml (docs/scales.md). Compare cells over seeds, with the intervals; "
             "these numbers are **not** comparable with the published ones shown beside them.",
    "paper": "**Paper scale**: stcbench/configs/<dataset>/<cell>.yaml (3 x 256 cells, the paper's epochs and data).",
}


def suite_header(args, planned: list = ()) -> str:
    lines = [SCALE_NOTES.get(args.suite, "")]
    if args.overrides:
        lines.append("Overrides passed to every run: " + ", ".join(f"`{o}`" for o in args.overrides) + ".")
        changed = sorted({key for run in planned for key in run.resized})
        if changed:
            lines.append(f"They change the size of the suite's runs ({', '.join(changed)}): runs trained with them "
                         f"are labelled `custom`, not `{args.suite}`, and the description above is not theirs (each "
                         f"row shows its runs' label).")
    return "\n\n".join(line for line in lines if line)


def run_memory(args, out: Path, fit=None) -> int:
    """`bench --suite memory`: every (task, cell, seed) of one scale, each task's shipped config planned and run as
    `bench --config` runs are (reports.task_suite: finished runs skipped, interrupted ones resumed, failures recorded,
    another setting refused, SLURM jobs or shards), then memory_results.md and the summary over seeds."""
    from stcbench.memory.suite import DEFAULT_CELLS, DEFAULT_TASKS, write_memory_results

    if args.datasets:
        raise ConfigError("--datasets is for the video suites; use --tasks with --suite memory")
    if getattr(args, "tag", ""):
        raise ConfigError("--tag is for the video suites: memory runs are named by task, cell and seed; give "
                          "another --out for another setting")
    if "data.task" in parse_overrides(args.overrides or []):
        raise ConfigError("--set data.task: the memory suite sets each run's task from --tasks; name the tasks with "
                          "--tasks instead")
    scale = "quick" if args.scale is None else args.scale
    check_memory_scale(scale)
    check_memory_seeds(args.seeds)
    check_memory_tasks(args.tasks)
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    launcher = getattr(args, "launcher", "local")
    load_named_plugins(args)                      # their cells may be named in --cells
    cells, tasks = known_cells(unique(args.cells)) or list(DEFAULT_CELLS), unique(args.tasks) or list(DEFAULT_TASKS)
    seeds = unique(args.seeds) or [42]
    resolve_baseline(getattr(args, "baseline", DEFAULT_BASELINE), [])     # a registered cell, before any run
    overrides = parse_overrides(args.overrides)
    planned, task_of = plan_memory_suite(tasks, cells, seeds, scale, out, overrides)
    planned = take_shard(planned, shard)
    if launcher == "slurm":
        check_slurm_options(args, gpu=any(wants_gpu(item) for item in planned))
        if not args.dry_run and not getattr(args, "collect", False):
            require_sbatch()
    part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    print(f"suite memory, scale {scale}: {counted(len(planned), 'run')}{part} -> {out / 'runs'}")
    for item in planned:
        print("  " + item.describe())
    if args.dry_run:
        return 0
    failures, status = train_or_collect(args, planned, out, shard, fit, "tables", task_runs=True)
    if status is not None:
        return status
    failed = {(run.dataset, run.name, run.cell) for run, _ in failures}
    print(write_memory_results(
        out, [(item.cell, task_of[item.run_dir], item.seed, item.run_dir) for item in planned], scale, out / "runs",
        failed=[(run.cell, task_of[run.run_dir], f"seed {run.seed} failed: {record['error'].splitlines()[0][:300]}")
                for run, record in failures],
        unfinished=[(item.cell, task_of[item.run_dir], f"seed {item.seed} has no finished run") for item in planned
                    if not item.done and (item.dataset, item.name, item.cell) not in failed],
        changed=sorted(key for key in overrides if key != "plugins")))
    print(write_memory_summary(out, getattr(args, "baseline", DEFAULT_BASELINE)))
    print_pending(planned, failures, out)
    return finish(failures, out)


def plan_memory_suite(tasks: list, cells: list, seeds: list, scale: str, out: Path, overrides: dict) -> tuple:
    """The runs of the memory suite, and the task of each (by run folder): each task's shipped config at `scale`
    (memory.suite.scale_config) over the cells and seeds, named `seed<N>` under runs/memory/<task>_T<length>/<cell>/."""
    from stcbench.engine.task import get_task
    from stcbench.memory.suite import cell_overrides, run_name, scale_config
    from stcbench.reports.task_suite import plan_task_suite

    planned, task_of = [], {}
    for task in tasks:
        config = scale_config(task, scale)
        seq_len = get_task("memory").resolve_config(config, dict(overrides)).data.seq_len
        runs = plan_task_suite(config, cells=cells, seeds=seeds, out=out, extra_overrides=overrides, run_name=run_name,
                               cell_overrides=lambda cell, task=task: cell_overrides(cell, task, seq_len))
        planned += runs
        task_of.update((run.run_dir, task) for run in runs)
    return planned, task_of


def known_cells(cells: list | None) -> list | None:
    """The registry names of `cells`; an unknown one is refused before any run or table is written."""
    from stcbench.cells import get_cell_info

    return unique([get_cell_info(cell).name for cell in cells]) if cells else cells


def unique(values: list | None) -> list | None:
    """The values once each, in order (a repeated --cells, --tasks or --seeds value is one run, as in --datasets)."""
    return list(dict.fromkeys(values)) if values else values


def check_memory_scale(scale: str) -> None:
    from stcbench.memory.suite import SCALES

    if scale not in SCALES:
        raise ConfigError(f"--scale {scale}: the memory suite has the scales {', '.join(SCALES)}; choose one of them")


def check_memory_seeds(seeds: list | None) -> None:
    from stcbench.engine.settings import MAX_SEED

    bad = [seed for seed in seeds or () if not 0 <= int(seed) <= MAX_SEED]
    if bad:
        raise ConfigError(f"--seeds {bad[0]}: a seed must be in [0, {MAX_SEED}] (numpy's seed range)")


def check_memory_tasks(tasks: list | None) -> None:
    from stcbench.memory.tasks import TASKS

    unknown = [task for task in tasks or () if task not in TASKS]
    if unknown:
        raise ConfigError(f"--tasks {', '.join(unknown)}: no such memory task; choose among {', '.join(TASKS)}")


def memory_listing(out: Path) -> dict | None:
    """memory_results.json of the last memory suite call into `out`, or None before the first."""
    from stcbench.strict_json import restore_non_finite

    listing = Path(out) / "memory_results.json"
    return restore_non_finite(json.loads(read_text(listing))) if listing.is_file() else None


def write_memory_summary(out: Path, baseline: str | None) -> Path | str:
    """memory_summary.md (every run this suite call tabled, aggregated over seeds) and the figures of those
    runs: memory_curves.png, learning_curves.png, gradient_through_time_<task>.png (stcbench.reports.memory)."""
    from stcbench.atomic import write_text
    from stcbench.commands.table import memory_table_for
    from stcbench.reports.memory import discover_memory_runs, write_memory_figures
    from stcbench.reports.runs import is_tuning_record, leave_out_tuning
    from stcbench.reports.tables import render

    records = leave_out_tuning(suite_records(out, discover_memory_runs(out)), is_tuning_record)[0]
    if not records:
        return "no finished memory run to summarise"
    write_memory_figures(records, Path(out))
    return write_text(Path(out) / "memory_summary.md",
                      render(memory_table_for(out, baseline, strict=False, records=records,
                                              source="the runs in runs/ beside this file (memory_results.json)"),
                             "markdown"))


def suite_records(out: Path, records: list[dict]) -> list[dict]:
    """The records of the runs this suite call tabled (memory_results.json), so that the summary covers the
    same cells, tasks and seeds as memory_results.md."""
    listing = memory_listing(out)
    if listing is None:
        return records
    tabled = {(Path(out) / "runs" / run["run_dir"]).resolve() for run in listing.get("runs", [])}
    return [record for record in records if Path(record["path"]).resolve() in tabled]
