"""Gradient through time (TC-LIF Fig. 4, CE-LIF Fig. 6).

`gradient_through_time(net, spec, x, y)` back-propagates the task loss of one batch and
records Grad(t, n) = sum over the batch of |dL/dS^L[t]_n|, the total derivative of the loss
with respect to the last hidden layer's output at step t (through the readout and through
the layer's own later steps), normalised as the papers do by the sum over all t and n.
With `wrt="input"` it records |dL/dx_t| of the network input instead.

It runs the network step by step (`run_layers_stepwise`): the fast path scans a layer over all
steps in one kernel, so the per-step output tensors it hands back reach the loss only through the
readout, and their gradient would miss every path through the layer's later steps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stcbench.atomic import save_figure
from stcbench.memory.module import task_loss
from stcbench.memory.tasks import TaskSpec


def gradient_through_time(net, spec: TaskSpec, x: torch.Tensor, y: torch.Tensor, wrt: str = "hidden") -> dict:
    """Returns {"grad": [T, N] normalised Grad(t, n), "per_step": [T] sums over n (total 1),
    "norm": [T] L2 norm of dL/dh_t over batch and neurons, "wrt": ...}."""
    if wrt not in ("hidden", "input"):
        raise ValueError(f"wrt must be 'hidden' or 'input', got {wrt!r}")
    was_training = net.training
    net.eval()
    x = x.detach().clone().requires_grad_(wrt == "input")
    with torch.enable_grad():
        layers, top_steps = net.run_layers_stepwise(x, keep_top=True)
        loss = task_loss(spec, net.read(layers[-1]), y)
        targets = [x] if wrt == "input" else top_steps
        grads = torch.autograd.grad(loss, targets, allow_unused=True)
    net.train(was_training)
    if wrt == "input":
        per_time = grads[0].transpose(0, 1)                      # [T, B, F]
    else:
        per_time = torch.stack([g if g is not None else torch.zeros_like(s) for g, s in zip(grads, top_steps)])
    magnitude = per_time.abs().sum(1).double()                  # [T, N]
    total = magnitude.sum()
    normalised = magnitude / total if total > 0 else magnitude
    return {
        "grad": normalised.cpu().numpy(),
        "per_step": normalised.sum(1).cpu().numpy(),
        "norm": per_time.double().flatten(1).norm(dim=1).cpu().numpy(),
        "wrt": wrt,
        "loss": float(loss.detach()),
    }


SPAN_PARTS = 4
SPAN_SEED_OFFSET = 2 ** 40       # above every split's seed stream (3 * seed + 0, 1, 2, seed < 2^32)


def adding_memory_span(net, spec: TaskSpec, seed: int, samples: int = 1024, parts: int = SPAN_PARTS) -> dict:
    """How far back a trained adding network remembers, by its forward pass alone: the loss over the
    memoryless baseline (1/6) on sequences whose two marked steps both fall in the k-th of `parts` equal
    windows of the sequence. A network that keeps only recent inputs is near 1 in the early windows; one
    that remembers the whole sequence is as low in the first window as in the last."""
    from stcbench.memory.tasks import make_adding

    length = spec.steps
    edges = [round(k * length / parts) for k in range(parts + 1)]
    was_training = net.training
    net.eval()
    shares = []
    with torch.no_grad():
        for index, window in enumerate(zip(edges[:-1], edges[1:])):
            x, y = make_adding(samples, length, SPAN_SEED_OFFSET + 16 * seed + index, window=window)
            parameter = next(net.parameters())
            out = net(x.to(parameter.device, parameter.dtype)).squeeze(-1)
            shares.append(float(((out - y.to(out)) ** 2).mean()) / spec.baseline)
    net.train(was_training)
    return {"windows": [list(w) for w in zip(edges[:-1], edges[1:])], "loss_share": shares, "samples": samples}


def plot_gradient_through_time(results: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """One row per model: heat map of Grad(t, n) (neurons x time) and the per-step norm on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 2.2 * len(names) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for row, name in enumerate(names):
        grad = results[name]["grad"]
        heat = axes[row, 0].imshow(grad.T, aspect="auto", origin="lower", cmap="viridis",
                                   interpolation="nearest")
        axes[row, 0].set_ylabel(f"{name}\nneuron")
        fig.colorbar(heat, ax=axes[row, 0], fraction=0.03)
        norm = np.maximum(results[name]["norm"], 1e-30)
        axes[row, 1].semilogy(np.arange(len(norm)), norm)
        axes[row, 1].set_ylabel("||dL/dx_t||" if results[name].get("wrt") == "input" else "||dL/dS_t||")
    axes[-1, 0].set_xlabel("time step t")
    axes[-1, 1].set_xlabel("time step t")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return save_figure(fig, path, dpi=90)
    finally:
        plt.close(fig)
