"""OpenSTL ConvLSTM checkpoints (`ConvLSTM_Model`) for `convert-official --cell convlstm`.

OpenSTL's `ConvLSTMCell` computes four gates per convolution, so `conv_x.0.weight` is
[4C, C_in, k, k] and `conv_h.0.weight` [4C, C, k, k]: the layer width C is read from the
recurrent convolution. Each OpenSTL cell also holds `conv_o` (with `layer_norm`, `conv_o.1`)
and its own 1x1 `conv_last` [C, 2C, 1, 1], which its forward pass never uses; they are
recognised by name and shape, dropped and reported. Every other key must be one the
`convlstm` network (variant reference, the arithmetic of OpenSTL's cell) expects.
"""
from __future__ import annotations

import re

import torch

from stcbench.errors import ConfigError

GATES = 4
UNUSED_KEY = re.compile(r"^cell_list\.(\d+)\.(conv_o\.0\.weight|conv_o\.1\.weight|conv_o\.1\.bias|conv_last\.weight)$")


def is_convlstm(cell: str) -> bool:
    return cell == "convlstm"


def layer_width(state: dict[str, torch.Tensor], layer: int) -> int:
    key = f"cell_list.{layer}.conv_h.0.weight"
    weight = state.get(key)
    if weight is None:
        raise ConfigError(f"missing {key}; the checkpoint is not an OpenSTL ConvLSTM model (ConvLSTM_Model)")
    if weight.dim() != 4 or weight.shape[0] != GATES * weight.shape[1]:
        raise ConfigError(f"{key} has shape {tuple(weight.shape)}, expected [4C, C, k, k] (OpenSTL ConvLSTMCell)")
    return int(weight.shape[1])


def infer_convlstm_architecture(state: dict[str, torch.Tensor], layers: list[int]) -> tuple[list[int], int, int]:
    """(num_hidden, filter_size, layer-0 input channels) of an OpenSTL ConvLSTM state_dict."""
    hidden = [layer_width(state, i) for i in layers]
    kernels = {int(state[f"cell_list.{i}.conv_h.0.weight"].shape[-1]) for i in layers}
    if len(kernels) != 1:
        raise ConfigError(f"layers use different filter sizes {sorted(kernels)}; expected one")
    key = "cell_list.0.conv_x.0.weight"
    if key not in state or state[key].dim() != 4:
        raise ConfigError(f"missing or malformed {key}; the checkpoint is not an OpenSTL ConvLSTM model")
    return hidden, kernels.pop(), int(state[key].shape[1])


def unused_weight_shape(part: str, width: int, kernel: int) -> tuple[int, ...]:
    """Shapes of OpenSTL's unused per-cell weights (conv_o: conv over [c_t, h_t]; conv_last: 1x1)."""
    if part == "conv_o.0.weight":
        return (width, 2 * width, kernel, kernel)
    if part == "conv_last.weight":
        return (width, 2 * width, 1, 1)
    return (width,)          # conv_o.1 LayerNorm: [C, H, W]; only the channel count is checked here


def drop_unused_weights(state: dict[str, torch.Tensor], hidden: list[int],
                        filter_size: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(state without OpenSTL's unused conv_o / per-cell conv_last, the dropped keys). A key of that
    name whose layer or shape does not fit stays in, so that the key check reports it as unexpected."""
    kept, dropped = {}, []
    for key, value in state.items():
        match = UNUSED_KEY.match(key)
        if match and _fits(match, value, hidden, filter_size):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped


def _fits(match, value: torch.Tensor, hidden: list[int], filter_size: int) -> bool:
    layer, part = int(match.group(1)), match.group(2)
    if layer >= len(hidden):
        return False
    expected = unused_weight_shape(part, hidden[layer], filter_size)
    return tuple(value.shape[:len(expected)]) == expected


def convlstm_cell_options(state: dict[str, torch.Tensor]) -> dict:
    """OpenSTL's layer_norm adds a LayerNorm after each convolution (`conv_x.1`, `conv_h.1`)."""
    return {"variant": "reference", "layer_norm": "cell_list.0.conv_x.1.weight" in state}
