"""What a cell declares to run its whole sequence on the linear synapse in one kernel
(stcbench/kernels/dense_scan.py, the dense networks of the memory probes).

A cell opts in with `dense_neuron()` (its neuron in one of the forms below) and `dense_scan()` (the neuron and,
for circuit cells, the circuit's two synapses); None keeps the per-step loop. The kernel never looks at a cell's
class, only at these declarations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESETS = ("soft", "soft_detached", "hard_detached")


@dataclass(frozen=True)
class OneCompartment:
    """c_h, c_i: numbers or tensors (learnable ones get their gradients); reset: one of RESETS."""

    c_h: Any
    c_i: Any
    threshold: float
    reset: str
    surrogate: Any


@dataclass(frozen=True)
class AdaptiveThreshold:
    """gamma: number or None; encoding: None or a tensor [T_e, C] (row min(t, T_e - 1) at step t)."""

    alpha: float
    beta: float
    threshold: float
    gamma: Any
    encoding: Any
    surrogate: Any


@dataclass(frozen=True)
class TwoCompartment:
    """k_d, k_s, r: tensors or numbers (TC-LIF: sig(s_u), sig(s_p), t_m)."""

    k_d: Any
    k_s: Any
    r: Any
    threshold: float
    surrogate: Any


@dataclass(frozen=True)
class DenseScan:
    """neuron: one of the forms above; circuit: None, or (history synapse | None, input-gate synapse | None), each
    a linear `Synapse` (grouped Conv1d with kernel 1, then LayerNorm, GroupNorm or nothing) whose gate is
    1 + tanh(synapse(sg(s_{t-1})))."""

    neuron: Any
    circuit: Any = None


def from_fused(neuron) -> OneCompartment | None:
    """The one-compartment form of a `stcbench.cells.fused.FusedNeuron` (None for two compartments)."""
    if neuron is None or neuron.compartments != 1:
        return None
    c_h, c_i = neuron.coefficients
    return OneCompartment(c_h, c_i, neuron.threshold, neuron.reset, neuron.surrogate)
