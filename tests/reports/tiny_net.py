"""A small stand-in of the official recurrent predictor (cell_list + 1x1 readout, step-wise loop)."""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells import create_cell
from stcbench.cells.base import SpikingCell
from stcbench.cells.synapse import Synapse


class GatedLIF(SpikingCell):
    """Perfect integrator with the spatio-temporal circuit's two gates (cells.md §6-7)."""

    def __init__(self, in_channels, hidden_channels, gates=("h", "v"), groups=16, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        for gate in gates:
            setattr(self, f"conv_{gate}", Synapse("conv", hidden_channels, hidden_channels, self.kernel_size,
                                                  groups=groups))

    def gate(self, name, spike):
        conv = getattr(self, f"conv_{name}", None)
        return 1.0 if conv is None else 1 + torch.tanh(conv(spike))

    def step_from_current(self, current, state, t):
        spike, mem = state
        a = self.gate("h", spike)
        b = self.gate("v", spike)
        mem = a * mem + b * current
        spike = self.fire(mem)
        return spike, mem - spike


class TinyPredictor(nn.Module):
    def __init__(self, cells=("lif", "lif"), channels=1, hidden=16, in_frames=3, kernel=3, **gate_options):
        super().__init__()
        layers = []
        for i, cell in enumerate(cells):
            cin = channels if i == 0 else hidden
            layers.append(GatedLIF(cin, hidden, kernel_size=kernel, **gate_options) if cell == "gated"
                          else create_cell(cell, cin, hidden, kernel_size=kernel))
        self.cell_list = nn.ModuleList(layers)
        self.conv_last = nn.Conv2d(hidden, channels, 1, bias=False)
        self.in_frames = in_frames

    def step(self, x, states, t):
        for i, cell in enumerate(self.cell_list):
            x, states[i] = cell(x, states[i], t)
        return self.conv_last(x)

    def forward(self, frames, mask):
        """All T-1 outputs; the future is fed back (mask ignored: fully autoregressive)."""
        out_frames = frames.shape[1] - self.in_frames
        return self._rollout(frames[:, :self.in_frames], out_frames)

    @torch.no_grad()
    def predict(self, context, out_frames):
        return self._rollout(context, out_frames)[:, -out_frames:]

    def _rollout(self, context, out_frames):
        states = [None] * len(self.cell_list)
        outputs, prev = [], None
        for t in range(context.shape[1] + out_frames - 1):
            x = context[:, t] if t < context.shape[1] else prev
            prev = self.step(x, states, t)
            outputs.append(prev)
        return torch.stack(outputs, 1)
