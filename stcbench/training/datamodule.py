"""Building the dataset's `STDataModule` from a config, with exact distributed evaluation.

`EvalExactDataModule` wraps the dataset's DataModule. Training batches are left to
Lightning (DistributedSampler under DDP). Validation and test loaders are rebuilt under DDP
with an `UnrepeatedDistributedSampler`, so every sequence is evaluated exactly once: the
default DistributedSampler pads the last rank with duplicates, which would bias the additive
metric sums that are all-reduced at the end.
"""
from __future__ import annotations

import inspect

import lightning as L
import torch
from torch.utils.data import DataLoader

from stcbench.errors import ConfigError


def _constructor_kwargs(cls) -> set[str] | None:
    """Keyword names the DataModule accepts (None when it takes **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return {name for name in params if name != "self"}


def build_datamodule(config, dataset: str | None = None, *, test_only: bool = False):
    """The `STDataModule` for `config.data` (or for `dataset`, e.g. kth40 for the long test)."""
    from stcbench.data import STDataModule
    from stcbench.training.network import check_frames_match_the_data

    check_frames_match_the_data(config)
    d = config.data
    wanted = {
        "dataset": dataset or d.dataset,
        "data_root": d.data_root,
        "batch_size": d.batch_size,
        "val_batch_size": d.eval_batch_size,
        "num_workers": d.num_workers,
        "selection": d.selection,
        "train_samples": d.train_samples,
        "val_samples": d.val_samples,
        "test_samples": d.test_samples,
        "generate_if_missing": d.generate_if_missing,
        "seed": config.seed,
    }
    accepted = _constructor_kwargs(STDataModule)
    kwargs = {}
    for key, value in wanted.items():
        if accepted is None or key in accepted:
            kwargs[key] = value
        elif key == "val_batch_size" and value is not None and value != d.batch_size:
            raise ConfigError("data.eval_batch_size is not supported by this dataset module; remove it")
    for key, value in d.options.items():
        if accepted is not None and key not in accepted:
            raise ConfigError(f"data.options.{key} is not an option of the dataset module; "
                              f"allowed: {sorted(accepted - set(wanted))}")
        kwargs[key] = value
    return EvalExactDataModule(STDataModule(**kwargs))


class EvalExactDataModule(L.LightningDataModule):
    """Delegates to the dataset DataModule; evaluation loaders visit every sample once under DDP."""

    def __init__(self, inner: L.LightningDataModule):
        super().__init__()
        self.inner = inner

    def _share_trainer(self) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            self.inner.trainer = trainer

    def prepare_data(self) -> None:
        self._share_trainer()
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        self._share_trainer()
        self.inner.setup(stage)

    def teardown(self, stage: str) -> None:
        if hasattr(self.inner, "teardown"):
            self.inner.teardown(stage)

    def train_dataloader(self):
        self._share_trainer()
        return self.inner.train_dataloader()

    def val_dataloader(self):
        return unrepeated(self.inner.val_dataloader())

    def test_dataloader(self):
        return unrepeated(self.inner.test_dataloader())

    def state_dict(self) -> dict:
        return self.inner.state_dict() if hasattr(self.inner, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.inner, "load_state_dict") and state:
            self.inner.load_state_dict(state)

    def describe(self) -> dict:
        """Split sizes and split rules for metrics.json (whatever the dataset module offers)."""
        inner = self.inner
        for name in ("describe", "description"):
            attr = getattr(inner, name, None)
            if callable(attr):
                try:
                    return dict(attr())
                except Exception:
                    break
            if isinstance(attr, dict):
                return dict(attr)
        info = {}
        splits = getattr(inner, "splits", None)
        if splits is not None and hasattr(splits, "sizes"):
            info["sizes"] = splits.sizes()
            info["rules"] = dict(getattr(splits, "rules", {}) or {})
        return info


def unrepeated(loader):
    """Under DDP: the same loader with a sampler that splits the dataset without padding."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return loader
    if torch.distributed.get_world_size() == 1 or not isinstance(loader, DataLoader):
        return loader
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    world = torch.distributed.get_world_size()
    if len(loader.dataset) < world:
        raise ConfigError(f"the evaluation split has {len(loader.dataset)} sequences, fewer than the {world} "
                          f"processes; use fewer devices or more samples")
    sampler = UnrepeatedDistributedSampler(loader.dataset, shuffle=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=False,
                      persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False)
