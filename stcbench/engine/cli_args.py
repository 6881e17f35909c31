"""Command-line overrides shared by `stcbench fit` and `stcbench test`.

Every flag maps to one dotted config key; `--set key=value` reaches any key. Only flags the
user actually gave become overrides (explicit CLI > config file > defaults).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from stcbench.checkpoints import add_trust_argument
from stcbench.cell_names import cell_names_help
from stcbench.errors import ConfigError
from stcbench.engine.schema import parse_override

# flag -> (dotted key, converter, help)
COMMON_FLAGS = {
    "--max-epochs": ("trainer.max_epochs", int, "number of training epochs (the LR schedule spans them)"),
    "--batch-size": ("data.batch_size", int, "per-process batch size"),
    "--cell": ("model.cell", str, f"cell name: {cell_names_help()}, or a plugin's (see `stcbench cells`)"),
    "--dataset": ("data.dataset", str, "mmnist, taxibj, kth or kth40"),
    "--data-root": ("data.data_root", str, "folder holding the dataset files (default $STCBENCH_DATA_ROOT, else "
                                           "datasets/)"),
    "--output-dir": ("run.output_dir", str, "root of the run directories (default runs/)"),
    "--run-name": ("run.name", str, "name of the run directory (default: <timestamp>-seed<seed> for video runs, seed<seed> for memory runs)"),
    "--precision": ("trainer.precision", str, "64-true, 32-true, 16-mixed, bf16-mixed (64 and 32 are accepted)"),
    "--devices": ("trainer.devices", None, "number of devices, 'auto', or a list like 0,1"),
    "--accelerator": ("trainer.accelerator", str, "auto, cpu, gpu, cuda, mps"),
    "--strategy": ("trainer.strategy", str, "auto or ddp"),
    "--num-nodes": ("trainer.num_nodes", int, "number of nodes for multi-node DDP"),
    "--seed": ("seed", int, "global seed (python, numpy, torch, masks)"),
    "--scale": ("run.scale", str, "label recorded with the results (paper, small, quick, demo, custom)"),
    "--selection": ("data.selection", str, "val (default) or openstl_test (official: select on the test set)"),
}


# a test trains nothing, writes no run, and tests the cell its checkpoint trained
TRAINING_FLAGS = ("--max-epochs", "--output-dir", "--run-name", "--scale", "--cell")


def add_override_arguments(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
    """The flags of COMMON_FLAGS (without TRAINING_FLAGS and --logger when not `training`) and --set."""
    group = parser.add_argument_group("config overrides (explicit flags beat the config file)")
    for flag, (key, _, help_text) in COMMON_FLAGS.items():
        if not training and flag in TRAINING_FLAGS:
            continue
        group.add_argument(flag, dest=_dest(flag), default=None, metavar=flag.strip("-").replace("-", "_").upper(),
                           help=f"{help_text} [{key}]")
    if training:
        group.add_argument("--logger", dest="logger", default=None, metavar="NAMES",
                           help="comma-separated loggers: csv, tensorboard, wandb (wandb runs offline without "
                                "credentials), or none [logging.loggers]")
    group.add_argument("--set", dest="set_overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="set any config key, e.g. --set optim.lr=1e-4 (repeatable; applied after the flags "
                            "above, so --set wins where both name the same key, and a later --set wins over "
                            "an earlier one)")


def refuse_flags_without_key(args, config_class, task_name: str) -> None:
    """A flag given for a key the task's config does not have (e.g. --dataset on a memory run) is named as such."""
    from stcbench.engine.schema import has_key

    for flag, (key, _, _) in COMMON_FLAGS.items():
        if getattr(args, _dest(flag), None) is not None and not has_key(config_class, key):
            raise ConfigError(f"{flag} is not an option of {task_name} runs (they have no {key}); leave it out "
                              f"(`stcbench fit --config <file> --print-config` shows the keys they have)")


def _dest(flag: str) -> str:
    return "ovr_" + flag.strip("-").replace("-", "_")


def _devices(value: str):
    text = value.strip()
    if text.isdigit():
        return int(text)
    if "," in text or text.startswith("["):
        items = [v for v in text.strip("[]").split(",") if v.strip()]
        try:
            return [int(v) for v in items]
        except ValueError:
            raise ConfigError(f"--devices {value!r}: a list must hold device indices, e.g. 0,1") from None
    return text


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Dotted-key overrides from the flags the user gave, in the order: flags, then --set."""
    overrides: dict = {}
    for flag, (key, convert, _) in COMMON_FLAGS.items():
        value = getattr(args, _dest(flag), None)
        if value is None:
            continue
        if flag == "--devices":
            overrides[key] = _devices(value)
            continue
        try:
            overrides[key] = convert(value)
        except ValueError:
            raise ConfigError(f"{flag} expects {convert.__name__ if convert else 'a value'}, got {value!r}") from None
    if getattr(args, "logger", None) is not None:       # --logger '' (or none): no logger
        names = [n.strip() for n in args.logger.split(",") if n.strip() and n.strip().lower() != "none"]
        overrides["logging.loggers"] = list(dict.fromkeys(names))
    for text in getattr(args, "set_overrides", []) or []:
        key, value = parse_override(text)
        overrides[key] = value
    return overrides


def add_ckpt_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--ckpt-path", "--ckpt_path", dest="ckpt_path", type=Path, default=None, help=help_text)
    add_trust_argument(parser)
