"""The spatio-temporal circuit (STC-LIF paper Eqs. 8-13; cells.md §6), around any spiking cell.

Two extra synapses read the cell's own previous spikes g = s_{t-1} (detached when
`gradient_detach=1`, the official class default):

    A_t = 1 + tanh(GN_h(conv_h(g)))      temporal circuit: multiplies the membrane history (Eq. 11, beta)
    B_t = 1 + tanh(GN_v(conv_v(g)))      spatial circuit: multiplies the input current     (Eq. 11, gamma)

and the wrapped neuron runs `neuron_step(B_t * X_t, state, t, history_gate=A_t)`.  Both
gates lie in (0, 2) and equal 1 at t = 0 (g = 0, GN beta = 0 at init).  The equations of
the paper omit the GroupNorm after conv_h / conv_v; the official code (and this one) has it.

The wrapper is a mixin: `stc_class(LIF)` is a subclass of LIF that adds `conv_h` / `conv_v`,
so parameter names stay those of the official classes (`conv_x.*`, `t_m`, `conv_h.*`, ...).
`create_cell("stc_<cell>", ...)` works for every registered spiking cell whose `neuron_step`
accepts `history_gate`.  The official STC-LIF / STC-PLIF / STC-LM-H are this wrapper around
LIF (perfect integration), PLIF (sigmoid gain) and LM-H (`stc_lmh_reset_detach`).

Ablations: `circuit="temporal"` (w/o SC, Table 7), `"spatial"` (w/o TC), `circuit_groups`
16 (default), 1 (global convolution, Table 11), "self" (only self-connection, Table 11: one
weight and one bias per neuron, `A = 1 + tanh(w * g + b)` with w, b of shape [C, H, W], no
GroupNorm; it needs the map size `circuit_spatial=(H, W)` and reproduces the paper's 6.451M
parameters exactly) or "self_channel" (one 1x1 weight per channel shared over space, then
GroupNorm: a depthwise conv with kernel 1).
"""
from __future__ import annotations

import inspect
from typing import ClassVar

import torch
from torch import nn

from stcbench.cells.base import RecurrentCell, SpikingCell
from stcbench.cells.fused import FusedStepSpec, overrides
from stcbench.cells.lif import LIF
from stcbench.cells.lmh import LMH
from stcbench.cells.plif import PLIF
from stcbench.cells.registry import CellInfo, lookup_registered, normalize_name, register_cell, register_derived
from stcbench.cells.synapse import Synapse
from stcbench.errors import ConfigError

CIRCUITS = ("both", "temporal", "spatial")
SELF_GROUPS = ("self", "self_channel")
PREFIX = "stc"


class SelfConnection(nn.Module):
    """Only self-connection (STC-LIF paper Table 11): each neuron reads its own previous spike
    through its own weight and bias, `w * g + b` with w, b of shape [C, *spatial], no
    normalisation.  Init as a 1x1 depthwise conv (fan_in 1): w ~ U(-1, 1); b = 0, so that the
    gates are 1 at t = 0 like the GroupNorm beta of the other circuits."""

    def __init__(self, channels: int, spatial: tuple[int, ...] = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, *spatial).uniform_(-1.0, 1.0))
        self.bias = nn.Parameter(torch.zeros(channels, *spatial))

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        if tuple(g.shape[1:]) != tuple(self.weight.shape):
            raise ConfigError(f"circuit_groups='self' was built for neurons {list(self.weight.shape)} (channels, "
                              f"map size), got spikes {list(g.shape[1:])}; build the cell with "
                              f"circuit_spatial=(H, W) of the maps it runs on")
        return g * self.weight + self.bias


def circuit_synapse(kind: str, channels: int, kernel_size: int, groups, spatial=None) -> nn.Module:
    """conv_h / conv_v: grouped conv (or grouped 1x1 for `linear`) followed by GroupNorm(16),
    or the per-neuron `SelfConnection` for groups='self'."""
    if groups == "self":
        return SelfConnection(channels, self_connection_spatial(kind, spatial))
    if groups == "self_channel":
        return Synapse(kind, channels, channels, kernel_size=1, groups=channels)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
        raise ConfigError(f"circuit_groups must be a positive divisor of the hidden channels ({channels}), "
                          f"'self' or 'self_channel', got {groups!r}")
    return Synapse(kind, channels, channels, kernel_size=kernel_size, groups=groups)


