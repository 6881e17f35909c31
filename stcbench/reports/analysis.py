"""Model-based analysis of a run or a network: cost report, firing rates, gates, gradients.

Everything is observed with forward hooks, so it works for any network built from
`RecurrentCell`s that steps its cells one time step at a time (the recurrent predictor):

* firing rate of a spiking cell = mean of its output spikes over batch, channels, space, steps
  (metrics.md §6);
* circuit gates of a spatio-temporal circuit cell: `A_t = 1 + tanh(conv_h(.))` and
  `B_t = 1 + tanh(conv_v(.))` (cells.md §6), read from the outputs of its `conv_h` / `conv_v`;
* ||dL/ds_t||: gradient of the loss on the **last** predicted frame with respect to each
  step's spikes of a layer (TC-LIF / CE-LIF style), via `retain_grad` on the cell outputs,
  in `forward(frames, mask=0)` (the test-mode rollout with gradients; `predict` has none).

The hooks need the reference loop of the predictor (`fast=False`, set temporarily): the fast
path batches the context convolutions and fuses the two gate convolutions.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stcbench.cells.base import RecurrentCell
from stcbench.checkpoints import load_checkpoint
from stcbench.errors import StcbenchError
from stcbench.models.hooks import ForwardHooks
from stcbench.models.cost import (count_flops, count_params, count_synaptic_ops, energy_pj, predict_call,
                                  reference_path)
from stcbench.atomic import write_text as atomic_write_text
from stcbench.reports.runs import Run, finished_timestamp
from stcbench.strict_json import dumps, restore_non_finite
from stcbench.engine.run_paths import resolve_in_run
from stcbench.record_io import read_text

GATE_MODULES = {"conv_h": "A", "conv_v": "B"}
TRACE_GATES = {"gate_history": "A", "gate_input": "B"}


def spiking_cells(model: nn.Module) -> dict[str, RecurrentCell]:
    return {name: m for name, m in model.named_modules() if isinstance(m, RecurrentCell) and m.spiking}


def layer_label(name: str) -> str:
    """`cell_list.2` -> `2`; other names are kept."""
    return name.rsplit(".", 1)[-1] if name.startswith("cell_list.") else name


class _CellRecorder(ForwardHooks):
    """Forward hooks on cells (spikes) and their circuit synapses (gates)."""

    def __init__(self, model: nn.Module, keep_graph: bool = False):
        super().__init__()
        self.spikes: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.gates: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
        self.compartments: dict[str, int] = {}
        self.keep_graph = keep_graph
        for name, cell in spiking_cells(model).items():
            self.compartments[name] = max(1, len(cell.state_names) - 1)
            self.add(cell, self._cell_hook(name))
            for child, key in GATE_MODULES.items():
                module = getattr(cell, child, None)
                if isinstance(module, nn.Module):
                    self.add(module, self._gate_hook(name, key))

    def _cell_hook(self, name):
        def hook(module, args, output):
            spikes = output[0] if isinstance(output, tuple) else output
            if isinstance(spikes, torch.Tensor):
                if self.keep_graph and spikes.requires_grad:
                    spikes.retain_grad()
                self.spikes[name].append(spikes if self.keep_graph else spikes.detach())
        return hook

    def _gate_hook(self, name, key):
        def hook(module, args, output):
            self.gates[name][key].append((1.0 + torch.tanh(output.detach())).to(torch.float64))
        return hook


def spikes_from_traces(model: nn.Module, traces: dict) -> dict[str, list[torch.Tensor]]:
    """{cell_list.i: [s_t ...]} of the spiking layers, from `layer{i}/<state_names[0]>` traces."""
    out = {}
    for i, cell in enumerate(getattr(model, "cell_list", [])):
        key = f"layer{i}/{cell.state_names[0]}"
        if cell.spiking and key in traces:
            out[f"cell_list.{i}"] = list(traces[key])
    return out


def gates_from_traces(traces: dict) -> dict[str, dict[str, torch.Tensor]]:
    """{layer: {"A": [T, ...], "B": [T, ...]}} from `layer{i}/gate_history|gate_input` traces."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in traces.items():
        layer, _, name = key.partition("/")
        if name in TRACE_GATES and layer.startswith("layer"):
            out.setdefault(layer.removeprefix("layer"), {})[TRACE_GATES[name]] = value.to(torch.float64)
    return out


def model_in_frames(model: nn.Module, default: int | None = None) -> int:
    value = getattr(model, "in_frames", None) or default
    if value is None:
        raise ValueError("pass in_frames: the model does not say how many context frames it takes")
    return int(value)


