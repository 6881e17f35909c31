"""Hand-computed 3-step examples of the `variant="original"` cells and of the knobs (cells.md §2-5).

The neuron dynamics are driven directly with chosen input currents X_t (`neuron_step`), on
one vector of 16 neurons that all receive the same current, so each value below can be
checked with pencil and paper."""
import math

import pytest
import torch

from stcbench.cells import create_cell
from stcbench.errors import ConfigError

C = 16


def make(name, **options):
    """Built under float64 default dtype, so that init logits such as logit(0.55) are exact."""
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return create_cell(name, 4, C, synapse="linear", **options)
    finally:
        torch.set_default_dtype(old)


def drive(cell, currents, state=None):
    """Run neuron_step on constant-per-step currents; returns list of states (python floats of neuron 0)."""
    if state is None:
        state = cell.initial_state(1, (), dtype=torch.float64)
    states = []
    for t, x in enumerate(currents):
        current = x if isinstance(x, torch.Tensor) else torch.full((1, C), float(x), dtype=torch.float64)
        state = cell.neuron_step(current, state, t)
        states.append(state)
    return states


def values(states, index):
    return [round(float(s[index][0, 0].detach()), 12) for s in states]


def test_plif_original_three_steps():
    """w = 0: 1/tau = 0.5, h^ = 0.5 h + 0.5 X, hard reset to 0, ATan surrogate alpha = 2."""
    cell = make("plif", variant="original")
    x2 = torch.full((1, C), 2.4, dtype=torch.float64, requires_grad=True)
    states = drive(cell, [1.2, 1.0, x2])
    # t0: 0.6 -> no spike; t1: 0.3 + 0.5 = 0.8 -> no spike; t2: 0.4 + 1.2 = 1.6 -> spike, h = 0
    assert values(states, 0) == [0.0, 0.0, 1.0]
    assert values(states, 1) == [0.6, 0.8, 0.0]
    states[-1][0].sum().backward()
    atan = 1.0 / (1.0 + (math.pi / 2 * 2.0 * 0.6) ** 2)          # (alpha/2) / (1 + (pi/2 alpha x)^2)
    assert x2.grad[0, 0].item() == pytest.approx(atan * 0.5, rel=1e-12)


def test_plif_original_learnable_time_constant():
    """w = ln 3: 1/tau = 0.75 -> decay 0.25, gain 0.75."""
    cell = make("plif", variant="original")
    with torch.no_grad():
        cell.t_m.fill_(math.log(3.0))
    states = drive(cell, [1.0, 0.4, 1.0])
    # t0: 0.75; t1: 0.1875 + 0.3 = 0.4875; t2: 0.121875 + 0.75 = 0.871875
    assert values(states, 1) == pytest.approx([0.75, 0.4875, 0.871875], abs=1e-12)


def test_plif_reference_raw_gain_and_knobs():
    """Reference: h^ = sig(w) h + (1 - w) X, soft reset. At w = 0 the gain is 1 (the bug)."""
    cell = make("plif")
    states = drive(cell, [1.2, 0.4, 0.9])
    # t0: 1.2 -> spike, h = 0.2; t1: 0.1 + 0.4 = 0.5; t2: 0.25 + 0.9 = 1.15 -> spike, h = 0.15
    assert values(states, 0) == [1.0, 0.0, 1.0]
    assert values(states, 1) == pytest.approx([0.2, 0.5, 0.15], abs=1e-12)
    with torch.no_grad():
        cell.t_m.fill_(0.5)
    (state,) = drive(cell, [1.0])
    assert float(state[1][0, 0].detach()) == pytest.approx(0.5)           # gain 1 - 0.5, no spike
    sig = make("plif", plif_gain="sigmoid")
    with torch.no_grad():
        sig.t_m.fill_(0.5)
    (state,) = drive(sig, [1.0])
    assert float(state[1][0, 0].detach()) == pytest.approx(1.0 - 1.0 / (1.0 + math.exp(-0.5)))