def self_connection_spatial(kind: str, spatial) -> tuple[int, ...]:
    """The map size of the per-neuron self-connection: () for the linear synapse (a channel is a
    neuron), (H, W) for feature maps."""
    if kind == "linear":
        return ()
    if spatial is None or len(tuple(spatial)) != 2 or any(int(s) < 1 for s in spatial):
        raise ConfigError(f"circuit_groups='self' (one weight per neuron) needs the feature-map size: pass "
                          f"circuit_spatial=(H, W) (the predictor sets it from the dataset and patch size), "
                          f"got {spatial!r}")
    return tuple(int(s) for s in spatial)


def resolve_circuit(circuit: str, temporal_circuit: bool | None, spatial_circuit: bool | None) -> str:
    """`circuit` or the equivalent pair of booleans (`temporal_circuit`, `spatial_circuit`)."""
    if circuit not in CIRCUITS:
        raise ConfigError(f"circuit must be one of {list(CIRCUITS)}, got {circuit!r}")
    if temporal_circuit is None and spatial_circuit is None:
        return circuit
    temporal = circuit in ("both", "temporal") if temporal_circuit is None else bool(temporal_circuit)
    spatial = circuit in ("both", "spatial") if spatial_circuit is None else bool(spatial_circuit)
    if not (temporal or spatial):
        raise ConfigError("temporal_circuit and spatial_circuit are both off: that is the plain cell; "
                          "use the base cell name instead of stc_<cell>")
    chosen = "both" if temporal and spatial else ("temporal" if temporal else "spatial")
    if circuit != "both" and circuit != chosen:
        raise ConfigError(f"circuit={circuit!r} contradicts temporal_circuit={temporal_circuit}, "
                          f"spatial_circuit={spatial_circuit}; set only `circuit`")
    return chosen


