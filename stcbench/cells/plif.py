"""PLIF: LIF with a learnable membrane time constant (Fang et al., ICCV 2021; official `PLIFCell`).

reference (default, official code, cells.md §2):
    h^ = sig(w) * h + (1 - w) * X          raw (1 - w) input gain: a known bug, kept
    s  = H(h^ - 1);  h = h^ - s            soft reset, not detached; sigmoid surrogate alpha=4
original (Fang et al. author code): 1/tau = sig(w)
    h^ = (1 - sig(w)) * h + sig(w) * X;  s = H(h^ - 1);  h = h^ * (1 - sg(s))   ATan surrogate alpha=2
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from stcbench.cells.base import SpikingCell
from stcbench.cells.fused import fused_neuron, overrides
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError

PLIF_GAINS = ("raw_one_minus_w", "sigmoid")
RESETS = ("soft", "soft_detached", "hard_detached")
VARIANT_DEFAULTS = {
    "reference": {"plif_gain": "raw_one_minus_w", "reset": "soft", "surrogate": "sigmoid4"},
    "original": {"plif_gain": "sigmoid", "reset": "hard_detached", "surrogate": "atan2"},
}

# Key of the variant in the state_dict metadata (`state_dict()._metadata[<module prefix>]`,
# beside PyTorch's own `version`): it travels with torch.save/Lightning checkpoints without
# adding a state_dict key, so official key sets are unchanged.
VARIANT_MARKER = "plif_variant"
T_M_MEANING = {
    "reference": "sigmoid(t_m) is the decay and (1 - t_m) the raw input gain",
    "original": "sigmoid(t_m) is 1/tau: the input gain, with decay 1 - sigmoid(t_m)",
}


def variant_mismatch_message(source: str | None, target: str) -> str:
    origin = (f"variant={source!r}" if source is not None else
              "a state_dict without a PLIF variant marker (an official checkpoint, or a state_dict "
              "copied into a plain dict), read as variant='reference'")
    source = source or "reference"
    return (f"PLIF t_m loaded from {origin} into a variant={target!r} cell: the number means something "
            f"else there ({source}: {T_M_MEANING[source]}; {target}: {T_M_MEANING[target]}). Load it "
            f"into a variant={source!r} PLIF to keep its dynamics, or convert it first: t_m -> -t_m "
            f"keeps the decay (not the input gain).")


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

    def fused_neuron(self):
        if (overrides(self, PLIF, "charge", "reset", "decay_and_gain")
                or overrides(self, SpikingCell, "neuron_step", "fire")):
            return None
        return fused_neuron(self, 1, self.decay_and_gain(), self.reset_kind)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Record the variant that gives `t_m` its meaning in the state_dict metadata."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        metadata = getattr(destination, "_metadata", None)
        if metadata is not None:
            metadata.setdefault(prefix[:-1], {})[VARIANT_MARKER] = self.variant

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Warn when `t_m` comes from the other variant (cells.md §2: same name, other meaning).
        A state_dict without the marker is taken as official, i.e. reference."""
        source = (local_metadata or {}).get(VARIANT_MARKER)
        if prefix + "t_m" in state_dict and (source or "reference") != self.variant:
            warnings.warn(variant_mismatch_message(source, self.variant), UserWarning, stacklevel=4)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
