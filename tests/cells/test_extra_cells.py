"""ALIF, CE-LIF, BPSTA and ConvLSTM: hand-computed 3-step examples (forward and backward),
gradcheck where the dynamics are differentiable, and ConvLSTM against a direct re-implementation."""
import pytest
import torch

from stcbench.cells import create_cell, get_cell_info
from stcbench.cells.bpsta import BPSTAFire
from stcbench.errors import ConfigError

C = 16   # channels must be a multiple of 16 (GroupNorm); every channel gets the same scalar example


def scalar_currents(values, requires_grad=True):
    """One scalar per step broadcast to [1, C], as a leaf tensor per step."""
    return [torch.full((1, C), v, dtype=torch.float64, requires_grad=requires_grad) for v in values]


def run_steps(cell, currents):
    state = cell.initial_state(1, (), dtype=torch.float64)
    states = []
    for t, current in enumerate(currents):
        state = cell.neuron_step(current, state, t)
        states.append(state)
    return states


def channel0(states, index):
    return [float(s[index][0, 0].detach()) for s in states]


def weighted_spike_loss(states):
    """L = 1*S_0 + 2*S_1 + 3*S_2 (summed over channels)."""
    return sum((t + 1) * s[0].sum() for t, s in enumerate(states))


# ---------------------------------------------------------------------------------- ALIF
def test_alif_three_steps_forward_and_backward(float64):
    cell = create_cell("alif", 4, C, synapse="linear")   # alpha .5, beta .99, Theta0 .3, gamma .018, Gamma .2
    currents = scalar_currents([0.4, 0.25, 0.3])
    states = run_steps(cell, currents)
    # t0: Theta = .3;                              V = .4                 -> S = 1, |V-Theta| = .1 < .2
    # t1: Theta = .99*0 + .018*1 + .3 = .318;      V = .5*.4*(1-1) + .25 = .25 -> S = 0, |.25-.318| < .2
    # t2: Theta = .99*.018 + 0 + .3 = .31782;      V = .5*.25*(1-0) + .3 = .425 -> S = 1, |.10718| < .2
    assert channel0(states, 2) == pytest.approx([0.3, 0.318, 0.99 * 0.018 + 0.3], abs=1e-12)
    assert channel0(states, 1) == pytest.approx([0.4, 0.25, 0.425], abs=1e-12)
    assert channel0(states, 0) == [1.0, 0.0, 1.0]

    weighted_spike_loss(states).backward()
    # All three steps lie inside the boxcar, so g'_t = 1 (dS/dV = 1, dS/dTheta = -1).
    alpha, beta, gamma = 0.5, 0.99, 0.018
    dV2 = 3.0                                        # 3*g'_2
    dTh2 = -3.0
    dS1 = 2.0 + dV2 * (-alpha * 0.25) + dTh2 * gamma  # direct + reset path (-alpha V_1) + adaptation (gamma)
    dV1 = dS1 + dV2 * alpha * (1 - 0)                # S_1 = 0: leak path open
    dTh1 = -dS1 + dTh2 * beta
    dS0 = 1.0 + dV1 * (-alpha * 0.4) + dTh1 * gamma
    dV0 = dS0 + dV1 * alpha * (1 - 1)                # S_0 = 1: hard reset closes the leak path
    grads = [float(c.grad[0, 0]) for c in currents]
    assert grads == pytest.approx([dV0, dV1, dV2], abs=1e-12)
    assert grads == pytest.approx([0.304062, 3.071, 3.0], abs=1e-12)


def test_alif_boxcar_window_blocks_gradient(float64):
    cell = create_cell("alif", 4, C, synapse="linear")
    (current,) = scalar_currents([0.7])          # |0.7 - 0.3| = 0.4 >= Gamma = 0.2
    (state,) = run_steps(cell, [current])
    state[0].sum().backward()
    assert float(state[0][0, 0].detach()) == 1.0
    assert torch.count_nonzero(current.grad) == 0