@pytest.mark.parametrize("reset, expected_h", [("soft", 0.6), ("soft_detached", 0.6), ("hard_detached", 0.0)])
def test_plif_reset_knob(reset, expected_h):
    cell = make("plif", reset=reset)
    x = torch.full((1, C), 1.6, dtype=torch.float64, requires_grad=True)
    (state,) = drive(cell, [x])
    assert float(state[1][0, 0].detach()) == pytest.approx(expected_h)
    state[1].sum().backward()
    # d h / d X = gain - d s/d X (only when the reset passes the spike's gradient)
    sig4 = 4 * (1 / (1 + math.exp(-4 * 0.6))) * (1 - 1 / (1 + math.exp(-4 * 0.6)))
    if reset == "soft":
        assert x.grad[0, 0].item() == pytest.approx(1.0 - sig4)
    elif reset == "soft_detached":
        assert x.grad[0, 0].item() == pytest.approx(1.0)
    else:
        assert x.grad[0, 0].item() == pytest.approx(0.0)


def test_glif_original_three_steps_and_time_wise_conduct():
    """Init gates (0.55, 0.65, 0.55), tau 0.25, leak 0.0625, reVth 0.5, conduct 0.5, Vth 0.5:
    u_t = 0.5875 u (1 - 0.55 o) - 0.028125 + 0.675 X - 0.225 o, spike when u > 0.5."""
    cell = make("glif", variant="original", time_steps=3)
    states = drive(cell, [1.0, 0.2, 0.5])
    u0 = -0.028125 + 0.675 * 1.0                                 # 0.646875 -> spike
    u1 = 0.5875 * u0 * (1 - 0.55) - 0.028125 + 0.675 * 0.2 - 0.225
    u2 = 0.5875 * u1 - 0.028125 + 0.675 * 0.5
    assert values(states, 0) == [1.0, 0.0, 0.0]
    assert values(states, 1) == pytest.approx([u0, u1, u2], abs=1e-12)
    # step t uses conduct row min(t, T_c - 1): set row 2 to 0.9 -> input gain 1 - 0.65 * 0.1
    with torch.no_grad():
        cell.glif.conduct[2].fill_(math.log(0.9 / 0.1))
    zero = cell.initial_state(1, (), dtype=torch.float64)
    for t in (2, 5):
        _, mem = cell.neuron_step(torch.ones(1, C, dtype=torch.float64), zero, t)
        assert float(mem[0, 0].detach()) == pytest.approx(-0.028125 + (1 - 0.65 * 0.1))
    _, mem = cell.neuron_step(torch.ones(1, C, dtype=torch.float64), zero, 1)
    assert float(mem[0, 0].detach()) == pytest.approx(-0.028125 + 0.675)


def test_glif_gates_learn_only_in_original():
    for variant, learns in (("reference", False), ("original", True)):
        cell = make("glif", variant=variant)
        state = drive(cell, [1.0, 0.2, 0.5])[-1]
        state[1].sum().backward()
        assert (cell.glif.alpha.grad is not None and bool(cell.glif.alpha.grad.any())) == learns


def test_glif_randomgate_and_hints():
    torch.manual_seed(0)
    cell = create_cell("glif", 4, C, variant="original", randomgate=True)
    for name in ("alpha", "beta", "gamma"):
        p = getattr(cell.glif, name)
        assert p.abs().max() <= 0.1 and p.std() > 0
    hints = cell.param_group_overrides()
    assert hints["glif.alpha"] == {"weight_decay": False, "lr_scale": 0.1}
    assert hints["glif.tau"] == {"weight_decay": False}
    assert create_cell("glif", 4, C).param_group_overrides() == {}
    with pytest.raises(ConfigError, match="original"):
        create_cell("glif", 4, C, time_steps=8)


