"""`stcbench test --ckpt-path CKPT|RUN_DIR [--config FILE]`: evaluate a checkpoint on the test split."""
from __future__ import annotations

from pathlib import Path

from stcbench.errors import ConfigError
from stcbench.engine.cli_args import (add_ckpt_argument, add_override_arguments, overrides_from_args,
                                      refuse_flags_without_key)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "test", help="test a checkpoint or run directory (autoregressive prediction, per-frame metrics)",
        description="The architecture comes from the checkpoint; data and trainer settings from --config "
                    "(default: the checkpoint's own config) and the flags. KTH also runs the 10->40 test.")
    parser.add_argument("target", nargs="?", type=Path, default=None, help="checkpoint or run directory")
    parser.add_argument("--config", "-c", type=Path, default=None, help="YAML config for data/trainer settings")
    add_ckpt_argument(parser, "checkpoint (.ckpt) or run directory to test")
    parser.add_argument("--output", "-o", type=Path, default=None, help="also write the metrics to this JSON file")
    add_override_arguments(parser, training=False)
    parser.set_defaults(func=run)


def run(args) -> int:
    from stcbench.atomic import check_output_file
    from stcbench.engine import run as engine
    from stcbench.engine.cluster import is_rank_zero
    from stcbench.engine.schema import load_config_dict
    from stcbench.engine.task import task_of

    ckpt = args.ckpt_path or args.target
    if ckpt is None:
        raise ConfigError("nothing to test; pass --ckpt-path CKPT (a .ckpt file or a run directory)")
    if args.output is not None:
        from stcbench.atomic import refuse_overwriting_inputs
        from stcbench.config_files import find_config

        check_output_file(args.output, "--output")
        config_file = find_config(args.config) if args.config is not None else None
        refuse_overwriting_inputs(args.output, "--output", {"checkpoint": ckpt, "--config": config_file}, "tested.json")
    given = load_config_dict(args.config) if args.config is not None else None
    run_config = given or _run_config(Path(ckpt))
    plugins = run_config.get("plugins") if isinstance(run_config, dict) else None
    if isinstance(plugins, list) and plugins:
        from stcbench.engine.environment import load_plugins

        load_plugins(plugins)              # the run's task or cell may come from them (consented ones only)
    task = task_of(run_config)
    refuse_flags_without_key(args, task.config_class, task.name)
    results = engine.test(task, given, Path(ckpt), overrides=overrides_from_args(args), output=args.output)
    if not is_rank_zero():                 # under DDP every process returns here; one prints
        return 0
    print(task.test_summary(results))
    return 0


def _run_config(ckpt: Path) -> dict:
    """The `task` a checkpoint was trained for and its `plugins` (a task of a plugin's needs them): its run
    folder's config.yaml, else (no config.yaml, or one that names no task) the config stored in the checkpoint."""
    from stcbench.engine.run import stored_config
    from stcbench.engine.run_folder import run_dir_of_checkpoint
    from stcbench.engine.schema import read_yaml
    from stcbench.training.task import checkpoint_for_test

    run_dir = run_dir_of_checkpoint(ckpt)
    if run_dir is not None:
        recorded = read_yaml(run_dir / "config.yaml")
        if isinstance(recorded.get("task"), str):
            return {"task": recorded["task"], "plugins": recorded.get("plugins") or []}
    if ckpt.exists():
        stored = stored_config(checkpoint_for_test(ckpt))
        return {"task": stored.get("task", "video"), "plugins": stored.get("plugins") or []}
    return {}
