"""Base class of every recurrent cell: synapse -> neuron dynamics (charge -> fire -> reset).

A cell maps one input step `x_t` and its state to `(output_t, new_state)`:

* `state` is a tuple of tensors named by `state_names`; for spiking cells `state[0]` is the
  cell's own spikes `s_t` and `state[1]` its somatic membrane `h_t` (then e.g. the dendrite
  or the threshold).  `output_t` is `state[0]` (spikes; the hidden state for ConvLSTM).
* The input synapse `conv_x` (conv or linear, see synapse.py) turns `x_t` into the current
  `X_t`; `neuron_step(X_t, state, t)` holds the dynamics only, so the same neuron runs on
  feature maps and on vectors.
* `multi_step(x_seq)` runs T steps with the same per-step code; it evaluates the synapse
  for all steps in one batched call (the input does not depend on the state).

The per-step arithmetic follows the official STC-LIF code in the default
`variant="reference"` (docs/cells.md).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from stcbench.cells.fused import overrides
from stcbench.cells.surrogate import Surrogate, build_surrogate
from stcbench.cells.synapse import Synapse, check_channels
from stcbench.errors import ConfigError

State = tuple[torch.Tensor, ...]


class RecurrentCell(nn.Module):
    """Common machinery: input synapse, state creation, single- and multi-step loops."""

    state_names: ClassVar[tuple[str, ...]] = ("spike", "mem")
    spiking: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = ("reference",)
    # Parameters that exist (and load from official checkpoints) but never receive a gradient
    # by design; an instance may narrow or widen this per variant (see `no_grad_parameters`).
    params_without_grad: ClassVar[tuple[str, ...]] = ()
    # A spatio-temporal circuit (convolutions on the cell's own spikes): recomputing its step in the backward pass
    # saves memory worth the time (models/fastpath.py).
    has_circuit: ClassVar[bool] = False

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 5,
                 synapse: str = "conv", synapse_norm: bool | str = True, variant: str = "reference"):
        super().__init__()
        if variant not in self.variants:
            raise ConfigError(f"{type(self).__name__} has no variant {variant!r}; choose one of {list(self.variants)}")
        check_channels(hidden_channels)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.synapse_kind = synapse
        self.variant = variant
        # synapse_norm True: GroupNorm(16) for conv (official), LayerNorm over channels for linear
        self.conv_x = Synapse(synapse, in_channels, hidden_channels, kernel_size, norm=synapse_norm)

    def no_grad_parameters(self) -> tuple[str, ...]:
        """Names (as in `named_parameters`) that get no gradient by design in this configuration."""
        return tuple(self.params_without_grad)

    def param_group_overrides(self) -> dict[str, dict]:
        """Per-parameter optimizer hints `{name: {"lr_scale": float, "weight_decay": bool}}`
        (e.g. GLIF gate learning rate); empty when the cell has none."""
        return {}

    # -- state -----------------------------------------------------------------------------
    def initial_state(self, batch: int, spatial: tuple[int, ...], *, device=None, dtype=None) -> State:
        """Zeros `[B, C, *spatial]` for every state; override for non-zero initial values."""
        shape = (batch, self.hidden_channels, *spatial)
        return tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in self.state_names)

    def init_state(self, x_t: torch.Tensor) -> State:
        return self.initial_state(x_t.shape[0], tuple(x_t.shape[2:]), device=x_t.device, dtype=x_t.dtype)

    # -- dynamics --------------------------------------------------------------------------
    def input_current(self, x_t: torch.Tensor) -> torch.Tensor:
        return self.conv_x(x_t)

    def neuron_step(self, current: torch.Tensor, state: State, t: int, history_gate=None) -> State:
        """Advance the neuron by one step given the input current `X_t`. Returns the new state.

        `history_gate` (None, or a tensor like the membrane) multiplies the soma's history
        term; it is set by the spatio-temporal circuit (stc.py)."""
        raise NotImplementedError

    def fused_step_spec(self):
        """The step in the form of the fused CPU kernels (a `stcbench.cells.fused.FusedStepSpec`), or None."""
        return None

    def step_from_current(self, current: torch.Tensor, state: State, t: int) -> State:
        return self.neuron_step(current, state, t)

    def forward(self, x_t: torch.Tensor, state: State | None = None, t: int = 0):
        if state is None:
            state = self.init_state(x_t)
        new_state = self.step_from_current(self.input_current(x_t), state, t)
        return new_state[0], new_state

    def multi_step(self, x_seq: torch.Tensor, state: State | None = None, t0: int = 0,
                   return_states: bool = False):
        """Run `x_seq` [T, B, ...] through the cell. Returns (outputs [T, B, C, ...], final state)
        or, with `return_states`, (outputs, list of the T states)."""
        steps, batch = x_seq.shape[:2]
        currents = self.input_current(x_seq.flatten(0, 1)).unflatten(0, (steps, batch))
        if state is None:
            state = self.initial_state(batch, tuple(currents.shape[3:]), device=x_seq.device, dtype=x_seq.dtype)
        outputs, states = [], []
        for i in range(steps):
            state = self.step_from_current(currents[i], state, t0 + i)
            outputs.append(state[0])
            if return_states:
                states.append(state)
        return torch.stack(outputs), (states if return_states else state)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, "
                f"synapse={self.synapse_kind!r}, variant={self.variant!r}")


class SpikingCell(RecurrentCell):
    """A spiking cell with a threshold and a swappable surrogate gradient.

    Subclasses implement `neuron_step` from three small pieces: `charge` (membrane
    update), `fire` (Heaviside with surrogate) and `reset`.  `history_gate`, when the
    spatio-temporal circuit wraps the cell, multiplies the soma's history term (STC-LIF
    paper Eq. 11, the temporal circuit).
    """

    default_surrogate: ClassVar[str | dict] = "sigmoid4"

    def __init__(self, in_channels: int, hidden_channels: int, *, threshold: float = 1.0,
                 surrogate: str | dict | Surrogate | None = None, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        self.threshold = threshold
        self.surrogate = build_surrogate(surrogate if surrogate is not None else self.default_surrogate)

    def fused_neuron(self):
        """`neuron_step` in the closed form of the fused kernels (a `stcbench.cells.fused.FusedNeuron`), or None."""
        return None

    def dense_neuron(self):
        """`initial_state` and `neuron_step` (with `history_gate`) in a closed form of the dense scan
        (stcbench/kernels/dense_scan.py), or None.  By default the one-compartment `fused_neuron`."""
        from stcbench.cells.dense import from_fused

        if overrides(self, RecurrentCell, "initial_state"):
            return None
        return from_fused(self.fused_neuron())

    def dense_scan(self):
        """The whole sequence of this cell on the linear synapse as a `DenseScan` (its step is the neuron's), or
        None."""
        from stcbench.cells.dense import DenseScan

        if self.synapse_kind != "linear" or overrides(self, RecurrentCell, "step_from_current"):
            return None
        neuron = self.dense_neuron()
        return None if neuron is None else DenseScan(neuron)

    def fire(self, mem: torch.Tensor, threshold=None) -> torch.Tensor:
        return self.surrogate(mem - (self.threshold if threshold is None else threshold))

    def neuron_step(self, current, state, t, history_gate=None):
        """Single-compartment step (LIF, PLIF): subclasses define `charge(current, history)` and
        `reset(mem, spike)`; multi-compartment cells override this method."""
        _, mem = state
        history = mem if history_gate is None else history_gate * mem
        mem = self.charge(current, history)
        spike = self.fire(mem)
        return spike, self.reset(mem, spike)
