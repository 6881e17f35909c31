"""Both circuit gates of an STC cell, computed faster on the same numbers as the cell.

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

from stcbench.cells.synapse import Synapse


def _plain_conv_synapse(syn) -> bool:
    return (isinstance(syn, Synapse) and syn.kind == "conv" and len(syn) == 2
            and isinstance(syn[1], torch.nn.GroupNorm) and syn[1].affine)


def fusable(cell) -> bool:
    """True for the circuit wrapper with both gates as Conv -> GroupNorm and the stock step."""
    try:
        from stcbench.cells.stc import SpatioTemporalCircuit
    except ImportError:
        return False
    if not isinstance(cell, SpatioTemporalCircuit):
        return False
    if type(cell).step_from_current is not SpatioTemporalCircuit.step_from_current:
        return False
    h, v = getattr(cell, "conv_h", None), getattr(cell, "conv_v", None)
    if not (_plain_conv_synapse(h) and _plain_conv_synapse(v)):
        return False
    ch, cv = h[0], v[0]
    same = (ch.weight.shape == cv.weight.shape and ch.stride == cv.stride and ch.padding == cv.padding
            and ch.dilation == cv.dilation and ch.groups == cv.groups and ch.padding_mode == "zeros"
            and cv.padding_mode == "zeros" and ch.bias is None and cv.bias is None
            and h[1].num_groups == v[1].num_groups and h[1].eps == v[1].eps)
    return same


class FusedGates:
    """The circuit parameters of one cell, read once per forward pass."""

    def __init__(self, cell):
        self.cell = cell
        self.convs = (cell.conv_h[0], cell.conv_v[0])
        self.norms = tuple((norm.num_groups, 2 * norm.weight, 2 * norm.bias, norm.eps)
                           for norm in (cell.conv_h[1], cell.conv_v[1]))

    def gates(self, g: torch.Tensor):
        """(history gate A, input gate B) = 2 sigmoid(2 GN(conv(g))) for the two circuits."""
        out = []
        for conv, (groups, weight, bias, eps) in zip(self.convs, self.norms):
            y = F.conv2d(g, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
            out.append(2 * torch.sigmoid(F.group_norm(y, groups, weight, bias, eps)))
        return out[0], out[1]

    def step_from_current(self, current, state, t):
        """SpatioTemporalCircuit.step_from_current with the faster gates."""
        cell = self.cell
        g = cell.circuit_input(state[0], current.dtype)
        history_gate, input_gate = self.gates(g)
        return cell.neuron_step(current * input_gate, state, t, history_gate=history_gate)
