"""The fast execution path of RecurrentPredictor (same numbers as the reference loop).

1. Teacher-forced context: the inputs of steps t < T_in are known, so each layer runs over
   all context steps before the next layer; its input convolution is one batched call.
2. Activation memory: for cells whose synapse is Conv -> GroupNorm, only the convolution
   output is kept per step; GroupNorm and the neuron dynamics (including the circuit
   gates) are recomputed during the backward pass (activation checkpointing of the cheap
   element-wise part).  Recomputation repeats the same operations on the same inputs, so
   values and gradients are unchanged.
3. Circuit gates: for cells exposing `conv_h`/`conv_v`, 1 + tanh(z) is computed as
   2 sigmoid(2z), the two grouped convolutions in channels-last order (see gates.py).  STC-LIF,
   STC-PLIF and STC-LM-H on the CPU go further (fused_stc.py): both circuit convolutions in one grouped call and
   everything after the convolutions in one autograd function that keeps only the convolution
   outputs, so it needs no recomputation of the step (point 2 does not apply to it).
4. Synapse convolutions (5 x 5, stride 1, ungrouped, at least 32 channels in and out and 2048 channel pairs)
   on the CPU run as Winograd F(4x4, 5x5) (`conv_algorithm: auto`, see winograd.py), the weights transformed
   once per forward pass; the circuits' grouped convolutions stay direct.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from stcbench.cells.base import RecurrentCell
from stcbench.cells.synapse import Synapse, conv2d, conv_override, current_conv_override
from stcbench.kernels import fused_stc, winograd
from stcbench.kernels.gates import FusedGates, fusable

CONV_ALGORITHMS = ("auto", "direct", "winograd")


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Feature maps in channels-last memory order (faster CPU convolutions, grouped ones above all)."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def splittable(cell) -> bool:
    """True when the cell's step is `step_from_current(input_current(x))` (the base contract)."""
    return (type(cell).forward is RecurrentCell.forward
            and hasattr(cell, "input_current") and hasattr(cell, "step_from_current"))


def norm_split(cell):
    """(conv, norm) when the input synapse is Conv -> GroupNorm used as is, else None."""
    syn = getattr(cell, "conv_x", None)
    if (isinstance(syn, Synapse) and syn.kind == "conv" and len(syn) == 2
            and type(cell).input_current is RecurrentCell.input_current):
        return syn[0], syn[1]
    return None


CIRCUIT_CELLS = "circuit cells"


def has_circuit(cell) -> bool:
    """True for cells that declare a spatio-temporal circuit (`RecurrentCell.has_circuit`: the STC wrappers;
    ConvLSTM's recurrent `conv_h` is not one)."""
    return bool(getattr(cell, "has_circuit", False))


def compiled_dynamics(model, index: int, cell, norm):
    """torch.compile of one layer's step after its input convolution (GroupNorm, circuit, neuron),
    compiled once per layer and kept on the model (`model.compile_step`)."""
    cache = model.__dict__.setdefault("_compiled_dynamics", {})
    if index not in cache:
        if norm is None:
            def dynamics(pre, state, t):
                return tuple(cell.step_from_current(pre, state, t))
        else:
            def dynamics(pre, state, t):
                return tuple(cell.step_from_current(norm(pre), state, t))
        cache[index] = torch.compile(dynamics)
    return cache[index]


