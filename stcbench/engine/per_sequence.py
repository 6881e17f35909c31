"""Per-sequence test metrics of a run (`test_per_sequence.npz`), for comparing two models on the same
test sequences (the paired bootstrap of stcbench.reports.stats).

`SequenceRecorder` collects the values `PredictionState.update` computes for each test batch. Under
DDP every process sees part of the test set: each value is tagged with its index in the test set
(the distributed sampler's indices, without shuffling), the parts are gathered, and the arrays are
in test-set order on every process, so they do not depend on the number of processes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PER_SEQUENCE_FILE = "test_per_sequence.npz"


class SequenceRecorder:
    def __init__(self) -> None:
        self.parts: list[dict[str, torch.Tensor]] = []

    def add(self, values: dict[str, torch.Tensor]) -> None:
        if values:
            self.parts.append({name: value.detach().to("cpu", torch.float64) for name, value in values.items()})

    def collect(self, trainer=None) -> dict[str, np.ndarray] | None:
        """{metric: values in test-set order, "index": positions in the test set}, None without batches."""
        local = {name: torch.cat([part[name] for part in self.parts]).numpy() for name in self.parts[0]} \
            if self.parts else {}
        count = len(next(iter(local.values()))) if local else 0
        local["index"] = np.asarray(_test_indices(trainer, count), dtype=np.int64)
        parts = _gather(local)
        parts = [p for p in parts if len(p["index"])]
        if not parts:
            return None
        merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        # a DistributedSampler pads the last round with repeated indices: keep each sequence once
        _, first = np.unique(merged["index"], return_index=True)
        return {name: values[first] for name, values in merged.items()}


def _test_indices(trainer, count: int) -> list[int]:
    """Test-set positions of this process's sequences: its distributed sampler's, else 0..count-1."""
    from torch.utils.data import DistributedSampler

    loaders = getattr(trainer, "test_dataloaders", None) if trainer is not None else None
    loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler) and not getattr(sampler, "shuffle", False):
        return list(iter(sampler))[:count]
    return list(range(count))


def _gather(local: dict) -> list[dict]:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [local]
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, local)
    return parts


def save_per_sequence(run_dir: Path, values: dict[str, np.ndarray] | None) -> str | None:
    """Write `test_per_sequence.npz` into the run folder; its name relative to the run folder, or None."""
    if not values:
        return None
    from stcbench.engine.io import atomic_save_npz

    atomic_save_npz(Path(run_dir) / PER_SEQUENCE_FILE, **values)
    return PER_SEQUENCE_FILE
