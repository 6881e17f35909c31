"""The fused STC-LIF / STC-PLIF / STC-LM-H step equals the cell's own step: spikes, membranes and all gradients (float64)."""
from __future__ import annotations

import copy

import pytest
import torch

from stcbench.cells import create_cell
from stcbench.cells.fused import fused_neuron
from stcbench.cells.lif import LIF
from stcbench.cells.stc import stc_class
from stcbench.cells.surrogate import Surrogate
from stcbench.kernels import fused_stc
from stcbench.models import RecurrentPredictor
from stcbench.models.fastpath import LayerRunner
from tests.conftest import assert_close_scaled

pytestmark = pytest.mark.skipif(not fused_stc.available(), reason="numba is not installed")

CL = torch.channels_last


class CustomSurrogate(Surrogate):
    """A user's surrogate: only `derivative` is defined."""

    def derivative(self, x):
        return 1.0 / (1.0 + (3.0 * x) ** 2)


class FusedBackwardSurrogate(CustomSurrogate):
    """Overrides backward_product: its backward need not be `derivative`, so the fused step must not be used."""

    def backward_product(self, grad_output, x):
        return grad_output * self.derivative(x)


def perturbed_cell(name, options, scale=0.2, seed=0, channels=32):
    """A float64 cell moved away from its initial values, so that every term matters."""
    torch.manual_seed(seed)
    cell = create_cell(name, 8, channels, **options).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(scale * torch.randn_like(p))
    return cell


def make_cell(options, channels=32, seed=0):
    return perturbed_cell("stclif", options, seed=seed, channels=channels)


def run(cell, fused, steps=4, batch=3, size=(9, 11), dtype=torch.float64, loss_on=("spike", "mem")):
    """Runs `steps` steps from zero state; returns spikes, last membrane, input grads and parameter grads."""
    gen = torch.Generator().manual_seed(1)
    xs = [(2 * torch.randn(batch, 8, *size, generator=gen, dtype=torch.float64)).to(dtype)
          .contiguous(memory_format=CL).requires_grad_(True) for _ in range(steps)]
    weights = [torch.randn(batch, cell.hidden_channels, *size, generator=gen, dtype=torch.float64).to(dtype)
               for _ in range(steps)]
    state = tuple(s.contiguous(memory_format=CL) for s in cell.initial_state(batch, size, dtype=dtype))
    step = fused_stc.FusedSTCStep(cell) if fused else None
    spikes, loss = [], 0
    for t, x in enumerate(xs):
        pre = cell.conv_x[0](x)
        state = step.step(pre, state, t) if fused else cell.step_from_current(cell.conv_x[1](pre), state, t)
        spikes.append(state[0])
        if "spike" in loss_on:
            loss = loss + (state[0] * weights[t]).sum()
        if "mem" in loss_on:
            loss = loss + (state[1] * weights[t]).sum()
        if "dend" in loss_on and len(state) > 2:
            loss = loss + (state[2] * weights[t]).sum()
    params = [p for p in cell.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, xs + params, allow_unused=True)
    return spikes, state[1], grads


CASES = {
    "default": {},
    "gradient_detach_0": {"gradient_detach": 0},
    "leaky": {"integration": "leaky", "tau_m": 3.0},
    "strict_threshold": {"surrogate": {"name": "sigmoid", "alpha": 2.5, "strict": True}, "threshold": 0.5},
    "dense_circuit": {"circuit_groups": 1},
    "circuit_groups_4": {"circuit_groups": 4},
    "atan": {"surrogate": {"name": "atan", "alpha": 2.0}},
    "triangle": {"surrogate": "triangle", "threshold": 0.8},
    "rectangle": {"surrogate": {"name": "rectangle", "half_width": 0.5, "height": 1.0}},
    "custom_surrogate": {"surrogate": CustomSurrogate()},
}


