"""Template: a new spiking neuron in one file (docs/new_cell.md).

Use it by either
* copying this file into `stcbench/cells/` (every module there is imported automatically), or
* pointing the environment variable at it: `STCBENCH_PLUGINS=examples/my_cell.py stcbench cells my_lif`,
  or naming it on the command line: `stcbench fit --config quick/mmnist --cell my_lif --set plugins=[examples/my_cell.py]`
  (a plugin named only inside a config or run folder is not imported until you name it: docs/new_cell.md).

The cell then appears in `stcbench cells`, can be named in configs (`model.cell: my_lif`),
gets the spatio-temporal circuit for free (`stc_my_lif`), and is picked up by the contract
tests (tests/cells/test_contract.py).

This example is a LIF neuron with one learnable leak per channel (a channel-wise PLIF):

    h^_t = lam * h_{t-1} + (1 - lam) * X_t,    lam = sigmoid(w_c) per channel c
    s_t  = H(h^_t - threshold)                 (surrogate gradient, swappable)
    h_t  = h^_t - threshold * s_t              (soft reset)
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells import SpikingCell, register_cell
from stcbench.errors import ConfigError


@register_cell(
    "my_lif",                                   # the name used in configs; '-', '_' and case are ignored
    description="Example plugin: LIF with a learnable leak per channel",
    source="docs/new_cell.md template",
)
class MyLIF(SpikingCell):
    """Channel-wise learnable-leak LIF (template for new cells)."""

    # Names of the states; state[0] must be the spikes and state[1] the somatic membrane.
    state_names = ("spike", "mem")
    # Parameters that exist but never learn by design (the contract tests check this list).
    params_without_grad = ()

    # Every option is keyword-only with a default: it shows up in `stcbench cells my_lif`,
    # and unknown options are rejected with a clear error by `create_cell`.
    def __init__(self, in_channels: int, hidden_channels: int, *, leak_init: float = 0.5, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)   # builds conv_x, threshold, surrogate
        if not 0.0 < leak_init < 1.0:
            raise ConfigError(f"leak_init must be in (0, 1), got {leak_init}")
        logit = torch.log(torch.tensor(leak_init / (1.0 - leak_init))).item()
        self.leak = nn.Parameter(torch.full((hidden_channels,), logit))

    def decay(self, ndim: int) -> torch.Tensor:
        return self.leak.sigmoid().view(1, -1, *([1] * (ndim - 2)))   # [1, C, 1, 1] or [1, C]

    def charge(self, current, history):
        lam = self.decay(current.dim())
        return lam * history + (1.0 - lam) * current

    def reset(self, mem, spike):
        return mem - spike * self.threshold

    def neuron_step(self, current, state, t, history_gate=None):
        """One step from the input current X_t. `history_gate` (set by the spatio-temporal
        circuit) multiplies the membrane history; accepting it makes `stc_my_lif` work."""
        _, mem = state
        history = mem if history_gate is None else history_gate * mem
        mem = self.charge(current, history)
        spike = self.fire(mem)
        return spike, self.reset(mem, spike)
