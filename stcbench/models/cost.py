"""Cost accounting: parameters, FLOPs (fvcore/thop style), synaptic operations and energy.

FLOPs follow the paper's convention (STC-LIF Table 7; OpenSTL uses fvcore): a "FLOP" is one
multiply-accumulate.  Counted per call of a weight layer, by forward hooks:

* Conv:      output elements x (C_in / groups) x prod(kernel)
* Linear:    output elements x in_features
* GroupNorm / BatchNorm / LayerNorm / InstanceNorm: input elements x (5 if affine else 4)

Element-wise arithmetic (membrane updates, gates, spikes) is not counted, exactly like
fvcore.  For the official network this reproduces 64.346 G for LIF 3x256 on Moving MNIST
(19 steps, batch 1) and 76.449 G for STC-LIF.

Synaptic operations (TC-LIF paper, Table 2 / supplementary Table 3; NeuroBench effective ACs):

* AC  (accumulate): a weight layer whose input is binary (spikes) costs one accumulate per
  (spike, target) pair, counted exactly from the actual spikes: for each output element the
  number of non-zero inputs in its receptive field (same group).
* MAC (multiply-accumulate): a weight layer with real-valued input (the layer-0 input
  synapse, which sees frames and fed-back predictions; every layer of a non-spiking cell),
  counted densely like the FLOPs; normalisation layers at 2 MACs per element (statistics and
  affine); neuron state updates at one MAC per neuron, step and compartment, plus one per
  gated quantity for the spatio-temporal circuit (conv_h gates the history, conv_v the input).
* Energy: E = 0.9 pJ x AC + 4.6 pJ x MAC (45 nm CMOS, Horowitz 2014).

The per-neuron self-connection of the circuit (`circuit_groups: self`, `w * g + b`) is
element-wise, so it has no FLOPs (fvcore); as a synapse it costs one AC per input spike (one
MAC per element for real-valued input).
"""
from __future__ import annotations

import copy
import inspect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stcbench.cells.stc import SelfConnection
from stcbench.models.hooks import ForwardHooks