# --------------------------------------------------------------------------------- CE-LIF
def celif_with_te(rows, **options):
    cell = create_cell("celif", 4, C, synapse="linear", te_steps=len(rows), **options)
    with torch.no_grad():
        cell.te.copy_(torch.tensor(rows, dtype=torch.float64)[:, None].expand(len(rows), C))
    return cell


def test_celif_three_steps_forward_and_backward(float64):
    te = [0.1, -0.2, 0.5]
    cell = celif_with_te(te)
    currents = scalar_currents([0.4, 0.25, 0.3])
    states = run_steps(cell, currents)
    # t0: Theta = 0 + TE0*V_{-1}(=0) + .3 = .3;   V = .4            -> S = 1
    # t1: Theta = 0 + (-.2)(.4) + .3 = .22;       V = 0 + .25 = .25 -> S = 1 (.25 >= .22)
    # t2: Theta = .99(.22-.3) + .5(.25) + .3 = .3458;  V = .5*.25*(1-1) + .3 = .3 -> S = 0
    assert channel0(states, 2) == pytest.approx([0.3, 0.22, 0.3458], abs=1e-12)
    assert channel0(states, 1) == pytest.approx([0.4, 0.25, 0.3], abs=1e-12)
    assert channel0(states, 0) == [1.0, 1.0, 0.0]

    weighted_spike_loss(states).backward()
    # |V - Theta| = .1, .03, .0458 < Gamma: g'_t = 1 at every step.  Eq. (6):
    alpha, beta = 0.5, 0.99
    dV2, dTh2 = 3.0, -3.0
    dS1 = 2.0 + dV2 * (-alpha * 0.25)                      # reset path dV_2/dS_1 = -alpha V_1
    dV1 = dS1 + dV2 * alpha * (1 - 1) + dTh2 * te[2]       # + CE path dTheta_2/dV_1 = TE[2]
    dTh1 = -dS1 + dTh2 * beta
    dS0 = 1.0 + dV1 * (-alpha * 0.4)
    dV0 = dS0 + dV1 * alpha * (1 - 1) + dTh1 * te[1]
    grads = [float(c.grad[0, 0]) for c in currents]
    assert grads == pytest.approx([dV0, dV1, dV2], abs=1e-12)
    assert grads == pytest.approx([1.894, 0.125, 3.0], abs=1e-12)
    # dL/dTE[t] = dL/dTheta_t * V_{t-1}: [0 (V_{-1}=0), dTh1*.4, dTh2*.25], identical for every channel
    expected_te = torch.tensor([0.0, dTh1 * 0.4, dTh2 * 0.25], dtype=torch.float64)[:, None].expand(3, C)
    torch.testing.assert_close(cell.te.grad, expected_te, atol=1e-12, rtol=0)


def test_celif_reuses_last_te_row_beyond_te_steps(float64):
    long_cell = celif_with_te([0.1, -0.2, -0.2])
    short_cell = celif_with_te([0.1, -0.2])         # step 2 uses row min(2, 1) = 1
    values = [0.4, 0.25, 0.3]
    for a, b in zip(run_steps(long_cell, scalar_currents(values)), run_steps(short_cell, scalar_currents(values))):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=0, rtol=0)


def test_celif_te_shapes_and_init():
    torch.manual_seed(0)
    cell = create_cell("celif", 4, 64, te_steps=500)
    assert cell.te.shape == (500, 64)
    te = cell.te.detach()
    assert abs(float(te.mean()) - 0.01) < 1e-3 and abs(float(te.std()) - 0.01) < 1e-3
    assert create_cell("celif", 4, C, te_steps=7, te_granularity="neuron", te_spatial=(8, 6)).te.shape == (7, C, 8, 6)
    assert create_cell("celif", 4, C, synapse="linear", te_steps=7, te_granularity="neuron").te.shape == (7, C)
    with pytest.raises(ConfigError, match="te_spatial"):
        create_cell("celif", 4, C, te_granularity="neuron")
    with pytest.raises(ConfigError, match="te_granularity"):
        create_cell("celif", 4, C, te_granularity="layer")
    assert "no reference code" in get_cell_info("ce-lif").description


