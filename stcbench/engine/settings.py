"""Config sections every task shares: the trainer, logging and the run folder.

A task's config class has `seed`, `plugins`, `trainer`, `logging` and `run` (these sections or
subclasses of them with other defaults or more fields), plus its own `data`, `model` and `optim`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stcbench.engine.schema import at_least, fraction_or_count, one_of, option, require

PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
LOGGER_NAMES = ("csv", "tensorboard", "wandb")
MAX_SEED = 2**32 - 1


def seed_option(default: int):
    return option(default, help="python, numpy, torch, data and mask generators",
                  check=lambda v: None if 0 <= v <= MAX_SEED else f"must be in [0, {MAX_SEED}] (numpy's seed range)")


def plugins_option():
    return option(help="modules or .py files that register user cells, imported first when named on the command line "
                       "(--set plugins=[...], STCBENCH_PLUGINS) or vouched for with --trust-checkpoint", factory=list,
                  check=lambda v: None if all(isinstance(p, str) and p for p in v) else "must be a list of module names")


def _lightning_strategy(strategy: str) -> str | None:
    if strategy == "auto":
        return None
    if strategy.startswith("ddp_spawn"):
        return f"{strategy!r} is not supported (results are written by the worker processes); use 'ddp'"
    from lightning.pytorch.strategies import StrategyRegistry

    known = StrategyRegistry.available_strategies()
    return None if strategy in known else f"is not a Lightning strategy; use auto or ddp (or one of {sorted(known)})"


def _known_loggers(names: list[str]) -> str | None:
    bad = [name for name in names if name not in LOGGER_NAMES]
    if bad:
        return f"names unknown logger(s) {bad}; choose from {list(LOGGER_NAMES)}"
    repeated = sorted({name for name in names if names.count(name) > 1})
    return f"names {repeated} more than once (each would log every row again); name each logger once" if repeated \
        else None


def scale_label_check(label: str) -> str | None:
    """A scale label names a row's size in every table: a word, not empty or blank."""
    return None if label.strip() and label.isprintable() else "must be a label such as quick, small, paper or custom"


def run_name_check(name: str | None) -> str | None:
    from stcbench.engine.run_paths import run_name_problem

    return run_name_problem(name)


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    max_epochs: int = option(500, help="the schedule spans these epochs", check=at_least(1))
    max_steps: int = option(-1, help="-1: no step limit",
                            check=lambda v: None if v == -1 or v >= 1 else "must be -1 (no limit) or >= 1")
    stop_after_epochs: int | None = option(
        None, help="end this invocation early (resume later); the schedule still spans max_epochs",
        check=at_least(1, allow_none=True))
    limit_train_batches: float | int = option(1.0, help="fraction (float) or number (int) of batches",
                                              check=fraction_or_count)
    limit_val_batches: float | int = option(1.0, help="fraction (float) or number (int) of validation batches",
                                            check=fraction_or_count)
    limit_test_batches: float | int = option(1.0, help="fraction (float) or number (int) of test batches",
                                             check=fraction_or_count)
    check_val_every_n_epoch: int = option(1, help="validation (and best.ckpt selection) period", check=at_least(1))
    num_sanity_val_steps: int = option(0, help="validation batches run before training", check=at_least(0))
    gradient_clip_val: float | None = option(
        None, help="none in the paper protocol",
        check=lambda v: None if v is None or v > 0 else "must be > 0 or null")
    gradient_clip_algorithm: Literal["norm", "value"] = option("norm", help="how gradient_clip_val is applied")
    precision: str = option("32-true", help="64-true | 32-true | 16-mixed | bf16-mixed | ...",
                            check=one_of(PRECISIONS))
    accelerator: str = option("auto", help="auto | cpu | gpu | cuda | mps", check=one_of(ACCELERATORS))
    devices: int | str | list[int] = option("auto", help="number of devices, \"auto\", or device indices")
    strategy: str = option("auto", help="auto | ddp | ddp_find_unused_parameters_true | ...",
                           check=_lightning_strategy)
    num_nodes: int = option(1, help="multi-node DDP", check=at_least(1))
    deterministic: bool = option(False, help="torch deterministic algorithms, cudnn.benchmark off")
    accumulate_grad_batches: int = option(1, help="1 in the paper", check=at_least(1))
    threads: int | None = option(None, help="torch.set_num_threads for CPU runs", check=at_least(1, allow_none=True))
    tf32: bool | None = option(None, help="GPUs: TensorFloat-32 in float32 convolutions and matmuls (null = torch's "
                                          "default: convolutions on, matmuls off)")
    benchmark: bool | None = option(None, help="GPUs: cudnn.benchmark autotuning of convolution algorithms "
                                               "(null = Lightning's default, off)")


@dataclass
class LoggingConfig:
    """Loggers and the progress bar."""

    loggers: list[str] = option(help="any of csv, tensorboard, wandb", factory=lambda: ["csv", "tensorboard"],
                                check=_known_loggers)
    log_every_n_steps: int = option(50, help="logging period in optimizer steps", check=at_least(1))
    progress_bar: Literal["rich", "tqdm", "none"] | bool = option(
        "rich", help="progress display (true and false are the former spelling of tqdm and none)")
    wandb_project: str = option("stcbench", help="wandb project name")
    wandb_entity: str | None = option(None, help="wandb team/user (null: your default)")
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = option(
        "auto", help="auto: offline without credentials")

    @property
    def progress(self) -> str:
        """rich | tqdm | none."""
        if isinstance(self.progress_bar, bool):
            return "tqdm" if self.progress_bar else "none"
        return self.progress_bar


@dataclass
class RunConfig:
    """Where and how results are written."""

    output_dir: str = option("runs", help="root of the run folders")
    name: str | None = option(None, help="name of the run folder (default: made from the time and the seed)",
                              check=run_name_check)
    scale: str = option("custom", help="label recorded with the results: paper | small | quick | demo | custom",
                        check=scale_label_check)
    test_after_fit: bool = option(True, help="test the best and the last checkpoint after training")
    tuning: bool = option(False, help="a run that chose a setup, on a seed that is not reported: tables and reports "
                                      "never pool it with reported runs (docs/reports.md)")


def check_trainer(trainer: TrainerConfig) -> None:
    require(not isinstance(trainer.devices, list) or all(d >= 0 for d in trainer.devices),
            f"trainer.devices must hold device indices >= 0, got {trainer.devices}")
    require(trainer.check_val_every_n_epoch <= trainer.max_epochs,
            f"trainer.check_val_every_n_epoch {trainer.check_val_every_n_epoch} is more than trainer.max_epochs "
            f"{trainer.max_epochs}: no validation would run, so no checkpoint could be selected; lower it or raise "
            f"max_epochs")