class LayerRunner:
    """Runs one cell either over a whole input sequence or one step at a time."""

    def __init__(self, cell, recompute: bool | str, channels_last: bool, fuse_gates: bool = True, compiled=None):
        self.cell = cell
        self.channels_last = channels_last
        self.split = splittable(cell)
        parts = norm_split(cell) if self.split else None
        self.conv, self.norm = parts if parts else (None, None)
        if recompute == CIRCUIT_CELLS:      # where it pays: elsewhere it saved < 10 % memory for up to 2x time
            recompute = has_circuit(cell)
        self.recompute = bool(recompute) and self.split
        # the circuit's grouped convolutions are only fast in channels-last order
        gates = fuse_gates and channels_last and self.split and fusable(cell)
        # STC-LIF, STC-PLIF, STC-LM-H: the whole step after the convolutions fused; other circuit cells: the gates
        self.fused_step = (fused_stc.FusedSTCStep(cell) if gates and self.norm is not None
                           and fused_stc.eligible(cell) else None)
        self.fused = FusedGates(cell) if gates and self.fused_step is None else None
        self.compiled = None
        if compiled is not None and self.split and self.fused_step is None:
            self.compiled, self.fused = compiled(self.norm), None

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """What is stored between forward and backward: the conv output (or the full current)."""
        x = to_layout(x, self.channels_last)
        if self.conv is not None:
            return conv2d(self.conv, x)
        return self.cell.input_current(x)

    def _dynamics(self, pre, state, t):
        if self.fused_step is not None:
            return self.fused_step.step(pre, state, t)
        if self.compiled is not None:
            return self.compiled(pre, tuple(state), t)
        step = self.fused.step_from_current if self.fused is not None else self.cell.step_from_current
        current = pre if self.norm is None else self.norm(pre)
        return step(current, state, t)

    def dynamics(self, pre, state, t):
        if self.recompute and self.fused_step is None and torch.is_grad_enabled():
            override = current_conv_override()      # the recomputation runs in the backward pass

            def step(pre_t, *state_t):
                with conv_override(override):
                    return tuple(self._dynamics(pre_t, state_t, t))
            return checkpoint(step, pre, *state, use_reentrant=False)
        return tuple(self._dynamics(pre, state, t))

    def initial_state(self, pre):
        spatial = tuple(pre.shape[2:])
        state = self.cell.initial_state(pre.shape[0], spatial, device=pre.device, dtype=pre.dtype)
        return tuple(to_layout(s, self.channels_last) for s in state)

    def step(self, x, state, t):
        if not self.split:
            return self.cell(x, state, t)[1]
        pre = self.pre_activation(x)
        if state is None:
            state = self.initial_state(pre)
        return self.dynamics(pre, state, t)

    def sequence(self, x_seq, t0, on_state):
        """x_seq [T,B,...] -> (outputs [T,B,C,...], final state); on_state(previous, new) per step."""
        steps, batch = x_seq.shape[:2]
        if self.split:
            # unbind, not pre_seq[k]: the backward of T selects would zero-fill T full-size gradient buffers
            pre_seq = self.pre_activation(x_seq.flatten(0, 1)).unflatten(0, (steps, batch)).unbind(0)
        state, outputs = None, []
        for k in range(steps):
            previous = state
            if self.split:
                if state is None:
                    state = self.initial_state(pre_seq[k])
                state = self.dynamics(pre_seq[k], state, t0 + k)
            else:
                state = self.cell(x_seq[k], state, t0 + k)[1]
            on_state(previous, state)
            outputs.append(state[0])
        return stack_steps(outputs, self.channels_last), state


def stack_steps(outputs: list[torch.Tensor], channels_last: bool) -> torch.Tensor:
    """[T, B, C, H, W] of the steps' outputs; with `channels_last`, laid out as [T, B, H, W, C] in memory, so that
    flattening T and B gives a channels-last batch for the next layer's convolution without a second copy (and
    the backward pass none either)."""
    if channels_last and outputs[0].dim() == 4:
        return torch.stack([o.permute(0, 2, 3, 1) for o in outputs]).permute(0, 1, 4, 2, 3)
    return torch.stack(outputs)


def _compiler(model, index, cell):
    if not getattr(model, "compile_step", False):
        return None
    return lambda norm: compiled_dynamics(model, index, cell, norm)


def run_fast(model, frames, steps, mask, traces):
    """frames [B,T,Cp,Hp,Wp] -> (predictions [B,steps,Cp,Hp,Wp], traces); `traces` (the predictor's Traces, or
    None) records every layer's states."""
    if model.conv_algorithm == "direct":
        return _run_fast(model, frames, steps, mask, traces)
    with conv_override(winograd.Convolutions(model, model.conv_algorithm)):
        return _run_fast(model, frames, steps, mask, traces)


def _run_fast(model, frames, steps, mask, traces):
    recompute, channels_last = model.fast_settings(frames.device)
    runners = [LayerRunner(cell, recompute, channels_last, compiled=_compiler(model, i, cell))
               for i, cell in enumerate(model.cell_list)]
    context_steps = min(model.in_frames, steps)

    def recorder(layer):
        if traces is None:
            return lambda previous, new: None
        return lambda previous, new: traces.record(layer, model.cell_list[layer], previous, new)

    x_seq = frames[:, :context_steps].transpose(0, 1)
    states = []
    for i, runner in enumerate(runners):
        x_seq, state = runner.sequence(x_seq, 0, recorder(i))
        states.append(state)
    context_preds = model.conv_last(x_seq.flatten(0, 1)).unflatten(0, x_seq.shape[:2]).transpose(0, 1)

    preds, x_hat = [context_preds], context_preds[:, -1]
    for t in range(context_steps, steps):
        x = model.input_at(t, frames, mask, x_hat)
        for i, runner in enumerate(runners):
            previous = states[i]
            states[i] = runner.step(x, previous, t)
            if traces is not None:
                traces.record(i, model.cell_list[i], previous, states[i])
            x = states[i][0]
        x_hat = model.conv_last(x)
        preds.append(x_hat.unsqueeze(1))
    return torch.cat(preds, dim=1), traces