def test_celif_neuron_granularity_runs_on_maps(float64):
    cell = create_cell("celif", 4, C, te_steps=3, te_granularity="neuron", te_spatial=(5, 5))
    out, state = cell.multi_step(torch.rand(4, 2, 4, 5, 5))
    out.sum().backward()
    assert out.shape == (4, 2, C, 5, 5) and len(state) == 3
    assert cell.te.grad.shape == (3, C, 5, 5)


@pytest.mark.parametrize("name", ["alif", "celif"])
def test_adaptive_cells_gradcheck_away_from_threshold(name, float64):
    """With every |V - Theta| >= Gamma the boxcar surrogate equals the true derivative (0), so the
    cell's gradients must match finite differences exactly."""
    torch.manual_seed(1)
    cell = create_cell(name, 4, C, synapse="linear", **({"te_steps": 3} if name == "celif" else {}))
    signs = torch.randint(0, 2, (3, 2, C), dtype=torch.float64)
    currents = (signs * 1.5 - 0.5 + 0.01 * torch.rand(3, 2, C)).requires_grad_()   # about -0.5 or 1.0

    def dynamics(x, *params):
        state = cell.initial_state(2, (), dtype=torch.float64)
        outputs = []
        for t in range(3):
            state = cell.neuron_step(x[t], state, t)
            outputs.extend(state)
        return torch.stack(outputs)

    states = dynamics(currents).view(3, 3, 2, C)
    margin = (states[:, 1] - states[:, 2]).abs().min()
    assert margin > 0.2 + 1e-3, "example must stay outside the boxcar window"
    assert states[:, 0].sum() > 0 and (1 - states[:, 0]).sum() > 0     # both firing and silent neurons
    inputs = (currents, cell.te) if name == "celif" else (currents,)
    assert torch.autograd.gradcheck(dynamics, inputs, eps=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------- BPSTA
def test_bpsta_fire_function_backward_formula(float64):
    membrane = torch.tensor([0.2, 0.5, 0.8, -0.3], requires_grad=True)
    spike, residual = BPSTAFire.apply(membrane, 0.5)
    assert spike.tolist() == [0.0, 1.0, 1.0, 0.0]                       # >= u_th fires
    assert residual.tolist() == pytest.approx([0.2, 0.0, 0.0, -0.3])
    g_spike = torch.tensor([1.0, 2.0, 3.0, 4.0])
    g_residual = torch.tensor([5.0, 6.0, 7.0, 8.0])
    torch.autograd.backward([spike, residual], [g_spike, g_residual])
    # g_U = g_O * O/U + g_R * (1 - O): silent neurons pass only g_R, firing ones only g_O/U
    assert membrane.grad.tolist() == pytest.approx([5.0, 2.0 / 0.5, 3.0 / 0.8, 8.0], abs=1e-9)


def test_bpsta_fire_residual_gradcheck(float64):
    """Away from u_th the residual R = U(1 - O) is differentiable and the custom backward is exact."""
    membrane = torch.tensor([0.1, 0.3, 0.7, 1.2, -0.4], requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: BPSTAFire.apply(u, 0.5)[1], (membrane,), eps=1e-6)


def test_bpsta_three_steps_forward_and_backward(float64):
    cell = create_cell("bpsta", 4, C, synapse="linear")              # lambda .9, u_th .5, alpha_bp .8
    currents = scalar_currents([0.6, 0.2, 0.4])
    states = run_steps(cell, currents)
    # t0: U = 0 + .6 = .6   -> O = 1, R = 0,  M = .9*0 = 0
    # t1: U = 0 + .2 = .2   -> O = 0, R = .2, M = .9*.2 = .18
    # t2: U = .18 + .4 = .58 -> O = 1, R = 0, M = 0
    assert channel0(states, 0) == [1.0, 0.0, 1.0]
    assert channel0(states, 1) == pytest.approx([0.0, 0.18, 0.0], abs=1e-12)

    weighted_spike_loss(states).backward()
    lam, a_bp = 0.9, 0.8
    dU2 = 3.0 / 0.58                          # g_O2 * O_2/U_2
    dM1 = dU2                                 # U_2 = M_1 + X_2
    # M_1 = lam*(R_1 + a_bp*(O_1 - sg O_1)); O_1 = 0 so only R_1 passes: dU1 = lam*dM1*(1 - O_1)
    dU1 = lam * dM1
    dM0 = dU1
    # O_0 = 1: dU0 = (g_O0 + lam*a_bp*dM0) / U_0   (direct weight 1 plus the BPTA residual path)
    dU0 = (1.0 + lam * a_bp * dM0) / 0.6
    grads = [float(c.grad[0, 0]) for c in currents]
    assert grads == pytest.approx([dU0, dU1, dU2], abs=1e-9)   # the rule divides by U + 1e-12


def test_bpsta_variant_code_and_training_rules(float64):
    assert create_cell("bpsta", 4, C).bpsta_alpha == 0.8
    assert create_cell("bpsta", 4, C, bpsta_variant="code").bpsta_alpha == 0.2
    assert create_cell("bpsta", 4, C, bpsta_variant="code", bpsta_alpha=0.5).bpsta_alpha == 0.5
    with pytest.raises(ConfigError, match="bpsta_variant"):
        create_cell("bpsta", 4, C, bpsta_variant="mine")
    with pytest.raises(ConfigError, match="training_rule"):
        create_cell("bpsta", 4, C, training_rule="stdp")
    torch.manual_seed(0)
    # 64 channels: GroupNorm(16) over a vector needs several channels per group to be non-trivial
    bpsta = create_cell("bpsta", 4, 64, synapse="linear")
    surrogate = create_cell("bpsta", 4, 64, synapse="linear", training_rule="surrogate")
    surrogate.load_state_dict(bpsta.state_dict())
    x = torch.rand(5, 3, 4) * 3
    out_a, _ = bpsta.multi_step(x)
    out_b, _ = surrogate.multi_step(x)
    torch.testing.assert_close(out_a, out_b, atol=0, rtol=0)         # same forward
    assert out_a.sum() > 0


def test_bpsta_input_relu_keeps_membrane_non_negative(float64):
    torch.manual_seed(0)
    cell = create_cell("bpsta", 4, 64, synapse="linear")
    _, states = cell.multi_step(torch.randn(6, 3, 4), return_states=True)
    assert all(float(s[1].detach().min()) >= 0 for s in states)
    plain = create_cell("bpsta", 4, 64, synapse="linear", bpsta_input_relu=False)
    _, states = plain.multi_step(torch.randn(6, 3, 4), return_states=True)
    assert any(float(s[1].detach().min()) < 0 for s in states)


def test_bpsta_carry_without_residual_gradcheck(float64):
    """With alpha_bp = 0 the carried membrane M is an ordinary piecewise-linear function of the input."""
    cell = create_cell("bpsta", 4, C, synapse="linear", bpsta_alpha=0.0)
    currents = torch.tensor([[0.1, 0.9], [0.3, 0.2], [0.05, 0.7]]).repeat(1, 8).unsqueeze(1).requires_grad_()

    def carried(x):
        state = cell.initial_state(1, (), dtype=torch.float64)
        out = []
        for t in range(3):
            state = cell.neuron_step(x[t], state, t)
            out.append(state[1])
        return torch.stack(out)

    assert torch.autograd.gradcheck(carried, (currents,), eps=1e-6)


# ------------------------------------------------------------------------------- ConvLSTM
def reference_convlstm(x_seq, w_x, w_h, conv, forget_bias):
    """Shi et al. 2015 without peepholes, written out; OpenSTL's ConvLSTMCell adds no forget bias."""
    steps, batch = x_seq.shape[:2]
    hidden_channels = w_h.shape[1]
    spatial = x_seq.shape[3:]
    h = torch.zeros(batch, hidden_channels, *spatial, dtype=x_seq.dtype)
    c = torch.zeros_like(h)
    outputs = []
    for t in range(steps):
        if conv:
            z = (torch.nn.functional.conv2d(torch.cat([x_seq[t], h], 1), torch.cat([w_x, w_h], 1),
                                            padding=w_x.shape[-1] // 2))
        else:
            z = torch.cat([x_seq[t], h], 1) @ torch.cat([w_x, w_h], 1)[..., 0].T
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f + forget_bias) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), c


@pytest.mark.parametrize("variant, forget_bias", [("reference", 0.0), ("original", 1.0)])
@pytest.mark.parametrize("synapse, shape", [("conv", (4, 2, 3, 6, 6)), ("linear", (4, 2, 3))])
def test_convlstm_matches_gate_equations(synapse, shape, variant, forget_bias, float64):
    torch.manual_seed(0)
    cell = create_cell("convlstm", 3, C, synapse=synapse, kernel_size=3, variant=variant)
    x = torch.randn(*shape)
    out, (h, c) = cell.multi_step(x)
    ref_out, ref_c = reference_convlstm(x, cell.conv_x[0].weight, cell.conv_h[0].weight, synapse == "conv",
                                        forget_bias)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(c, ref_c, atol=1e-12, rtol=0)
    torch.testing.assert_close(out[-1], h, atol=0, rtol=0)
    step_out, _ = cell(x[0])
    torch.testing.assert_close(step_out, ref_out[0], atol=1e-12, rtol=0)


def test_convlstm_registry_and_layer_norm():
    info = get_cell_info("ConvLSTM")
    assert info.spiking is False and info.stc_compatible is False
    cell = create_cell("convlstm", 3, C, layer_norm=True, norm_spatial=(6, 6), kernel_size=3)
    assert cell.conv_x[1].weight.shape == (4 * C, 6, 6)
    assert sorted(cell.state_dict()) == ["conv_h.0.weight", "conv_h.1.bias", "conv_h.1.weight",
                                         "conv_x.0.weight", "conv_x.1.bias", "conv_x.1.weight"]
    out, _ = cell.multi_step(torch.randn(2, 2, 3, 6, 6))
    assert out.shape == (2, 2, C, 6, 6) and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="norm_spatial"):
        create_cell("convlstm", 3, C, layer_norm=True)
    assert create_cell("convlstm", 3, C, synapse="linear", layer_norm=True).conv_h[1].weight.shape == (4 * C,)


@pytest.mark.parametrize("name", ["alif", "celif", "bpsta", "convlstm"])
def test_channels_must_be_multiple_of_16(name):
    with pytest.raises(ConfigError, match="multiple of 16"):
        create_cell(name, 4, 24)


def test_bpsta_surrogate_rule_uses_plain_surrogate_gradient(float64):
    """training_rule='surrogate': M = lam*U*(1 - O) with dO/dU the sigmoid(4) surrogate, no BPTA residual."""
    cell = create_cell("bpsta", 4, C, synapse="linear", training_rule="surrogate")
    membrane = torch.tensor([[0.3, 0.7] * (C // 2)], requires_grad=True)
    _, carried = cell.neuron_step(membrane, cell.initial_state(1, (), dtype=torch.float64), 0)
    carried.sum().backward()
    sig = torch.sigmoid(4 * (membrane.detach() - 0.5))
    spike = (membrane.detach() >= 0.5).double()
    expected = 0.9 * ((1 - spike) - membrane.detach() * 4 * sig * (1 - sig))
    torch.testing.assert_close(membrane.grad, expected, atol=1e-12, rtol=0)
