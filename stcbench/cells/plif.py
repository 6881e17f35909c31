"""PLIF: LIF with a learnable membrane time constant (Fang et al., ICCV 2021; official `PLIFCell`).

reference (default, official code, cells.md §2):
    h^ = sig(w) * h + (1 - w) * X          raw (1 - w) input gain: a known bug, kept
    s  = H(h^ - 1);  h = h^ - s            soft reset, not detached; sigmoid surrogate alpha=4
original (Fang et al. author code): 1/tau = sig(w)
    h^ = (1 - sig(w)) * h + sig(w) * X;  s = H(h^ - 1);  h = h^ * (1 - sg(s))   ATan surrogate alpha=2
"""
from __future__ import annotations

import math

import torch
from torch import nn

from stcbench.cells.base import SpikingCell
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError

PLIF_GAINS = ("raw_one_minus_w", "sigmoid")
RESETS = ("soft", "soft_detached", "hard_detached")
VARIANT_DEFAULTS = {
    "reference": {"plif_gain": "raw_one_minus_w", "reset": "soft", "surrogate": "sigmoid4"},
    "original": {"plif_gain": "sigmoid", "reset": "hard_detached", "surrogate": "atan2"},
}


def apply_reset(mem: torch.Tensor, spike: torch.Tensor, kind: str, threshold: float) -> torch.Tensor:
    """The reset kinds of cells.md §0.5."""
    if kind == "soft":
        return mem - spike * threshold
    if kind == "soft_detached":
        return mem - spike.detach() * threshold
    return mem * (1.0 - spike.detach())          # hard_detached: back to 0


@register_cell(
    "plif",
    official_class="PLIFCell",
    variants=("reference", "original"),
    description="Parametric LIF, learnable scalar decay sigma(w); reference keeps the raw (1-w) input gain",
    source="Fang et al., ICCV 2021 (Parametric-Leaky-Integrate-and-Fire-Spiking-Neuron); official PLIFCell",
)
class PLIF(SpikingCell):
    """Parametric LIF: one learnable scalar `t_m` (w) per layer, init 0 (decay 0.5)."""

    variants = ("reference", "original")

    def __init__(self, in_channels: int, hidden_channels: int, *, plif_gain: str | None = None,
                 reset: str | None = None, surrogate=None, tau_init: float = 2.0, **kwargs):
        variant = kwargs.get("variant", "reference")
        defaults = VARIANT_DEFAULTS.get(variant, VARIANT_DEFAULTS["reference"])
        super().__init__(in_channels, hidden_channels,
                         surrogate=surrogate if surrogate is not None else defaults["surrogate"], **kwargs)
        self.plif_gain = plif_gain or defaults["plif_gain"]
        self.reset_kind = reset or defaults["reset"]
        if self.plif_gain not in PLIF_GAINS:
            raise ConfigError(f"plif_gain must be one of {list(PLIF_GAINS)}, got {self.plif_gain!r}")
        if self.reset_kind not in RESETS:
            raise ConfigError(f"reset must be one of {list(RESETS)}, got {self.reset_kind!r}")
        if tau_init <= 1.0:
            raise ConfigError(f"tau_init must be > 1 (w0 = -ln(tau_init - 1)), got {tau_init}")
        # w0 = -ln(tau0 - 1) (Fang et al.): 0 for tau0 = 2, the official init.
        w0 = 0.0 - math.log(tau_init - 1.0)
        self.t_m = nn.Parameter(torch.full((1,), w0))

    def decay_and_gain(self):
        """(decay of the history, gain of the input current)."""
        sig = self.t_m.sigmoid()
        if self.variant == "original":               # 1/tau = sig(w): decay 1 - 1/tau, gain 1/tau
            return 1.0 - sig, (sig if self.plif_gain == "sigmoid" else 1.0 - self.t_m)
        gain = (1.0 - self.t_m) if self.plif_gain == "raw_one_minus_w" else (1.0 - sig)
        return sig, gain

    def charge(self, current, history):
        decay, gain = self.decay_and_gain()
        return history * decay + current * gain

    def reset(self, mem, spike):
        return apply_reset(mem, spike, self.reset_kind, self.threshold)
