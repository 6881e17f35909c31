"""Lightning pieces of the memory probes: `MemoryDataModule` and `MemoryModule`."""
from __future__ import annotations

import warnings

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from stcbench.data.sampler import EpochSampler
from stcbench.engine.param_groups import parameter_groups
from stcbench.errors import NonFiniteLossError
from stcbench.engine.per_sequence import SequenceRecorder
from stcbench.memory.config import MemoryConfig
from stcbench.memory.network import MemoryNet
from stcbench.memory.tasks import COPY_LENGTH, TaskSpec, make_split, task_spec


def spec_of(config: MemoryConfig) -> TaskSpec:
    data = config.data
    return task_spec(data.task, data.seq_len, data.data_root, data.digits_source)


class MemoryDataModule(L.LightningDataModule):
    """Train/val/test tensors generated (or read) once from the config's seed."""

    def __init__(self, config: MemoryConfig):
        super().__init__()
        self.config = config
        self.splits: dict[str, TensorDataset] = {}

    def prepare_data(self) -> None:
        """Builds (or reads) the splits now, so that a data problem surfaces before the run folder exists."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        data = self.config.data
        for split in ("train", "val", "test"):
            if split not in self.splits:
                inputs, targets = make_split(data.task, split, getattr(data, f"{split}_samples"), seq_len=data.seq_len,
                                             seed=self.config.seed, data_root=data.data_root,
                                             source=data.digits_source)
                self.splits[split] = TensorDataset(inputs, targets)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.config.data
        batch = data.batch_size if split == "train" else (data.eval_batch_size or data.batch_size)
        # the order is a function of (seed, epoch), so a resumed run sees the epochs an uninterrupted one sees
        sampler = EpochSampler(len(self.splits[split]), int(self.config.seed), shuffle=True) if shuffle else None
        return DataLoader(self.splits[split], batch_size=batch, sampler=sampler, drop_last=False,
                          num_workers=data.num_workers)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


def task_loss(spec: TaskSpec, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE (adding), cross-entropy over every step (copy) or over the sequence (digits)."""
    if spec.kind == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets)
    if spec.kind == "sequence_classification":
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())
    return F.cross_entropy(outputs, targets)


def per_sequence_values(spec: TaskSpec, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each test sequence's loss (and accuracy): their means over the test set are `task_loss` and
    `task_accuracy` (every sequence has the same number of steps)."""
    batch = len(targets)
    if spec.kind == "regression":
        return {"loss": (outputs.squeeze(-1) - targets) ** 2}
    if spec.kind == "sequence_classification":
        losses = F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none").view(batch, -1)
        hits = outputs[:, -COPY_LENGTH:].argmax(-1) == targets[:, -COPY_LENGTH:]
        return {"loss": losses.mean(1), "acc": hits.float().mean(1)}
    return {"loss": F.cross_entropy(outputs, targets, reduction="none"),
            "acc": (outputs.argmax(-1) == targets).float()}


def task_accuracy(spec: TaskSpec, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Digits: classification accuracy. Copy: accuracy on the 10 recall steps. Adding: none."""
    if spec.kind == "regression":
        return None
    if spec.kind == "sequence_classification":
        return (outputs[:, -COPY_LENGTH:].argmax(-1) == targets[:, -COPY_LENGTH:]).float().mean()
    return (outputs.argmax(-1) == targets).float().mean()


class MemoryModule(L.LightningModule):
    """A `MemoryNet` trained with Adam and a step-decay schedule (per epoch)."""

    def __init__(self, config: MemoryConfig):
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict()})
        self.config = config
        self.spec = spec_of(config)
        model = config.model
        self.net = MemoryNet(model.cell, self.spec.in_features, model.hidden, self.spec.out_features,
                             steps=self.spec.steps, recurrent=model.recurrent, readout=model.readout,
                             readout_decay=model.readout_decay, synapse_norm=model.synapse_norm,
                             cell_options=model.cell_options)
        self._epoch_spikes: list[float] = []
        self.test_sequences = SequenceRecorder()
        self.test_per_sequence: dict | None = None      # {"loss"[, "acc"], "index"}: one value per test sequence

    def forward(self, x):
        return self.net(x)

    test_log_prefix: str = "test"      # the logged test metrics' prefix: test (best checkpoint) or test_last

    def _shared_step(self, batch, stage: str):
        x, y = batch
        outputs, layers = self.net(x, return_layers=True)
        loss = task_loss(self.spec, outputs, y)
        if stage == "test":
            self.test_sequences.add(per_sequence_values(self.spec, outputs, y))
        on_step = stage == "train"
        synced = stage != "train"          # under DDP, validation and test cover every process's sequences
        prefix = self.test_log_prefix if stage == "test" else stage
        self.log(f"{prefix}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(x),
                 sync_dist=synced)
        accuracy = task_accuracy(self.spec, outputs, y)
        if accuracy is not None:
            self.log(f"{prefix}/acc", accuracy, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=synced)
        if stage == "train" and self.net.spiking:
            self._log_firing_rates(layers, len(x))
        return loss

    def _log_firing_rates(self, layers, batch_size: int) -> None:
        rates = [float(layer.detach().mean()) for layer in layers]
        for index, rate in enumerate(rates):
            self.log(f"firing_rate/layer{index}", rate, on_step=False, on_epoch=True, batch_size=batch_size)
        self._epoch_spikes = [a + b for a, b in zip(self._epoch_spikes, rates)] if self._epoch_spikes else rates

    def on_train_epoch_end(self) -> None:
        silent = [i for i, total in enumerate(self._epoch_spikes) if total == 0.0]
        if silent:
            warnings.warn(f"{self.net.cell_name}: layer(s) {silent} did not fire during epoch {self.current_epoch}; "
                          f"they pass no gradient (BPSTA passes none through silent neurons)", stacklevel=1)
        self._epoch_spikes = []

    def training_step(self, batch, batch_idx):
        loss = self._shared_step(batch, "train")
        if not bool(torch.isfinite(loss.detach())):      # a probe this small checks every step
            c = self.config
            raise NonFiniteLossError(
                f"non-finite training loss ({float(loss.detach())}) at global step {self.global_step} (epoch "
                f"{self.current_epoch}). Likely causes: learning rate too high (optim.lr={c.optim.lr}; try a smaller "
                f"value), a readout or cell option out of its range (model.readout_decay={c.model.readout_decay}, "
                f"model.cell_options={c.model.cell_options}). The run was stopped; no metrics were written.")
        return loss

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self.test_sequences = SequenceRecorder()
        self.test_per_sequence = None

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.test_per_sequence = self.test_sequences.collect(getattr(self, "_trainer", None))

    def configure_optimizers(self):
        optim = self.config.optim
        optimizer = torch.optim.Adam(parameter_groups(self, optim.lr, optim.weight_decay), lr=optim.lr,
                                     weight_decay=optim.weight_decay)
        if not optim.milestones:
            return optimizer
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=optim.milestones, gamma=optim.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
