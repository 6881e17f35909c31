"""Parameter and FLOP counts against the STC-LIF paper (Tables 7 and 11; cells.md §13).

The network has the official layout (3 x 256 conv cells, k=5, 1x1 readout; Moving MNIST
patch 2 -> 4 x 32 x 32 inputs, 19 steps, batch 1)."""
import pytest
import torch

from stcbench.reports.analysis import predict_call
from stcbench.reports.cost import count_flops, count_params
from stcbench.reports.published import STC_TABLES
from tests.reports.tiny_net import TinyPredictor

MMNIST_FRAMES = torch.zeros(1, 20, 4, 32, 32)


def paper_net(cell, **gate_options):
    return TinyPredictor((cell,) * 3, channels=4, hidden=256, in_frames=10, kernel=5, **gate_options)


def published(row, key):
    return STC_TABLES["7"].row(row).values[key]


@pytest.mark.parametrize("row, cell, options, params", [
    ("Vanilla LIF (Baseline)", "lif", {}, 3_304_960),
    ("STC-LIF", "gated", {}, 3_922_432),
    ("STC-LIF w/o TC", "gated", {"gates": ("v",)}, None),
    ("STC-LIF w/o SC", "gated", {"gates": ("h",)}, None),
])
def test_table7_params_and_flops(row, cell, options, params):
    net = paper_net(cell, **options)
    n_params = count_params(net)
    if params is not None:
        assert n_params == params                                  # cells.md §13, exact
    assert round(n_params / 1e6, 3) == published(row, "params")
    flops = count_flops(net, (MMNIST_FRAMES,), predict_call(10)).total
    assert round(flops / 1e9, 3) == published(row, "flops")


def test_lif_flops_exact_breakdown():
    flops = count_flops(paper_net("lif"), (MMNIST_FRAMES,), predict_call(10)).total
    per_position = 256 * 4 * 25 + 2 * 256 * 256 * 25 + 3 * 256 * 5 + 4 * 256   # convs, GroupNorms, readout
    assert flops == 19 * 32 * 32 * per_position == 64_346_128_384


def test_table11_global_convolution_params():
    net = paper_net("gated", groups=1)
    assert round(count_params(net) / 1e6, 3) == STC_TABLES["11"].row("STC-LIF, global convolution").values["params"]
