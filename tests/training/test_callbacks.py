"""Progress-bar throttling and the epoch timer (the pieces that keep the GPU step loop free of host syncs)."""
from types import SimpleNamespace

import torch

from stcbench.engine.callbacks import ThrottledMetrics
from stcbench.training.module import gradient_norms


class CountingBar:
    """Stands in for Lightning's bar: every get_metrics is one read-back of the logged values."""

    def __init__(self):
        self.reads = 0

    def get_metrics(self, trainer, pl_module):
        self.reads += 1
        return {"v_num": 0}


class Bar(ThrottledMetrics, CountingBar):
    pass


def _trainer(step, loss=0.5, training=True):
    return SimpleNamespace(global_step=step, training=training,
                           callback_metrics={"train/loss_step": torch.tensor(loss)})


def test_metrics_are_read_every_n_steps_on_accelerators():
    bar, gpu = Bar(metrics_every=10), SimpleNamespace(device=torch.device("cuda"))
    shown = [bar.get_metrics(_trainer(step, loss=float(step)), gpu) for step in range(25)]
    assert bar.reads == 3                                   # steps 0, 10, 20
    assert [s["train/loss_step"] for s in shown[:12]] == [0.0] * 10 + [10.0] * 2
    bar.get_metrics(_trainer(3), gpu)                       # a new epoch or a resumed run: step went back
    assert bar.reads == 4


def test_metrics_are_read_every_step_on_the_cpu_and_outside_training():
    bar = Bar(metrics_every=10)
    cpu, gpu = SimpleNamespace(device=torch.device("cpu")), SimpleNamespace(device=torch.device("cuda"))
    for step in range(5):
        bar.get_metrics(_trainer(step), cpu)
    bar.get_metrics(_trainer(5, training=False), gpu)
    assert bar.reads == 6


def test_gradient_norms_per_layer_and_total():
    net = torch.nn.Module()
    net.cell_list = torch.nn.ModuleList([torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)])
    net.conv_last = torch.nn.Linear(2, 1, bias=False)
    net.conv_last(net.cell_list[1](net.cell_list[0](torch.randn(4, 3)))).sum().backward()
    norms = gradient_norms(net)

    def norm(params):
        return float(torch.sqrt(sum(p.grad.double().pow(2).sum() for p in params)))
    assert abs(norms["cell_list.0"] - norm(net.cell_list[0].parameters())) < 1e-12
    assert abs(norms["conv_last"] - norm(net.conv_last.parameters())) < 1e-12
    assert abs(norms["total"] - norm(net.parameters())) < 1e-12