def assert_fused_equals_cell(cell, learnable=(), **run_options):
    """Spikes identical, the last membrane and every gradient (inputs and parameters) equal in float64."""
    assert fused_stc.eligible(cell)
    spikes_r, mem_r, grads_r = run(cell, fused=False, **run_options)
    spikes_f, mem_f, grads_f = run(cell, fused=True, **run_options)
    fired = 0.0
    for t, (a, b) in enumerate(zip(spikes_f, spikes_r)):
        assert torch.equal(a, b), f"spikes differ at step {t}"
        fired += float((b != 0).sum())
    assert 0 < fired < sum(s.numel() for s in spikes_r), "the test cell must fire, and not everywhere"
    assert_close_scaled(mem_f, mem_r.detach(), what="membrane")
    names = [f"x{t}" for t in range(len(spikes_r))] + [n for n, p in cell.named_parameters() if p.requires_grad]
    assert set(learnable) <= set(names)
    for name, a, b in zip(names, grads_f, grads_r):
        if b is None:                       # LM-H has t_m but does not use it
            assert name == "t_m" and a is None, name
            continue
        assert float(b.abs().max()) > 0, f"{name}: the reference gradient must not vanish"
        assert_close_scaled(a, b, what=f"grad/{name}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_step_equals_cell_step(case):
    assert_fused_equals_cell(make_cell(CASES[case]))


@pytest.mark.parametrize("loss_on", [("spike",), ("mem",)])
def test_fused_step_with_one_output_unused(loss_on):
    """Backward receives no gradient for one of (spike, membrane) at some steps."""
    cell = make_cell({})
    _, _, grads_r = run(cell, fused=False, loss_on=loss_on)
    _, _, grads_f = run(cell, fused=True, loss_on=loss_on)
    for a, b in zip(grads_f, grads_r):
        assert_close_scaled(a, b)


def test_float32_differs_from_the_cell_by_round_off_only():
    cell64 = make_cell({}, seed=3)
    cell32 = copy.deepcopy(cell64).float()
    _, mem64, grads64 = run(cell64, fused=False, steps=2)
    _, mem32, grads32 = run(cell32, fused=True, steps=2, dtype=torch.float32)
    # spikes may flip where u - threshold is within round-off of 0; compare where both agree
    assert_close_scaled(mem32.double(), mem64.detach(), atol=1e-4, rtol=1e-4, what="membrane")
    for a, b in zip(grads32[-9:], grads64[-9:]):     # parameter gradients
        assert_close_scaled(a.double(), b, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name,options,expected", [
    ("stclif", {}, True),
    ("stclif", {"circuit": "temporal"}, False),
    ("stclif", {"surrogate": "atan"}, True),
    ("stclif", {"surrogate": CustomSurrogate()}, True),     # a new surrogate that defines only its derivative
    ("stclif", {"surrogate": FusedBackwardSurrogate()}, False),
    ("stcplif", {}, True),
    ("stcplif", {"variant": "original"}, True),            # hard, detached reset and ATan surrogate
    ("stcplif", {"reset": "soft_detached"}, True),
    ("stclmh", {}, True),
    ("stclmh", {"variant": "original"}, True),             # triangle surrogate
    ("stclmh", {"circuit": "spatial"}, False),
    ("lif", {}, False),
])
def test_eligibility(name, options, expected):
    cell = create_cell(name, 8, 32, **options)
    assert fused_stc.eligible(cell) is expected
    runner = LayerRunner(cell, recompute=True, channels_last=True)
    assert (runner.fused_step is not None) is expected