class SpatioTemporalCircuit(SpikingCell):
    """Mixin adding the circuit to a spiking cell class (use `stc_class(Base)`)."""

    stc_base: ClassVar[type] = SpikingCell
    has_circuit: ClassVar[bool] = True

    def __init__(self, in_channels: int, hidden_channels: int, *, gradient_detach: int = 1,
                 circuit: str = "both", circuit_groups: int | str = 16,
                 circuit_spatial: tuple[int, int] | None = None,
                 temporal_circuit: bool | None = None, spatial_circuit: bool | None = None, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        if gradient_detach not in (0, 1):
            raise ConfigError(f"gradient_detach must be 0 (BPTT through the circuit) or 1 (detached), "
                              f"got {gradient_detach!r}")
        self.gradient_detach = int(gradient_detach)
        self.circuit = resolve_circuit(circuit, temporal_circuit, spatial_circuit)
        self.circuit_groups = circuit_groups
        kind, k = self.synapse_kind, self.kernel_size
        self.conv_h = circuit_synapse(kind, hidden_channels, k, circuit_groups, circuit_spatial) \
            if self.circuit in ("both", "temporal") else None
        self.conv_v = circuit_synapse(kind, hidden_channels, k, circuit_groups, circuit_spatial) \
            if self.circuit in ("both", "spatial") else None

    @staticmethod
    def _gate(conv, g):
        return None if conv is None else 1 + torch.tanh(conv(g))

    def circuit_input(self, prev_spike: torch.Tensor, dtype=None) -> torch.Tensor:
        g = prev_spike.detach() if self.gradient_detach else prev_spike
        return g if dtype is None else g.to(dtype)

    def gates(self, prev_spike: torch.Tensor):
        """(A, B): history gate (beta + 1) and input gate (gamma + 1) for the previous spikes;
        a disabled circuit gives ones. For analysis and plots (paper Fig. 2)."""
        g = self.circuit_input(prev_spike, self.conv_x[0].weight.dtype)
        a, b = self._gate(self.conv_h, g), self._gate(self.conv_v, g)
        ones = torch.ones_like(g)
        return (ones if a is None else a), (ones if b is None else b)

    def step_from_current(self, current, state, t):
        g = self.circuit_input(state[0], current.dtype)
        history_gate, input_gate = self._gate(self.conv_h, g), self._gate(self.conv_v, g)
        if input_gate is not None:
            current = current * input_gate
        return self.neuron_step(current, state, t, history_gate=history_gate)

    def fused_step_spec(self) -> FusedStepSpec | None:
        """Both circuits and the stock step: the gates can be fused; the whole step too when the input synapse is
        Conv -> GroupNorm used as is and the neuron has a closed form (`fused_neuron`)."""
        if (not (_conv_norm(self.conv_h) and _conv_norm(self.conv_v))
                or overrides(self, SpatioTemporalCircuit, "step_from_current")):
            return None
        plain_input = not overrides(self, RecurrentCell, "input_current") and _conv_norm(self.conv_x)
        whole_step = plain_input and not overrides(self, SpatioTemporalCircuit, "circuit_input")
        return FusedStepSpec(input_synapse=self.conv_x if plain_input else None, history_synapse=self.conv_h,
                             input_gate_synapse=self.conv_v, circuit_input=self.circuit_input,
                             neuron_step=self.neuron_step, hidden_channels=self.hidden_channels,
                             neuron=self.fused_neuron() if whole_step else None)

    def dense_scan(self):
        """On the linear synapse with the detached circuit input and the stock step: the base neuron's closed form
        (`dense_neuron`) and the circuit's two synapses (stcbench/kernels/dense_scan.py), or None."""
        from stcbench.cells.dense import DenseScan

        if (self.synapse_kind != "linear" or self.gradient_detach != 1
                or overrides(self, SpatioTemporalCircuit, "step_from_current", "circuit_input", "_gate")
                or not all(c is None or _linear(c) for c in (self.conv_h, self.conv_v))):
            return None
        neuron = self.dense_neuron()
        return None if neuron is None else DenseScan(neuron, (self.conv_h, self.conv_v))

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", gradient_detach={self.gradient_detach}, circuit={self.circuit!r}, "
                f"circuit_groups={self.circuit_groups!r}")


def _conv_norm(synapse) -> bool:
    return (isinstance(synapse, Synapse) and synapse.kind == "conv" and len(synapse) == 2
            and isinstance(synapse[1], nn.GroupNorm) and synapse[1].affine)


def _linear(synapse) -> bool:
    return (isinstance(synapse, Synapse) and synapse.kind == "linear" and synapse[0].bias is None
            and (len(synapse) == 1 or isinstance(synapse[1], (nn.LayerNorm, nn.GroupNorm))))


_CLASSES: dict[type, type] = {}


def accepts_history_gate(cls) -> bool:
    return "history_gate" in inspect.signature(cls.neuron_step).parameters


def stc_class(base: type) -> type:
    """The class `base` + spatio-temporal circuit (cached; importable as stcbench.cells.stc.STC_<Base>)."""
    if base in _CLASSES:
        return _CLASSES[base]
    if not (inspect.isclass(base) and issubclass(base, SpikingCell)) or not accepts_history_gate(base):
        raise ConfigError(f"{getattr(base, '__name__', base)} cannot take the spatio-temporal circuit: it must be "
                          f"a SpikingCell whose neuron_step accepts `history_gate`")
    name = f"STC_{base.__name__}"
    doc = f"{base.__name__} with the spatio-temporal circuit (cells.md §6)."
    cls = type(name, (SpatioTemporalCircuit, base), {"__module__": __name__, "__qualname__": name,
                                                      "__doc__": doc, "stc_base": base})
    globals()[name] = cls        # so that pickling finds it
    _CLASSES[base] = cls
    return cls


