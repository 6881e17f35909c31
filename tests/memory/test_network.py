import numpy as np
import pytest
import torch
from torch import nn

from stcbench.cells import list_cells
from stcbench.errors import ConfigError
from stcbench.memory.analysis import gradient_through_time, plot_gradient_through_time
from stcbench.memory.network import MemoryNet
from stcbench.memory.tasks import make_adding, make_copy, task_spec

SPIKING = [info.name for info in list_cells() if info.spiking]


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("cell", SPIKING)
def test_network_shapes_for_every_spiking_cell(cell, recurrent):
    torch.manual_seed(0)
    net = MemoryNet(cell, 3, [16, 32], 5, steps=6, recurrent=recurrent, readout="per_step")
    out, layers = net(torch.rand(2, 6, 3), return_layers=True)
    assert out.shape == (2, 6, 5)
    assert [tuple(layer.shape) for layer in layers] == [(6, 2, 16), (6, 2, 32)]
    assert torch.all((layers[-1] == 0) | (layers[-1] == 1))             # spikes are binary
    out.sum().backward()
    assert net.readout.weight.grad is not None
    assert (net.recurrent is not None) == recurrent


@pytest.mark.parametrize("readout, shape", [("mean", (2, 4)), ("last", (2, 4)), ("integrator", (2, 4)),
                                            ("per_step", (2, 7, 4))])
def test_readouts(readout, shape):
    torch.manual_seed(0)
    net = MemoryNet("lif", 2, [16], 4, steps=7, readout=readout, readout_decay=0.5)
    x = torch.rand(2, 7, 2)
    out = net(x)
    assert out.shape == shape
    per_step = net.readout(net.run_layers(x)[0][-1])          # [T, B, out]
    expected = {"mean": per_step.mean(0), "last": per_step[-1], "per_step": per_step.transpose(0, 1)}
    if readout == "integrator":
        m = torch.zeros_like(per_step[0])
        for y in per_step:
            m = 0.5 * m + 0.5 * y
        expected[readout] = m
    torch.testing.assert_close(out, expected[readout])


def test_celif_gets_sequence_length_and_norm_option():
    net = MemoryNet("celif", 2, [16, 16], 1, steps=9, synapse_norm=False)
    assert all(cell.te.shape == (9, 16) for cell in net.cells)
    assert all(len(cell.conv_x) == 1 for cell in net.cells)              # plain linear synapse


@pytest.mark.parametrize("norm, expected", [(None, nn.LayerNorm), ("layer", nn.LayerNorm), ("group", nn.GroupNorm),
                                            (True, nn.GroupNorm), ("none", None), (False, None)])
def test_synapse_norm_choices(norm, expected):
    """Default LayerNorm over channels; True is the former default GroupNorm(16) (stored configs)."""
    kwargs = {} if norm is None else {"synapse_norm": norm}
    net = MemoryNet("lif", 2, [32, 64], 1, steps=4, **kwargs)
    for cell in net.cells:
        assert (len(cell.conv_x) == 1) if expected is None else isinstance(cell.conv_x[1], expected)


def test_groupnorm_on_16_neurons_is_refused():
    with pytest.raises(ConfigError, match="normalises each channel by itself"):
        MemoryNet("lif", 2, [16], 1, steps=4, synapse_norm="group")
    with pytest.raises(ConfigError, match="synapse_norm must be one of"):
        MemoryNet("lif", 2, [16], 1, steps=4, synapse_norm="batch")
    assert MemoryNet("celif", 2, [16], 1, steps=9, cell_options={"te_steps": 3}).cells[0].te.shape == (3, 16)


def test_non_spiking_cell_and_bad_options():
    net = MemoryNet("convlstm", 2, [16], 1, steps=5, readout="last")
    assert net(torch.rand(3, 5, 2)).shape == (3, 1)
    with pytest.raises(ConfigError, match="recurrent by construction"):
        MemoryNet("convlstm", 2, [16], 1, steps=5, recurrent=True)
    with pytest.raises(ConfigError, match="readout"):
        MemoryNet("lif", 2, [16], 1, steps=5, readout="max")
    with pytest.raises(ConfigError, match="unknown cell"):
        MemoryNet("hodgkin", 2, [16], 1, steps=5)