def test_tclif_original_three_steps():
    """c1 = c2 = 0 (sigmoid 0.5), V_th = 1, gamma = 0.5; immediate soft reset of both compartments."""
    cell = make("tclif", variant="original")
    x2 = torch.full((1, C), 0.2, dtype=torch.float64, requires_grad=True)
    states = drive(cell, [1.0, 1.5, x2])
    # t0: d = 1, H = 0.5; t1: d = 1 - 0.25 + 1.5 = 2.25, H = 0.5 + 1.125 = 1.625 -> spike:
    #     d = 1.75, h = 0.625; t2: d = 1.75 - 0.3125 + 0.2 = 1.6375, H = 0.625 + 0.81875 = 1.44375
    #     -> spike: d = 1.1375, h = 0.44375
    assert values(states, 0) == [0.0, 1.0, 1.0]
    assert values(states, 1) == pytest.approx([0.5, 0.625, 0.44375], abs=1e-12)
    assert values(states, 2) == pytest.approx([1.0, 1.75, 1.1375], abs=1e-12)
    states[-1][0].sum().backward()
    assert x2.grad[0, 0].item() == pytest.approx((1 - 0.44375) * 0.5)     # triangle * sig(c2)
    assert [n for n, _ in cell.named_parameters() if not n.startswith("conv_x")] == ["decay_factor"]


def test_tclif_reference_three_steps_late_detached_reset():
    cell = make("tclif")
    with torch.no_grad():
        cell.t_m.fill_(0.5)
    states = drive(cell, [1.0, 1.5, 0.2])
    # t0: d = 1, h = 0.5; t1: d = 1 - 0.25 + 1.5 = 2.25, h = 0.5 + 1.125 = 1.625 -> spike
    # t2: d = 2.25 - 0.8125 + 0.2 - 0.5 = 1.1375, h = 1.625 + 0.56875 - 1 = 1.19375 -> spike
    assert values(states, 0) == [0.0, 1.0, 1.0]
    assert values(states, 1) == pytest.approx([0.5, 1.625, 1.19375], abs=1e-12)
    assert values(states, 2) == pytest.approx([1.0, 2.25, 1.1375], abs=1e-12)


def test_tclif_official_checkpoint_into_original_variant():
    reference = make("tclif")
    with torch.no_grad():
        reference.s_u.fill_(0.3)
        reference.s_p.fill_(-0.2)
    original = make("tclif", variant="original")
    with pytest.warns(UserWarning, match="s_u -> c1"):
        original.load_state_dict(reference.state_dict())
    assert original.decay_factor.flatten().tolist() == pytest.approx([0.3, -0.2])


def test_lmh_original_three_steps():
    """h_0 = 0.5, d_u with sig = 0.75 (coefficient 0.25), others 0: d = 0.25 d + X, h^ = d + h."""
    cell = make("lmh", variant="original")
    with torch.no_grad():
        cell.d_u.fill_(math.log(3.0))
    x2 = torch.full((1, C), 0.9, dtype=torch.float64, requires_grad=True)
    states = drive(cell, [0.3, 0.4, x2])
    # t0: d = 0.3, h^ = 0.8; t1: d = 0.475, h^ = 1.275 -> spike, h = 0.275
    # t2: d = 1.01875, h^ = 1.29375 -> spike, h = 0.29375
    assert values(states, 0) == [0.0, 1.0, 1.0]
    assert values(states, 1) == pytest.approx([0.8, 0.275, 0.29375], abs=1e-12)
    assert values(states, 2) == pytest.approx([0.3, 0.475, 1.01875], abs=1e-12)
    states[-1][0].sum().backward()
    assert x2.grad[0, 0].item() == pytest.approx(1 - 0.29375)       # triangle, d h^/d X = 1


def test_lmh_reference_is_an_integrator_at_init():
    cell = make("lmh")
    states = drive(cell, [0.3, 0.4, 0.5])
    assert values(states, 2) == pytest.approx([0.3, 0.4, 0.5])      # d_t = X_t
    assert values(states, 1) == pytest.approx([0.3, 0.7, 0.2])      # h^ = d + h, detached soft reset
    assert values(states, 0) == [0.0, 0.0, 1.0]