# -- official STC cells: the wrapper with the base defaults of the official classes ------------
_OFFICIAL_SOURCE = "Wang & Yu, ICML 2024 (STC-LIF paper); official {}"


@register_cell("stclif", official_class="STCLIFCell", stc_compatible=False,
               description="STC-LIF: perfect-integrator LIF gated by the spatio-temporal circuit",
               source=_OFFICIAL_SOURCE.format("STCLIFCell") + ", Eqs. (8)-(13)")
class STCLIF(stc_class(LIF)):
    """cells.md §7: h^ = A*h + B*X, soft reset. Only the default `integration` differs from stc(LIF)."""

    def __init__(self, in_channels: int, hidden_channels: int, *, integration: str = "perfect", **kwargs):
        super().__init__(in_channels, hidden_channels, integration=integration, **kwargs)


@register_cell("stcplif", official_class="STCPLIFCell", stc_compatible=False, variants=("reference", "original"),
               description="STC-PLIF: PLIF with consistent sigmoid decay/gain, gated by the circuit",
               source=_OFFICIAL_SOURCE.format("STCPLIFCell") + ", Eq. (22)")
class STCPLIF(stc_class(PLIF)):
    """cells.md §8: h^ = sig(w)*A*h + (1 - sig(w))*B*X. Only the default `plif_gain` differs."""

    def __init__(self, in_channels: int, hidden_channels: int, *, plif_gain: str = "sigmoid", **kwargs):
        super().__init__(in_channels, hidden_channels, plif_gain=plif_gain, **kwargs)


@register_cell("stclmh", official_class="STCLMHCell", stc_compatible=False, variants=("reference", "original"),
               description="STC-LM-H: LM-H with the gated soma history and gated input",
               source=_OFFICIAL_SOURCE.format("STCLMHCell") + ", Appendix C")
class STCLMH(stc_class(LMH)):
    """cells.md §9. `stc_lmh_reset_detach=False` gives the paper-described (non-detached) reset."""

    def __init__(self, in_channels: int, hidden_channels: int, *, stc_lmh_reset_detach: bool = True, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        self.reset_detached = bool(stc_lmh_reset_detach)


# -- registry hooks: `stc_<cell>` for every compatible registered cell --------------------------
_INFOS: dict[str, CellInfo] = {}


def _base_info(key: str) -> CellInfo | None:
    key = normalize_name(key)
    if not key.startswith(PREFIX) or len(key) == len(PREFIX):
        return None
    return lookup_registered(key[len(PREFIX):])


def is_stc_name(key: str) -> bool:
    """True for `stc<cell>` where <cell> is a registered circuit-compatible spiking cell."""
    base = _base_info(key)
    if base is None:
        return False
    if not base.spiking:
        reason = "it is not a spiking cell (the circuit gates a spiking neuron's membrane)"
    elif not base.stc_compatible:
        reason = "it is registered with stc_compatible=False (e.g. it already has the circuit)"
    elif not (base.spiking and inspect.isclass(base.factory) and issubclass(base.factory, SpikingCell)
              and accepts_history_gate(base.factory)):
        reason = "it is not a SpikingCell class whose neuron_step accepts `history_gate`"
    else:
        return True
    raise ConfigError(f"cell {base.name!r} cannot be wrapped by the spatio-temporal circuit: {reason}; "
                      f"run `stcbench cells` to see which cells can")


def info_for(key: str) -> CellInfo:
    key = normalize_name(key)
    if key not in _INFOS:
        if not is_stc_name(key):
            raise ConfigError(f"{key!r} is not 'stc_<cell>' for a registered spiking cell")
        base = _base_info(key)
        _INFOS[key] = CellInfo(
            name=key, factory=stc_class(base.factory),
            description=f"spatio-temporal circuit around {base.name}: {base.description}",
            variants=base.variants, source=f"STC-LIF paper Eqs. (8)-(13) applied to: {base.source}",
            spiking=True, stc_compatible=False, extra={"base": base.name})
    return _INFOS[key]


register_derived(is_stc_name, info_for)
