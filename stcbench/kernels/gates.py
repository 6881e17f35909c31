"""Both circuit gates of a circuit cell (one that declares `fused_step_spec`), computed faster, same numbers.

The cell computes A = 1 + tanh(GN_h(conv_h(g))) and B = 1 + tanh(GN_v(conv_v(g))) (Eq. 11).
Here each gate is 2 sigmoid(2 z) with z the same GroupNorm output, which equals 1 + tanh(z)
(tanh z = 2 sigmoid(2z) - 1); torch's CPU sigmoid is several times faster than its tanh.
The factor 2 inside goes into GroupNorm's affine parameters, (2 gamma) x_hat + 2 beta =
2 (gamma x_hat + beta) exactly in binary floating point.  The two grouped convolutions stay
separate calls: in channels-last memory that is faster than one call with twice the groups
on a duplicated input, measured on CPU.  Values differ from the cell by round-off only.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def spec_of(cell):
    """The cell's `FusedStepSpec` (stcbench/cells/fused.py), or None when it declares none."""
    declare = getattr(cell, "fused_step_spec", None)
    return declare() if callable(declare) else None


def fusable(cell) -> bool:
    """True for a cell that declares its step in the fused form, with two circuit convolutions alike."""
    spec = spec_of(cell)
    if spec is None:
        return False
    h, v = spec.history_synapse, spec.input_gate_synapse
    ch, cv = h[0], v[0]
    same = (ch.weight.shape == cv.weight.shape and ch.stride == cv.stride and ch.padding == cv.padding
            and ch.dilation == cv.dilation and ch.groups == cv.groups and ch.padding_mode == "zeros"
            and cv.padding_mode == "zeros" and ch.bias is None and cv.bias is None
            and h[1].num_groups == v[1].num_groups and h[1].eps == v[1].eps)
    return same


class FusedGates:
    """The circuit parameters of one cell, read once per forward pass."""

    def __init__(self, cell):
        self.spec = spec = spec_of(cell)
        self.convs = (spec.history_synapse[0], spec.input_gate_synapse[0])
        self.norms = tuple((norm.num_groups, 2 * norm.weight, 2 * norm.bias, norm.eps)
                           for norm in (spec.history_synapse[1], spec.input_gate_synapse[1]))

    def gates(self, g: torch.Tensor):
        """(history gate A, input gate B) = 2 sigmoid(2 GN(conv(g))) for the two circuits."""
        out = []
        for conv, (groups, weight, bias, eps) in zip(self.convs, self.norms):
            y = F.conv2d(g, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
            out.append(2 * torch.sigmoid(F.group_norm(y, groups, weight, bias, eps)))
        return out[0], out[1]

    def step_from_current(self, current, state, t):
        """The cell's step_from_current with the faster gates."""
        spec = self.spec
        g = spec.circuit_input(state[0], current.dtype)
        history_gate, input_gate = self.gates(g)
        return spec.neuron_step(current * input_gate, state, t, history_gate=history_gate)
