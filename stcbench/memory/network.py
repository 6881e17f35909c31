"""Dense networks of any registered cell for the memory probes (linear synapse).

`MemoryNet(cell, in_features, hidden=[64, 256, 256], out_features, ...)`:

* layer 0 reads the task input `[B, F]` at step t, layer l > 0 the spikes (hidden state for
  ConvLSTM) of layer l - 1 at the same step; every cell uses `synapse="linear"`.
* `recurrent=True` adds a linear recurrent synapse from the layer's own previous output
  (no bias, no norm) to its input current (TC-LIF/CE-LIF "recurrent" networks).
* `synapse_norm` normalises each cell's input current per sample and step: `"layer"`
  (default) LayerNorm over the C channels; `"group"` GroupNorm(16), i.e. each group of C/16
  channels separately (degenerate for C = 16: refused); `"none"` plain linear layers as in
  the papers.  Booleans are the former spelling: True = "group" (the former default, so
  configs stored with older runs rebuild the network they trained), False = "none".
* Readout: a linear layer (with bias) on the last layer's spikes at every step, then
  `mean` over all steps (the CE-LIF convention for classification: "averaging the output of
  a linear classifier across all time steps"), `last` (the output after the last step, the
  adding problem), `per_step` (one output per step, copy memory) or `integrator` (a
  non-spiking leaky integrator of the per-step outputs, m_t = k*m_{t-1} + (1-k)*y_t, read
  at the last step).
* Cells with a `te_steps` option (CE-LIF) get the sequence length unless it is given.
  Each layer has its own temporal encoding (the CE-LIF paper shares one across layers).
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells import create_cell, get_cell_info
from stcbench.cells.synapse import NORMS, Synapse
from stcbench.errors import ConfigError

READOUTS = ("mean", "last", "per_step", "integrator")


def memory_synapse_norm(value: bool | str | None) -> str:
    """'layer' | 'group' | 'none'; None = the default 'layer'; True/False = 'group'/'none' (legacy)."""
    if value is None:
        return "layer"
    if isinstance(value, bool):
        return "group" if value else "none"
    if value not in NORMS:
        raise ConfigError(f"model.synapse_norm must be one of {list(NORMS)}, got {value!r}")
    return value


class MemoryNet(nn.Module):
    """Stacked cells + linear readout; `forward(x [B, T, F]) -> outputs` (see `readout`)."""

    def __init__(self, cell: str, in_features: int, hidden: list[int], out_features: int, *, steps: int,
                 recurrent: bool = False, readout: str = "mean", readout_decay: float = 0.8,
                 synapse_norm: bool | str = "layer", cell_options: dict | None = None):
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"readout must be one of {list(READOUTS)}, got {readout!r}")
        if not hidden:
            raise ConfigError("model.hidden needs at least one layer, e.g. [64, 256, 256]")
        info = get_cell_info(cell)
        if recurrent and not info.spiking:
            raise ConfigError(f"{info.name} is recurrent by construction; set model.recurrent: false")
        options = dict(cell_options or {})
        options.setdefault("synapse_norm", memory_synapse_norm(synapse_norm))
        if "te_steps" in info.parameters():
            options.setdefault("te_steps", steps)
        self.cell_name = info.name
        self.spiking = info.spiking
        self.steps = steps
        self.readout_mode = readout
        self.readout_decay = readout_decay
        self.cells = nn.ModuleList()
        self.recurrent = nn.ModuleList() if recurrent else None
        width = in_features
        for channels in hidden:
            self.cells.append(create_cell(cell, width, channels, synapse="linear", **options))
            if recurrent:
                self.recurrent.append(Synapse("linear", channels, channels, norm=False))
            width = channels
        self.readout = nn.Linear(width, out_features)

    def run_layers(self, x: torch.Tensor, keep_top: bool = False):
        """x [B, T, F] -> (per-layer outputs [T, B, C], list of the top layer's per-step output
        tensors as they sit in the autograd graph when `keep_top`)."""
        seq = x.transpose(0, 1)
        layer_outputs, top_steps = [], []
        for index, cell in enumerate(self.cells):
            steps, batch = seq.shape[:2]
            currents = cell.input_current(seq.flatten(0, 1)).unflatten(0, (steps, batch))
            state = cell.initial_state(batch, (), device=x.device, dtype=x.dtype)
            outputs = []
            for t in range(steps):
                current = currents[t]
                if self.recurrent is not None:
                    current = current + self.recurrent[index](state[0])
                state = cell.step_from_current(current, state, t)
                outputs.append(state[0])
            if keep_top and index == len(self.cells) - 1:
                top_steps = outputs
            seq = torch.stack(outputs)
            layer_outputs.append(seq)
        return layer_outputs, top_steps

    def read(self, top: torch.Tensor) -> torch.Tensor:
        """top [T, B, C] -> [B, out] or [B, T, out] (per_step)."""
        per_step = self.readout(top)
        if self.readout_mode == "per_step":
            return per_step.transpose(0, 1)
        if self.readout_mode == "mean":
            return per_step.mean(0)
        if self.readout_mode == "last":
            return per_step[-1]
        membrane = torch.zeros_like(per_step[0])
        for y in per_step:
            membrane = self.readout_decay * membrane + (1.0 - self.readout_decay) * y
        return membrane

    def forward(self, x: torch.Tensor, return_layers: bool = False):
        layers, _ = self.run_layers(x)
        out = self.read(layers[-1])
        return (out, layers) if return_layers else out
