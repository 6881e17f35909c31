"""A task of one's own, whole: fitting a line, y = 2x, with a linear layer (docs/architecture.md, "Adding a task").

    stcbench fit --config line.yaml --set plugins=[examples/my_task.py]       # line.yaml: "task: line"
    stcbench test runs/line/<run> --set plugins=[examples/my_task.py]
    stcbench table --runs runs --table summary --baseline none          # mean ± interval over seeds

The task supplies a config, a module, its data and where its runs go; the engine does the rest (run folders,
checkpoints, exact resume, testing the best and last checkpoints, metrics.json, loggers, `stcbench test`).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning
import torch

from stcbench.data.sampler import EpochSampler
from stcbench.engine.schema import at_least, option
from stcbench.engine.settings import (LoggingConfig, RunConfig, TrainerConfig, check_trainer, plugins_option,
                                      seed_option)
from stcbench.engine.task import ReportedMetric, Task, register_task


@dataclass
class LinePairs:
    """The task's own section: typed fields with help and checks (--set data.samples=128, --print-config)."""

    samples: int = option(64, help="training pairs (x, 2x)", check=at_least(4))
    batch_size: int = option(16, help="pairs per step", check=at_least(1))


@dataclass
class LineConfig:
    task: Literal["line"] = option("line", help="this task")
    seed: int = seed_option(0)
    data: LinePairs = option(help="the pairs", factory=LinePairs)
    trainer: TrainerConfig = option(help="trainer", factory=TrainerConfig)
    logging: LoggingConfig = option(help="loggers", factory=lambda: LoggingConfig(loggers=["csv"], progress_bar="none"))
    run: RunConfig = option(help="run folder", factory=RunConfig)
    plugins: list[str] = plugins_option()

    def validate(self):
        check_trainer(self.trainer)


class LineModule(lightning.LightningModule):
    test_log_prefix = "test"           # the engine sets it: test (best checkpoint), test_last (last checkpoint)

    def __init__(self):
        super().__init__()
        self.fit_line = torch.nn.Linear(1, 1)

    def step(self, batch):
        x, y = batch
        return torch.mean((self.fit_line(x) - y) ** 2)

    def training_step(self, batch, index):
        return self.step(batch)

    def validation_step(self, batch, index):
        self.log("val/loss", self.step(batch))            # Task.monitor: the lowest selects best.ckpt

    def test_step(self, batch, index):
        self.log(f"{self.test_log_prefix}/mse", self.step(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class LineDataModule(lightning.LightningDataModule):
    def __init__(self, config: LineConfig):
        super().__init__()
        self.config = config

    def pairs(self, split_seed: int, count: int):
        x = torch.randn(count, 1, generator=torch.Generator().manual_seed(self.config.seed * 10 + split_seed))
        return torch.utils.data.TensorDataset(x, 2 * x)

    def train_dataloader(self):
        # the order of an epoch from (seed, epoch) alone: a resumed run draws the same batches as one never stopped
        # (a DataLoader's own shuffle=True draws from torch's global generator, which a resume does not restore)
        pairs = self.pairs(0, self.config.data.samples)
        return torch.utils.data.DataLoader(pairs, batch_size=self.config.data.batch_size,
                                           sampler=EpochSampler(len(pairs), self.config.seed))

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.pairs(1, 64), batch_size=16)

    def test_dataloader(self):
        return torch.utils.data.DataLoader(self.pairs(2, 64), batch_size=16)


class LineTask(Task):
    name = "line"
    config_class = LineConfig
    reported_metrics = (ReportedMetric("mse", "MSE", higher_is_better=False, decimals=4),)   # stcbench table

    def run_base(self, config):
        return Path(config.run.output_dir) / "line"          # runs/line/<run name>/

    def module(self, config):
        return LineModule()

    def datamodule(self, config):
        return LineDataModule(config)


register_task("line", LineTask)
