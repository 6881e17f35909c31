"""Optimizer parameter groups from the cells' `param_group_overrides()` hints.

A cell may ask for a different learning rate (`lr_scale`) or no weight decay
(`weight_decay: False`) for some of its parameters, e.g. the GLIF original recipe (gates on
lr/10, no weight decay on GLIF parameters) or LM-H `neuron_weight_decay=False`.  Every
parameter of the model lands in exactly one group; parameters without hints share the
default group (`lr_scale` 1, the configured weight decay), which comes first.  Each group
keeps its `lr_scale`, so a learning-rate schedule sets `lr = schedule(epoch) * lr_scale`.
"""
from __future__ import annotations

from torch import nn

DEFAULT_HINT = (1.0, True)        # (lr_scale, weight decay applies)


def parameter_hints(model: nn.Module) -> dict[str, tuple[float, bool]]:
    """Full parameter name -> (lr_scale, weight decay applies), for the hinted parameters."""
    hints = {}
    for prefix, module in model.named_modules():
        overrides = getattr(module, "param_group_overrides", None)
        if not callable(overrides):
            continue
        for name, hint in overrides().items():
            full = f"{prefix}.{name}" if prefix else name
            hints[full] = (float(hint.get("lr_scale", 1.0)), bool(hint.get("weight_decay", True)))
    return hints


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """torch.optim parameter groups: `params`, `lr` (= lr * lr_scale), `lr_scale`,
    `weight_decay` (the configured value, or 0 where a cell excludes it) and `names`."""
    hints = parameter_hints(model)
    groups: dict[tuple[float, bool], dict] = {DEFAULT_HINT: {"params": [], "names": []}}
    for name, param in model.named_parameters():
        group = groups.setdefault(hints.get(name, DEFAULT_HINT), {"params": [], "names": []})
        group["params"].append(param)
        group["names"].append(name)
    return [dict(group, lr=lr * scale, lr_scale=scale, weight_decay=weight_decay if decays else 0.0)
            for (scale, decays), group in groups.items() if group["params"]]


def set_learning_rate(optimizer, lr: float) -> None:
    """`lr` times each group's `lr_scale` (1 for groups without one)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def set_momentum(optimizer, momentum: float) -> None:
    """Adam/AdamW beta1, or SGD momentum, of every group."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (momentum, *group["betas"][1:])
        elif "momentum" in group:
            group["momentum"] = momentum
