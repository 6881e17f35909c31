"""The memory task's config (`task: memory`), declared with the engine's one config mechanism
(stcbench.engine.schema), sharing the trainer, logging and run sections with the video task.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stcbench.engine import schema
from stcbench.engine.schema import (at_least, keyword_names, one_of, option, positive_finite, positive_list, require,
                                    within)
from stcbench.engine.settings import (ACCELERATORS, LoggingConfig, RunConfig, TrainerConfig, check_trainer,
                                      plugins_option, run_name_check, seed_option)

DEFAULT_READOUT = {"adding": "last", "copy": "per_step", "seq_digits": "mean", "pseq_digits": "mean"}
MIN_ADDING_LENGTH = 8          # the memory-span test (memory/analysis.py) splits T into quarters of >= 2 steps


@dataclass
class MemoryDataConfig:
    """The memory task and its generated (or read) sequences."""

    task: Literal["adding", "copy", "seq_digits", "pseq_digits"] = option("adding", help="which memory probe")
    seq_len: int | None = option(100, help="T (adding: length; copy: delay, length T + 20; digits: ignored)",
                                 check=at_least(1, allow_none=True))
    train_samples: int = option(2048, help="generated training set size (digits: cap on images)", check=at_least(1))
    val_samples: int = option(256, help="validation sequences", check=at_least(1))
    test_samples: int = option(512, help="test sequences", check=at_least(1))
    batch_size: int = option(64, help="training batch", check=at_least(1))
    eval_batch_size: int | None = option(None, help="validation/test batch (default: batch_size)",
                                         check=at_least(1, allow_none=True))
    data_root: str = option("", help="digits: <data_root>/moving_mnist/*-ubyte.gz when present (\"\": "
                                          "$STCBENCH_DATA_ROOT, else datasets/)")
    digits_source: Literal["auto", "mnist", "sklearn"] = option("auto", help="digits: where the images come from")
    num_workers: int = option(0, help="DataLoader worker processes", check=at_least(0))


@dataclass
class MemoryModelConfig:
    """Dense network of any registered cell (stcbench.memory.network)."""

    cell: str = option("lif", help="any registered cell (`stcbench cells`)")
    hidden: list[int] = option(help="neurons per layer (multiples of 16)", factory=lambda: [64, 256, 256],
                               check=positive_list)
    recurrent: bool = option(False, help="add a linear recurrent synapse per layer")
    readout: Literal["auto", "mean", "last", "per_step", "integrator"] = option(
        "auto", help="auto: last (adding), per_step (copy), mean (digits)")
    readout_decay: float = option(0.8, help="integrator readout only", check=within(0.0, 1.0))
    synapse_norm: Literal["layer", "group", "none"] | bool | None = option(
        "layer", help="norm after each cell's input synapse: layer | group | none (true = group, false = none, "
                      "the former spelling)")
    cell_options: dict = option(help="keyword arguments for every cell", factory=dict, check=keyword_names)


@dataclass
class MemoryOptimConfig:
    """Adam with a step-decay schedule."""

    lr: float = option(5e-4, help="learning rate", check=positive_finite)
    weight_decay: float = option(0.0, help="Adam weight decay", check=at_least(0))
    milestones: list[int] = option(help="epochs at which the learning rate is multiplied by `gamma`", factory=list)
    gamma: float = option(0.1, help="step-decay factor", check=positive_finite)


@dataclass
class MemoryTrainerConfig(TrainerConfig):
    """Lightning Trainer settings."""

    max_epochs: int = option(10, help="training epochs", check=at_least(1))
    accelerator: str = option("cpu", help="auto | cpu | gpu | cuda | mps",
                              check=one_of(ACCELERATORS))
    devices: int | str | list[int] = option(1, help="number of devices, \"auto\", or device indices")
    deterministic: bool = option(True, help="torch deterministic algorithms")


@dataclass
class MemoryLoggingConfig(LoggingConfig):
    """Loggers and the progress bar."""

    log_every_n_steps: int = option(10, help="logging period in optimizer steps", check=at_least(1))
    progress_bar: Literal["rich", "tqdm", "none"] | bool = option(
        "none", help="progress display (true and false are the former spelling of tqdm and none)")


@dataclass
class MemoryRunConfig(RunConfig):
    """Where and how results are written."""

    output_dir: str = option("runs", help="runs/memory/<task>_T<len>/<cell>/<name>/")
    name: str | None = option(None, help="default: seed<seed>",
                              check=run_name_check)
    gradient_analysis: bool = option(True, help="save gradient-through-time of the best checkpoint")


@dataclass
class MemoryConfig:
    """A memory-probe run (`stcbench fit --config memory/adding`)."""

    task: Literal["memory"] = option("memory", help="this config's task")
    seed: int = seed_option(0)
    data: MemoryDataConfig = option(help="the memory task", factory=MemoryDataConfig)
    model: MemoryModelConfig = option(help="the dense network", factory=MemoryModelConfig)
    optim: MemoryOptimConfig = option(help="optimizer", factory=MemoryOptimConfig)
    trainer: MemoryTrainerConfig = option(help="Lightning Trainer settings", factory=MemoryTrainerConfig)
    logging: MemoryLoggingConfig = option(help="loggers", factory=MemoryLoggingConfig)
    run: MemoryRunConfig = option(help="where and how results are written", factory=MemoryRunConfig)
    plugins: list[str] = plugins_option()

    def validate(self) -> None:
        """Resolves `readout: auto` and the former spellings of `synapse_norm`."""
        from stcbench.memory.network import memory_synapse_norm

        data, model = self.data, self.model
        check_trainer(self.trainer)
        require(data.task not in ("adding", "copy") or data.seq_len is not None,
                f"data.seq_len must be a positive integer for the {data.task} task")
        require(data.task != "adding" or data.seq_len is None or data.seq_len >= MIN_ADDING_LENGTH,
                f"data.seq_len {data.seq_len} is too short for the adding task: its memory-span test puts the two "
                f"marked steps in quarters of the sequence, each at least 2 steps long; set data.seq_len >= "
                f"{MIN_ADDING_LENGTH}")
        model.synapse_norm = memory_synapse_norm(model.synapse_norm)
        if model.readout == "auto":
            model.readout = DEFAULT_READOUT[data.task]
        require((data.task == "copy") == (model.readout == "per_step"),
                "model.readout: the copy task needs per_step outputs and the other tasks one output per sequence; "
                "use readout: auto")

    def to_dict(self) -> dict:
        return schema.to_dict(self)


def resolve(config: dict | str | Path | MemoryConfig | None, overrides: dict | None = None) -> MemoryConfig:
    """Defaults < `config` (a YAML path or shipped name, a mapping or a MemoryConfig) < `overrides`."""
    if isinstance(config, MemoryConfig):
        config = config.to_dict()
    return schema.resolve(MemoryConfig, config, overrides)


def reference_markdown() -> str:
    return schema.reference_markdown(MemoryConfig)