def cost_report(model: nn.Module, sample_batch: torch.Tensor, *, in_frames: int | None = None,
                gate_summary: bool = True) -> dict:
    """Parameters, FLOPs, AC/MAC synaptic operations, energy and firing rates of one test-mode pass
    over `sample_batch` [B, T, C, H, W] (the first `in_frames` frames are the context).

    Counts are totals for the batch and, under `per_sequence`, divided by B."""
    in_frames = model_in_frames(model, in_frames)
    call = predict_call(in_frames)
    batch = int(sample_batch.shape[0])
    model.eval()
    flops = count_flops(model, (sample_batch[:1],), call)
    # Without traces: recording them evaluates the gate convolutions a second time.
    with _CellRecorder(model) as rec:
        ops, _ = count_synaptic_ops(model, (sample_batch,), call)
    neuron_macs = {name: sum(s.numel() for s in steps) * (rec.compartments[name] + len(rec.gates.get(name, {})))
                   for name, steps in rec.spikes.items()}
    ac = sum(ops.ac.values())
    mac = sum(ops.mac.values()) + sum(ops.norm_mac.values()) + sum(neuron_macs.values())
    rates = {layer_label(n): float(torch.stack([s.double().mean() for s in steps]).mean())
             for n, steps in rec.spikes.items() if steps}
    report = {
        "params": count_params(model),
        "flops": int(flops.total),                       # one sequence (batch 1), fvcore convention
        "batch": batch,
        "steps": len(next(iter(rec.spikes.values()))) if rec.spikes else None,
        "ac": int(ac), "mac": int(mac),
        "ac_by_module": {k: int(v) for k, v in ops.ac.items()},
        "mac_by_module": {k: int(v) for k, v in ops.mac.items()},
        "norm_mac": int(sum(ops.norm_mac.values())),
        "neuron_mac": int(sum(neuron_macs.values())),
        "energy_pj": energy_pj(ac, mac),
        "firing_rates": rates,
        "per_sequence": {"ac": ac / batch, "mac": mac / batch, "energy_pj": energy_pj(ac, mac) / batch},
        "energy_uj_per_sequence": energy_pj(ac, mac) / batch * 1e-6,
    }
    if gate_summary and rec.gates:
        report["gates"] = {layer_label(n): {k: torch.stack([g.mean() for g in v]).tolist() for k, v in g.items()}
                           for n, g in rec.gates.items()}
    return report


def gate_traces(model: nn.Module, sample_batch: torch.Tensor, *, in_frames: int | None = None,
                max_values: int = 4096) -> dict[str, dict[str, np.ndarray]]:
    """Per layer and gate, [T, n] samples of A_t / B_t (n <= max_values, a fixed random subset)."""
    in_frames = model_in_frames(model, in_frames)
    model.eval()
    with _CellRecorder(model) as rec, torch.no_grad():
        _, traces = predict_call(in_frames, return_traces=True)(model, sample_batch)
    if traces is not None:
        gates = gates_from_traces(traces)
    else:
        gates = {layer_label(n): {k: torch.stack(v) for k, v in g.items()} for n, g in rec.gates.items()}
    out = {}
    generator = torch.Generator().manual_seed(0)
    for layer, layer_gates in gates.items():
        out[layer] = {}
        for key, steps in layer_gates.items():
            stacked = steps.flatten(1)
            if stacked.shape[1] > max_values:
                index = torch.randperm(stacked.shape[1], generator=generator)[:max_values]
                stacked = stacked[:, index]
            out[layer][key] = stacked.numpy()
    return out


def grad_through_time(model: nn.Module, sample_batch: torch.Tensor, *, in_frames: int | None = None) -> dict:
    """{layer: [||dL/ds_t|| for every step t]} for L = MSE of the last predicted frame."""
    in_frames = model_in_frames(model, in_frames)
    model.eval()
    batch, frames = sample_batch.shape[:2]
    autoregressive = torch.zeros(batch, frames - in_frames - 1, dtype=sample_batch.dtype)
    with torch.enable_grad(), reference_path(model), _CellRecorder(model, keep_graph=True) as rec:
        outputs = model(sample_batch, autoregressive)          # [B, T-1, ...], future fed back (test mode)
        loss = torch.mean((outputs[:, -1] - sample_batch[:, -1]) ** 2)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return {layer_label(n): [float(s.grad.norm()) if s.grad is not None else 0.0 for s in steps]
            for n, steps in rec.spikes.items()}


# --- runs ----------------------------------------------------------------------------------------
def checkpoint_of(run: Run) -> Path | None:
    """The run's selected checkpoint (`best_checkpoint`, relative to the run directory), else
    checkpoints/best*.ckpt, else last.ckpt; None when the checkpoints were removed."""
    recorded = run.metrics.get("best_checkpoint")
    candidates = [resolve_in_run(recorded, run.path) if isinstance(recorded, str) else None]
    candidates += sorted((run.path / "checkpoints").glob("best*.ckpt")) + [run.path / "checkpoints" / "last.ckpt"]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    return None


def load_run_network(run: Run):
    """(network with the selected checkpoint's weights, dataset spec), or None without a checkpoint."""
    from stcbench.training.config import config_from_dict
    from stcbench.training.network import build_network

    ckpt = checkpoint_of(run)
    if ckpt is None or not run.config:
        return None
    net, spec = build_network(config_from_dict(run.config))
    state = load_checkpoint(ckpt).get("state_dict", {})
    net.load_state_dict(submodule_state(state, "net"))
    return net.eval(), spec


