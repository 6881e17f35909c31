"""The neuron step of STC-LIF, STC-PLIF and STC-LM-H after its convolutions, as one autograd function (fast
path, CPU).

Per step the STC-LIF cell computes (STC-LIF paper Eqs. 2-4 and 11; official STCLIFCell)

    I   = GN_x(conv_x(x_t))                       input current
    A   = 1 + tanh(GN_h(conv_h(s_{t-1})))         history gate (temporal circuit)
    B   = 1 + tanh(GN_v(conv_v(s_{t-1})))         input gate (spatial circuit)
    u   = c_h (A u_{t-1}) + c_i (B I)             perfect integrator c_h = c_i = 1 (leaky: lambda, 1 - lambda;
                                                  STC-PLIF, Eq. 22: the learnable sig(w), 1 - sig(w))
    s_t = H(u - theta),  u_t = u - theta s_t      soft reset (PLIF: also detached, or the hard u (1 - s_t))
                                                  ds/du = the surrogate's derivative at u - theta

and STC-LM-H (official STCLMHCell; cells/lmh.py, with the same I, A, B) has a dendrite d and a soma h:

    d_t = a1 d_{t-1} + b1 h_{t-1} + B I           a1 = sig(d_u) - 1/2, b1 = sig(s_u) - 1/2
    u   = a2 d_t + b2 (A h_{t-1})                 a2 = sig(d_p) + 1/2, b2 = sig(s_p) + 1/2
    s_t = theta H(u - theta),  h_t = u - s_t      the reset's gradient detached or not (stc_lmh_reset_detach)

Here the two circuit convolutions are one grouped convolution whose weights interleave the two
gates group by group (`CircuitConvolution`), and everything after the convolutions is
`FusedSTCStep`: a few numba passes over channels-last memory plus torch's vectorised sigmoid
(1 + tanh(z) = 2 sigmoid(2z), the factor 2 folded into GroupNorm's affine parameters, as in
gates.py).  Forward keeps only the convolution outputs and u_{t-1} (and d_{t-1}); backward recomputes the gates
and the membrane (two cheap passes) and does the three GroupNorm backwards in closed form:

    dy = rstd (gamma dz - mean_g(gamma dz) - x_hat mean_g(gamma dz x_hat))

with the group means taken from per-channel sums.  Values and gradients equal the cell's up to
round-off (tests/models/test_fused_stc.py, float64).  The sigmoid surrogate's derivative is finished inside
the kernels from sig(alpha (u - theta)); any other surrogate's `derivative` runs in torch on u - theta.
"""
from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from stcbench.kernels import staggered
from stcbench.kernels.gates import fusable, spec_of
from stcbench.numba_threads import numba, parallel_region


@functools.cache
def _compile():
    from stcbench.kernels import fused_stc_numba    # compiled (or loaded from numba's cache) on first call

    return fused_stc_numba.KERNELS


def available() -> bool:
    return numba is not None


def eligible(cell) -> bool:
    """True for a cell that declares its whole step in the fused form (`fused_step_spec()` with a `neuron`:
    STC-LIF, STC-PLIF and STC-LM-H with any of their resets and surrogates, both circuits, Conv -> GroupNorm
    synapses, the stock step), on the CPU outside autocast."""
    if not (available() and fusable(cell)):
        return False
    spec = spec_of(cell)
    weight = spec.history_synapse[0].weight
    return (spec.neuron is not None and spec.input_synapse is not None
            and weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled("cpu"))


def _rows(t: torch.Tensor):
    """A channels-last [B, C, H, W] tensor as the numpy view [B, H*W, C] of the same memory."""
    if not t.is_contiguous(memory_format=torch.channels_last):
        raise ValueError("fused STC step: expected a channels-last tensor (a reshape would copy it)")
    b, c, h, w = t.shape
    return t.detach().permute(0, 2, 3, 1).numpy().reshape(b, h * w, c)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


