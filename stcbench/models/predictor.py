"""The recurrent spatio-temporal predictor (official `<NAME>_Model`, network spec §1).

A stack of registered cells on patched frames, a 1x1 readout without bias on the top
layer's output, and the prediction fed back as the next input (not detached, not clipped).

Two execution paths give the same numbers:

* `fast=False` (default) — the reference loop: for every step, every layer in turn, exactly the
  structure of the official network.
* `fast=True` — the teacher-forced context (steps t < T_in, whose inputs are
  all known) runs layer by layer with the input convolution batched over all context
  steps; the autoregressive future runs step by step.  On the CPU the 5x5 synapse
  convolutions with at least 32 channels in and out and 2048 channel pairs run as Winograd
  F(4x4, 5x5) (`conv_algorithm`).  For
  STC-LIF, STC-PLIF and STC-LM-H on the CPU everything after a step's convolutions is one fused
  autograd function (fused_stc.py) that keeps only the convolution outputs; for the other circuit
  cells the per-step neuron dynamics are recomputed in the backward pass instead of stored
  (`recompute`), which cuts the activation memory.  It is opt-in (`model.fast: true`) because its float32 round-off differs
  from the reference loop's (the numbers agree to round-off, tested in float64); speed and
  memory: docs/performance.md.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from stcbench.cells import create_cell, get_cell_info
from stcbench.errors import ConfigError
from stcbench.models import fastpath
from stcbench.models.patch import CHANNEL_FIRST, patchify, unpatchify


class RecurrentPredictor(nn.Module):
    """Stack of recurrent cells with a 1x1 readout; state_dict names follow the official network."""

    def __init__(self, cell: str, image_channels: int, num_hidden: Sequence[int] = (256, 256, 256),
                 patch_size: int = 1, in_frames: int = 10, filter_size: int = 5,
                 cell_options: Mapping | None = None, fast: bool = False, recompute: bool | None = None,
                 channels_last: bool | None = None, conv_algorithm: str = "auto", compile_step: bool = False):
        super().__init__()
        num_hidden = [int(n) for n in num_hidden]
        if not num_hidden:
            raise ConfigError("num_hidden must list at least one layer width, e.g. [64, 64, 64]")
        if in_frames < 1:
            raise ConfigError(f"in_frames must be >= 1, got {in_frames}")
        self.cell_name = cell
        self.image_channels = int(image_channels)
        self.num_hidden = num_hidden
        self.patch_size = int(patch_size)
        self.in_frames = int(in_frames)
        self.filter_size = int(filter_size)
        self.cell_options = dict(cell_options or {})
        self.fast = fast
        self.recompute = recompute            # None: on the CPU, for circuit cells (see fast_settings)
        self.channels_last = channels_last    # None: on the CPU only
        self.compile_step = bool(compile_step)
        if conv_algorithm not in fastpath.CONV_ALGORITHMS:
            raise ConfigError(f"conv_algorithm must be one of {', '.join(fastpath.CONV_ALGORITHMS)}, "
                              f"got {conv_algorithm!r}")
        self.conv_algorithm = conv_algorithm
        self.frame_channels = self.patch_size ** 2 * self.image_channels
        self.cell_list = nn.ModuleList()
        in_channels = self.frame_channels
        for hidden in num_hidden:
            self.cell_list.append(create_cell(cell, in_channels, hidden, kernel_size=filter_size,
                                              **self.cell_options))
            in_channels = hidden
        self.conv_last = nn.Conv2d(num_hidden[-1], self.frame_channels, kernel_size=1, bias=False)

    # -- public API ----------------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None,
                return_traces: bool = False):
        """Train pass. frames [B,T_total,C,H,W]; mask [B,T_out-1] (1 = ground truth) or None for a
        fully autoregressive future. Returns next_frames [B,T_total-1,C,H,W] (and traces)."""
        self._check_frames(frames, "frames")
        patched = patchify(frames, self.patch_size, CHANNEL_FIRST)
        steps = frames.shape[1] - 1
        out, traces = self._run(patched, steps, self._mask_channel_first(mask, patched, steps), return_traces)
        out = unpatchify(out, self.patch_size, CHANNEL_FIRST)
        return (out, traces) if return_traces else out

    def forward_patched(self, ims: torch.Tensor, mask: torch.Tensor | None = None,
                        return_traces: bool = False):
        """Official signature: ims [B,T,Hp,Wp,Cp] channel-last, mask [B,T_out-1,Hp,Wp,Cp] (or any
        shape broadcastable per slot, e.g. [B,T_out-1]). Returns [B,T-1,Hp,Wp,Cp]."""
        if ims.dim() != 5 or ims.shape[-1] != self.frame_channels:
            raise ConfigError(f"ims must be [B,T,Hp,Wp,{self.frame_channels}] (channel-last, patched), "
                              f"got {tuple(ims.shape)}")
        patched = ims.permute(0, 1, 4, 2, 3)
        steps = ims.shape[1] - 1
        if mask is not None and mask.dim() == 5:
            mask = mask.permute(0, 1, 4, 2, 3)
        out, traces = self._run(patched, steps, self._mask_channel_first(mask, patched, steps), return_traces)
        out = out.permute(0, 1, 3, 4, 2).contiguous()
        return (out, traces) if return_traces else out

    @torch.no_grad()
    def predict(self, context: torch.Tensor, out_frames: int, return_traces: bool = False):
        """Autoregressive prediction of `out_frames` frames after the first T_in frames of
        `context` [B,>=T_in,C,H,W]. Returns [B,out_frames,C,H,W]."""
        if out_frames < 1:
            raise ConfigError(f"out_frames must be >= 1, got {out_frames}")
        self._check_frames(context, "context")
        if context.shape[1] < self.in_frames:
            raise ConfigError(f"context has {context.shape[1]} frames but the model needs {self.in_frames} "
                              f"input frames")
        patched = patchify(context[:, :self.in_frames], self.patch_size, CHANNEL_FIRST)
        steps = self.in_frames + out_frames - 1
        out, traces = self._run(patched, steps, None, return_traces)
        pred = unpatchify(out[:, -out_frames:], self.patch_size, CHANNEL_FIRST)
        return (pred, traces) if return_traces else pred

    def loss(self, next_frames: torch.Tensor, frames: torch.Tensor, detach_target: bool = True) -> torch.Tensor:
        """Per-element MSE over all T_total-1 outputs (spec §1.4). The official loss keeps the
        target attached to the graph (`detach_target=False`)."""
        target = frames[:, 1:]
        return F.mse_loss(next_frames, target.detach() if detach_target else target)

    # -- internals -----------------------------------------------------------------------------
    def _check_frames(self, frames: torch.Tensor, what: str) -> None:
        if frames.dim() != 5 or frames.shape[2] != self.image_channels:
            raise ConfigError(f"{what} must be [B,T,{self.image_channels},H,W], got {tuple(frames.shape)}")

    def _mask_channel_first(self, mask, patched, steps):
        """Bring the mask to [B, slots, 1|Cp, 1|Hp, 1|Wp]; None stays None (autoregressive)."""
        if mask is None:
            return None
        if patched.shape[1] < steps + 1:
            raise ConfigError("a scheduled-sampling mask needs the ground-truth frames of every step")
        future = max(steps - self.in_frames + 1, 0)
        if mask.dim() == 2:
            mask = mask[:, :, None, None, None]
        if mask.dim() != 5 or mask.shape[0] != patched.shape[0] or mask.shape[1] < future - 1:
            raise ConfigError(f"mask must be [B, T_out-1] or [B, T_out-1, ...] with B={patched.shape[0]} and "
                              f"T_out-1={max(future - 1, 0)}, got {tuple(mask.shape)}")
        return mask.to(patched.dtype)

    def _run(self, frames, steps, mask, return_traces):
        """frames [B,T,Cp,Hp,Wp] (channel-first, patched) -> ([B,steps,Cp,Hp,Wp], traces or None)."""
        if steps < 1:
            raise ConfigError("a sequence needs at least 2 frames (one input and one target)")
        if self.fast:
            preds, traces = fastpath.run_fast(self, frames, steps, mask, Traces(self) if return_traces else None)
        else:
            preds, traces = self._run_reference(frames, steps, mask, return_traces)
        return preds, (traces.finish() if traces is not None else None)

    def fast_settings(self, device: torch.device | str) -> tuple[bool | str, bool]:
        """(recompute, channels_last) of the fast path on `device`. None means: channels-last on the CPU
        only; recompute on the CPU for the cells with circuit convolutions only ("circuit cells"; for the
        others it saved under 10 % of the memory and cost up to 2x the time, results/benchmarks/training.md),
        never on GPUs (on an H100 at 3x256 recomputing took 1.56x the time and channels-last
        convolutions were slower than NCHW; results/benchmarks/gpu/gpu.md)."""
        on_cpu = torch.device(device).type == "cpu"
        recompute = (fastpath.CIRCUIT_CELLS if on_cpu else False) if self.recompute is None else bool(self.recompute)
        channels_last = on_cpu if self.channels_last is None else bool(self.channels_last)
        return recompute, channels_last

    def input_at(self, t, frames, mask, x_hat):
        """Layer-0 input of step t (spec §1.3 item 1)."""
        if t < self.in_frames:
            return frames[:, t]
        if mask is None:
            return x_hat
        m = mask[:, t - self.in_frames]
        return m * frames[:, t] + (1 - m) * x_hat

    def _run_reference(self, frames, steps, mask, return_traces):
        traces = Traces(self) if return_traces else None
        states = [None] * len(self.cell_list)
        preds, x_hat = [], None
        for t in range(steps):
            x = self.input_at(t, frames, mask, x_hat)
            for i, cell in enumerate(self.cell_list):
                previous = states[i]
                x, states[i] = cell(x, previous, t)
                if traces is not None:
                    traces.record(i, cell, previous, states[i])
            x_hat = self.conv_last(x)
            preds.append(x_hat)
        return torch.stack(preds, dim=1), traces


class Traces:
    """Per-layer, per-step cell states (and STC gates) for analysis: `layer{i}/{state_name}`
    -> [steps, B, C, Hp, Wp]; gates `layer{i}/gate_history`, `layer{i}/gate_input`."""

    GATE_NAMES = ("gate_history", "gate_input")

    def __init__(self, model: RecurrentPredictor):
        self.model = model
        self.items: dict[str, list[torch.Tensor]] = {}

    def _add(self, key, value):
        self.items.setdefault(key, []).append(value.detach())

    def record(self, layer, cell, previous_state, new_state):
        for name, value in zip(cell.state_names, new_state):
            self._add(f"layer{layer}/{name}", value)
        if callable(getattr(cell, "gates", None)):
            prev_spike = torch.zeros_like(new_state[0]) if previous_state is None else previous_state[0]
            with torch.no_grad():
                gates = cell.gates(prev_spike)
            gates = gates.values() if isinstance(gates, Mapping) else gates
            for name, value in zip(self.GATE_NAMES, gates):
                self._add(f"layer{layer}/{name}", value)

    def finish(self) -> dict[str, torch.Tensor]:
        return {k: torch.stack(v) for k, v in self.items.items()}


def build_predictor(model, dataset_spec, **overrides) -> RecurrentPredictor:
    """A predictor from a run's typed `model` section (`cell`, `num_hidden`, `filter_size`, `patch_size`,
    `gradient_detach`, `cell_options`, `in_frames`, `channels`, `fast`, `conv_algorithm`, `recompute`,
    `channels_last`, `compile`; None means the dataset's value) and a DatasetSpec. `overrides` win."""
    cell = overrides.pop("cell", None) or model.cell
    if not cell:
        raise ConfigError("model.cell is missing; name a registered cell, e.g. `cell: stclif`")
    options = dict(model.cell_options or {})
    if model.gradient_detach is not None and "gradient_detach" in get_cell_info(cell).parameters():
        options.setdefault("gradient_detach", int(model.gradient_detach))
    kwargs = dict(
        cell=cell,
        image_channels=model.channels or dataset_spec.channels,
        num_hidden=model.num_hidden,
        patch_size=model.patch_size or dataset_spec.patch_size,
        in_frames=model.in_frames or dataset_spec.in_frames,
        filter_size=model.filter_size,
        cell_options=options,
        fast=bool(model.fast),
        conv_algorithm=model.conv_algorithm,
        recompute=model.recompute,
        channels_last=model.channels_last,
        compile_step=bool(model.compile),
    )
    kwargs.update(overrides)
    kwargs["cell_options"] = with_geometry_options(kwargs["cell"], kwargs["cell_options"], dataset_spec,
                                                   kwargs["patch_size"], kwargs["in_frames"])
    return RecurrentPredictor(**kwargs)


