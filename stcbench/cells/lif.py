"""LIF: leaky integrate-and-fire with soft reset (STC-LIF paper Eqs. 2-4; official `LIFCell`)."""
from __future__ import annotations

from stcbench.cells.base import SpikingCell
from stcbench.cells.fused import fused_neuron, overrides
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError


@register_cell(
    "lif",
    official_class="LIFCell",
    description="Leaky integrate-and-fire, fixed decay 1/tau_m, soft reset (official LIFCell)",
    source="STC-LIF paper Eqs. (2)-(4); official convlif_modules.LIFCell",
)
class LIF(SpikingCell):
    """Leaky integrate-and-fire: h = lam*h + (1-lam)*X, fire at h >= 1, soft reset h -= s."""

    def __init__(self, in_channels: int, hidden_channels: int, *, tau_m: float = 2.0,
                 integration: str = "leaky", **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        if integration not in ("leaky", "perfect"):
            raise ConfigError(f"integration must be 'leaky' or 'perfect', got {integration!r}")
        if tau_m <= 1.0 and integration == "leaky":
            raise ConfigError(f"tau_m must be > 1 (decay 1/tau_m in (0, 1)), got {tau_m}")
        self.decay = 1.0 / tau_m
        self.integration = integration

    def charge(self, current, history):
        if self.integration == "perfect":      # the STC circuit's gated integrator (Eq. 11)
            return history + current
        return self.decay * history + (1.0 - self.decay) * current

    def reset(self, mem, spike):
        return mem - spike * self.threshold   # soft reset, not detached

    def fused_neuron(self):
        if overrides(self, LIF, "charge", "reset") or overrides(self, SpikingCell, "neuron_step", "fire"):
            return None
        coefficients = (1.0, 1.0) if self.integration == "perfect" else (self.decay, 1.0 - self.decay)
        return fused_neuron(self, 1, coefficients, "soft")
