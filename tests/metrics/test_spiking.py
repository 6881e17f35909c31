import pytest
import torch

from stcbench.metrics import FiringRate, firing_rate


def test_firing_rate_of_tensor_and_step_list():
    spikes = (torch.rand(5, 3, 4, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    expected = spikes.double().sum().item() / spikes.numel()
    assert firing_rate(spikes) == pytest.approx(expected, rel=1e-15)
    assert firing_rate(list(spikes)) == pytest.approx(expected, rel=1e-15)
    metric = FiringRate()
    metric.update(spikes[:2])
    metric.update(spikes[2:])
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(ValueError):
        firing_rate([])
