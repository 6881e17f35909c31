"""LM-H: learnable multi-hierarchical neuron (Hao et al., ICLR 2024; official `LMHCell`, cells.md §5).

    d_t = (sig(d_u) - 1/2) * d_{t-1} + (sig(s_u) - 1/2) * h_{t-1} + X_t     coefficients in (-1/2, 1/2)
    h^_t = (sig(d_p) + 1/2) * d_t + (sig(s_p) + 1/2) * h_{t-1}              coefficients in (1/2, 3/2)
    s_t = theta * H(h^_t - theta);  h_t = h^_t - sg(s_t)                    soft reset, detached

At init d_t = X_t and h^_t = d_t + h_{t-1}: a perfect integrator.  reference: theta = 1,
h_0 = 0, sigmoid surrogate alpha=4, `t_m` exists but is unused.  original (author code
`LearnableNeuron`): h_0 = theta/2, triangle surrogate.
Mapping to Hao et al.: d_u <-> alpha1, s_u <-> beta1, s_p <-> alpha2, d_p <-> beta2.
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells.base import SpikingCell
from stcbench.cells.fused import fused_neuron, overrides
from stcbench.cells.registry import register_cell

SCALARS = ("t_m", "s_u", "s_p", "d_u", "d_p")


@register_cell(
    "lmh",
    official_class="LMHCell",
    variants=("reference", "original"),
    description="Learnable multi-hierarchical two-compartment neuron (perfect integrator at init)",
    source="Hao et al., ICLR 2024 (hzc1208/STBP_LMH, LearnableNeuron); official LMHCell",
)
class LMH(SpikingCell):
    """LM-H; state (spike, mem, dend). `neuron_weight_decay` tells the optimizer whether the
    learnable logits get weight decay (the author recipe: yes)."""

    variants = ("reference", "original")

    state_names = ("spike", "mem", "dend")
    params_without_grad = ("t_m",)

    def __init__(self, in_channels: int, hidden_channels: int, *, neuron_weight_decay: bool = True,
                 surrogate=None, **kwargs):
        variant = kwargs.get("variant", "reference")
        if surrogate is None:
            surrogate = "triangle" if variant == "original" else "sigmoid4"
        super().__init__(in_channels, hidden_channels, surrogate=surrogate, **kwargs)
        for name in SCALARS:
            setattr(self, name, nn.Parameter(torch.zeros(1)))
        self.neuron_weight_decay = neuron_weight_decay
        self.reset_detached = True          # the STC-LM-H wrapper may switch this (stc_lmh_reset_detach)

    def param_group_overrides(self):
        if self.neuron_weight_decay:
            return {}
        return {name: {"weight_decay": False} for name in SCALARS}

    def initial_state(self, batch, spatial, *, device=None, dtype=None):
        spike, mem, dend = super().initial_state(batch, spatial, device=device, dtype=dtype)
        if self.variant == "original":
            mem = mem + 0.5 * self.threshold          # h_0 = theta / 2
        return spike, mem, dend

    def compartment_coefficients(self):
        """(dendrite decay, soma -> dendrite, dendrite -> soma, soma decay) of the equations above."""
        return (self.d_u.sigmoid() - 0.5, self.s_u.sigmoid() - 0.5,
                self.d_p.sigmoid() + 0.5, self.s_p.sigmoid() + 0.5)

    def charge(self, current, mem, dend, history_gate):
        dend_decay, soma_to_dend, dend_to_soma, soma_decay = self.compartment_coefficients()
        dend = dend * dend_decay + mem * soma_to_dend + current
        history = mem if history_gate is None else mem * history_gate   # soma: gated history (STC-LM-H)
        return dend * dend_to_soma + history * soma_decay, dend

    def fire(self, mem, threshold=None):
        spike = super().fire(mem, threshold)
        return spike if self.threshold == 1.0 else spike * self.threshold   # amplitude theta

    def reset(self, mem, spike):
        return mem - (spike.detach() if self.reset_detached else spike)

    def fused_neuron(self):
        if overrides(self, LMH, "charge", "reset", "fire", "neuron_step", "compartment_coefficients"):
            return None
        reset = "soft_detached" if self.reset_detached else "soft"
        return fused_neuron(self, 2, self.compartment_coefficients(), reset)

    def neuron_step(self, current, state, t, history_gate=None):
        _, mem, dend = state
        mem, dend = self.charge(current, mem, dend, history_gate)
        spike = self.fire(mem)
        return spike, self.reset(mem, spike), dend
