"""Learning-rate schedule values against the formula of network-and-training.md §2."""
import math

import pytest

from stcbench.training.schedule import learning_rate


def spec_lr(e, E=500, base=1e-3, warm=10, warm_lr=1e-5, min_lr=1e-5):
    if e < warm:
        return warm_lr + e * (base - warm_lr) / warm
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * e / E))


@pytest.mark.parametrize("epoch", [0, 1, 5, 9, 10, 11, 100, 250, 499])
def test_paper_schedule(epoch):
    assert learning_rate(epoch, lr=1e-3, max_epochs=500) == pytest.approx(spec_lr(epoch), rel=1e-12)


def test_known_values():
    assert learning_rate(0, lr=1e-3, max_epochs=200) == pytest.approx(1e-5)
    assert learning_rate(5, lr=1e-3, max_epochs=200) == pytest.approx(1e-5 + 5 * 9.9e-5)
    # not shifted by the warm-up: epoch 10 of 200 is cos(pi/20), not 1
    assert learning_rate(10, lr=1e-3, max_epochs=200) == pytest.approx(1e-5 + 0.5 * 9.9e-4 * (1 + math.cos(math.pi / 20)))
    assert learning_rate(100, lr=1e-3, max_epochs=200) == pytest.approx(1e-5 + 0.5 * 9.9e-4)
    assert learning_rate(200, lr=1e-3, max_epochs=200) == 1e-5
    assert learning_rate(3, lr=0.1, max_epochs=5, schedule="constant") == 0.1