E_AC_PJ = 0.9
E_MAC_PJ = 4.6

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_TYPES = (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
              nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
ELEMENTWISE_WEIGHT_TYPES = (SelfConnection,)
WEIGHT_TYPES = CONV_TYPES + (nn.Linear,) + ELEMENTWISE_WEIGHT_TYPES
NORM_MACS_PER_ELEMENT = 2
# Module-name prefixes whose input is real-valued by construction (layer-0 input synapse).
DENSE_INPUT_MODULES = ("cell_list.0.conv_x",)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- per-layer MAC formulas (fvcore semantics) ------------------------------------------------
def conv_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return output.numel() * per_output


def linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def norm_flops(module: nn.Module, inputs: torch.Tensor) -> int:
    affine = getattr(module, "affine", None)
    if affine is None:
        affine = getattr(module, "elementwise_affine", False)
    return inputs.numel() * (5 if affine else 4)


def layer_flops(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    if isinstance(module, CONV_TYPES):
        return conv_macs(module, output)
    if isinstance(module, nn.Linear):
        return linear_macs(module, output)
    if isinstance(module, NORM_TYPES):
        return norm_flops(module, inputs)
    return 0


class _Hooks(ForwardHooks):
    """Registers forward hooks on every weight and norm layer and calls `record` per call."""

    def __init__(self, model: nn.Module, record: Callable[[str, nn.Module, torch.Tensor, torch.Tensor], None]):
        super().__init__()
        for name, module in model.named_modules():
            if isinstance(module, WEIGHT_TYPES + NORM_TYPES):
                self.add(module, self._hook(name, record))

    @staticmethod
    def _hook(name, record):
        def hook(module, args, output):
            if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                record(name, module, args[0], output)
        return hook


@dataclass
class FlopCount:
    total: int
    by_module: dict[str, int]
    batch: int

    @property
    def per_sample(self) -> float:
        return self.total / max(1, self.batch)


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def count_flops(model: nn.Module, inputs: tuple, call: Callable | None = None, *, batch: int | None = None,
                meta: bool = True) -> FlopCount:
    """MACs of one call `call(model, *inputs)` (default `model(*inputs)`), fvcore-style.

    With `meta=True` the model and inputs are copied to the meta device first (shapes only,
    no arithmetic), so full-size networks are counted in milliseconds; if the forward pass
    needs real values it falls back to a real run."""
    call = call or (lambda m, *xs: m(*xs))
    if batch is None:
        first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
        batch = int(first.shape[0]) if first is not None and first.dim() else 1
    if meta:
        try:
            return _count(copy.deepcopy(model).to("meta"), _to_device(inputs, "meta"), call, batch)
        except (NotImplementedError, RuntimeError):
            pass
    return _count(model, inputs, call, batch)


def _count(model, inputs, call, batch) -> FlopCount:
    by_module: dict[str, int] = defaultdict(int)

    def record(name, module, x, y):
        by_module[name] += layer_flops(module, x, y)

    with _Hooks(model, record), torch.no_grad():
        call(model, *inputs)
    return FlopCount(sum(by_module.values()), dict(by_module), batch)


# --- synaptic operations ---------------------------------------------------------------------
def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def conv_effective_acs(module: nn.Module, x: torch.Tensor) -> int:
    """Exact accumulate count of a conv fed with binary x: Σ over outputs of the number of
    non-zero inputs in the receptive field (own group), times 1 per output channel."""
    dims = len(module.kernel_size)
    groups = module.groups
    active = (x != 0).to(torch.float64)
    batch, channels = active.shape[:2]
    spatial = active.shape[2:]
    per_group = active.reshape(batch, groups, channels // groups, *spatial).sum(2)
    ones = torch.ones((groups, 1, *module.kernel_size), dtype=torch.float64, device=x.device)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    padding = module.padding if isinstance(module.padding, (tuple, int)) else module.padding
    counts = conv(per_group, ones, stride=module.stride, padding=padding, dilation=module.dilation, groups=groups)
    return int(round(float(counts.sum()))) * (module.out_channels // groups)


def linear_effective_acs(module: nn.Linear, x: torch.Tensor) -> int:
    return int((x != 0).sum()) * module.out_features


@dataclass
class SynapticOps:
    ac: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    mac: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    norm_mac: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
               dense_modules: tuple[str, ...]) -> None:
        if isinstance(module, NORM_TYPES):
            self.norm_mac[name] += x.numel() * NORM_MACS_PER_ELEMENT
            return
        dense = any(name == p or name.startswith(p + ".") for p in dense_modules)
        if isinstance(module, ELEMENTWISE_WEIGHT_TYPES):
            if not dense and is_binary(x):
                self.ac[name] += int((x != 0).sum())
            else:
                self.mac[name] += x.numel()
            return
        if not dense and is_binary(x):
            acs = linear_effective_acs(module, x) if isinstance(module, nn.Linear) else conv_effective_acs(module, x)
            self.ac[name] += acs
        else:
            self.mac[name] += layer_flops(module, x, y)


def count_synaptic_ops(model: nn.Module, inputs: tuple, call: Callable | None = None,
                       dense_modules: tuple[str, ...] = DENSE_INPUT_MODULES):
    """(SynapticOps, output of the call) for one real forward pass."""
    call = call or (lambda m, *xs: m(*xs))
    ops = SynapticOps()
    with _Hooks(model, lambda n, m, x, y: ops.record(n, m, x, y, dense_modules)), torch.no_grad():
        output = call(model, *inputs)
    return ops, output


def energy_pj(ac: float, mac: float) -> float:
    return E_AC_PJ * ac + E_MAC_PJ * mac


def sequence_flops(net: nn.Module, spec) -> int:
    """fvcore-style MACs of one test sequence (batch 1, T_in + T_out - 1 steps) of `net` on the data `spec`."""
    frames = torch.zeros(1, spec.in_frames + spec.out_frames, spec.channels, spec.height, spec.width)
    return int(count_flops(net, (frames,), predict_call(spec.in_frames)).total)


class reference_path:
    """Run a RecurrentPredictor on its step-by-step reference loop (`fast=False`), where every
    synapse is a module call that the hooks see (the fast path fuses and batches convolutions)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved = getattr(model, "fast", None)

    def __enter__(self):
        if self.saved is not None:
            self.model.fast = False
        return self.model

    def __exit__(self, *exc):
        if self.saved is not None:
            self.model.fast = self.saved


def predict_call(in_frames: int, return_traces: bool = False):
    """call(model, frames) -> predictions of frames[:, in_frames:] from the context (test mode),
    on the reference loop; with `return_traces`, (predictions, traces or None)."""
    def call(model, frames):
        context, out_frames = frames[:, :in_frames], frames.shape[1] - in_frames
        with reference_path(model):
            if return_traces:
                if supports_traces(model):
                    return model.predict(context, out_frames, return_traces=True)
                return model.predict(context, out_frames), None
            return model.predict(context, out_frames)
    return call


def supports_traces(model: nn.Module) -> bool:
    predict = getattr(model, "predict", None)
    return predict is not None and "return_traces" in inspect.signature(predict).parameters
