"""ConvLSTM (Shi et al. 2015), the non-spiking reference cell.

    [i, f, g, o] = W_x * x_t + W_h * h_{t-1}       (= one conv over [x_t, h_{t-1}], no bias)
    i = sigma(i), f = sigma(f + b_f), g = tanh(g), o = sigma(o)   (no peepholes)
    c_t = f*c_{t-1} + i*g,   h_t = o*tanh(c_t)

Variants (they differ only in the forget-gate bias b_f):

* `reference` (default): b_f = 0, what OpenSTL's `ConvLSTMCell` computes (it stores
  `_forget_bias = 1.0` but never adds it), so the published "ConvLSTM-S (OpenSTL)" rows and
  OpenSTL checkpoints are reproduced exactly (tests/models/test_openstl_convlstm.py).
* `original`: b_f = 1, the forget bias of Shi et al. (and of stcbench before the reference
  variant became the default).

Parameter names follow OpenSTL (`conv_x.0.weight`, `conv_h.0.weight`, and with
`layer_norm=True` a LayerNorm over `[4C, H, W]` as `conv_x.1` / `conv_h.1`).  With the
conv synapse, `layer_norm` needs the map size `norm_spatial=(H, W)`.  OpenSTL's cell also
holds `conv_o` and its own `conv_last`, which its forward pass never uses; they are not
built here (`convert-official` drops them).
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells.base import RecurrentCell
from stcbench.cells.registry import register_cell
from stcbench.cells.synapse import Synapse
from stcbench.errors import ConfigError

FORGET_BIAS = {"reference": 0.0, "original": 1.0}   # b_f per variant
GATES = 4


@register_cell(
    "convlstm",
    aliases=("conv_lstm",),
    variants=("reference", "original"),
    description="ConvLSTM (Shi et al. 2015), non-spiking; reference = OpenSTL ConvLSTMCell (no forget bias), "
                "original = forget bias 1",
    source="Shi et al., NeurIPS 2015; OpenSTL openstl/modules/convlstm_modules.py ConvLSTMCell",
    spiking=False,
    stc_compatible=False,
)
class ConvLSTM(RecurrentCell):
    """Convolutional (or, with the linear synapse, fully connected) LSTM; output h_t."""

    state_names = ("hidden", "cell")
    spiking = False
    variants = ("reference", "original")

    def __init__(self, in_channels: int, hidden_channels: int, *, layer_norm: bool = False,
                 norm_spatial: tuple[int, int] | None = None, **kwargs):
        # conv_x is replaced by the gate synapse below, whose norm is `layer_norm`
        super().__init__(in_channels, hidden_channels, **{**kwargs, "synapse_norm": False})
        self.layer_norm = layer_norm
        self.forget_bias = FORGET_BIAS[self.variant]
        self.conv_x = self._gate_synapse(in_channels, norm_spatial)
        self.conv_h = self._gate_synapse(hidden_channels, norm_spatial)

    def _gate_synapse(self, in_channels: int, norm_spatial) -> Synapse:
        gates = Synapse(self.synapse_kind, in_channels, GATES * self.hidden_channels, self.kernel_size, norm=False)
        if self.layer_norm:
            gates.append(nn.LayerNorm([GATES * self.hidden_channels, *self._norm_spatial(norm_spatial)]))
        return gates

    def _norm_spatial(self, norm_spatial) -> tuple[int, ...]:
        if self.synapse_kind == "linear":
            return ()
        if norm_spatial is None or len(tuple(norm_spatial)) != 2:
            raise ConfigError("ConvLSTM with layer_norm=True and the conv synapse needs the map size: "
                              "pass norm_spatial=(H, W)")
        return tuple(int(s) for s in norm_spatial)

    def neuron_step(self, current, state, t, history_gate=None):
        """`current` is the input's share of the four gates, W_x * x_t."""
        hidden, cell = state
        in_gate, forget_gate, candidate, out_gate = torch.split(current + self.conv_h(hidden),
                                                                self.hidden_channels, dim=1)
        if history_gate is not None:
            cell = history_gate * cell
        if self.forget_bias:
            forget_gate = forget_gate + self.forget_bias
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(out_gate) * torch.tanh(cell)
        return hidden, cell

    def extra_repr(self) -> str:
        return super().extra_repr() + f", layer_norm={self.layer_norm}"
