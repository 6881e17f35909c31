"""CE-LIF: contextual-embedding LIF, from the CE-LIF paper Eqs. (2), (4), (7).

From paper, no reference code: no public implementation exists, so this follows the equations.

    Theta_t = beta*(Theta_{t-1} - Theta0) + TE[t] * V_{t-1} + Theta0   (Eq. 4; V_{t-1} pre-reset)
    V_t     = alpha*V_{t-1}*(1 - S_{t-1}) + X_t                         (Eq. 2; late hard reset)
    S_t     = H(V_t - Theta_t)                                          (>=), boxcar surrogate (Eq. 7)

Temporal encoding (our adaptation to feature maps): the paper has one learnable vector
TE in R^T per neuron.  Here `te` is `[T_te, C]` (one vector per channel, broadcast over
H x W; `te_granularity="channel"`, the default) or `[T_te, C, H, W]`
(`te_granularity="neuron"`, which needs the map size up front as `te_spatial=(H, W)`;
no lazy creation, so that the optimizer always sees the parameter).  With the linear
synapse a channel is a neuron and both granularities give `[T_te, C]`.  Step t uses row
`min(t, T_te - 1)`, so longer test horizons reuse the last row.  Init N(0.01, 0.01^2).
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.cells.alif import AdaptiveThresholdCell
from stcbench.cells.fused import overrides
from stcbench.cells.registry import register_cell
from stcbench.errors import ConfigError

TE_GRANULARITIES = ("channel", "neuron")


@register_cell(
    "celif",
    aliases=("ce_lif",),
    description="Contextual-embedding LIF (CE-LIF paper Eqs. 2, 4, 7); from paper, no reference code",
    source="CE-LIF paper (Chen et al.) Eqs. (2), (4), (7); from paper, no reference code",
)
class CELIF(AdaptiveThresholdCell):
    """CE-LIF: the threshold integrates the learnable temporal encoding times the membrane."""

    def __init__(self, in_channels: int, hidden_channels: int, *, te_steps: int = 19,
                 te_granularity: str = "channel", te_spatial: tuple[int, int] | None = None,
                 te_init_mean: float = 0.01, te_init_std: float = 0.01, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        if int(te_steps) < 1:
            raise ConfigError(f"te_steps (rows of the temporal encoding) must be >= 1, got {te_steps}")
        self.te_steps = int(te_steps)
        self.te_granularity = te_granularity
        self.te = nn.Parameter(torch.empty(self.te_steps, hidden_channels, *self._te_spatial(te_spatial)))
        nn.init.normal_(self.te, mean=te_init_mean, std=te_init_std)

    def _te_spatial(self, te_spatial) -> tuple[int, ...]:
        if self.te_granularity not in TE_GRANULARITIES:
            raise ConfigError(f"te_granularity must be one of {list(TE_GRANULARITIES)}, got {self.te_granularity!r}")
        if self.te_granularity == "channel" or self.synapse_kind == "linear":
            return ()
        if te_spatial is None or len(tuple(te_spatial)) != 2:
            raise ConfigError("te_granularity='neuron' with the conv synapse needs the map size: "
                              "pass te_spatial=(H, W) (the cell's feature-map height and width)")
        return tuple(int(s) for s in te_spatial)

    def temporal_encoding(self, t: int, like: torch.Tensor) -> torch.Tensor:
        """TE[min(t, T_te-1)] shaped to broadcast against `like` [B, C, ...]."""
        row = self.te[min(t, self.te_steps - 1)]
        trailing = like.dim() - 1 - row.dim()
        return row.reshape(1, *row.shape, *([1] * trailing))

    def adapt(self, threshold, spike, mem, t):
        """Theta_t = beta*(Theta_{t-1} - Theta0) + TE[t] * V_{t-1} + Theta0 (Eq. 4)."""
        return self.beta * (threshold - self.threshold) + self.temporal_encoding(t, mem) * mem + self.threshold

    def dense_neuron(self):
        from stcbench.cells.dense import AdaptiveThreshold

        if not self.stock_step() or overrides(self, CELIF, "adapt", "temporal_encoding") or self.te.dim() != 2:
            return None
        return AdaptiveThreshold(self.alpha, self.beta, float(self.threshold), None, self.te, self.surrogate)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", te_steps={self.te_steps}, te_granularity={self.te_granularity!r}"