def with_geometry_options(cell: str, options: Mapping, dataset_spec, patch_size: int, in_frames: int) -> dict:
    """Cell options that follow from the data, filled in unless the user set them:

    * the patched map size (H/p, W/p) where a cell needs it up front: `circuit_spatial` for the
      per-neuron self-connection (`circuit_groups: self`), `te_spatial` for CE-LIF's per-neuron
      temporal encoding (`te_granularity: neuron`), `norm_spatial` for ConvLSTM's `layer_norm`;
    * the number of network steps in training, T_in + T_out - 1, for time-indexed parameters:
      `time_steps` of GLIF `variant: original` (cells.md §3; the reference GLIF has none) and
      `te_steps` of CE-LIF (cells.md §11: 19 MMNIST, 7 TaxiBJ, 29 KTH)."""
    options = dict(options)
    accepted = get_cell_info(cell).parameters()
    height, width = dataset_spec.height, dataset_spec.width
    spatial = None if height is None or width is None else (int(height) // patch_size, int(width) // patch_size)
    needs_spatial = {"circuit_spatial": options.get("circuit_groups") == "self",
                     "te_spatial": options.get("te_granularity") == "neuron",
                     "norm_spatial": bool(options.get("layer_norm"))}
    for name, needed in needs_spatial.items():
        if needed and name in accepted and spatial is not None:
            options.setdefault(name, spatial)
    out_frames = dataset_spec.train_out_frames or dataset_spec.out_frames
    if out_frames:
        steps = int(in_frames) + int(out_frames) - 1
        if "time_steps" in accepted and options.get("variant") == "original":
            options.setdefault("time_steps", steps)
        if "te_steps" in accepted:
            options.setdefault("te_steps", steps)
    return options


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
