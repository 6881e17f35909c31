"""Seeded, epoch-aware shuffling that does not depend on the number of workers."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A permutation of range(n) seeded by (seed, epoch).

    Lightning calls `set_epoch(e)` before every training epoch. When the sampler is wrapped
    (distributed training) and `set_epoch` does not reach it, the epoch advances by one per
    pass instead. With `encode_epoch=True` it yields `epoch * n + i`, so an epoch-aware dataset
    (Moving MNIST training) draws fresh sequences every epoch from (seed, epoch, i).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, encode_epoch: bool = False):
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.encode_epoch = encode_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1, np.uint64)[0]) >> 1   # < 2**63
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(self.n)
        if self.encode_epoch:
            order = order + epoch * self.n
        return order.tolist()

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return iter(self.indices(epoch))
