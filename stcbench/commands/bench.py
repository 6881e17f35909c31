"""`stcbench bench`: run a benchmark suite (cells x datasets x seeds) and write its report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stcbench.checkpoints import add_trust_argument
from stcbench.cell_names import cell_names_help
from stcbench.config_files import PACKAGED_CONFIGS
from stcbench.errors import ConfigError
from stcbench.reports.suites import SUITES, execute, make_committable, plan_suite


class ListedValues(argparse.Action):
    """Space- or comma-separated values: `--cells lif stclif` and `--cells lif,stclif` are the same."""

    def __init__(self, *args, convert=str, **kwargs):
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(self, parser, namespace, values, option_string=None):
        items = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
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
                    "probes. Finished runs (metrics.json with test results) are skipped.")
    parser.add_argument("--suite", choices=SUITES, required=True)
    parser.add_argument("--cells", nargs="+", action=ListedValues, default=None,
                        help=f"cells to run, space- or comma-separated (default: every registered cell: "
                             f"{cell_names_help()}, and those of loaded plugins)")
    parser.add_argument("--datasets", nargs="+", action=ListedValues, default=None,
                        help="mmnist taxibj kth (kth also tests 10->40)")
    parser.add_argument("--tasks", nargs="+", action=ListedValues, default=None,
                        help="memory suite: tasks (default: all)")
    parser.add_argument("--seeds", nargs="+", action=ListedValues, convert=int, default=None, help="default: 42")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: bench/<suite>)")
    parser.add_argument("--data-root", type=Path, default=None, help="dataset folder (default: the config's)")
    parser.add_argument("--configs", type=Path, default=None,
                        help="configs folder (default: the configs shipped in the package, stcbench/configs)")
    parser.add_argument("--scale", default=None, help="memory suite: scale passed to run_memory_suite (default: quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key in every run, e.g. --set trainer.max_epochs=1 (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the run names for a variant set up with --set "
                        "(e.g. --tag groups1 --set model.cell_options.circuit_groups=1)")
    parser.add_argument("--keep-checkpoints", action=argparse.BooleanOptionalAction, default=False,
                        help="video suites: keep each run's checkpoints/ and full predictions.npz (default: no: "
                             "once the report is written they are removed and predictions.npz is cut to the "
                             "sequence the report shows, so --out can be committed; --no-report removes nothing)")
    parser.add_argument("--reference-loop", action="store_true",
                        help="deprecated, no effect: the reference loop is the default (--set model.fast=true "
                             "selects the fast path)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--no-report", action="store_true", help="run only; do not write the report")
    parser.add_argument("--html", action="store_true", help="also write report.html")
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    from stcbench.training.config import parse_override

    return dict(parse_override(item) for item in items)


def run(args, fit=None, memory_suite=None) -> int:
    out = args.out or Path("bench") / args.suite
    if getattr(args, "reference_loop", False):
        print("stcbench bench: --reference-loop is deprecated and has no effect: the reference loop is the "
              "default (model.fast: false); --set model.fast=true selects the fast path", file=sys.stderr)
    if args.suite == "memory":
        return run_memory(args, out, memory_suite)
    if args.tasks:
        raise ConfigError("--tasks is for --suite memory; use --datasets for video suites")
    planned = plan_suite(args.suite, cells=args.cells, datasets=args.datasets, seeds=args.seeds, out=out,
                         data_root=args.data_root, configs_root=args.configs,
                         extra_overrides=parse_overrides(args.overrides), tag=getattr(args, "tag", ""))
    print(f"suite {args.suite}: {len(planned)} runs -> {out / 'runs'}")
    for item in planned:
        print("  " + item.describe())
    if args.dry_run:
        print("report ->", out / "report.md")
        return 0
    execute(planned, fit=fit)
    if args.no_report:
        return 0
    from stcbench.reports.report import write_report

    print(write_report(out / "runs", out, suite=args.suite, html=args.html,
                       configs_root=args.configs or PACKAGED_CONFIGS,
                       header=suite_header(args)))
    if not getattr(args, "keep_checkpoints", False):
        finished = [item.finished_metrics().parent for item in planned if item.done]
        for run_dir in finished:
            make_committable(run_dir)
        print(f"removed the checkpoints of {len(finished)} runs and cut their predictions.npz to what the "
              f"report shows (keep them with --keep-checkpoints)")
    return 0


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


def suite_header(args) -> str:
    lines = [SCALE_NOTES.get(args.suite, "")]
    if args.overrides:
        lines.append("Overrides passed to every run: " + ", ".join(f"`{o}`" for o in args.overrides) + ".")
    return "\n\n".join(line for line in lines if line)


def run_memory(args, out: Path, memory_suite=None) -> int:
    if args.datasets:
        raise ConfigError("--datasets is for the video suites; use --tasks with --suite memory")
    scale = args.scale or "quick"
    seeds = args.seeds or [42]
    if args.dry_run:
        print(f"suite memory: cells {args.cells or 'all'}, tasks {args.tasks or 'all'}, scale {scale}, "
              f"seeds {seeds} -> {out}")
        return 0
    if memory_suite is None:
        from stcbench.memory import run_memory_suite as memory_suite
    print(memory_suite(out, args.cells, args.tasks, scale, seeds))
    return 0
