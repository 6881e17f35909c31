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
from stcbench.cells.base import RecurrentCell
from stcbench.cells.synapse import NORMS, Synapse
from stcbench.errors import ConfigError
from stcbench.kernels.dense_scan import run_scan, scan_of

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
        self.fast = True


    def run_layers(self, x: torch.Tensor, keep_top: bool = False):
        """x [B, T, F] -> (per-layer outputs [T, B, C], list of the top layer's per-step output
        tensors as they sit in the autograd graph when `keep_top`).  The fast path
        (`self.fast`, default) and `run_layers_stepwise` compute the same numbers."""
        if not self.fast:
            return self.run_layers_stepwise(x, keep_top)
        seq = x.transpose(0, 1)
        layer_outputs, top_steps = [], []
        for index, cell in enumerate(self.cells):
            recurrent = None if self.recurrent is None else self.recurrent[index]
            seq = run_dense_layer(cell, seq, recurrent)
            if keep_top and index == len(self.cells) - 1:
                top_steps = list(seq.unbind(0))
                seq = torch.stack(top_steps)
            layer_outputs.append(seq)
        return layer_outputs, top_steps

    def run_layers_stepwise(self, x: torch.Tensor, keep_top: bool = False):
        """The straightforward per-step loop over the cells' `step_from_current` (reference)."""
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


def linear_weight(synapse: Synapse) -> torch.Tensor:
    """The [out, in] matrix of a linear synapse's (ungrouped, kernel 1) Conv1d."""
    return synapse[0].weight.squeeze(-1)


def input_currents(cell, seq: torch.Tensor) -> torch.Tensor:
    """cell.input_current on all steps of seq [T, B, F] -> [T, B, C]; the stock linear synapse (ungrouped
    Conv1d with kernel 1, then its norm) as one matmul, which is several times faster than the convolution."""
    synapse = getattr(cell, "conv_x", None)
    stock = type(cell).input_current is RecurrentCell.input_current
    steps, batch = seq.shape[:2]
    if (stock and isinstance(synapse, Synapse) and synapse.kind == "linear" and synapse[0].groups == 1
            and synapse[0].bias is None and type(synapse).forward is Synapse.forward):
        y = seq.flatten(0, 1).matmul(linear_weight(synapse).t())
        return (synapse[1](y) if len(synapse) > 1 else y).unflatten(0, (steps, batch))
    return cell.input_current(seq.flatten(0, 1)).unflatten(0, (steps, batch))


def run_dense_layer(cell, seq: torch.Tensor, recurrent: Synapse | None) -> torch.Tensor:
    """One layer over a sequence: seq [T, B, F] -> outputs [T, B, C] (the cell's per-step outputs).

    The input synapse runs once on all steps; a cell that declares its step in a closed form
    (`dense_scan()`, stcbench/kernels/dense_scan.py) runs the whole loop in one autograd function.
    Otherwise the per-step currents are the views of one
    `unbind` (whose backward is one stack, where indexing `currents[t]` would give each step a
    gradient the size of the whole sequence); the recurrent synapse (no norm) is one matmul."""
    steps, batch = seq.shape[:2]
    currents = input_currents(cell, seq)
    state = cell.initial_state(batch, (), device=seq.device, dtype=seq.dtype)
    plain = recurrent is not None and len(recurrent) == 1
    scan = scan_of(cell)
    if scan is not None and (recurrent is None or plain):
        return run_scan(scan, currents, None if recurrent is None else linear_weight(recurrent))
    weight = linear_weight(recurrent).t() if plain else None
    step = cell.step_from_current
    outputs = []
    for t, current in enumerate(currents.unbind(0)):
        if weight is not None:
            current = current + state[0].matmul(weight)
        elif recurrent is not None:
            current = current + recurrent(state[0])
        state = step(current, state, t)
        outputs.append(state[0])
    return torch.stack(outputs)