def test_gradient_through_time_shapes_and_normalisation(tmp_path):
    torch.manual_seed(0)
    T = 6
    spec = task_spec("copy", T)
    net = MemoryNet("celif", spec.in_features, [16, 32], spec.out_features, steps=spec.steps, readout="per_step")
    x, y = make_copy(8, T, seed=0)
    result = gradient_through_time(net, spec, x, y)
    assert result["grad"].shape == (T + 20, 32) and result["per_step"].shape == (T + 20,)
    assert result["norm"].shape == (T + 20,)
    assert result["grad"].sum() == pytest.approx(1.0) and (result["grad"] >= 0).all()
    # the total derivative includes the readout path: compare the last step with a direct computation
    layers, steps = net.run_layers(x, keep_top=True)
    from stcbench.memory.module import task_loss

    (g_last,) = torch.autograd.grad(task_loss(spec, net.read(layers[-1]), y), [steps[-1]])
    assert result["norm"][-1] == pytest.approx(float(g_last.norm()), rel=1e-5)
    inputs = gradient_through_time(net, spec, x, y, wrt="input")
    assert inputs["grad"].shape == (T + 20, spec.in_features)
    png = plot_gradient_through_time({"celif": result, "input": inputs}, tmp_path / "g.png")
    assert png.stat().st_size > 1000


def test_gradient_through_time_follows_the_layer_through_its_later_steps():
    """With the readout on the last step only, earlier spikes reach the loss only through the layer's own
    later steps (the soft reset, the membrane): the analysis must see that path, as a direct step-by-step
    computation does, whichever path (fast or step by step) the network trains with."""
    torch.manual_seed(0)
    spec = task_spec("adding", 12)
    net = MemoryNet("lif", spec.in_features, [16, 16], spec.out_features, steps=spec.steps, readout="last")
    net.double()
    x, y = make_adding(16, 12, seed=0)
    x, y = x.double(), y.double()
    result = gradient_through_time(net, spec, x, y)
    assert result["per_step"][:-1].sum() > 0.01
    layers, steps = net.run_layers_stepwise(x, keep_top=True)
    from stcbench.memory.module import task_loss

    direct = torch.autograd.grad(task_loss(spec, net.read(layers[-1]), y), steps)
    np.testing.assert_allclose(result["norm"], [float(g.norm()) for g in direct], rtol=1e-10)


def test_adding_windows_and_the_memory_span_probe():
    from stcbench.memory.analysis import adding_memory_span

    x, y = make_adding(64, 20, seed=3, window=(5, 10))
    marked = x[..., 1].nonzero()[:, 1].view(64, 2)
    assert ((marked >= 5) & (marked < 10)).all()
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(1))
    unconstrained, _ = make_adding(64, 20, seed=3)
    torch.testing.assert_close(make_adding(64, 20, seed=3, window=(0, 20))[0], unconstrained)
    with pytest.raises(ConfigError, match="must hold two steps"):
        make_adding(4, 20, seed=0, window=(19, 20))

    class LastValue(nn.Module):
        """Remembers only the last step: predicts 0.5 + (the last value if it is marked, else 0.5)."""

        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            last = x[:, -1]
            return (0.5 + torch.where(last[:, 1] > 0, last[:, 0], torch.full_like(last[:, 0], 0.5)))[:, None]

    span = adding_memory_span(LastValue(), task_spec("adding", 20), seed=0, samples=4000)
    assert span["windows"] == [[0, 5], [5, 10], [10, 15], [15, 20]]
    early, last = span["loss_share"][0], span["loss_share"][-1]
    assert abs(early - 1.0) < 0.08                    # memoryless there: the baseline
    assert last < early - 0.05                        # a marked last step (2 of 5 windows' steps) is known
