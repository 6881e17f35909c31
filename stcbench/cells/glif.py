"""GLIF: gated LIF (Yao et al., NeurIPS 2022; official `GLIFCell` + `LIFSpike_CW`, cells.md §3).

Per channel, all parameters stored as logits (effective value = sigmoid(stored)):

    I_t = X_t * (1 - b*(1 - c))
    u_t = (1 - a*(1 - tau)) * u * (1 - g*o) - (1 - a)*leak + I_t - (1 - g)*reVth*o
    s_t = 1[u_t - Vth > 0]      (strict >, rectangle surrogate: 1[|u_t - Vth| < 0.5])

with u = h_{t-1} the previous pre-reset membrane and o = s_{t-1}; the reset of step t is
applied at step t+1 through o.  reference: gates a, b, g computed from detached logits
(frozen at 0.55/0.65/0.55), conduct [1, C] (row 0 only).  original: learnable gates,
time-wise conduct [T_c, C] (step t uses row min(t, T_c - 1)), optional random gate init.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from stcbench.cells.base import SpikingCell
from stcbench.cells.registry import register_cell
from stcbench.cells.surrogate import Rectangle
from stcbench.errors import ConfigError

GATE_DEFAULTS = (0.6, 0.8, 0.6)          # official 'gate' defaults for alpha, beta, gamma
TAU, VTH, CONDUCT, STEPS = 0.25, 0.5, 0.5, 4
LEAK = VTH / (STEPS * 2)                 # linear decay 0.0625


def logit(p: float) -> float:
    return -math.log(1.0 / p - 1.0)


def gate_logit(g: float) -> float:
    """Official mapping g -> (g - 0.5)/2 + 0.5 before the logit."""
    return logit((g - 0.5) * 0.5 + 0.5)


class GatedLIFUnit(nn.Module):
    """The gated LIF parameters (official `LIFSpike_CW`), stored under the `glif.` prefix."""

    def __init__(self, channels: int, conduct_steps: int = 1, randomgate: bool = False):
        super().__init__()

        def filled(value, shape):
            return nn.Parameter(torch.full(shape, value))

        if randomgate:
            self.alpha, self.beta, self.gamma = (nn.Parameter(torch.empty(channels).uniform_(-0.1, 0.1))
                                                 for _ in range(3))
        else:
            self.alpha, self.beta, self.gamma = (filled(gate_logit(g), (channels,)) for g in GATE_DEFAULTS)
        self.tau = filled(logit(TAU), (channels,))
        self.Vth = filled(logit(VTH), (channels,))
        self.leak = filled(logit(LEAK), (channels,))
        self.reVth = filled(logit(VTH), (channels,))
        self.conduct = filled(logit(CONDUCT), (conduct_steps, channels))


@register_cell(
    "glif",
    official_class="GLIFCell",
    variants=("reference", "original"),
    description="Gated LIF with per-channel gates mixing leak, integration and reset; reference freezes the gates",
    source="Yao et al., NeurIPS 2022 (CAS-CLab/Gated-LIF, LIFSpike_CW); official GLIFCell",
)
class GLIF(SpikingCell):
    """Gated LIF. `time_steps` sizes the time-wise conduct of the original variant (T_c)."""

    variants = ("reference", "original")

    params_without_grad = ("glif.alpha", "glif.beta", "glif.gamma")   # reference: static gates

    def __init__(self, in_channels: int, hidden_channels: int, *, time_steps: int | None = None,
                 randomgate: bool = False, strict_dtype_compat: bool = False,
                 glif_gate_lr_scale: float | None = None, surrogate=None, **kwargs):
        if kwargs.get("threshold", 1.0) != 1.0:
            raise ConfigError("GLIF's threshold is the learnable per-channel glif.Vth; do not set `threshold`")
        variant = kwargs.get("variant", "reference")
        if variant == "reference" and (time_steps is not None or randomgate):
            raise ConfigError("time_steps and randomgate belong to GLIF variant='original' "
                              "(the reference cell has conduct [1, C] and fixed gate init)")
        if time_steps is not None and int(time_steps) < 1:
            raise ConfigError(f"time_steps must be >= 1, got {time_steps}")
        super().__init__(in_channels, hidden_channels,
                         surrogate=surrogate if surrogate is not None else Rectangle(0.5, 1.0, strict=True),
                         **kwargs)
        self.static_gate = variant == "reference"
        self.strict_dtype_compat = strict_dtype_compat
        self.glif_gate_lr_scale = (glif_gate_lr_scale if glif_gate_lr_scale is not None
                                   else (1.0 if self.static_gate else 0.1))
        self.glif = GatedLIFUnit(hidden_channels, int(time_steps or 1), randomgate)

    def no_grad_parameters(self):
        return self.params_without_grad if self.static_gate else ()

    def param_group_overrides(self):
        gates = {f"glif.{n}": {"lr_scale": self.glif_gate_lr_scale} for n in ("alpha", "beta", "gamma")}
        if self.static_gate:
            return {k: v for k, v in gates.items() if self.glif_gate_lr_scale != 1.0}
        # Original recipe: gates on lr/10, no weight decay on any GLIF parameter.
        out = {f"glif.{n}": {"weight_decay": False} for n, _ in self.glif.named_parameters()}
        for name, hint in gates.items():
            out[name].update(hint)
        return out

    def _channel(self, p: torch.Tensor, ndim: int) -> torch.Tensor:
        return p.view(1, -1, *([1] * (ndim - 2)))

    def gate_values(self, ndim: int):
        """(a, b, g): sigmoid of the gate logits, detached in the reference (static gates)."""
        logits = (self.glif.alpha, self.glif.beta, self.glif.gamma)
        if self.static_gate:
            logits = tuple(p.clone().detach() for p in logits)
        return tuple(self._channel(p, ndim).sigmoid() for p in logits)

    def conduct_row(self, t: int) -> torch.Tensor:
        return self.glif.conduct[min(t, self.glif.conduct.shape[0] - 1)]

    def charge(self, current, mem, prev_spike, t):
        n = current.dim()
        a, b, g = self.gate_values(n)
        tau, leak, re_vth = (self._channel(p.sigmoid(), n) for p in (self.glif.tau, self.glif.leak, self.glif.reVth))
        conduct = self._channel(self.conduct_row(t).sigmoid(), n)
        drive = current * (1 - b * (1 - conduct))
        # Both resets of the previous spike live here (late reset): multiplicative (1 - g*o)
        # and subtractive (1 - g)*reVth*o.
        return ((1 - a * (1 - tau)) * mem * (1 - g * prev_spike) - (1 - a) * leak) \
            + drive - (1 - g) * re_vth * prev_spike

    def fire(self, mem, threshold=None):
        vth = self._channel(self.glif.Vth.sigmoid(), mem.dim())
        spike = self.surrogate(mem - vth)
        return spike.float() if self.strict_dtype_compat else spike   # official casts spikes to float32

    def neuron_step(self, current, state, t, history_gate=None):
        prev_spike, mem = state
        history = mem if history_gate is None else history_gate * mem
        mem = self.charge(current, history, prev_spike, t)
        return self.fire(mem), mem
