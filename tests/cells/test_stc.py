"""The spatio-temporal circuit wrapper (cells.md §6-9, STC-LIF paper Tables 7 and 11)."""
import pickle

import pytest
import torch

from stcbench.cells import create_cell, get_cell_info
from stcbench.cells import stc
from stcbench.cells.lif import LIF
from stcbench.cells.lmh import LMH
from stcbench.cells.plif import PLIF
from stcbench.errors import ConfigError

C_IN, C, K, T, B, HW = 4, 32, 3, 5, 2, 6


def seq(seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, C_IN, HW, HW, generator=g, dtype=torch.float64) * scale


def make(name, seed=0, **options):
    torch.manual_seed(seed)
    return create_cell(name, C_IN, C, kernel_size=K, **options).double()


def perturb(cell, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return cell


@pytest.mark.parametrize("official, base, base_defaults", [
    ("stclif", LIF, {"integration": "perfect"}),
    ("stcplif", PLIF, {"plif_gain": "sigmoid"}),
    ("stclmh", LMH, {}),
])
def test_official_stc_cells_are_the_wrapper_around_their_base(official, base, base_defaults):
    """No own dynamics: the step is the wrapper's, the neuron is the base's (the fixture tests
    show that this reproduces the official classes)."""
    cls = get_cell_info(official).factory
    assert issubclass(cls, stc.stc_class(base))
    assert cls.step_from_current is stc.SpatioTemporalCircuit.step_from_current
    assert cls.neuron_step is base.neuron_step
    assert not set(vars(cls)) & {"neuron_step", "step_from_current", "charge", "fire", "reset", "forward"}
    ours = perturb(make(official))
    generic = stc.stc_class(base)(C_IN, C, kernel_size=K, **base_defaults).double()
    generic.load_state_dict(ours.state_dict())
    x = seq()
    assert torch.equal(ours.multi_step(x)[0], generic.multi_step(x)[0])


def test_stc_names_and_aliases():
    assert get_cell_info("STC-LIF").name == "stclif"
    assert get_cell_info("STCLIFCell").name == "stclif"
    assert get_cell_info("stc_tclif").name == "stctclif"
    cell = create_cell("stc_tclif", C_IN, C)
    assert isinstance(cell, stc.SpatioTemporalCircuit) and cell.state_names == ("spike", "mem", "dend")
    with pytest.raises(ConfigError, match="already has the circuit"):
        create_cell("stc_stclif", C_IN, C)
    with pytest.raises(ConfigError, match="unknown cell"):
        create_cell("stc_nosuchcell", C_IN, C)


def test_state_dict_names_match_official_stc_lif():
    cell = create_cell("stclif", C_IN, 256, kernel_size=5)
    shapes = {k: tuple(v.shape) for k, v in cell.state_dict().items()}
    assert shapes == {
        "conv_x.0.weight": (256, C_IN, 5, 5), "conv_x.1.weight": (256,), "conv_x.1.bias": (256,),
        "conv_h.0.weight": (256, 16, 5, 5), "conv_h.1.weight": (256,), "conv_h.1.bias": (256,),
        "conv_v.0.weight": (256, 16, 5, 5), "conv_v.1.weight": (256,), "conv_v.1.bias": (256,)}
    assert set(create_cell("stclmh", C_IN, 16).state_dict()) == set(create_cell("stclif", C_IN, 16).state_dict()) | {
        "t_m", "s_u", "s_p", "d_u", "d_p"}


def test_stc_lmh_forward_equals_stc_lif_at_init():
    lif, lmh = make("stclif"), make("stclmh")
    lmh.load_state_dict(lif.state_dict(), strict=False)
    x = seq()
    out_lif, final_lif = lif.multi_step(x)
    out_lmh, final_lmh = lmh.multi_step(x)
    assert out_lif.sum() > 0
    assert torch.equal(out_lif, out_lmh) and torch.equal(final_lif[1], final_lmh[1])


def test_stc_lmh_reset_detach_changes_only_the_gradient():
    grads, outs = [], []
    for detach in (True, False):
        cell = perturb(make("stclmh", stc_lmh_reset_detach=detach))
        x = seq().requires_grad_(True)
        out, (_, mem, _) = cell.multi_step(x)
        (out.sum() + mem.sum()).backward()
        grads.append(x.grad)
        outs.append(out)
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize("name", ["stclif", "stc_tclif"])
def test_gradient_detach_same_forward_different_circuit_gradient(name):
    results = []
    for gd in (0, 1):
        cell = perturb(make(name, gradient_detach=gd))
        x = seq()
        out, state = cell.multi_step(x)
        (out.sum() + state[1].sum()).backward()
        results.append((out, cell.conv_h[0].weight.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])
    assert not torch.allclose(results[0][1], results[1][1])
    with pytest.raises(ConfigError, match="gradient_detach"):
        make(name, gradient_detach=2)


def test_gates_are_one_at_t0_and_in_range_later():
    cell = perturb(make("stclif"))
    zeros = torch.zeros(B, C, HW, HW, dtype=torch.float64)
    fresh = make("stclif")
    a0, b0 = fresh.gates(zeros)
    assert torch.equal(a0, torch.ones_like(a0)) and torch.equal(b0, torch.ones_like(b0))
    spikes, _ = cell.multi_step(seq())
    a, b = cell.gates(spikes[-1])
    assert (a > 0).all() and (a < 2).all() and (b > 0).all() and (b < 2).all()
    assert not torch.allclose(a, torch.ones_like(a))
    # the gates are what the step uses: A h + B X for the perfect integrator
    x = seq()[0]
    state = (spikes[-1], torch.rand(B, C, HW, HW, dtype=torch.float64))
    _, new = cell(x, state, 1)
    expected = a * state[1] + b * cell.input_current(x)
    expected = expected - (expected >= 1).double()
    assert torch.allclose(new[1], expected, atol=1e-14)


def circuit_params(cell):
    return sum(p.numel() for n, p in cell.named_parameters() if n.startswith(("conv_h", "conv_v")))


def test_circuit_ablations_table7():
    both, temporal, spatial = (make("stclif", circuit=c) for c in ("both", "temporal", "spatial"))
    assert temporal.conv_v is None and spatial.conv_h is None
    assert circuit_params(temporal) == circuit_params(spatial) == circuit_params(both) // 2
    # w/o SC equals the full circuit whose input gate is exactly 1 (conv_v weights 0, GN beta 0)
    both.load_state_dict(perturb(make("stclif")).state_dict())
    with torch.no_grad():
        both.conv_v[0].weight.zero_()
        both.conv_v[1].bias.zero_()
    temporal.load_state_dict({k: v for k, v in both.state_dict().items() if not k.startswith("conv_v")})
    x = seq()
    assert torch.equal(both.multi_step(x)[0], temporal.multi_step(x)[0])
    # boolean aliases used by the report tables
    assert make("stclif", temporal_circuit=False).circuit == "spatial"
    assert make("stclif", spatial_circuit=False).circuit == "temporal"
    with pytest.raises(ConfigError, match="contradicts"):
        make("stclif", circuit="temporal", spatial_circuit=True)
    with pytest.raises(ConfigError, match="circuit must be"):
        make("stclif", circuit="neither")


@pytest.mark.parametrize("groups, per_conv", [
    (16, C * (C // 16) * K * K), (1, C * C * K * K), ("self_channel", C), (32, C * K * K)])
def test_circuit_groups_table11(groups, per_conv):
    cell = make("stclif", circuit_groups=groups)
    assert circuit_params(cell) == 2 * (per_conv + 2 * C)                # + GroupNorm affine
    out, _ = cell.multi_step(seq())
    assert out.shape == (T, B, C, HW, HW)


def test_self_connection_is_one_weight_and_bias_per_neuron():
    """circuit_groups='self' (Table 11, only self-connection): A = 1 + tanh(w_h * g + b_h),
    B = 1 + tanh(w_v * g + b_v), w and b [C, H, W], no GroupNorm; gates are 1 at t = 0."""
    cell = perturb(make("stclif", circuit_groups="self", circuit_spatial=(HW, HW)))
    assert {n: tuple(p.shape) for n, p in cell.named_parameters() if n.startswith(("conv_h", "conv_v"))} == {
        f"conv_{g}.{w}": (C, HW, HW) for g in "hv" for w in ("weight", "bias")}
    assert circuit_params(cell) == 2 * 2 * C * HW * HW
    assert (make("stclif", circuit_groups="self", circuit_spatial=(HW, HW)).conv_h.bias == 0).all()
    g = (torch.rand(B, C, HW, HW, dtype=torch.float64) > 0.5).double()
    a, b = cell.gates(g)
    assert torch.allclose(a, 1 + torch.tanh(g * cell.conv_h.weight + cell.conv_h.bias), atol=0, rtol=0)
    assert torch.allclose(b, 1 + torch.tanh(g * cell.conv_v.weight + cell.conv_v.bias), atol=0, rtol=0)
    # each neuron reads only its own spike: flipping one spike changes one gate value
    flipped = g.clone()
    flipped[0, 3, 2, 1] = 1 - flipped[0, 3, 2, 1]
    assert (cell.gates(flipped)[0] != a).sum() == 1
    out, _ = cell.multi_step(seq())
    assert out.shape == (T, B, C, HW, HW)


def test_self_connection_needs_and_checks_the_map_size():
    with pytest.raises(ConfigError, match="circuit_spatial"):
        make("stclif", circuit_groups="self")
    cell = make("stclif", circuit_groups="self", circuit_spatial=(HW + 1, HW))
    with pytest.raises(ConfigError, match="circuit_spatial"):
        cell.multi_step(seq())
    linear = create_cell("stclif", C_IN, C, synapse="linear", circuit_groups="self")
    assert linear.conv_h.weight.shape == (C,)                             # a channel is a neuron
    assert linear.multi_step(torch.randn(T, B, C_IN))[0].shape == (T, B, C)


def test_paper_size_parameter_counts():
    """cells.md §13: STC-LIF 3 x 256 on Moving MNIST = 3,922,432 with the readout (LIF: 3,304,960)."""
    def net_params(name, **options):
        cells = [create_cell(name, cin, 256, kernel_size=5, **options) for cin in (4, 256, 256)]
        return sum(p.numel() for c in cells for p in c.parameters()) + 4 * 256
    assert net_params("lif") == 3_304_960
    assert net_params("stclif") == 3_922_432
    assert round(net_params("stclif", circuit="temporal") / 1e6, 3) == 3.614
    assert round(net_params("stclif", circuit_groups=1) / 1e6, 3) == 13.138


@pytest.mark.parametrize("groups", [0, 5, "all", True, "selfish"])
def test_bad_circuit_groups(groups):
    with pytest.raises(ConfigError, match="circuit_groups"):
        make("stclif", circuit_groups=groups)


def test_linear_synapse_circuit():
    cell = create_cell("stc_tclif", C_IN, 64, synapse="linear").double()
    assert cell.conv_h[0].weight.shape == (64, 4, 1)                    # grouped 1x1
    x = torch.randn(T, B, C_IN, dtype=torch.float64) * 3
    out, state = cell.multi_step(x)
    assert out.shape == (T, B, 64) and len(state) == 3


def test_wrapped_cells_pickle():
    cell = make("stc_tclif")
    clone = pickle.loads(pickle.dumps(cell))
    x = seq()
    assert torch.equal(clone.multi_step(x)[0], cell.multi_step(x)[0])
