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
from stcbench.numba_threads import KERNEL_OPTIONS, numba, parallel_region

@functools.cache
def _compile():
    return _build()       # compiled (or loaded from numba's cache) on first use


def _build():  # pragma: no cover - compiled code, exercised through the tests
    import numpy as np

    parallel = numba.njit(parallel=True, **KERNEL_OPTIONS)
    serial = numba.njit(**KERNEL_OPTIONS)
    prange = numba.prange

    @numba.njit(inline="always")
    def piece(job, chunks, positions):
        """(sample b, chunk k, first position, end) of parallel job `job`: each sample's positions in `chunks`."""
        size = -(-positions // chunks)
        k = job % chunks
        return job // chunks, k, k * size, min(positions, (k + 1) * size)

    @numba.njit(inline="always")
    def add_moments(row, s1, s2):
        """s1 += row, s2 += row^2 (float64), element by element."""
        for c in range(row.shape[0]):
            v = np.float64(row[c])
            s1[c] += v
            s2[c] += v * v

    @parallel
    def moments(y, chunks, out):
        """out[b, k, 0, c] = sum of y[b, p, c] over the k-th chunk of positions p; out[b, k, 1, c]: of y^2."""
        batch, positions, channels = y.shape
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            s1, s2 = np.zeros(channels), np.zeros(channels)
            for p in range(start, stop):
                add_moments(y[b, p], s1, s2)
            out[b, k, 0], out[b, k, 1] = s1, s2

    @parallel
    def gather_moments(y, source, chunks, out, blocks):
        """blocks[b, p, c] = y[b, p, source[c]] (the gates' channels in block order), with `moments` of blocks."""
        batch, positions, channels = blocks.shape
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            s1, s2 = np.zeros(channels), np.zeros(channels)
            for p in range(start, stop):
                for c in range(channels):
                    blocks[b, p, c] = y[b, p, source[c]]
                add_moments(blocks[b, p], s1, s2)
            out[b, k, 0], out[b, k, 1] = s1, s2

    @serial
    def norm_statistics(partial, group_of, n_groups, positions, gamma, beta, eps, mean, rstd, scale, shift):
        """GroupNorm mean and 1/std per (sample, group) from per-channel moments, and the affine form of its
        output per (sample, channel): gamma (y - mean) rstd + beta = y * scale + shift."""
        batch, chunks, _, channels = partial.shape
        for b in range(batch):
            s1 = np.zeros(n_groups)
            s2 = np.zeros(n_groups)
            count = np.zeros(n_groups)
            for c in range(channels):
                g = group_of[c]
                count[g] += positions
                for k in range(chunks):
                    s1[g] += partial[b, k, 0, c]
                    s2[g] += partial[b, k, 1, c]
            for g in range(n_groups):
                m = s1[g] / count[g]
                var = max(s2[g] / count[g] - m * m, 0.0)
                mean[b, g] = m
                rstd[b, g] = 1.0 / np.sqrt(var + eps)
            for c in range(channels):
                g = group_of[c]
                scale[b, c] = gamma[c] * rstd[b, g]
                shift[b, c] = beta[c] - gamma[c] * mean[b, g] * rstd[b, g]

    @parallel
    def affine(y, scale, shift, chunks, out):
        """out[b, p, c] = y[b, p, c] * scale[b, c] + shift[b, c]."""
        batch, positions, channels = y.shape
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    out[b, p, c] = y[b, p, c] * scale[b, c] + shift[b, c]

    @numba.njit(inline="always")
    def charge(yx, scale_x, shift_x, gates, mem_prev, consts, b, p, c, channels):
        """u = c_h (A u_{t-1}) + c_i (I B) at one element (Eq. 11), A = 2 sig(2 z_h), B = 2 sig(2 z_v)."""
        current = yx[b, p, c] * scale_x[b, c] + shift_x[b, c]
        a = consts[4] * gates[b, p, c]
        g = consts[4] * gates[b, p, channels + c]
        return consts[0] * (a * mem_prev[b, p, c]) + consts[1] * (current * g)

    @numba.njit(inline="always")
    def slope(q, alpha, one, derivative_given):
        """The surrogate's derivative at u - threshold: q itself, or alpha q (1 - q) for q = sig(alpha (u - theta))."""
        return q if derivative_given else alpha * q * (one - q)

    @parallel
    def membrane(yx, scale_x, shift_x, gates, mem_prev, consts, strict, hard, chunks, spike, mem):
        """Forward: gates [B, P, 2C] hold sig(2 z) of the history gate (channels < C) and the input gate;
        consts = (c_h, c_i, threshold, alpha, 2, 1, 0, r); `hard`: the hard reset u (1 - s), else u - threshold s."""
        batch, positions, channels = yx.shape
        threshold = consts[2]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    u = charge(yx, scale_x, shift_x, gates, mem_prev, consts, b, p, c, channels)
                    x = u - threshold
                    fire = x > 0 if strict else x >= 0
                    s = consts[5] if fire else consts[6]
                    spike[b, p, c] = s
                    mem[b, p, c] = u * (consts[5] - s) if hard else u - s * threshold

    @parallel
    def surrogate_argument(yx, scale_x, shift_x, gates, mem_prev, consts, chunks, out):
        """out = alpha (u - threshold), the membrane recomputed as in `membrane` (alpha = 1 unless sigmoid)."""
        batch, positions, channels = yx.shape
        threshold, alpha = consts[2], consts[3]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    u = charge(yx, scale_x, shift_x, gates, mem_prev, consts, b, p, c, channels)
                    out[b, p, c] = alpha * (u - threshold)

    @numba.njit(inline="always")
    def gate_gradients(d_gated_history, d_gated_input, h, current, yx, yhv, gates, b, p, c, channels, two, one,
                       dz_x, dz_hv, sums):
        """The gradients at the three GroupNorm outputs from those at A h_{t-1} and B I (dz_x for the current,
        dz_hv for sig's argument 2z of both gates, block order), and their per-channel sums of dz and dz y
        (sums[0:2] current, [2:4] history gate, [4:6] input gate)."""
        sa = gates[b, p, c]
        sb = gates[b, p, channels + c]
        dza = two * (d_gated_history * h) * sa * (one - sa)
        dzb = two * (d_gated_input * current) * sb * (one - sb)
        dcur = d_gated_input * (two * sb)
        dz_x[b, p, c] = dcur
        dz_hv[b, p, c] = dza
        dz_hv[b, p, channels + c] = dzb
        sums[0, c] += dcur
        sums[1, c] += dcur * np.float64(yx[b, p, c])
        sums[2, c] += dza
        sums[3, c] += dza * np.float64(yhv[b, p, c])
        sums[4, c] += dzb
        sums[5, c] += dzb * np.float64(yhv[b, p, channels + c])

    @numba.njit(inline="always")
    def write_partials(sums, b, k, channels, partial_x, partial_hv):
        """partial_*[b, k, 0 | 1, c]: the per-channel sums of `gate_gradients` for this job."""
        for c in range(channels):
            partial_x[b, k, 0, c] = sums[0, c]
            partial_x[b, k, 1, c] = sums[1, c]
            partial_hv[b, k, 0, c] = sums[2, c]
            partial_hv[b, k, 1, c] = sums[3, c]
            partial_hv[b, k, 0, channels + c] = sums[4, c]
            partial_hv[b, k, 1, channels + c] = sums[5, c]

    @parallel
    def elementwise_backward(yx, yhv, scale_x, shift_x, gates, mem_prev, q, spike, d_spike, d_mem, consts,
                             derivative_given, hard, chunks, d_mem_prev, dz_x, dz_hv, partial_x, partial_hv,
                             partial_c):
        """Gradients of the element-wise step: d u_{t-1}, and those at the three GroupNorm outputs with their
        per-channel sums (`gate_gradients`, `write_partials`); partial_c[b, k] holds the sums of du (A u_{t-1}) and
        du (B I), the gradients of c_h and c_i.  q = sig(alpha (u - threshold)), or the surrogate's derivative
        itself (`derivative_given`).  du = dh (1 - s if hard) + (ds - r dh) surrogate', r = threshold for the soft
        reset, 0 for the detached ones; `spike` is read for the hard reset only."""
        batch, positions, channels = yx.shape
        c_h, c_i, alpha, two = consts[0], consts[1], consts[3], consts[4]
        one, r = consts[5], consts[7]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            sums = np.zeros((6, channels))
            s_ch = 0.0
            s_ci = 0.0
            for p in range(start, stop):
                for c in range(channels):
                    dm = d_mem[b, p, c]
                    kept = dm * (one - spike[b, p, c]) if hard else dm
                    du = kept + (d_spike[b, p, c] - r * dm) * slope(q[b, p, c], alpha, one, derivative_given)
                    d_history = du * c_h
                    d_gated = du * c_i
                    h = mem_prev[b, p, c]
                    current = yx[b, p, c] * scale_x[b, c] + shift_x[b, c]
                    history_gate = two * gates[b, p, c]
                    s_ch += np.float64(du) * (history_gate * h)
                    s_ci += np.float64(du) * (current * (two * gates[b, p, channels + c]))
                    d_mem_prev[b, p, c] = d_history * history_gate
                    gate_gradients(d_history, d_gated, h, current, yx, yhv, gates, b, p, c, channels, two, one,
                                   dz_x, dz_hv, sums)
            write_partials(sums, b, k, channels, partial_x, partial_hv)
            partial_c[b, k, 0] = s_ch
            partial_c[b, k, 1] = s_ci

    @numba.njit(inline="always")
    def charge_lmh(yx, scale_x, shift_x, gates, mem_prev, dend_prev, consts, b, p, c, channels):
        """(d, u) of STC-LM-H at one element: d = a1 d_{t-1} + b1 h_{t-1} + B I, u = a2 d + b2 (A h_{t-1})."""
        current = yx[b, p, c] * scale_x[b, c] + shift_x[b, c]
        a = consts[6] * gates[b, p, c]
        g = consts[6] * gates[b, p, channels + c]
        h = mem_prev[b, p, c]
        d = consts[0] * dend_prev[b, p, c] + consts[1] * h + current * g
        return d, consts[2] * d + consts[3] * (a * h)

    @parallel
    def membrane_lmh(yx, scale_x, shift_x, gates, mem_prev, dend_prev, consts, strict, chunks, spike, mem, dend):
        """Forward of STC-LM-H; consts = (a1, b1, a2, b2, threshold, alpha, 2, 1, 0, amplitude, reset slope)."""
        batch, positions, channels = yx.shape
        threshold, amplitude = consts[4], consts[9]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    d, u = charge_lmh(yx, scale_x, shift_x, gates, mem_prev, dend_prev, consts, b, p, c, channels)
                    x = u - threshold
                    fire = x > 0 if strict else x >= 0
                    s = amplitude if fire else consts[8]
                    spike[b, p, c] = s
                    mem[b, p, c] = u - s
                    dend[b, p, c] = d

    @parallel
    def surrogate_argument_lmh(yx, scale_x, shift_x, gates, mem_prev, dend_prev, consts, chunks, out):
        """out = alpha (u - threshold), the soma recomputed as in `membrane_lmh`."""
        batch, positions, channels = yx.shape
        threshold, alpha = consts[4], consts[5]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    _, u = charge_lmh(yx, scale_x, shift_x, gates, mem_prev, dend_prev, consts, b, p, c, channels)
                    out[b, p, c] = alpha * (u - threshold)

    @parallel
    def elementwise_backward_lmh(yx, yhv, scale_x, shift_x, gates, mem_prev, dend_prev, q, d_spike, d_mem, d_dend,
                                 consts, derivative_given, chunks, d_mem_prev, d_dend_prev, dz_x, dz_hv, partial_x,
                                 partial_hv, partial_c):
        """`elementwise_backward` for STC-LM-H: also d d_{t-1}, and partial_c[b, k] holds the gradient sums of
        (a1, b1, a2, b2).  du = dh + (ds - r dh) amplitude surrogate'(u - threshold), r = 0 for the detached
        reset; the dendrite's gradient is dd = d d_t + a2 du."""
        batch, positions, channels = yx.shape
        a1, b1, a2, b2 = consts[0], consts[1], consts[2], consts[3]
        alpha, two, one, amplitude, reset = consts[5], consts[6], consts[7], consts[9], consts[10]
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            sums = np.zeros((6, channels))
            s_a1 = 0.0
            s_b1 = 0.0
            s_a2 = 0.0
            s_b2 = 0.0
            for p in range(start, stop):
                for c in range(channels):
                    dm = d_mem[b, p, c]
                    du = dm + (d_spike[b, p, c] - reset * dm) * (amplitude * slope(q[b, p, c], alpha, one,
                                                                                    derivative_given))
                    dd = d_dend[b, p, c] + du * a2
                    h = mem_prev[b, p, c]
                    dendrite = dend_prev[b, p, c]
                    current = yx[b, p, c] * scale_x[b, c] + shift_x[b, c]
                    history_gate = two * gates[b, p, c]
                    d = a1 * dendrite + b1 * h + current * (two * gates[b, p, channels + c])
                    s_a1 += np.float64(dd) * dendrite
                    s_b1 += np.float64(dd) * h
                    s_a2 += np.float64(du) * d
                    s_b2 += np.float64(du) * (history_gate * h)
                    d_mem_prev[b, p, c] = dd * b1 + (du * b2) * history_gate
                    d_dend_prev[b, p, c] = dd * a1
                    gate_gradients(du * b2, dd, h, current, yx, yhv, gates, b, p, c, channels, two, one,
                                   dz_x, dz_hv, sums)
            write_partials(sums, b, k, channels, partial_x, partial_hv)
            partial_c[b, k, 0] = s_a1
            partial_c[b, k, 1] = s_b1
            partial_c[b, k, 2] = s_a2
            partial_c[b, k, 3] = s_b2

    @serial
    def norm_backward_coefficients(partial, mean, rstd, group_of, n_groups, positions, gamma,
                                   k_dz, k_y, k_0, mean_c, d_gamma, d_beta):
        """GroupNorm backward as dy = dz k_dz + (y - mean) k_y + k_0 per (sample, channel), from the sums of dz
        and dz y; accumulates d_gamma = sum dz x_hat and d_beta = sum dz over samples and positions."""
        batch, chunks, _, channels = partial.shape
        for b in range(batch):
            m1 = np.zeros(n_groups)
            m2 = np.zeros(n_groups)
            count = np.zeros(n_groups)
            for c in range(channels):
                g = group_of[c]
                s_dz = 0.0
                s_dzy = 0.0
                for k in range(chunks):
                    s_dz += partial[b, k, 0, c]
                    s_dzy += partial[b, k, 1, c]
                s_dz_xhat = rstd[b, g] * (s_dzy - mean[b, g] * s_dz)
                d_beta[c] += s_dz
                d_gamma[c] += s_dz_xhat
                m1[g] += gamma[c] * s_dz
                m2[g] += gamma[c] * s_dz_xhat
                count[g] += positions
            for c in range(channels):
                g = group_of[c]
                r = rstd[b, g]
                k_dz[b, c] = gamma[c] * r
                k_y[b, c] = -r * r * m2[g] / count[g]
                k_0[b, c] = -r * m1[g] / count[g]
                mean_c[b, c] = mean[b, g]

    @parallel
    def norm_backward(dz, y, k_dz, k_y, k_0, mean_c, chunks):
        """dz <- dz k_dz + (y - mean) k_y + k_0 (in place)."""
        batch, positions, channels = dz.shape
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            for p in range(start, stop):
                for c in range(channels):
                    dz[b, p, c] = dz[b, p, c] * k_dz[b, c] + (y[b, p, c] - mean_c[b, c]) * k_y[b, c] + k_0[b, c]

    @parallel
    def norm_backward_scatter(dz, y, k_dz, k_y, k_0, mean_c, target, chunks, out):
        """out[b, p, target[c]] = dz k_dz + (y - mean) k_y + k_0 (the gates' gradient back in the convolution's
        channel order)."""
        batch, positions, channels = dz.shape
        for job in prange(batch * chunks):
            b, k, start, stop = piece(job, chunks, positions)
            row = np.empty(channels, dtype=out.dtype)
            for p in range(start, stop):
                for c in range(channels):
                    row[c] = dz[b, p, c] * k_dz[b, c] + (y[b, p, c] - mean_c[b, c]) * k_y[b, c] + k_0[b, c]
                for c in range(channels):
                    out[b, p, target[c]] = row[c]

    return dict(moments=moments, gather_moments=gather_moments, norm_backward_scatter=norm_backward_scatter,
                norm_statistics=norm_statistics, affine=affine, membrane=membrane,
                surrogate_argument=surrogate_argument, elementwise_backward=elementwise_backward,
                membrane_lmh=membrane_lmh, surrogate_argument_lmh=surrogate_argument_lmh,
                elementwise_backward_lmh=elementwise_backward_lmh,
                norm_backward_coefficients=norm_backward_coefficients, norm_backward=norm_backward)


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


def warm_up(dtype: torch.dtype = torch.float32) -> None:
    """Load (or compile) the kernels for `dtype` now, e.g. before measuring memory or time."""
    if not available():
        return
    from stcbench.cells import create_cell

    for name in ("stclif", "stclmh"):
        cell = create_cell(name, 1, 16).to(dtype)
        pre = torch.zeros(1, 16, 2, 2, dtype=dtype, requires_grad=True).contiguous(memory_format=torch.channels_last)
        state = tuple(s.contiguous(memory_format=torch.channels_last)
                      for s in cell.initial_state(1, (2, 2), dtype=dtype))
        outputs = FusedSTCStep(cell).step(pre, state, 0)
        sum(o.sum() for o in outputs).backward()
