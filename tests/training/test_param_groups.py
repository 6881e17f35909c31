"""Optimizer parameter groups from the cells' `param_group_overrides()` (cells.md §3, §5):
GLIF original puts its gates on lr/10 and excludes every GLIF parameter from weight decay."""
import math

import pytest
import torch

from stcbench.training.module import VideoPredictionModule
from stcbench.engine.param_groups import parameter_groups, set_learning_rate
from tests.training.helpers import tiny_config

GATES = ("alpha", "beta", "gamma")
GLIF_OTHERS = ("tau", "Vth", "leak", "reVth", "conduct")


def module_for(tmp_path, cell="glif", weight_decay=1e-4, **cell_options):
    config = tiny_config(tmp_path, tmp_path, model={"cell": cell, "num_hidden": [16, 16], "cell_options": cell_options},
                         optim={"weight_decay": weight_decay, "lr": 2e-3, "warmup_epochs": 0})
    return VideoPredictionModule(config)


def assert_every_parameter_once(module, optimizer):
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(set(grouped)) == len(list(module.parameters()))
    assert set(grouped) == {id(p) for p in module.parameters()}


def test_glif_original_optimizer_groups(tmp_path):
    module = module_for(tmp_path, variant="original")
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert_every_parameter_once(module, optimizer)
    lr0 = module.lr_at(0)
    by_name = {name: group for group in optimizer.param_groups for name in group["names"]}
    for layer in (0, 1):
        prefix = f"net.cell_list.{layer}."
        for gate in GATES:
            group = by_name[f"{prefix}glif.{gate}"]
            assert group["lr"] == pytest.approx(0.1 * lr0) and group["weight_decay"] == 0.0
        for name in GLIF_OTHERS:
            group = by_name[f"{prefix}glif.{name}"]
            assert group["lr"] == pytest.approx(lr0) and group["weight_decay"] == 0.0
        for name in ("conv_x.0.weight", "conv_x.1.weight", "conv_x.1.bias"):
            group = by_name[prefix + name]
            assert group["lr"] == pytest.approx(lr0) and group["weight_decay"] == 1e-4
    assert by_name["net.conv_last.weight"]["weight_decay"] == 1e-4
    assert sorted((g["lr_scale"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups) == [
        (0.1, 0.0, 6), (1.0, 0.0, 10), (1.0, 1e-4, 7)]
    # the per-epoch schedule keeps the scale
    set_learning_rate(optimizer, 1e-3)
    assert {g["lr_scale"]: g["lr"] for g in optimizer.param_groups} == {0.1: pytest.approx(1e-4), 1.0: 1e-3}


def test_gate_scale_is_a_cell_option_and_reference_has_one_group(tmp_path):
    reference = module_for(tmp_path)
    optimizer = reference.configure_optimizers()
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["weight_decay"] == 1e-4
    assert_every_parameter_once(reference, optimizer)
    scaled = module_for(tmp_path, glif_gate_lr_scale=0.5).configure_optimizers()
    assert sorted((g["lr_scale"], len(g["params"])) for g in scaled.param_groups) == [(0.5, 6), (1.0, 17)]


def test_lmh_without_neuron_weight_decay(tmp_path):
    module = module_for(tmp_path, cell="lmh", neuron_weight_decay=False)
    optimizer = module.configure_optimizers()
    assert_every_parameter_once(module, optimizer)
    no_decay = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    assert len(no_decay) == 1 and sorted(n.rsplit(".", 1)[1] for n in no_decay[0]["names"]) == sorted(
        ["d_p", "d_u", "s_p", "s_u", "t_m"] * 2)


def test_shared_parameters_are_grouped_once():
    linear = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(linear, linear)
    groups = parameter_groups(model, 1e-3, 0.0)
    assert len(groups) == 1 and len(groups[0]["params"]) == 2
    assert math.isclose(groups[0]["lr"], 1e-3)


def test_glif_original_gets_the_number_of_network_steps(tmp_path):
    """T_c = T_in + T_out - 1 = 19 on Moving MNIST, filled in by the predictor builder."""
    module = module_for(tmp_path, variant="original")
    assert all(cell.glif.conduct.shape == (19, 16) for cell in module.net.cell_list)
