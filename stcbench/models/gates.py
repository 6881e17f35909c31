"""Both circuit gates of an STC cell from one grouped convolution (same numbers as the cell).

The cell computes A = 1 + tanh(GN_h(conv_h(g))) and B = 1 + tanh(GN_v(conv_v(g))) with two
grouped convolutions on the same input g.  Here the input is duplicated along channels,
[g, g], and one convolution with twice the groups and the concatenated weights
[W_h; W_v] gives [conv_h(g), conv_v(g)]; one GroupNorm with twice the groups and the
concatenated affine parameters normalises exactly the same channel groups as GN_h and
GN_v.  Each output element is the same sum over the same inputs, so only the grouping of
the kernel launches changes.
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
    """Concatenated circuit parameters of one cell, built once per forward pass."""

    def __init__(self, cell):
        self.cell = cell
        h, v = cell.conv_h, cell.conv_v
        self.conv = h[0]
        self.channels = h[0].out_channels
        self.weight = torch.cat([h[0].weight, v[0].weight], dim=0)
        self.norm_weight = torch.cat([h[1].weight, v[1].weight], dim=0)
        self.norm_bias = torch.cat([h[1].bias, v[1].bias], dim=0)
        self.norm_groups = 2 * h[1].num_groups
        self.eps = h[1].eps

    def gates(self, g: torch.Tensor):
        conv = self.conv
        doubled = torch.cat([g, g], dim=1)
        y = F.conv2d(doubled, self.weight, None, conv.stride, conv.padding, conv.dilation, 2 * conv.groups)
        y = F.group_norm(y, self.norm_groups, self.norm_weight, self.norm_bias, self.eps)
        # split (one concatenating backward) rather than two slices (zero-fill + copy each)
        history_gate, input_gate = torch.split(1 + torch.tanh(y), self.channels, dim=1)
        return history_gate, input_gate

    def step_from_current(self, current, state, t):
        """SpatioTemporalCircuit.step_from_current with the fused gates."""
        cell = self.cell
        g = cell.circuit_input(state[0], current.dtype)
        history_gate, input_gate = self.gates(g)
        return cell.neuron_step(current * input_gate, state, t, history_gate=history_gate)
