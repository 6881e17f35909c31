"""ALIF: LIF with an adaptive threshold, as written in the CE-LIF paper, Eq. (3).

    Theta_t = beta*(Theta_{t-1} - Theta0) + gamma*S_{t-1} + Theta0
    V_t     = alpha*V_{t-1}*(1 - S_{t-1}) + X_t          (hard reset applied one step late)
    S_t     = H(V_t - Theta_t)                           (>=)

Boxcar surrogate (CE-LIF Eq. 7): dS/dV = 1[|V - Theta| < Gamma], dS/dTheta = -dS/dV.
Not present in the official STC-LIF code; adapted to feature maps with the shared input
synapse (docs/cells.md, spec section 10).
"""
from __future__ import annotations

import torch

from stcbench.cells.base import SpikingCell
from stcbench.cells.fused import overrides
from stcbench.cells.registry import register_cell
from stcbench.cells.surrogate import Rectangle
from stcbench.errors import ConfigError


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1] (a decay factor), got {value}")


class AdaptiveThresholdCell(SpikingCell):
    """Shared pieces of ALIF and CE-LIF: state (S, V, Theta), late hard reset, boxcar surrogate."""

    state_names = ("spike", "mem", "threshold")

    def __init__(self, in_channels: int, hidden_channels: int, *, alpha: float = 0.5, beta: float = 0.99,
                 threshold: float = 0.3, surrogate_width: float = 0.2, surrogate=None, **kwargs):
        check_unit_interval("alpha", alpha)
        check_unit_interval("beta", beta)
        if surrogate_width <= 0:
            raise ConfigError(f"surrogate_width (Gamma) must be > 0, got {surrogate_width}")
        if surrogate is None:
            surrogate = Rectangle(half_width=surrogate_width, height=1.0)   # CE-LIF Eq. (7)
        super().__init__(in_channels, hidden_channels, threshold=threshold, surrogate=surrogate, **kwargs)
        self.alpha = alpha
        self.beta = beta
        self.surrogate_width = surrogate_width

    def initial_state(self, batch, spatial, *, device=None, dtype=None):
        spike, mem, _ = super().initial_state(batch, spatial, device=device, dtype=dtype)
        return spike, mem, torch.full_like(mem, self.threshold)   # Theta_{-1} = Theta0

    def charge(self, current, mem, spike, history_gate=None):
        """V_t = alpha*V_{t-1}*(1 - S_{t-1}) + X_t (Eq. 2/3; the reset of step t-1 happens here)."""
        history = mem if history_gate is None else history_gate * mem
        return self.alpha * history * (1.0 - spike) + current

    def adapt(self, threshold, spike, mem, t):
        raise NotImplementedError

    def stock_step(self) -> bool:
        """True when state, charge, fire and step are this class's (the closed form of `dense_neuron`)."""
        return not (overrides(self, AdaptiveThresholdCell, "neuron_step", "charge", "initial_state", "fire")
                    or isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)))

    def neuron_step(self, current, state, t, history_gate=None):
        spike, mem, threshold = state
        threshold = self.adapt(threshold, spike, mem, t)
        mem = self.charge(current, mem, spike, history_gate)
        spike = self.fire(mem, threshold)
        return spike, mem, threshold

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", alpha={self.alpha}, beta={self.beta}, "
                f"threshold0={self.threshold}, Gamma={self.surrogate_width}")


@register_cell(
    "alif",
    description="Adaptive-threshold LIF (CE-LIF paper Eq. 3), late hard reset, boxcar surrogate",
    source="CE-LIF paper (Chen et al.) Eq. (3) and Eq. (7); not in the official STC-LIF code",
)
class ALIF(AdaptiveThresholdCell):
    """ALIF: each spike raises the threshold by gamma; the raise decays with beta."""

    def __init__(self, in_channels: int, hidden_channels: int, *, gamma: float = 0.018, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        # The paper gives no gamma; 1.8*(1 - beta) is Bellec's adaptation strength 1.8 at this decay.
        self.gamma = gamma

    def adapt(self, threshold, spike, mem, t):
        """Theta_t = beta*(Theta_{t-1} - Theta0) + gamma*S_{t-1} + Theta0 (Eq. 3)."""
        return self.beta * (threshold - self.threshold) + self.gamma * spike + self.threshold

    def dense_neuron(self):
        from stcbench.cells.dense import AdaptiveThreshold

        if not self.stock_step() or overrides(self, ALIF, "adapt"):
            return None
        return AdaptiveThreshold(self.alpha, self.beta, float(self.threshold), float(self.gamma), None, self.surrogate)
