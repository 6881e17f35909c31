"""Scheduled sampling of ground-truth frames during training (network spec §1.5).

At iteration k the probability of feeding the ground truth instead of the model's own
prediction is eta(k) = max(0, start - rate·(k+1)) while k < stop_iter, and 0 from stop_iter on.
One Bernoulli draw per (sample, future slot), broadcast over space and channels, from a
dedicated generator (the official code uses the global numpy RNG).
"""
from __future__ import annotations

import torch

from stcbench.errors import ConfigError


class ScheduledSampling:
    """eta schedule and mask sampler; its only state is the iteration counter."""

    def __init__(self, start_value: float = 1.0, decay_rate: float = 2e-5, stop_iter: int = 50000):
        if not 0.0 <= start_value <= 1.0:
            raise ConfigError(f"sampling start_value must lie in [0, 1], got {start_value}")
        if decay_rate < 0:
            raise ConfigError(f"sampling decay_rate must be >= 0, got {decay_rate}")
        if stop_iter < 0:
            raise ConfigError(f"sampling stop_iter must be >= 0, got {stop_iter}")
        self.start_value = float(start_value)
        self.decay_rate = float(decay_rate)
        self.stop_iter = int(stop_iter)
        self.iteration = 0

    def eta(self, iteration: int | None = None) -> float:
        """Probability of using the ground truth at `iteration` (default: the stored counter)."""
        k = self.iteration if iteration is None else int(iteration)
        if k >= self.stop_iter:
            return 0.0
        return max(0.0, self.start_value - self.decay_rate * (k + 1))

    def mask(self, batch: int, future_slots: int, iteration: int | None = None,
             generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
        """[batch, future_slots] of 0/1 (1 = use the ground-truth frame)."""
        eta = self.eta(iteration)
        uniform = torch.rand((batch, max(future_slots, 0)), generator=generator)
        mask = (uniform < eta).to(dtype=dtype)
        if device is not None and torch.device(device).type == "cuda":
            # the CPU generator keeps the masks identical on every device; a pinned, non-blocking copy
            # keeps the step loop free of host syncs
            return mask.pin_memory().to(device, non_blocking=True)
        return mask.to(device=device)

    def step(self) -> None:
        """Advance the iteration counter (call once per training iteration)."""
        self.iteration += 1

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])

    def __repr__(self) -> str:
        return (f"ScheduledSampling(start_value={self.start_value}, decay_rate={self.decay_rate}, "
                f"stop_iter={self.stop_iter}, iteration={self.iteration})")
