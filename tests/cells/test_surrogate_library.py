"""Our surrogate objects against spikingjelly's (the library the official code uses)."""
import pytest
import torch

from stcbench.cells.surrogate import ATan, Sigmoid

surrogate = pytest.importorskip("spikingjelly.clock_driven.surrogate")


@pytest.mark.parametrize("ours, theirs", [(Sigmoid(alpha=4.0), lambda: surrogate.Sigmoid(alpha=4.0)),
                                          (ATan(alpha=2.0), lambda: surrogate.ATan(alpha=2.0))])
def test_forward_and_gradient_equal_spikingjelly(ours, theirs):
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)   # includes x == 0 exactly (fires)
    x_ours = x.clone().requires_grad_(True)
    x_lib = x.clone().requires_grad_(True)
    y_ours, y_lib = ours(x_ours), theirs()(x_lib)
    assert torch.equal(y_ours, y_lib)
    y_ours.sum().backward()
    y_lib.sum().backward()
    torch.testing.assert_close(x_ours.grad, x_lib.grad, rtol=1e-12, atol=1e-15)
