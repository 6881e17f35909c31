"""Pieces shared by the dataset modules: split container, fix hints, first-N caps."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stcbench.errors import ConfigError

SELECTIONS = ("val", "openstl_test")


def fix_hint(dataset: str, data_root: Path) -> str:
    """The standard 'how to fix' sentence appended to every data error (with --force where the dataset's
    folder exists, since `data generate` does not overwrite it otherwise)."""
    from stcbench.data.specs import get_dataset_spec

    exists = get_dataset_spec(dataset).folder_path(data_root).exists()
    force = " --force" if exists else ""
    replaces = " (--force replaces the files there)" if exists else ""
    return (f"Fix: run `stcbench data generate --dataset {dataset} --data-root {data_root}{force}` for the "
            f"small embedded default{replaces}, or download the published files (see datasets/README.md).")


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    return selection


class FrameSequenceDataset(Dataset):
    """Base for datasets whose items are float32 tensors [T, C, H, W] in [0, 1]."""

    mean = 0.0
    std = 1.0


class MappedArray:
    """A read-only .npy memory map that reopens itself after pickling (spawned workers get the
    path, not a copy of the data)."""

    def __init__(self, path: Path, array: np.ndarray | None = None):
        self.path = Path(path)
        self._array = array

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None}


class FirstN(FrameSequenceDataset):
    """The first `n` items of another dataset (deterministic cap for quick runs)."""

    def __init__(self, base: Dataset, n: int):
        self.base = base
        self.n = min(int(n), len(base))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.base[index]


def cap(dataset: Dataset, n: int | None) -> Dataset:
    if n is None:
        return dataset
    if int(n) <= 0:
        raise ConfigError(f"sample caps must be positive integers, got {n}")
    return FirstN(dataset, n) if int(n) < len(dataset) else dataset


def counted(used: int, available: int) -> str:
    """How many items a split uses: `N`, or `the first K of N` where a cap keeps only K."""
    return str(available) if used == available else f"the first {used} of {available}"


@dataclass
class Splits:
    """Train / validation / test datasets of one benchmark, plus how they were made."""

    train: Dataset
    val: Dataset
    test: Dataset
    rules: dict = field(default_factory=dict)

    def sizes(self) -> dict:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
