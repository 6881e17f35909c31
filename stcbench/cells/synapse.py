"""Synapses: the weighted input of a neuron, independent of its dynamics.

`conv`: Conv2d(k, padding k//2, no bias) -> GroupNorm(16), on feature maps [B, C, H, W] (video;
exactly the official code).
`linear`: a 1x1 Conv1d (i.e. a Linear layer, grouped if asked) -> LayerNorm over the C
channels, on [B, C] (sequences).  GroupNorm(16) can be asked for (`norm="group"`), but on a
vector it normalises each group of C/16 values per sample: with C = 16 every channel by
itself, so the output is the constant GroupNorm bias; that case raises.
The module is an nn.Sequential so that its state_dict names are `0.weight`, `1.weight`,
`1.bias`, exactly as the official code's `conv_x`, `conv_h` and `conv_v` (LayerNorm(C) has the
same names and shapes as GroupNorm(16, C)).
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn

from stcbench.errors import ConfigError

SYNAPSE_KINDS = ("conv", "linear")
NORMS = ("group", "layer", "none")
DEFAULT_NORM = {"conv": "group", "linear": "layer"}
NORM_GROUPS = 16


def resolve_norm(kind: str, norm: bool | str) -> str:
    """'group' | 'layer' | 'none' from a name or a bool (True: the synapse's default,
    GroupNorm(16) for conv and LayerNorm for linear; False: none)."""
    if isinstance(norm, bool):
        return DEFAULT_NORM[kind] if norm else "none"
    if norm not in NORMS:
        raise ConfigError(f"synapse norm must be one of {list(NORMS)} (or true/false), got {norm!r}")
    if kind == "conv" and norm == "layer":
        raise ConfigError("the conv synapse is normalised by GroupNorm(16) (official code) or not at all; "
                          "norm 'layer' is for the linear synapse")
    return norm


def norm_layer(kind: str, norm: str, channels: int) -> nn.Module | None:
    if norm == "none":
        return None
    if norm == "layer":
        return nn.LayerNorm(channels, eps=1e-5, elementwise_affine=True)
    if kind == "linear" and channels // NORM_GROUPS == 1:
        raise ConfigError(f"GroupNorm({NORM_GROUPS}) after a linear synapse of {channels} channels normalises "
                          f"each channel by itself (one value per group and sample), so its output is a "
                          f"constant; use norm 'layer' (LayerNorm over the channels, the linear default) or "
                          f"'none', or more channels")
    return nn.GroupNorm(NORM_GROUPS, channels, eps=1e-5, affine=True)


_CONV_OVERRIDE = contextvars.ContextVar("stcbench_conv_override", default=None)


def conv2d(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x), or what the active override computes for it (the fast path's Winograd convolution
    on the CPU; the override returns None for calls it does not take). Code under torch.compile
    (`model.compile`) uses the plain convolution."""
    if torch.compiler.is_compiling():
        return conv(x)
    override = _CONV_OVERRIDE.get()
    if override is not None:
        y = override(conv, x)
        if y is not None:
            return y
    return conv(x)


def current_conv_override():
    return _CONV_OVERRIDE.get()


@contextlib.contextmanager
def conv_override(override):
    """Within the block, synapse convolutions go through `override(conv, x) -> Tensor | None`."""
    token = _CONV_OVERRIDE.set(override)
    try:
        yield
    finally:
        _CONV_OVERRIDE.reset(token)


class Synapse(nn.Sequential):
    """Weights followed by an optional normalisation (see the module docstring)."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, kernel_size: int = 5,
                 groups: int = 1, norm: bool | str = True):
        if kind not in SYNAPSE_KINDS:
            raise ConfigError(f"unknown synapse {kind!r}; choose one of {list(SYNAPSE_KINDS)}")
        chosen = resolve_norm(kind, norm)
        if kind == "conv":
            weights = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1,
                                padding=kernel_size // 2, bias=False, groups=groups)
        else:
            weights = nn.Conv1d(in_channels, out_channels, 1, bias=False, groups=groups)
        normalisation = norm_layer(kind, chosen, out_channels)
        super().__init__(*([weights] if normalisation is None else [weights, normalisation]))
        self.kind = kind
        self.norm = chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            # Conv1d with kernel 1 on [B, C, 1] is a Linear layer; the norm takes [B, C].
            y = self[0](x.unsqueeze(-1)).squeeze(-1)
            return self[1](y) if len(self) > 1 else y
        y = conv2d(self[0], x)
        return self[1](y) if len(self) > 1 else y


def check_channels(hidden_channels: int, norm: bool = True) -> None:
    if norm and hidden_channels % NORM_GROUPS != 0:
        raise ConfigError(
            f"hidden channels must be a multiple of {NORM_GROUPS} (GroupNorm({NORM_GROUPS}) follows every "
            f"synapse), got {hidden_channels}; use e.g. {max(NORM_GROUPS, hidden_channels // NORM_GROUPS * NORM_GROUPS)}"
        )
