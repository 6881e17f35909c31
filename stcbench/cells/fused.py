"""What a cell declares so that the fast path may run its step in the fused CPU kernels (stcbench/kernels).

The kernels never look at a cell's class: a circuit cell returns a `FusedStepSpec` from `fused_step_spec()` (None
when its step is not of that form), and a spiking neuron a `FusedNeuron` from `fused_neuron()`.  A new cell opts in
by returning one; a subclass that changes the dynamics must return None (`overrides` tells whether it does).

The step after the input convolution that the kernels compute (STC-LIF paper Eqs. 2-4 and 11):

    I = GN_x(conv_x(x_t)),  A = 1 + tanh(GN_h(conv_h(g))),  B = 1 + tanh(GN_v(conv_v(g))),  g = circuit_input(s_{t-1})

then, one compartment:   u = c_h (A u_{t-1}) + c_i (B I),  s_t = H(u - theta),  u_t = reset(u, s_t)
     two compartments:   d_t = a1 d_{t-1} + b1 h_{t-1} + B I,  u = a2 d_t + b2 (A h_{t-1}),
                         s_t = theta H(u - theta),  h_t = u - s_t   (LM-H)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

RESETS = ("soft", "soft_detached", "hard_detached")


@dataclass(frozen=True)
class FusedNeuron:
    """A spiking neuron's step in the closed form above.

    compartments: 1 or 2.  coefficients: (c_h, c_i), or (a1, b1, a2, b2) for two compartments; numbers, or tensors
    (learnable ones get their gradients).  reset: "soft" u - theta s, "soft_detached" (s detached), "hard_detached"
    u (1 - sg(s)) (one compartment only).  surrogate: the spike's surrogate, whose backward is grad *
    derivative(u - theta); sigmoid_alpha: its alpha when it is the sigmoid surrogate (the kernels finish the
    derivative themselves), else None."""

    compartments: int
    coefficients: tuple
    threshold: float
    reset: str
    surrogate: Any
    sigmoid_alpha: float | None


@dataclass(frozen=True)
class FusedStepSpec:
    """A circuit cell's step in the form above: its three Conv -> GroupNorm synapses (`input_synapse` None when
    the input current is computed otherwise), `circuit_input(prev_spike, dtype)`, the neuron's
    `neuron_step(current, state, t, history_gate=...)` and `neuron`, None unless the whole step can be fused
    (else only the gates are)."""

    input_synapse: Any
    history_synapse: Any
    input_gate_synapse: Any
    circuit_input: Callable
    neuron_step: Callable
    hidden_channels: int
    neuron: FusedNeuron | None


def overrides(cell, owner: type, *names: str) -> bool:
    """True when the class of `cell` replaces any of `owner`'s methods `names`."""
    kind = type(cell)
    return any(getattr(kind, name) is not getattr(owner, name) for name in names)


def fused_neuron(cell, compartments: int, coefficients: tuple, reset: str) -> FusedNeuron | None:
    """The FusedNeuron of a spiking cell with the given dynamics, or None when its surrogate or threshold has no
    fused form (a surrogate whose backward is not `derivative`, a threshold that is not a plain number)."""
    backward = cell.surrogate.fused_backward()
    threshold = cell.threshold
    if backward is None or isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        return None
    if reset not in RESETS or (compartments == 2 and reset == "hard_detached"):
        return None
    alpha = float(cell.surrogate.alpha) if backward == "sigmoid" else None
    return FusedNeuron(compartments, tuple(coefficients), float(threshold), reset, cell.surrogate, alpha)
