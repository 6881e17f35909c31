"""Per-epoch learning-rate schedule (network-and-training.md §2).

The rate of epoch e (set at the start of the epoch, e = 0 ... E-1):

    warm-up, e < W:  lr_e = warmup_lr + e * (lr - warmup_lr) / W
    cosine,  e >= W: lr_e = min_lr + 1/2 (lr - min_lr) (1 + cos(pi * e / E))

The cosine is *not* shifted by the warm-up (timm CosineLRScheduler with warmup_prefix=False,
t_in_epochs=True, as used by the official code). Beyond E the rate stays at min_lr.

`onecycle` is OpenSTL's default schedule, torch's OneCycleLR set per optimizer step k
(0 ... K-1, K = steps of all max_epochs), cosine annealing in two phases:

    rise, k <= P:  lr_k = cos_anneal(lr / div, lr, k / P)                    P = pct_start * K - 1
    fall, k > P:   lr_k = cos_anneal(lr, lr / div / final_div, (k - P) / (K - 1 - P))
    cos_anneal(a, b, x) = b + (a - b) (1 + cos(pi x)) / 2

With cycle_momentum, Adam's beta1 (SGD's momentum) runs the other way, 0.95 -> 0.85 -> 0.95.
Beyond K - 1 both stay at their last values.
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


MAX_MOMENTUM, BASE_MOMENTUM = 0.95, 0.85      # torch OneCycleLR defaults (OpenSTL keeps them)


def cos_anneal(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)


def one_cycle(step: int, *, lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> tuple[float, float]:
    """(learning rate, momentum / beta1) of optimizer step `step` (0-based)."""
    initial = lr / div_factor
    rise_end = float(pct_start * total_steps) - 1
    last = total_steps - 1
    step = min(max(step, 0), last)
    if step <= rise_end:
        fraction = step / rise_end if rise_end > 0 else 1.0
        return cos_anneal(initial, lr, fraction), cos_anneal(MAX_MOMENTUM, BASE_MOMENTUM, fraction)
    fraction = (step - rise_end) / (last - rise_end)
    return (cos_anneal(lr, initial / final_div_factor, fraction),
            cos_anneal(BASE_MOMENTUM, MAX_MOMENTUM, fraction))


def one_cycle_from_config(optim, total_steps: int):
    """A function step -> (lr, momentum) for an `OptimConfig` with schedule onecycle."""
    def at(step: int) -> tuple[float, float]:
        return one_cycle(step, lr=optim.lr, total_steps=total_steps, pct_start=optim.onecycle_pct_start,
                         div_factor=optim.onecycle_div_factor, final_div_factor=optim.onecycle_final_div_factor)
    return at
