"""Contract every registered cell must satisfy (parametrized over the registry, so a newly
registered neuron is tested automatically), plus `stc_<cell>` for every circuit-compatible
cell, on both synapse kinds."""
import inspect

import pytest
import torch

from stcbench.cells import create_cell, get_cell_info, list_cells, stc
from stcbench.errors import ConfigError

T, B, C_IN, C, HW = 4, 2, 3, 16, 5
# GroupNorm(16) on a vector [B, C] normalises C/16 values per group: with C = 16 every group
# is a single value and the synapse output is exactly GN beta, so vectors use 64 channels.
C_LINEAR = 64


def hidden(synapse):
    return C if synapse == "conv" else C_LINEAR


def compatible_bases():
    out = []
    for info in list_cells():
        try:
            stc.is_stc_name(f"stc{info.name}")
        except ConfigError:
            continue
        out.append(info.name)
    return out


def all_names():
    registered = [i.name for i in list_cells()]
    combos = [f"stc_{n}" for n in compatible_bases() if f"stc{n}" not in registered]
    return registered + combos


CASES = [(name, variant, synapse) for name in all_names()
         for variant in get_cell_info(name).variants for synapse in ("conv", "linear")]
IDS = [f"{n}-{v}-{s}" for n, v, s in CASES]


def make(name, variant="reference", synapse="conv", seed=0, **options):
    torch.manual_seed(seed)
    return create_cell(name, C_IN, hidden(synapse), kernel_size=3, synapse=synapse, variant=variant,
                       **options).double()


def inputs(synapse, seed=1, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    shape = (T, B, C_IN) + ((HW, HW) if synapse == "conv" else ())
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def step_loop(cell, x_seq):
    state, outs, states = None, [], []
    for t in range(x_seq.shape[0]):
        out, state = cell(x_seq[t], state, t)
        outs.append(out)
        states.append(state)
    return torch.stack(outs), states


@pytest.mark.parametrize("name, variant, synapse", CASES, ids=IDS)
def test_shapes_states_and_multi_step(name, variant, synapse):
    cell = make(name, variant, synapse)
    x = inputs(synapse)
    spatial = (HW, HW) if synapse == "conv" else ()
    loop_out, loop_states = step_loop(cell, x)
    assert loop_out.shape == (T, B, hidden(synapse), *spatial)
    assert len(loop_states[-1]) == len(cell.state_names)
    for value in loop_states[-1]:
        assert value.shape == (B, hidden(synapse), *spatial)
        assert value.dtype == torch.float64
    seq_out, final = cell.multi_step(x)
    assert torch.equal(seq_out, loop_out)
    for a, b in zip(final, loop_states[-1]):
        assert torch.equal(a, b)
    # an explicit initial state is the same as None
    explicit = cell.initial_state(B, spatial, dtype=torch.float64)
    out0, _ = cell(x[0], explicit, 0)
    assert torch.equal(out0, loop_out[0])
    # multi_step continues from a given state and time offset exactly like the loop
    half_out, half_state = cell.multi_step(x[:2])
    rest_out, _ = cell.multi_step(x[2:], half_state, t0=2)
    assert torch.equal(torch.cat([half_out, rest_out]), loop_out)
    if cell.spiking:
        assert set(torch.unique(loop_out).tolist()) <= {0.0, 1.0} or getattr(cell, "threshold", 1.0) != 1.0


@pytest.mark.parametrize("name, variant, synapse", CASES, ids=IDS)
def test_gradients_reach_every_learning_parameter(name, variant, synapse):
    cell = make(name, variant, synapse)
    x = inputs(synapse).requires_grad_(True)
    _, states = step_loop(cell, x)
    g = torch.Generator().manual_seed(3)
    loss = sum((value * torch.randn(value.shape, generator=g, dtype=value.dtype)).sum()
               for state in states for value in state)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    no_grad = set(cell.no_grad_parameters())
    names = {n for n, _ in cell.named_parameters()}
    assert no_grad <= names, f"no_grad_parameters names unknown parameters: {no_grad - names}"
    for pname, p in cell.named_parameters():
        got = p.grad is not None and bool(p.grad.abs().sum() > 0)
        if pname in no_grad:
            assert not got, f"{pname} is declared without gradient but got one"
        else:
            assert got, f"{name}: parameter {pname} gets no gradient"
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", all_names())
def test_deterministic_construction_and_forward(name):
    a, b = make(name, seed=5), make(name, seed=5)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = inputs("conv")
    assert torch.equal(a.multi_step(x)[0], b.multi_step(x)[0])
    assert torch.equal(a.multi_step(x)[0], a.multi_step(x)[0])


@pytest.mark.parametrize("name", all_names())
def test_channels_not_multiple_of_16_raise(name):
    with pytest.raises(ConfigError, match="multiple of 16"):
        create_cell(name, C_IN, 24)


@pytest.mark.parametrize("name", all_names())
def test_unknown_option_and_variant_raise(name):
    with pytest.raises(ConfigError, match="does not take"):
        create_cell(name, C_IN, C, no_such_option=1)
    with pytest.raises(ConfigError, match="variant"):
        create_cell(name, C_IN, C, variant="no_such_variant")


@pytest.mark.parametrize("info", list_cells(), ids=lambda i: i.name)
def test_registry_entry_is_documented(info):
    assert info.description, f"{info.name} needs a one-line description"
    assert info.source, f"{info.name} needs a source (paper / code)"
    assert "reference" in info.variants or info.variants
    for value in info.parameters().values():
        assert value is not inspect.Parameter.empty, "cell options must be keyword-only with defaults"


@pytest.mark.parametrize("name", compatible_bases())
def test_circuit_at_init_is_the_identity_on_the_first_step(name):
    """At t = 0 the circuit input is zero, so with GN beta = 0 both gates are exactly 1 and
    stc_<cell> equals <cell> on the first step (cells.md §14)."""
    base = make(name)
    wrapped = stc.stc_class(type(base))(C_IN, C, kernel_size=3).double()
    wrapped.load_state_dict(base.state_dict(), strict=False)
    x = inputs("conv")
    a, b = wrapped.gates(torch.zeros(B, C, HW, HW, dtype=torch.float64))
    assert torch.equal(a, torch.ones_like(a)) and torch.equal(b, torch.ones_like(b))
    _, s_base = base(x[0], None, 0)
    _, s_wrap = wrapped(x[0], None, 0)
    for u, v in zip(s_base, s_wrap):
        assert torch.equal(u, v)


@pytest.mark.parametrize("name,options,match", [
    ("lif", {"threshold": "abc"}, "threshold must be float, got 'abc'"),
    ("lif", {"threshold": True}, "threshold must be float"),
    ("stclif", {"gradient_detach": 0.5}, "gradient_detach must be int"),
    ("lmh", {"neuron_weight_decay": "yes"}, "neuron_weight_decay must be bool"),
    ("tclif", {"decay_init": 3}, "decay_init must be tuple"),
])
def test_option_values_of_the_wrong_type_are_config_errors(name, options, match):
    with pytest.raises(ConfigError, match=match):
        create_cell(name, 4, 16, **options)


@pytest.mark.parametrize("name", all_names())
def test_every_default_option_passes_the_type_check(name):
    from stcbench.cells.registry import check_option_types, get_cell_info

    info = get_cell_info(name)
    check_option_types(info, info.parameters())
    if "threshold" in info.parameters():
        assert create_cell(name, C_IN, C, threshold=1).threshold == 1       # an int is a float