def submodule_state(state: dict, name: str) -> OrderedDict:
    """The entries of `state` under `name.`, prefix removed, with their module metadata (versions and
    markers such as PLIF's variant, which `load_state_dict` reads) carried over."""
    prefix = name + "."
    weights = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        weights._metadata = OrderedDict(
            ("" if k == name else k[len(prefix):], v) for k, v in metadata.items() if k == name or k.startswith(prefix))
    return weights


def sample_from_predictions(run: Run, limit: int = 4) -> torch.Tensor | None:
    from stcbench.reports.runs import read_saved_arrays

    data = read_saved_arrays(run.path / "predictions.npz", warn=lambda text: None)   # the report says it once
    if data is None or not {"context", "truth"} <= set(data):
        return None
    frames = np.concatenate([data["context"][:limit], data["truth"][:limit]], axis=1)
    return torch.from_numpy(frames.astype(np.float32))


def analyse_run(run: Run, with_gradients: bool = True) -> dict | None:
    loaded = load_run_network(run)
    sample = sample_from_predictions(run)
    if loaded is None or sample is None:
        return None
    net, spec = loaded
    result = cost_report(net, sample, in_frames=spec.in_frames, gate_summary=False)
    gates = gate_traces(net, sample[:2], in_frames=spec.in_frames, max_values=256)
    if gates:
        result["gates"] = {layer: {k: np.round(v, 5).tolist() for k, v in g.items()} for layer, g in gates.items()}
    if with_gradients and spiking_cells(net):
        norms = grad_through_time(net, sample[:2], in_frames=spec.in_frames)
        top = list(norms)[-1]
        result["grad_norm_through_time"] = norms[top]
        result["grad_norm_layer"] = top
    result["run"] = str(run.path)
    result["sample_sequences"] = int(sample.shape[0])
    return result


def analyse_runs(picked: dict[str, dict[str, Run]], cache_dir: Path) -> dict[tuple[str, str], dict]:
    """Analysis per (dataset, cell), cached as JSON (recomputed when the run is newer).

    The cache names its run relative to the cache folder (`../runs/<dataset>/<cell>/<run>`), so a
    results folder moved elsewhere, or without checkpoints, keeps its analysis."""
    results = {}
    for dataset, cells in picked.items():
        for cell, run in cells.items():
            cache = Path(cache_dir) / f"{dataset}_{cell}.json"
            cached = _read(cache)
            same_run = bool(cached) and cached.get("run") in (_cache_run_name(run, cache_dir), str(run.path))
            if same_run and cache.stat().st_mtime >= finished_timestamp(run):
                results[(dataset, cell)] = cached
                continue
            analysis = analyse_run(run)
            if analysis is None:
                if same_run:
                    results[(dataset, cell)] = cached        # checkpoints removed since; keep what we had
                continue
            analysis["run"] = _cache_run_name(run, cache_dir)
            atomic_write_text(cache, dumps(analysis, indent=None))
            results[(dataset, cell)] = analysis
    return results


def _cache_run_name(run: Run, cache_dir: Path) -> str:
    return Path(os.path.relpath(Path(run.path).resolve(), Path(cache_dir).resolve())).as_posix()


def _read(path: Path):
    try:
        return restore_non_finite(json.loads(read_text(path)))
    except (OSError, json.JSONDecodeError):
        return None


def paper_size_costs(configs_root: Path, datasets=("mmnist", "taxibj", "kth"), cells=None) -> list[dict]:
    """Parameters and FLOPs of the paper-size networks (stcbench/configs/<dataset>/<cell>.yaml), computed
    on the meta device (no training, no data): comparable with STC-LIF Table 7."""
    from stcbench.engine.schema import load_config_dict
    from stcbench.training.config import config_from_dict
    from stcbench.training.network import build_network

    rows = []
    for dataset in datasets:
        for path in sorted((Path(configs_root) / dataset).glob("*.yaml")):
            if path.name.startswith("_") or (cells and path.stem not in cells):
                continue
            config = load_config_dict(path)
            try:
                net, spec = build_network(config_from_dict(config))
            except StcbenchError as exc:          # e.g. a cell not available in this build
                rows.append({"dataset": dataset, "cell": path.stem, "error": str(exc)})
                continue
            frames = torch.zeros(1, spec.in_frames + spec.out_frames, spec.channels, spec.height, spec.width)
            flops = count_flops(net, (frames,), predict_call(spec.in_frames)).total
            rows.append({"dataset": dataset, "cell": path.stem, "params": count_params(net), "flops": int(flops),
                         "num_hidden": list(config.get("model", {}).get("num_hidden", [])),
                         "steps": spec.in_frames + spec.out_frames - 1})
    return rows
