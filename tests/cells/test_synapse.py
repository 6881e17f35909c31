"""Synapse normalisation: conv keeps the official GroupNorm(16); the linear synapse on [B, C]
vectors defaults to LayerNorm over the channels, because GroupNorm(16) there normalises groups
of C/16 values per sample (with C = 16 each channel by itself: a constant output)."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from stcbench.cells import create_cell
from stcbench.cells.synapse import Synapse
from stcbench.errors import ConfigError


def test_conv_synapse_is_unchanged_groupnorm16():
    syn = Synapse("conv", 4, 32, 5)
    assert isinstance(syn[1], nn.GroupNorm) and syn[1].num_groups == 16 and syn[1].eps == 1e-5
    assert Synapse("conv", 4, 16, 5).norm == "group"                     # group size 1 is fine on maps
    assert set(create_cell("lif", 4, 32).state_dict()) == {"conv_x.0.weight", "conv_x.1.weight", "conv_x.1.bias"}
    with pytest.raises(ConfigError, match="'layer' is for the linear synapse"):
        Synapse("conv", 4, 32, 5, norm="layer")


def test_linear_synapse_defaults_to_layernorm_over_channels():
    torch.manual_seed(0)
    cell = create_cell("lif", 3, 32, synapse="linear").double()
    norm = cell.conv_x[1]
    assert isinstance(norm, nn.LayerNorm) and norm.normalized_shape == (32,)
    assert {k: tuple(v.shape) for k, v in cell.state_dict().items()} == {   # same names/shapes as before
        "conv_x.0.weight": (32, 3, 1), "conv_x.1.weight": (32,), "conv_x.1.bias": (32,)}
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(5, 3, dtype=torch.float64)
    linear = x @ cell.conv_x[0].weight[:, :, 0].T
    expected = F.layer_norm(linear, (32,), norm.weight, norm.bias, eps=1e-5)
    torch.testing.assert_close(cell.input_current(x), expected, rtol=1e-12, atol=1e-12)


def test_groupnorm_with_group_size_one_on_vectors_is_refused():
    """What the refusal prevents: GroupNorm(16) on [B, 16] returns its bias whatever the input."""
    degenerate = nn.GroupNorm(16, 16).double()
    with torch.no_grad():
        degenerate.bias.copy_(torch.arange(16.0))
    x = torch.randn(4, 16, dtype=torch.float64) * 10
    torch.testing.assert_close(degenerate(x), torch.arange(16.0, dtype=torch.float64).expand(4, 16),
                               atol=1e-9, rtol=0)
    with pytest.raises(ConfigError, match="normalises each channel by itself"):
        create_cell("lif", 3, 16, synapse="linear", synapse_norm="group")
    grouped = create_cell("lif", 3, 32, synapse="linear", synapse_norm="group")          # 2 per group: allowed
    assert isinstance(grouped.conv_x[1], nn.GroupNorm)


@pytest.mark.parametrize("norm, layers", [("none", 1), (False, 1), ("layer", 2), (True, 2)])
def test_linear_norm_choices(norm, layers):
    cell = create_cell("plif", 3, 16, synapse="linear", synapse_norm=norm)
    assert len(cell.conv_x) == layers
    with pytest.raises(ConfigError, match="synapse norm must be one of"):
        create_cell("plif", 3, 16, synapse="linear", synapse_norm="batch")


def test_linear_circuit_synapses_use_layernorm_and_16_channels_work():
    cell = create_cell("stclif", 3, 16, synapse="linear")
    assert isinstance(cell.conv_h[1], nn.LayerNorm) and isinstance(cell.conv_v[1], nn.LayerNorm)
    out, _ = cell.multi_step(torch.rand(4, 2, 3) * 3)
    assert out.shape == (4, 2, 16)
    conv = create_cell("stclif", 3, 16)
    assert isinstance(conv.conv_h[1], nn.GroupNorm) and conv.conv_h[1].num_groups == 16