class FusedSTCStep:
    """The parameters of one eligible cell (STC-LIF, STC-PLIF, STC-LM-H) in the fused form, made once per forward
    pass from what the cell declares (`fused_step_spec`)."""

    def __init__(self, cell):
        import numpy as np

        spec = spec_of(cell)
        neuron = spec.neuron
        self.circuit_input = spec.circuit_input
        self.conv_x, self.norm_x = spec.input_synapse[0], spec.input_synapse[1]
        conv_h, conv_v = spec.history_synapse[0], spec.input_gate_synapse[0]
        norm_h, norm_v = spec.history_synapse[1], spec.input_gate_synapse[1]
        channels = spec.hidden_channels
        self.conv = conv_h
        per_group = channels // conv_h.groups
        # one grouped convolution: each group's outputs are its history-gate channels, then its input-gate ones
        self.weight = torch.stack((conv_h.weight.unflatten(0, (conv_h.groups, per_group)),
                                   conv_v.weight.unflatten(0, (conv_h.groups, per_group))), 1).flatten(0, 2)
        c = np.arange(channels)
        convolution_index = 2 * per_group * (c // per_group) + c % per_group
        # block order [history gate C | input gate C]: block channel i is convolution channel source[i]
        self.source = np.concatenate((convolution_index, convolution_index + per_group)).astype(np.int64)
        self.gamma_hv = 2 * torch.cat((norm_h.weight, norm_v.weight))      # 1 + tanh(z) = 2 sig(2 z)
        self.beta_hv = 2 * torch.cat((norm_h.bias, norm_v.bias))
        self.groups_x = self.norm_x.num_groups
        self.group_of_x = (c // (channels // self.groups_x)).astype(np.int64)
        self.groups_hv = 2 * norm_h.num_groups
        self.group_of_hv = (np.arange(2 * channels) // (channels // norm_h.num_groups)).astype(np.int64)
        self.eps_x, self.eps_hv = float(self.norm_x.eps), float(norm_h.eps)
        self.two_compartments = neuron.compartments == 2
        # the sigmoid surrogate's derivative is taken from sig(alpha (u - theta)) inside the kernels; any other
        # surrogate's `derivative` runs in torch on u - theta (alpha = 1 there)
        self.surrogate = neuron.surrogate
        self.sigmoid = neuron.sigmoid_alpha is not None
        threshold, alpha = neuron.threshold, neuron.sigmoid_alpha if self.sigmoid else 1.0
        self.hard_reset = neuron.reset == "hard_detached"
        soft = neuron.reset == "soft"
        self.coefficients = neuron.coefficients
        if self.two_compartments:
            # consts = (a1, b1, a2, b2, threshold, alpha, 2, 1, 0, spike amplitude, reset slope)
            tail = [threshold, alpha, 2.0, 1.0, 0.0, threshold, 1.0 if soft else 0.0]
        else:
            # consts = (c_h, c_i, threshold, alpha, 2, 1, 0, r): r = threshold for the soft reset's gradient
            tail = [threshold, alpha, 2.0, 1.0, 0.0, threshold if soft else 0.0]
        values = [float(c.detach()) if isinstance(c, torch.Tensor) else float(c) for c in self.coefficients]
        self.constants = {dtype: np.array(values + tail, dtype=dtype) for dtype in (np.float32, np.float64)}
        # learnable coefficients (PLIF's decay and gain, LM-H's four) enter the autograd function as inputs
        self.learnable = [c if isinstance(c, torch.Tensor) and c.requires_grad else None for c in self.coefficients]
        self.strict = bool(neuron.surrogate.strict)
        self.norm_parameters = {}
        self._workspace = {}

    def parameters64(self, which: str):
        """(gamma, beta) of the input ("x") or the gates' ("hv") GroupNorm as float64 numpy arrays, made once per
        forward pass (the parameters do not change between a forward pass and its backward)."""
        if which not in self.norm_parameters:
            gamma, beta = (self.norm_x.weight, self.norm_x.bias) if which == "x" else (self.gamma_hv, self.beta_hv)
            self.norm_parameters[which] = (_numpy64(gamma), _numpy64(beta))
        return self.norm_parameters[which]

    def workspace(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A scratch tensor shaped like `like`, reused by every step of this forward/backward pass."""
        buffer = self._workspace.get(name)
        if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
            buffer = self._workspace[name] = staggered.empty_like(like)
        return buffer

    def circuit(self, prev_spike: torch.Tensor) -> torch.Tensor:
        """Both circuit convolutions of the previous spikes in one grouped call (convolution channel order)."""
        g = _channels_last(self.circuit_input(prev_spike, self.weight.dtype))
        conv = self.conv
        return F.conv2d(g, self.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    def step(self, pre: torch.Tensor, state, t):
        """The cell's new state (spike, membrane[, dendrite]) from the input synapse's convolution output `pre`."""
        yhv = self.circuit(state[0])
        norms = (self.norm_x.weight, self.norm_x.bias, self.gamma_hv, self.beta_hv)
        if self.two_compartments:
            return _FusedLMHStep.apply(pre, yhv, state[1], state[2], *norms, *self.learnable, self)
        return _FusedStep.apply(pre, yhv, state[1], *norms, *self.learnable, self)

    def surrogate_slope(self, q: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """From q = alpha (u - threshold): (sig(q), False) for the sigmoid surrogate, whose kernels finish its
        derivative, else (the surrogate's derivative, True)."""
        if self.sigmoid:
            return torch.sigmoid_(q), False
        return _channels_last(self.surrogate.derivative(q)), True

    def chunks(self, batch: int) -> int:
        """Position chunks per sample, so that every thread has work."""
        return max(1, -(-2 * torch.get_num_threads() // batch))


def _numpy64(t: torch.Tensor):
    return t.detach().to(torch.float64).numpy()


def _norm_statistics(kernels, partial, gamma_beta, group_of, groups, eps, positions, dtype):
    """(mean, rstd, scale, shift) of a GroupNorm from per-channel moments; scale and shift in `dtype`."""
    import numpy as np

    batch, channels = partial.shape[0], partial.shape[-1]
    mean, rstd = np.empty((batch, groups)), np.empty((batch, groups))
    scale, shift = np.empty((batch, channels)), np.empty((batch, channels))
    kernels["norm_statistics"](partial, group_of, groups, positions, *gamma_beta, eps, mean, rstd, scale, shift)
    return mean, rstd, scale.astype(dtype), shift.astype(dtype)


def _norm_backward_coefficients(kernels, partial, stats, group_of, groups, positions, gamma64, dtype):
    """(k_dz, k_y, k_0, mean per channel) in `dtype`, and (d_gamma, d_beta) as float64 tensors."""
    import numpy as np

    batch, channels = partial.shape[0], partial.shape[-1]
    k_dz, k_y, k_0, mean_c = (np.empty((batch, channels)) for _ in range(4))
    d_gamma, d_beta = np.zeros(channels), np.zeros(channels)
    kernels["norm_backward_coefficients"](partial, stats[0], stats[1], group_of, groups, positions, gamma64,
                                          k_dz, k_y, k_0, mean_c, d_gamma, d_beta)
    coefficients = tuple(a.astype(dtype) for a in (k_dz, k_y, k_0, mean_c))
    return coefficients, (torch.from_numpy(d_gamma), torch.from_numpy(d_beta))


class _Normalized:
    """The three GroupNorms of one fused step: their statistics from the convolution outputs, the gates, and
    their backward pass from the gradients at their outputs."""

    def __init__(self, plan, yx, yhv):
        import numpy as np

        self.kernels, self.plan = _compile(), plan
        batch, channels, height, width = yx.shape
        self.positions = height * width
        self.dtype = np.float64 if yx.dtype == torch.float64 else np.float32
        self.chunks = plan.chunks(batch)
        self.blocks = staggered.empty_like(yhv)
        partial_x = np.empty((batch, self.chunks, 2, channels))
        partial_hv = np.empty((batch, self.chunks, 2, 2 * channels))
        with parallel_region():
            self.kernels["moments"](_rows(yx), self.chunks, partial_x)
            self.kernels["gather_moments"](_rows(yhv), plan.source, self.chunks, partial_hv, _rows(self.blocks))
        self.stats_x = _norm_statistics(self.kernels, partial_x, plan.parameters64("x"), plan.group_of_x,
                                        plan.groups_x, plan.eps_x, self.positions, self.dtype)
        self.stats_hv = _norm_statistics(self.kernels, partial_hv, plan.parameters64("hv"), plan.group_of_hv,
                                         plan.groups_hv, plan.eps_hv, self.positions, self.dtype)

    def gates(self) -> torch.Tensor:
        """sig(2 z) of both circuits (block order) from their convolution output (block order)."""
        _, _, scale, shift = self.stats_hv
        gates = self.plan.workspace("gates", self.blocks)
        with parallel_region():
            self.kernels["affine"](_rows(self.blocks), scale, shift, self.chunks, _rows(gates))
        return torch.sigmoid_(gates)

    def partials(self, batch: int, channels: int, coefficients: int):
        """Zero-free buffers for the per-channel sums of the element-wise backward pass."""
        import numpy as np

        return (np.empty((batch, self.chunks, 2, channels)), np.empty((batch, self.chunks, 2, 2 * channels)),
                np.empty((batch, self.chunks, coefficients)))

    def backward(self, yx, dz_x, dz_hv, partial_x, partial_hv):
        """Gradients at the convolution outputs (dz_x in place, and d yhv in the convolution's channel order)
        and of the GroupNorms' (gamma_x, beta_x, gamma_hv, beta_hv), from those at the GroupNorm outputs."""
        plan, kernels, dtype = self.plan, self.kernels, self.dtype
        coefficients_x, grads_x = _norm_backward_coefficients(
            kernels, partial_x, self.stats_x, plan.group_of_x, plan.groups_x, self.positions,
            plan.parameters64("x")[0], dtype)
        coefficients_hv, grads_hv = _norm_backward_coefficients(
            kernels, partial_hv, self.stats_hv, plan.group_of_hv, plan.groups_hv, self.positions,
            plan.parameters64("hv")[0], dtype)
        d_yhv = staggered.empty_like(self.blocks)
        with parallel_region():
            kernels["norm_backward"](_rows(dz_x), _rows(yx), *coefficients_x, self.chunks)
            kernels["norm_backward_scatter"](_rows(dz_hv), _rows(self.blocks), *coefficients_hv, plan.source,
                                             self.chunks, _rows(d_yhv))
        return dz_x, d_yhv, (*grads_x, *grads_hv)


def _coefficient_gradients(shapes, partial_c):
    """Gradients of the learnable coefficients (None for constant ones) from their per-chunk sums."""
    sums = partial_c.sum(axis=(0, 1))
    return tuple(None if c is None else torch.full(c[0], float(total), dtype=c[1]) for c, total in zip(shapes, sums))


def _output_gradient(grad, like):
    return torch.zeros_like(like) if grad is None else _channels_last(grad)


class _FusedStep(torch.autograd.Function):
    """(yx, yhv, u_{t-1}, GN_x affine, gate GN affine in block order, c_h, c_i) -> (s_t, u_t); see the module
    docstring.  yhv is the combined circuit convolution's output; it is kept in block order [history | input]."""

    @staticmethod
    def forward(ctx, yx, yhv, mem_prev, gamma_x, beta_x, gamma_hv, beta_hv, c_h, c_i, plan):
        yx, yhv, mem_prev = _channels_last(yx), _channels_last(yhv), _channels_last(mem_prev.to(yx.dtype))
        norm = _Normalized(plan, yx, yhv)
        gates = norm.gates()
        spike, mem = staggered.empty_like(yx), staggered.empty_like(yx)
        stats_x = norm.stats_x
        with parallel_region():
            norm.kernels["membrane"](_rows(yx), stats_x[2], stats_x[3], _rows(gates), _rows(mem_prev),
                                     plan.constants[norm.dtype], plan.strict, plan.hard_reset, norm.chunks,
                                     _rows(spike), _rows(mem))
        # the hard reset's gradient needs the spikes (an output, kept by the next step's circuit anyway)
        ctx.save_for_backward(yx, norm.blocks, mem_prev, gamma_x, gamma_hv, spike if plan.hard_reset else None)
        ctx.norm = norm
        ctx.coefficients = tuple(None if c is None else (c.shape, c.dtype) for c in (c_h, c_i))
        return spike, mem

    @staticmethod
    def backward(ctx, d_spike, d_mem):
        yx, blocks, mem_prev, gamma_x, gamma_hv, spike = ctx.saved_tensors
        norm = ctx.norm
        kernels, chunks, stats_x = norm.kernels, norm.chunks, norm.stats_x
        consts = norm.plan.constants[norm.dtype]
        batch, channels = yx.shape[:2]
        d_spike, d_mem = _output_gradient(d_spike, yx), _output_gradient(d_mem, yx)
        gates = norm.gates()
        q = norm.plan.workspace("q", yx)
        with parallel_region():
            kernels["surrogate_argument"](_rows(yx), stats_x[2], stats_x[3], _rows(gates), _rows(mem_prev), consts,
                                          chunks, _rows(q))
        q, derivative_given = norm.plan.surrogate_slope(q)
        d_mem_prev, dz_x, dz_hv = staggered.empty_like(yx), staggered.empty_like(yx), norm.plan.workspace("dz_hv",
                                                                                                         blocks)
        partial_x, partial_hv, partial_c = norm.partials(batch, channels, 2)
        with parallel_region():
            kernels["elementwise_backward"](_rows(yx), _rows(blocks), stats_x[2], stats_x[3], _rows(gates),
                                            _rows(mem_prev), _rows(q), _rows(q if spike is None else spike),
                                            _rows(d_spike), _rows(d_mem), consts, derivative_given,
                                            norm.plan.hard_reset, chunks, _rows(d_mem_prev), _rows(dz_x),
                                            _rows(dz_hv), partial_x, partial_hv, partial_c)
        dz_x, d_yhv, grads = norm.backward(yx, dz_x, dz_hv, partial_x, partial_hv)
        grads = (g.to(gamma_x.dtype) for g in grads)
        return dz_x, d_yhv, d_mem_prev, *grads, *_coefficient_gradients(ctx.coefficients, partial_c), None


class _FusedLMHStep(torch.autograd.Function):
    """STC-LM-H: (yx, yhv, h_{t-1}, d_{t-1}, GN affines, a1, b1, a2, b2) -> (s_t, h_t, d_t), the two
    compartments of cells/lmh.py with the circuit's gates (A on the soma's history, B on the input)."""

    @staticmethod
    def forward(ctx, yx, yhv, mem_prev, dend_prev, gamma_x, beta_x, gamma_hv, beta_hv, a1, b1, a2, b2, plan):
        yx, yhv = _channels_last(yx), _channels_last(yhv)
        mem_prev, dend_prev = _channels_last(mem_prev.to(yx.dtype)), _channels_last(dend_prev.to(yx.dtype))
        norm = _Normalized(plan, yx, yhv)
        gates = norm.gates()
        spike, mem, dend = (staggered.empty_like(yx) for _ in range(3))
        stats_x = norm.stats_x
        with parallel_region():
            norm.kernels["membrane_lmh"](_rows(yx), stats_x[2], stats_x[3], _rows(gates), _rows(mem_prev),
                                         _rows(dend_prev), plan.constants[norm.dtype], plan.strict, norm.chunks,
                                         _rows(spike), _rows(mem), _rows(dend))
        ctx.save_for_backward(yx, norm.blocks, mem_prev, dend_prev, gamma_x, gamma_hv)
        ctx.norm = norm
        ctx.coefficients = tuple(None if c is None else (c.shape, c.dtype) for c in (a1, b1, a2, b2))
        return spike, mem, dend

    @staticmethod
    def backward(ctx, d_spike, d_mem, d_dend):
        yx, blocks, mem_prev, dend_prev, gamma_x, gamma_hv = ctx.saved_tensors
        norm = ctx.norm
        kernels, chunks, stats_x = norm.kernels, norm.chunks, norm.stats_x
        consts = norm.plan.constants[norm.dtype]
        batch, channels = yx.shape[:2]
        d_spike, d_mem, d_dend = (_output_gradient(g, yx) for g in (d_spike, d_mem, d_dend))
        gates = norm.gates()
        q = norm.plan.workspace("q", yx)
        with parallel_region():
            kernels["surrogate_argument_lmh"](_rows(yx), stats_x[2], stats_x[3], _rows(gates), _rows(mem_prev),
                                              _rows(dend_prev), consts, chunks, _rows(q))
        q, derivative_given = norm.plan.surrogate_slope(q)
        d_mem_prev, d_dend_prev, dz_x = (staggered.empty_like(yx) for _ in range(3))
        dz_hv = norm.plan.workspace("dz_hv", blocks)
        partial_x, partial_hv, partial_c = norm.partials(batch, channels, 4)
        with parallel_region():
            kernels["elementwise_backward_lmh"](_rows(yx), _rows(blocks), stats_x[2], stats_x[3], _rows(gates),
                                                _rows(mem_prev), _rows(dend_prev), _rows(q), _rows(d_spike),
                                                _rows(d_mem), _rows(d_dend), consts, derivative_given, chunks,
                                                _rows(d_mem_prev), _rows(d_dend_prev), _rows(dz_x), _rows(dz_hv),
                                                partial_x, partial_hv, partial_c)
        dz_x, d_yhv, grads = norm.backward(yx, dz_x, dz_hv, partial_x, partial_hv)
        grads = (g.to(gamma_x.dtype) for g in grads)
        return (dz_x, d_yhv, d_mem_prev, d_dend_prev, *grads, *_coefficient_gradients(ctx.coefficients, partial_c),
                None)


def warm_up(cells, dtype: torch.dtype = torch.float32) -> None:
    """Load (or compile) now, e.g. before measuring memory or time, the kernels that the eligible ones of `cells`
    use for `dtype` (each is run on a copy, on a 2 x 2 map; the cells themselves are untouched)."""
    import copy

    for cell in cells:
        if not eligible(cell):
            continue
        cell = copy.deepcopy(cell).to(dtype)
        pre = torch.zeros(1, cell.hidden_channels, 2, 2, dtype=dtype, requires_grad=True)
        state = tuple(_channels_last(s) for s in cell.initial_state(1, (2, 2), dtype=dtype))
        outputs = FusedSTCStep(cell).step(_channels_last(pre), state, 0)
        sum(o.sum() for o in outputs).backward()
