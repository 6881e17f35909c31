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


# ------------------------------------------------------------------ onecycle (OpenSTL's default schedule)
def torch_one_cycle(total_steps, lr, **kwargs):
    """Per step (lr, beta1) of torch's OneCycleLR on Adam, stepped after every optimizer step as OpenSTL does."""
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, **kwargs)
    values = []
    for step in range(total_steps):
        values.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))
        optimizer.step()
        if step < total_steps - 1:
            scheduler.step()
    return values


@pytest.mark.parametrize("total, kwargs", [(100, {"final_div_factor": 1e4}), (7, {}), (3, {"final_div_factor": 1e4}),
                                           (50, {"pct_start": 0.1, "div_factor": 10.0, "final_div_factor": 100.0})])
def test_one_cycle_equals_torch_one_cycle_lr(total, kwargs):
    from stcbench.training.schedule import one_cycle

    ours = [one_cycle(k, lr=5e-4, total_steps=total, **kwargs) for k in range(total)]
    for (lr, beta1), (ref_lr, ref_beta1) in zip(ours, torch_one_cycle(total, 5e-4, **kwargs)):
        assert lr == pytest.approx(ref_lr, rel=1e-12, abs=1e-20) and beta1 == pytest.approx(ref_beta1, rel=1e-12)
    assert one_cycle(total + 5, lr=5e-4, total_steps=total, **kwargs) == ours[-1]


def test_one_cycle_known_values():
    from stcbench.training.schedule import one_cycle

    assert one_cycle(0, lr=5e-4, total_steps=100) == pytest.approx((5e-4 / 25, 0.95))
    assert one_cycle(29, lr=5e-4, total_steps=100) == pytest.approx((5e-4, 0.85))        # 0.3 * 100 - 1
    assert one_cycle(99, lr=5e-4, total_steps=100) == pytest.approx((5e-4 / 25 / 1e4, 0.95))


def test_training_sets_one_cycle_lr_and_beta1_every_step(tmp_path):
    """A run with optim.schedule onecycle uses, at each optimizer step, torch's OneCycleLR values over all
    max_epochs x batches steps (OpenSTL's sched='onecycle')."""
    import lightning as L
    import torch

    from stcbench.training.config import resolve_config
    from stcbench.training.module import VideoPredictionModule
    from tests.training.helpers import tiny_config

    config = tiny_config(tmp_path, tmp_path, model={"cell": "convlstm", "num_hidden": [16], "filter_size": 3},
                         data={"dataset": "taxibj"}, optim={"schedule": "onecycle", "lr": 5e-4})
    module = VideoPredictionModule(resolve_config(config).to_dict())
    seen = []

    class Record(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))

    frames = torch.rand(6, 8, 2, 32, 32)
    loader = torch.utils.data.DataLoader(frames, batch_size=2)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()])
    trainer.fit(module, loader)
    expected = torch_one_cycle(6, 5e-4, final_div_factor=1e4)
    assert len(seen) == 6
    for (lr, beta1), (ref_lr, ref_beta1) in zip(seen, expected):
        assert lr == pytest.approx(ref_lr, rel=1e-12) and beta1 == pytest.approx(ref_beta1, rel=1e-12)


def test_one_cycle_options_are_checked():
    from stcbench.errors import ConfigError
    from stcbench.training.config import resolve_config

    assert resolve_config({"optim": {"schedule": "onecycle"}}).optim.onecycle_final_div_factor == 1e4
    with pytest.raises(ConfigError, match="onecycle_pct_start"):
        resolve_config({"optim": {"schedule": "onecycle", "onecycle_pct_start": 1.5}})
    with pytest.raises(ConfigError, match="optim.schedule must be one of"):
        resolve_config({"optim": {"schedule": "one-cycle"}})
