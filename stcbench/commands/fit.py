"""`stcbench fit --config FILE [overrides]`: train one model (or resume one with --ckpt-path)."""
from __future__ import annotations

import sys
from pathlib import Path

from stcbench.errors import ConfigError
from stcbench.engine.cli_args import (add_ckpt_argument, add_override_arguments, overrides_from_args,
                                      refuse_flags_without_key)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit", help="train a model from a config (a YAML path or a shipped name such as mmnist/stclif)",
        description="Train one model. Precedence: defaults < config file (with base: inheritance) < flags. "
                    "The run directory runs/<dataset>/<cell>/<name>/ (memory probes: runs/memory/<task>_T<length>/"
                    "<cell>/<name>/) receives config.yaml, checkpoints, logs "
                    "and metrics.json (test metrics of the best and the last checkpoint).")
    parser.add_argument("--config", "-c", type=Path, default=None,
                        help="YAML config: a path, or the name of a shipped config (quick/mmnist, mmnist/stclif, "
                             "memory/adding; .yaml optional). Optional when resuming: the run directory's "
                             "config.yaml is used")
    add_ckpt_argument(parser, "resume exactly from this checkpoint (or run directory): weights, optimizer, "
                              "epoch, scheduled-sampling counter and RNG states")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run directory of the same name (its checkpoints, logs and "
                             "metrics are deleted); without it such a run is refused")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults < file < flags) as YAML and exit without training")
    add_override_arguments(parser)
    parser.set_defaults(func=run)


def resolve_config_source(config: Path | None, ckpt_path: Path | None) -> Path:
    if config is not None:
        return config
    if ckpt_path is not None:
        from stcbench.engine.run_folder import run_dir_of_checkpoint

        if not Path(ckpt_path).exists():
            raise ConfigError(f"--ckpt-path {str(ckpt_path)!r} does not exist; pass an existing run directory or "
                              f"checkpoint (e.g. runs/<dataset>/<cell>/<run> or .../checkpoints/last.ckpt)")
        run_dir = run_dir_of_checkpoint(ckpt_path)
        if run_dir is not None:
            return run_dir / "config.yaml"
        raise ConfigError(f"{str(ckpt_path)!r} is not inside a run directory (no config.yaml beside it); pass "
                          f"--config with the run's config as well")
    raise ConfigError("no config given; pass --config <dataset>/<cell> (e.g. mmnist/stclif) or a YAML path "
                      "(or --ckpt-path of a run directory to resume it)")


def load_config_plugins(data: dict, overrides: dict, args) -> None:
    """The plugins the config will name (--set plugins=[...] replaces the file's), loaded before the config is
    checked, as its cell may be one of theirs; refused unless the user named them (engine.environment)."""
    from stcbench.engine.environment import load_plugins
    from stcbench.plugin_consent import plugins_named

    named = plugins_named(args) if "plugins" in overrides else data.get("plugins")
    if isinstance(named, (list, str)):
        load_plugins(named)


def refuse_other_output_dir(ckpt_path, overrides: dict) -> None:
    """A resume continues its run in the run's own folder: an --output-dir elsewhere would be ignored, so say so."""
    from stcbench.engine.run import resumes_a_run
    from stcbench.engine.run_folder import run_dir_of_checkpoint

    given = overrides.get("run.output_dir")
    if given is None or not resumes_a_run(ckpt_path):
        return
    run_dir = run_dir_of_checkpoint(ckpt_path).resolve()
    if Path(str(given)).expanduser().resolve() not in run_dir.parents:
        raise ConfigError(f"--output-dir {given}: a resume continues the run in its own folder ({run_dir}), not under "
                          f"{given}; drop --output-dir, or copy the run folder there and resume the copy")


def switched_task_hint(data: dict, overrides: dict) -> str:
    """A config of one task with `--set task=` another: its sections are not the other task's."""
    given, own = str(overrides.get("task", "")).strip(), str(data.get("task", "video"))
    if not given or given == own:
        return ""
    example = "memory/adding" if given == "memory" else "quick/mmnist"
    return f" (--set task={given} on a {own} config: pass a {given} config instead, e.g. --config {example})"


def run(args) -> int:
    from stcbench.config_files import check_config_file, find_config

    source = resolve_config_source(args.config, args.ckpt_path)
    check_config_file(find_config(source))      # a missing config file is said at once, before torch is imported
    from stcbench.engine import run as engine
    from stcbench.engine.cluster import is_rank_zero
    from stcbench.engine.schema import dump, load_config_dict
    from stcbench.engine.task import task_of

    data = load_config_dict(source)
    overrides = overrides_from_args(args)
    refuse_other_output_dir(args.ckpt_path, overrides)
    load_config_plugins(data, overrides, args)     # a config's cell or task may come from them (user-named ones)
    task = task_of({**data, **({"task": str(overrides["task"])} if "task" in overrides else {})})
    refuse_flags_without_key(args, task.config_class, task.name)
    try:
        config = task.resolve_config(data, overrides)
    except ConfigError as error:
        raise ConfigError(f"{error}{switched_task_hint(data, overrides)}") from None
    note = engine.label_resized(task, config, source, overrides) if not engine.resumes_a_run(args.ckpt_path) else None
    if args.print_config:
        from stcbench.engine.environment import with_environment_plugins

        if note:
            print(note, file=sys.stderr)

        config.plugins = with_environment_plugins(config.plugins)     # as the run would record them
        task.run_base(config)              # what a run would refuse (an unknown dataset or cell, say) is refused
        task.module(config)                # here too, before the config is printed as if it were usable
        print(dump(config), end="")
        return 0
    run_dir = engine.fit(task, config, ckpt_path=args.ckpt_path, overwrite=args.overwrite,
                         data_root_given="data.data_root" in overrides, notes=(note,) if note else ())
    if is_rank_zero():                     # under DDP every process returns here
        print(f"run directory: {run_dir}")
    return 0
