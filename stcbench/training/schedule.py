"""Per-epoch learning-rate schedule (network-and-training.md §2).

The rate of epoch e (set at the start of the epoch, e = 0 ... E-1):

    warm-up, e < W:  lr_e = warmup_lr + e * (lr - warmup_lr) / W
    cosine,  e >= W: lr_e = min_lr + 1/2 (lr - min_lr) (1 + cos(pi * e / E))

The cosine is *not* shifted by the warm-up (timm CosineLRScheduler with warmup_prefix=False,
t_in_epochs=True, as used by the official code). Beyond E the rate stays at min_lr.
"""
from __future__ import annotations

import math


def learning_rate(epoch: int, *, lr: float, max_epochs: int, warmup_epochs: int = 10,
                  warmup_lr: float = 1e-5, min_lr: float = 1e-5, schedule: str = "cosine") -> float:
    if schedule == "constant":
        return lr
    if epoch < warmup_epochs:
        return warmup_lr + epoch * (lr - warmup_lr) / warmup_epochs
    if epoch >= max_epochs:
        return min_lr
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * epoch / max_epochs))


def schedule_from_config(optim, max_epochs: int):
    """A function epoch -> lr for an `OptimConfig`."""
    def at(epoch: int) -> float:
        return learning_rate(epoch, lr=optim.lr, max_epochs=max_epochs, warmup_epochs=optim.warmup_epochs,
                             warmup_lr=optim.warmup_lr, min_lr=optim.min_lr, schedule=optim.schedule)
    return at
