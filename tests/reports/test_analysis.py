import numpy as np
import pytest
import torch

from stcbench.reports.analysis import cost_report, gate_traces, grad_through_time
from stcbench.models.cost import E_AC_PJ, E_MAC_PJ
from tests.reports.tiny_net import TinyPredictor


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.rand(2, 6, 1, 8, 8)


def test_cost_report_counts_and_rates(batch):
    torch.manual_seed(1)
    net = TinyPredictor(("lif", "lif"))
    with torch.no_grad():
        for cell in net.cell_list:
            cell.conv_x[1].bias.fill_(1.5)       # GN bias above threshold: many spikes
    report = cost_report(net, batch)
    steps = 3 + 3 - 1
    assert report["steps"] == steps and report["batch"] == 2
    # layer 0 synapse: dense MACs on real frames, per step: outputs x C_in x k^2
    assert report["mac_by_module"] == {"cell_list.0.conv_x.0": steps * 2 * 16 * 64 * 1 * 9}
    assert set(report["ac_by_module"]) == {"cell_list.1.conv_x.0", "conv_last"}
    neurons = steps * 2 * 16 * 64
    assert report["neuron_mac"] == 2 * neurons                 # one compartment per LIF layer
    assert report["norm_mac"] == 2 * 2 * neurons               # two GroupNorms, 2 MACs per element
    assert report["mac"] == report["mac_by_module"]["cell_list.0.conv_x.0"] + 4 * neurons + 2 * neurons
    assert report["energy_pj"] == pytest.approx(E_AC_PJ * report["ac"] + E_MAC_PJ * report["mac"])
    assert report["per_sequence"]["ac"] == report["ac"] / 2
    assert set(report["firing_rates"]) == {"0", "1"}
    assert 0 < report["firing_rates"]["0"] <= 1
    # the readout accumulates once per spike of the top layer (1x1 conv, one output channel)
    top_spikes = report["firing_rates"]["1"] * neurons
    assert report["ac_by_module"]["conv_last"] == pytest.approx(top_spikes, rel=1e-9)
    # FLOPs are for one sequence: conv + GroupNorm (5 per element) + readout
    per_step = 64 * (16 * 9 + 16 * 16 * 9 + 16) + 2 * 16 * 64 * 5
    assert report["flops"] == steps * per_step
    assert report["params"] == sum(p.numel() for p in net.parameters())


def test_silent_network_has_no_acs(batch):
    net = TinyPredictor(("lif", "lif"))
    with torch.no_grad():
        for cell in net.cell_list:
            cell.conv_x[1].bias.fill_(-100.0)
    report = cost_report(net, batch)
    assert report["ac"] == 0 and report["firing_rates"] == {"0": 0.0, "1": 0.0}


def test_gate_traces_are_one_plus_tanh_of_the_circuit(batch):
    torch.manual_seed(2)
    net = TinyPredictor(("gated", "lif"))
    traces = gate_traces(net, batch, max_values=100)
    assert set(traces) == {"0"} and set(traces["0"]) == {"A", "B"}
    a = traces["0"]["A"]
    assert a.shape == (5, 100)
    np.testing.assert_allclose(a[0], 1.0)          # no spikes before t=0 and GN beta = 0 at init
    assert np.all((a > 0) & (a < 2))
    report = cost_report(net, batch)
    assert report["neuron_mac"] == 5 * 2 * 16 * 64 * (1 + 2) + 5 * 2 * 16 * 64
    assert report["gates"]["0"]["A"][0] == pytest.approx(1.0)


def test_gradient_through_time(batch):
    torch.manual_seed(3)
    net = TinyPredictor(("lif", "lif"))
    with torch.no_grad():
        for cell in net.cell_list:
            cell.conv_x[1].bias.fill_(0.8)
    norms = grad_through_time(net, batch)
    assert set(norms) == {"0", "1"} and len(norms["1"]) == 5
    assert norms["1"][-1] > 0                       # the last step feeds the loss directly
    assert all(p.grad is None for p in net.parameters())


def test_real_predictor_traces_agree_with_hooks():
    from stcbench.models import RecurrentPredictor
    from stcbench.reports.analysis import _CellRecorder, gates_from_traces, predict_call, spikes_from_traces

    torch.manual_seed(4)
    net = RecurrentPredictor("stclif", 1, [16, 16], patch_size=2, in_frames=3, filter_size=3, fast=True)
    frames = torch.rand(2, 6, 1, 8, 8)
    with _CellRecorder(net) as rec:
        predict_call(3)(net, frames)
    _, traces = predict_call(3, return_traces=True)(net, frames)
    from_traces = spikes_from_traces(net, traces)
    assert set(from_traces) == set(rec.spikes) == {"cell_list.0", "cell_list.1"}
    for name, steps in rec.spikes.items():
        assert torch.equal(torch.stack(steps), torch.stack(from_traces[name]))
    gates = gates_from_traces(traces)
    hooked = torch.stack(rec.gates["cell_list.1"]["B"])
    torch.testing.assert_close(gates["1"]["B"], hooked)
    report = cost_report(net, frames)
    assert report["firing_rates"]["1"] == pytest.approx(float(torch.stack(from_traces["cell_list.1"]).mean()))
    assert report["steps"] == 5 and net.fast
    norms = grad_through_time(net, frames)
    assert len(norms["1"]) == 5 and norms["1"][-1] > 0
