"""Spiking-specific metrics (metrics spec, section 6): firing rates with additive state."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torchmetrics import Metric


def firing_rate(spikes: torch.Tensor | Iterable[torch.Tensor]) -> float:
    """Mean of the spike tensor(s) over every axis (batch, channels, space, steps), in float64.

    Accepts one tensor (e.g. `[T, B, C, H, W]`) or a sequence of per-step tensors.
    """
    if isinstance(spikes, torch.Tensor):
        if spikes.numel() == 0:
            raise ValueError("firing_rate needs at least one spike value")
        return float(spikes.detach().double().mean())
    total, count = 0.0, 0
    for step in spikes:
        total += float(step.detach().double().sum())
        count += step.numel()
    if count == 0:
        raise ValueError("firing_rate needs at least one spike value")
    return total / count


class FiringRate(Metric):
    """Streaming firing rate: spike sum and element count, both reduced with "sum" (exact under DDP)."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("spikes", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, spikes: torch.Tensor) -> None:
        self.spikes += spikes.detach().double().sum().to(self.spikes.device)
        self.count += spikes.numel()

    def compute(self) -> torch.Tensor:
        return self.spikes / self.count
