"""TC-LIF: two-compartment LIF (Zhang et al., AAAI 2024; official `TCLIFCell`, cells.md §4).

reference (paper Eqs. 10-11 with detached, one-step-late resets; s^ = sg(s_{t-1})):
    d_t = d_{t-1} - sig(s_u) * h_{t-1} + X_t - t_m * s^      dendrite (t_m = dendritic reset, raw)
    h_t = h_{t-1} + sig(s_p) * d_t - s^                      soma, returned pre-reset
    s_t = H(h_t - 1)                                         sigmoid surrogate alpha=4
    `d_u`, `d_p` exist (official state_dict) but are unused.
original (author code TCLIF.py; decay_factor = (c1, c2); states carried after reset):
    d_t = d_{t-1} - sig(c1) * h_{t-1} + X_t;  H_t = h_{t-1} + sig(c2) * d_t;  s_t = H(H_t - V_th)
    d_t <- d_t - gamma * s_t;  h_t = H_t - V_th * s_t       immediate soft reset, not detached
    triangle surrogate.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from stcbench.cells.base import RecurrentCell, SpikingCell
from stcbench.cells.fused import overrides
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError

REFERENCE_SCALARS = ("t_m", "s_u", "s_p", "d_u", "d_p")


@register_cell(
    "tclif",
    official_class="TCLIFCell",
    variants=("reference", "original"),
    description="Two-compartment LIF (dendrite + soma) for long-term dependencies",
    source="Zhang et al., AAAI 2024 (ZhangShimin1/TC-LIF); official TCLIFCell",
)
class TCLIF(SpikingCell):
    """Two-compartment LIF; state (spike, mem, dend)."""

    variants = ("reference", "original")

    state_names = ("spike", "mem", "dend")
    params_without_grad = ("d_u", "d_p")

    def __init__(self, in_channels: int, hidden_channels: int, *, gamma: float = 0.5,
                 decay_init: tuple[float, float] = (0.0, 0.0), surrogate=None, **kwargs):
        variant = kwargs.get("variant", "reference")
        if surrogate is None:
            surrogate = "triangle" if variant == "original" else "sigmoid4"
        super().__init__(in_channels, hidden_channels, surrogate=surrogate, **kwargs)
        if len(tuple(decay_init)) != 2:
            raise ConfigError(f"decay_init must be a pair (c1, c2), got {decay_init!r}")
        self.gamma = float(gamma)
        if self.variant == "original":
            self.decay_factor = nn.Parameter(torch.tensor([list(map(float, decay_init))]))
        else:
            for name in REFERENCE_SCALARS:
                setattr(self, name, nn.Parameter(torch.zeros(1)))

    def no_grad_parameters(self):
        return self.params_without_grad if self.variant == "reference" else ()

    # -- reference -------------------------------------------------------------------------
    def _reference_step(self, current, state, history_gate):
        prev_spike, mem, dend = state
        late = prev_spike.detach()                      # reset of the previous step, detached
        dend = dend - mem * self.s_u.sigmoid() + current - self.t_m * late
        history = mem if history_gate is None else history_gate * mem
        mem = history + dend * self.s_p.sigmoid() - late
        return self.fire(mem), mem, dend

    # -- original --------------------------------------------------------------------------
    def _original_step(self, current, state, history_gate):
        _, mem, dend = state
        c1, c2 = self.decay_factor[0, 0].sigmoid(), self.decay_factor[0, 1].sigmoid()
        dend = dend - c1 * mem + current
        history = mem if history_gate is None else history_gate * mem
        mem = history + c2 * dend
        spike = self.fire(mem)
        return spike, mem - self.threshold * spike, dend - self.gamma * spike

    def dense_neuron(self):
        """The reference step in the two-compartment form of the dense scan (the original variant has none)."""
        from stcbench.cells.dense import TwoCompartment

        if (self.variant != "reference" or overrides(self, TCLIF, "neuron_step", "_reference_step")
                or overrides(self, RecurrentCell, "initial_state") or overrides(self, SpikingCell, "fire")
                or isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))):
            return None
        return TwoCompartment(self.s_u.sigmoid(), self.s_p.sigmoid(), self.t_m, float(self.threshold), self.surrogate)

    def neuron_step(self, current, state, t, history_gate=None):
        if self.variant == "original":
            return self._original_step(current, state, history_gate)
        return self._reference_step(current, state, history_gate)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """An official (reference) checkpoint into the original variant: s_u -> c1, s_p -> c2."""
        if self.variant == "original" and prefix + "s_u" in state_dict and prefix + "decay_factor" not in state_dict:
            c1, c2 = state_dict[prefix + "s_u"].reshape(()), state_dict[prefix + "s_p"].reshape(())
            state_dict[prefix + "decay_factor"] = torch.stack([c1, c2]).reshape(1, 2)
            for name in REFERENCE_SCALARS:
                state_dict.pop(prefix + name, None)
            warnings.warn("TC-LIF original variant: mapped official s_u -> c1, s_p -> c2 and dropped "
                          "t_m, d_u, d_p (gamma is the fixed hyperparameter `gamma`)", stacklevel=2)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
