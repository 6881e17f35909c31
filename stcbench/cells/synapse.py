"""Synapses: the weighted input of a neuron, independent of its dynamics.

`conv`: Conv2d(k, padding k//2, no bias) -> GroupNorm, on feature maps [B, C, H, W] (video).
`linear`: a 1x1 Conv1d (i.e. a Linear layer, grouped if asked) -> GroupNorm, on [B, C] (sequences).
The module is an nn.Sequential so that its state_dict names are `0.weight`, `1.weight`,
`1.bias`, exactly as the official code's `conv_x`, `conv_h` and `conv_v`.
"""
from __future__ import annotations

import torch
from torch import nn

from stcbench.errors import ConfigError

SYNAPSE_KINDS = ("conv", "linear")
NORM_GROUPS = 16


class Synapse(nn.Sequential):
    """Weights followed by an optional GroupNorm(16)."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, kernel_size: int = 5,
                 groups: int = 1, norm: bool = True):
        if kind not in SYNAPSE_KINDS:
            raise ConfigError(f"unknown synapse {kind!r}; choose one of {list(SYNAPSE_KINDS)}")
        if kind == "conv":
            weights = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1,
                                padding=kernel_size // 2, bias=False, groups=groups)
        else:
            weights = nn.Conv1d(in_channels, out_channels, 1, bias=False, groups=groups)
        layers = [weights]
        if norm:
            layers.append(nn.GroupNorm(NORM_GROUPS, out_channels, eps=1e-5, affine=True))
        super().__init__(*layers)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            # Conv1d with kernel 1 on [B, C, 1] is a Linear layer; GroupNorm accepts [B, C].
            y = self[0](x.unsqueeze(-1)).squeeze(-1)
            return self[1](y) if len(self) > 1 else y
        return super().forward(x)


def check_channels(hidden_channels: int, norm: bool = True) -> None:
    if norm and hidden_channels % NORM_GROUPS != 0:
        raise ConfigError(
            f"hidden channels must be a multiple of {NORM_GROUPS} (GroupNorm({NORM_GROUPS}) follows every "
            f"synapse), got {hidden_channels}; use e.g. {max(NORM_GROUPS, hidden_channels // NORM_GROUPS * NORM_GROUPS)}"
        )
