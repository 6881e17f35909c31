import pytest
import torch
from torch import nn

from stcbench.cells.stc import SelfConnection
from stcbench.models.cost import (E_AC_PJ, E_MAC_PJ, conv_effective_acs, count_flops, count_params,
                                   count_synaptic_ops, energy_pj)


class Layer(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv_x = nn.Sequential(conv)


class TwoLayer(nn.Module):
    """Layer 0 sees real values, layer 1 and the readout see given spikes."""

    def __init__(self):
        super().__init__()
        self.cell_list = nn.ModuleList([Layer(nn.Conv2d(1, 2, 3, padding=1, bias=False)),
                                        Layer(nn.Conv2d(2, 4, 3, padding=1, bias=False, groups=2))])
        self.conv_last = nn.Conv2d(4, 1, 1, bias=False)

    def forward(self, frame, spikes1, spikes2):
        self.cell_list[0].conv_x(frame)
        self.cell_list[1].conv_x(spikes1)
        return self.conv_last(spikes2)


def spikes(shape, positions):
    s = torch.zeros(shape)
    for p in positions:
        s[p] = 1.0
    return s


def test_ac_counts_actual_spikes_times_fan_out():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    corner = spikes((1, 2, 4, 4), [(0, 0, 0, 0)])
    centre = spikes((1, 2, 4, 4), [(0, 1, 2, 2)])
    assert conv_effective_acs(conv, corner) == 4 * 3      # 2x2 outputs see the corner, 3 channels each
    assert conv_effective_acs(conv, centre) == 9 * 3
    assert conv_effective_acs(conv, corner + centre) == 39
    grouped = nn.Conv2d(2, 4, 3, padding=1, bias=False, groups=2)
    assert conv_effective_acs(grouped, centre) == 9 * 2   # only the 2 output channels of its group
    assert conv_effective_acs(conv, torch.zeros(1, 2, 4, 4)) == 0


def test_ac_mac_split_and_energy():
    model = TwoLayer()
    frame = torch.rand(1, 1, 4, 4) * 0.5 + 0.25                       # real-valued input
    s1 = spikes((1, 2, 4, 4), [(0, 0, 2, 2), (0, 1, 0, 0)])           # 9*2 + 4*2 = 26 ACs
    s2 = spikes((1, 4, 4, 4), [(0, 0, 1, 1), (0, 3, 3, 3), (0, 2, 0, 1)])  # 1x1 readout: 3 spikes x 1
    ops, _ = count_synaptic_ops(model, (frame, s1, s2))
    assert dict(ops.ac) == {"cell_list.1.conv_x.0": 26, "conv_last": 3}
    assert dict(ops.mac) == {"cell_list.0.conv_x.0": 2 * 16 * 9}      # dense: outputs x C_in x k^2
    assert energy_pj(29, 288) == pytest.approx(29 * E_AC_PJ + 288 * E_MAC_PJ)
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)


def test_layer0_is_dense_even_with_binary_frames():
    model = TwoLayer()
    binary_frame = spikes((1, 1, 4, 4), [(0, 0, 1, 1)])
    ops, _ = count_synaptic_ops(model, (binary_frame, torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, 4)))
    assert ops.mac["cell_list.0.conv_x.0"] == 288 and "cell_list.0.conv_x.0" not in ops.ac
    ops, _ = count_synaptic_ops(model, (binary_frame, torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, 4)),
                                dense_modules=())
    assert ops.ac["cell_list.0.conv_x.0"] == 9 * 2


def test_real_valued_input_to_a_later_layer_is_mac():
    model = TwoLayer()
    ops, _ = count_synaptic_ops(model, (torch.rand(1, 1, 4, 4), torch.rand(1, 2, 4, 4) + 0.1, torch.zeros(1, 4, 4, 4)))
    assert ops.mac["cell_list.1.conv_x.0"] == 4 * 16 * 1 * 9


def test_fvcore_style_flops_with_norm_on_meta_and_real():
    model = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2, bias=False), nn.GroupNorm(4, 16),
                          nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False), nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    x = torch.rand(2, 3, 8, 8)
    expected = 2 * (16 * 64 * 3 * 25 + 16 * 64 * 5 + 16 * 64 * 4 * 9 + 10 * 1024)
    for meta in (True, False):
        flops = count_flops(model, (x,), meta=meta)
        assert flops.total == expected and flops.per_sample == expected / 2
    assert count_params(model) == 16 * 3 * 25 + 32 + 16 * 4 * 9 + 1024 * 10 + 10


def test_self_connection_costs_one_ac_per_spike_and_no_flops():
    """circuit_groups: self (w * g + b per neuron): each spike meets one weight; element-wise, so no
    fvcore FLOPs."""
    conn = SelfConnection(2, (4, 4))
    g = spikes((1, 2, 4, 4), [(0, 0, 1, 1), (0, 1, 3, 0), (0, 1, 2, 2)])
    ops, _ = count_synaptic_ops(conn, (g,))
    assert dict(ops.ac) == {"": 3} and not ops.mac
    ops, _ = count_synaptic_ops(conn, (torch.rand(1, 2, 4, 4) + 0.1,))
    assert dict(ops.mac) == {"": 32} and not ops.ac
    assert count_flops(conn, (g,)).total == 0
