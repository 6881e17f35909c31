"""The numba passes of the fused STC step (stcbench/kernels/fused_stc.py has the math and the autograd function).

Module-level functions, so that numba's on-disk cache finds them again in the next process: a kernel that
refers to another compiled function through a closure gets a new cache key in every process (numba hashes
the closure's contents, and a compiled function pickles with a per-process id), and was compiled again
each time (about 30 s at every start of a fast-path run).
"""
import numba
import numpy as np

from stcbench.numba_threads import KERNEL_OPTIONS


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


KERNELS = dict(moments=moments, gather_moments=gather_moments, norm_backward_scatter=norm_backward_scatter,
               norm_statistics=norm_statistics, affine=affine, membrane=membrane,
               surrogate_argument=surrogate_argument, elementwise_backward=elementwise_backward,
               membrane_lmh=membrane_lmh, surrogate_argument_lmh=surrogate_argument_lmh,
               elementwise_backward_lmh=elementwise_backward_lmh,
               norm_backward_coefficients=norm_backward_coefficients, norm_backward=norm_backward)