def test_not_used_under_cpu_autocast():
    cell = create_cell("stclif", 8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_stc.eligible(cell)


@pytest.mark.parametrize("name,function", [("stclif", "_FusedStep"), ("stclmh", "_FusedLMHStep")])
def test_fast_path_uses_the_fused_step_and_matches_the_reference_loop(name, function):
    torch.manual_seed(0)
    ref = RecurrentPredictor(name, 1, (32, 32), patch_size=2, in_frames=3, fast=False).double()
    fast = RecurrentPredictor(name, 1, (32, 32), patch_size=2, in_frames=3, fast=True).double()
    fast.load_state_dict(ref.state_dict())
    calls = []
    fused = getattr(fused_stc, function)
    original = fused.forward

    def counting(ctx, *args):
        calls.append(1)
        return original(ctx, *args)

    frames = torch.rand(2, 6, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    outs = []
    for model in (ref, fast):
        fused.forward = staticmethod(counting)
        try:
            out = model(frames)
            model.loss(out, frames).backward()
        finally:
            fused.forward = staticmethod(original)
        outs.append((out, {n: p.grad for n, p in model.named_parameters()}))
    assert len(calls) == 2 * 5              # 2 layers x 5 steps, fast model only
    assert_close_scaled(outs[1][0], outs[0][0].detach())
    for name, grad in outs[0][1].items():
        if grad is None:                    # LM-H's unused t_m
            assert outs[1][1][name] is None, name
            continue
        assert_close_scaled(outs[1][1][name], grad, what=name)


PLIF_CASES = {
    "stcplif": ("stcplif", {}),
    "stcplif_raw_gain": ("stcplif", {"plif_gain": "raw_one_minus_w", "gradient_detach": 0}),
    "stc_plif_reference": ("stc_plif", {}),
    "stcplif_original": ("stcplif", {"variant": "original"}),        # hard detached reset, ATan surrogate
    "stcplif_soft_detached": ("stcplif", {"reset": "soft_detached", "threshold": 0.7}),
}


@pytest.mark.parametrize("case", sorted(PLIF_CASES))
def test_fused_step_equals_cell_step_for_stc_plif(case):
    """STC-PLIF: the learnable decay and gain sigma(w), 1 - sigma(w) (or the raw 1 - w) of Eq. (22)."""
    assert_fused_equals_cell(perturbed_cell(*PLIF_CASES[case]), learnable=("t_m",))


LMH_CASES = {
    "stclmh": ("stclmh", {}),
    "reset_not_detached": ("stclmh", {"stc_lmh_reset_detach": False, "gradient_detach": 0}),
    "threshold_and_strict": ("stclmh", {"threshold": 0.7, "surrogate": {"name": "sigmoid", "alpha": 3.0,
                                                                         "strict": True}}),
    "original_with_sigmoid": ("stclmh", {"variant": "original", "surrogate": "sigmoid4"}),   # h_0 = theta / 2
    "original": ("stclmh", {"variant": "original"}),                  # triangle surrogate
    "stc_lmh_wrapper": ("stc_lmh", {"circuit_groups": 4}),
}


@pytest.mark.parametrize("case", sorted(LMH_CASES))
def test_fused_step_equals_cell_step_for_stc_lmh(case):
    """STC-LM-H: dendrite and soma with the four learnable coefficients, spikes of amplitude theta."""
    assert_fused_equals_cell(perturbed_cell(*LMH_CASES[case], scale=0.3), learnable=("d_u", "s_u", "d_p", "s_p"),
                             steps=5, loss_on=("spike", "mem", "dend"))


@pytest.mark.parametrize("loss_on", [("spike",), ("mem",), ("dend",)])
def test_fused_lmh_step_with_outputs_unused(loss_on):
    cell = perturbed_cell("stclmh", {}, scale=0.3, seed=1)
    _, _, grads_r = run(cell, fused=False, loss_on=loss_on)
    _, _, grads_f = run(cell, fused=True, loss_on=loss_on)
    for a, b in zip(grads_f, grads_r):
        assert (a is None) == (b is None)
        if b is not None:
            assert_close_scaled(a, b)


class DeclaredLIF(LIF):
    """A user's neuron outside the package: its own charge, declared in the fused form (c_h = 0.7, c_i = 0.3)."""

    def charge(self, current, history):
        return 0.7 * history + 0.3 * current

    def fused_neuron(self):
        return fused_neuron(self, 1, (0.7, 0.3), "soft")


class UndeclaredLIF(LIF):
    """The same neuron without the declaration: its inherited one must refuse (charge is not LIF's)."""

    def charge(self, current, history):
        return 0.7 * history + 0.3 * current


def test_a_new_cell_that_declares_its_fused_form_is_fused_and_matches_its_own_step():
    torch.manual_seed(0)
    cell = stc_class(DeclaredLIF)(8, 32).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.2 * torch.randn_like(p))
    assert LayerRunner(cell, recompute=True, channels_last=True).fused_step is not None
    assert_fused_equals_cell(cell)


def test_a_new_cell_without_the_declaration_is_not_fused():
    cell = stc_class(UndeclaredLIF)(8, 32)
    assert cell.fused_step_spec() is not None          # the gates alone may still be fused
    assert not fused_stc.eligible(cell)
    assert LayerRunner(cell, recompute=True, channels_last=True).fused_step is None


def test_warm_up_runs_the_eligible_cells_it_is_given_and_leaves_them_untouched():
    """The kernels are warmed up on copies of the caller's cells (the kernels know no cell by name); a cell that is
    not eligible (LIF) is skipped."""
    cells = [create_cell("stclif", 4, 32), create_cell("stclmh", 4, 16), create_cell("lif", 4, 16)]
    before = [copy.deepcopy(cell.state_dict()) for cell in cells]
    fused_stc.warm_up(cells, torch.float64)
    for cell, state in zip(cells, before):
        assert all(p.grad is None for p in cell.parameters())
        assert all(torch.equal(state[k], v) for k, v in cell.state_dict().items())
        assert next(cell.parameters()).dtype == torch.float32
