"""The fast path of MemoryNet (the whole-sequence dense scan, stcbench/kernels/dense_scan.py, and the input synapse
as one matmul) against the straightforward per-step loop over the cells (`run_layers_stepwise`), in float64:
outputs and every parameter gradient equal up to round-off.  Short sequences: over many steps the gradients of
the perfect integrator (STC-LIF) amplify round-off, in the per-step loop itself as much as between the two."""
import itertools

import pytest
import torch

from stcbench.kernels.dense_scan import scan_of
from stcbench.memory.network import MemoryNet

CELLS = ("lif", "alif", "plif", "tclif", "celif", "stclif")


def outputs_and_gradients(net, x, fast):
    net.fast = fast
    net.zero_grad()
    out = net(x)
    weights = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    return out.detach().clone(), {name: p.grad for name, p in net.named_parameters()}


def assert_same(net, x):
    out_ref, grad_ref = outputs_and_gradients(net, x, fast=False)
    out, grad = outputs_and_gradients(net, x, fast=True)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    for name, ref in grad_ref.items():
        if ref is None:
            assert grad[name] is None or not grad[name].any(), name
            continue
        scale = 1.0 + float(ref.abs().max())
        torch.testing.assert_close(grad[name], ref, rtol=0, atol=1e-12 * scale, msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_cells_declare_the_scan(cell):
    net = MemoryNet(cell, 2, [32], 1, steps=5)
    assert scan_of(net.cells[0]) is not None


@pytest.mark.parametrize("cell, recurrent", list(itertools.product(CELLS, (False, True))))
def test_fast_path_equals_per_step_loop(cell, recurrent):
    rates = []
    for norm, readout in itertools.product(("layer", "group", "none"), ("last", "per_step", "mean")):
        torch.manual_seed(0)
        net = MemoryNet(cell, 2, [32, 32], 3, steps=16, recurrent=recurrent, readout=readout,
                        synapse_norm=norm).double()
        x = (3.0 if norm != "none" else 30.0) * torch.rand(6, 16, 2, dtype=torch.float64)
        layers_ref = net.run_layers_stepwise(x)[0]
        net.fast = True
        layers = net.run_layers(x)[0]
        rates.append(float(layers_ref[0].detach().mean()))
        for a, b in zip(layers, layers_ref):
            assert torch.equal(a, b)
        assert_same(net, x)
    assert max(rates) > 0.02 and min(rates) < 0.9                        # spikes, not saturated


@pytest.mark.parametrize("options", [{"circuit": "temporal"}, {"circuit": "spatial"}, {"circuit_groups": 1},
                                     {"circuit_groups": "self_channel"}])
def test_circuit_ablations(options):
    torch.manual_seed(1)
    net = MemoryNet("stclif", 2, [32, 32], 2, steps=12, recurrent=True, readout="per_step",
                    cell_options=options).double()
    assert scan_of(net.cells[0]) is not None
    assert_same(net, 3.0 * torch.rand(5, 12, 2, dtype=torch.float64))


@pytest.mark.parametrize("cell, options", [("plif", {"variant": "original"}), ("stcplif", {}),
                                           ("plif", {"reset": "soft_detached"}), ("lif", {"surrogate": "atan2"}),
                                           ("celif", {"te_steps": 4})])
def test_more_declared_forms(cell, options):
    torch.manual_seed(2)
    net = MemoryNet(cell, 2, [32, 32], 2, steps=12, readout="mean", cell_options=options).double()
    assert scan_of(net.cells[0]) is not None
    assert_same(net, 3.0 * torch.rand(5, 12, 2, dtype=torch.float64))


@pytest.mark.parametrize("cell, options", [("tclif", {"variant": "original"}), ("stclif", {"gradient_detach": 0}),
                                           ("stclif", {"circuit_groups": "self"}), ("lmh", {})])
def test_undeclared_cells_take_the_per_step_loop(cell, options):
    torch.manual_seed(3)
    net = MemoryNet(cell, 2, [32], 2, steps=10, recurrent=True, readout="mean", cell_options=options).double()
    assert scan_of(net.cells[0]) is None
    assert_same(net, 3.0 * torch.rand(4, 10, 2, dtype=torch.float64))


def test_float32_and_analysis_path():
    torch.manual_seed(4)
    net = MemoryNet("stclif", 2, [32, 32], 1, steps=20, readout="last")
    x = torch.rand(4, 20, 2)
    net.fast = False
    ref = net(x)
    net.fast = True
    torch.testing.assert_close(net(x), ref)
    layers, steps = net.run_layers(x, keep_top=True)
    (g,) = torch.autograd.grad(net.read(layers[-1]).sum(), [steps[-1]])
    assert g.shape == (4, 32)
