"""BPSTA: a hard-reset LIF trained with biologically plausible spatio-temporal adjustment.

Shen, Zhao, Zeng, "Backpropagation with Biologically Plausible Spatio-Temporal Adjustment
for Training Deep Spiking Neural Networks", Eqs. (2)-(10); author code Brain-Cog-Lab/BP-STA
(`HTGLIFNode`).  Forward (lambda = 0.9, u_th = 0.5):

    U_t = M_{t-1} + X_t
    O_t = 1[U_t >= u_th]
    R_t = U_t*(1 - O_t)                         (hard reset to 0)
    M_t = lambda*(R_t + alpha_bp*(O_t - sg(O_t)))   (= lambda*R_t in the forward pass)

Backward: spatial adjustment (Eq. 9) dO/dU = O/U (exactly 0 when silent); temporal
adjustment (Eq. 10) through the zero-valued residual alpha_bp*(O - sg(O)), which adds
lambda*alpha_bp*dO/dU to dM/dU.  `bpsta_variant="code"` uses the author code's 0.2 instead
of the paper's 0.8.  `training_rule="surrogate"` trains the same neuron with an ordinary
surrogate gradient instead (same forward), for comparisons.
"""
from __future__ import annotations

import torch

from stcbench.cells.base import SpikingCell
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError

BPSTA_ALPHAS = {"paper": 0.8, "code": 0.2}
TRAINING_RULES = ("bpsta", "surrogate")
DIVISION_EPS = 1e-12


class BPSTAFire(torch.autograd.Function):
    """forward U -> (O, R); backward g_U = g_O * O/U + g_R * (1 - O) (BPSA, Eq. 9)."""

    @staticmethod
    def forward(ctx, membrane, threshold):
        spike = (membrane >= threshold).to(membrane.dtype)
        ctx.save_for_backward(membrane, spike)
        return spike, membrane * (1.0 - spike)

    @staticmethod
    def backward(ctx, grad_spike, grad_residual):
        membrane, spike = ctx.saved_tensors
        grad = grad_spike * spike / (membrane + DIVISION_EPS) + grad_residual * (1.0 - spike)
        return grad, None


def resolve_bpsta_alpha(bpsta_alpha: float | None, bpsta_variant: str) -> float:
    if bpsta_variant not in BPSTA_ALPHAS:
        raise ConfigError(f"bpsta_variant must be one of {sorted(BPSTA_ALPHAS)}, got {bpsta_variant!r}")
    return BPSTA_ALPHAS[bpsta_variant] if bpsta_alpha is None else float(bpsta_alpha)


@register_cell(
    "bpsta",
    description="LIF trained with BPSTA (spatio-temporal adjusted backpropagation), hard reset",
    source="BPSTA paper (Shen, Zhao, Zeng) Eqs. (2)-(10); author code Brain-Cog-Lab/BP-STA HTGLIFNode",
)
class BPSTALIF(SpikingCell):
    """Hard-reset LIF (lambda 0.9, u_th 0.5) whose backward pass is the BPSTA rule."""

    def __init__(self, in_channels: int, hidden_channels: int, *, decay: float = 0.9, threshold: float = 0.5,
                 bpsta_alpha: float | None = None, bpsta_variant: str = "paper", bpsta_input_relu: bool = True,
                 training_rule: str = "bpsta", surrogate=None, **kwargs):
        if training_rule not in TRAINING_RULES:
            raise ConfigError(f"training_rule must be one of {list(TRAINING_RULES)}, got {training_rule!r}")
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"decay (lambda) must lie in [0, 1], got {decay}")
        super().__init__(in_channels, hidden_channels, threshold=threshold, surrogate=surrogate, **kwargs)
        self.decay = decay
        self.bpsta_alpha = resolve_bpsta_alpha(bpsta_alpha, bpsta_variant)
        self.bpsta_variant = bpsta_variant
        self.bpsta_input_relu = bpsta_input_relu
        self.training_rule = training_rule

    def input_current(self, x_t):
        current = self.conv_x(x_t)
        # The author network is Conv -> BN -> ReLU -> node, which keeps U >= 0 (our conv adaptation).
        return torch.relu(current) if self.bpsta_input_relu else current

    def fire_and_reset(self, membrane):
        if self.training_rule == "bpsta":
            return BPSTAFire.apply(membrane, self.threshold)
        spike = self.fire(membrane)
        return spike, membrane * (1.0 - spike)

    def carry(self, residual, spike):
        """M_t = lambda*(R_t + alpha_bp*(O_t - sg(O_t))): zero extra forward value, BPTA gradient (Eq. 10)."""
        if self.training_rule != "bpsta":
            return self.decay * residual
        return self.decay * (residual + self.bpsta_alpha * (spike - spike.detach()))

    def neuron_step(self, current, state, t, history_gate=None):
        _, carried = state
        history = carried if history_gate is None else history_gate * carried
        membrane = history + current
        spike, residual = self.fire_and_reset(membrane)
        return spike, self.carry(residual, spike)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", decay={self.decay}, u_th={self.threshold}, "
                f"training_rule={self.training_rule!r}, bpsta_alpha={self.bpsta_alpha}, "
                f"bpsta_input_relu={self.bpsta_input_relu}")
