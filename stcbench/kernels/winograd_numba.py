"""The numba tile transforms of the Winograd convolution (stcbench/kernels/winograd.py has the math).

Module-level functions so that numba's on-disk cache finds them again in the next process (see
fused_stc_numba.py).
"""
import numba
import numpy as np

from stcbench.numba_threads import KERNEL_OPTIONS


njit = numba.njit(parallel=True, **KERNEL_OPTIONS)
prange = numba.prange


@numba.njit(inline="always")
def bt8(d0, d1, d2, d3, d4, d5, d6, d7, k):
    """B^T d for one 8-vector: the rows of B_T written out (rows 2r-1 and 2r share their even and odd parts);
    k = (5.25, 4.25, 0.25, 1.25, 0.5, 2.5, 2, 4, 5) in the data's dtype."""
    e1 = d2 + d6 - k[1] * d4
    o1 = d1 + d5 - k[1] * d3
    e2 = k[2] * d2 - k[3] * d4 + d6
    o2 = k[4] * d1 - k[5] * d3 + k[6] * d5
    e3 = k[7] * d2 - k[8] * d4 + d6
    o3 = k[6] * d1 - k[5] * d3 + k[4] * d5
    return (d6 - d0 + k[0] * (d2 - d4), e1 + o1, e1 - o1, e2 + o2, e2 - o2, e3 + o3, e3 - o3,
            d7 - d1 + k[0] * (d3 - d5))


@numba.njit(inline="always")
def bt8_adjoint(r0, r1, r2, r3, r4, r5, r6, r7, k):
    """B r for one 8-vector (the transpose of `bt8`), with the pairs' sums and differences shared."""
    s1, t1, s2, t2, s3, t3 = r1 + r2, r1 - r2, r3 + r4, r3 - r4, r5 + r6, r5 - r6
    return (-r0, t1 + k[4] * t2 + k[6] * t3 - r7, k[0] * r0 + s1 + k[2] * s2 + k[7] * s3,
            k[0] * r7 - k[1] * t1 - k[5] * t2 - k[5] * t3, -(k[0] * r0) - k[1] * s1 - k[3] * s2 - k[8] * s3,
            t1 + k[6] * t2 + k[4] * t3 - k[0] * r7, r0 + s1 + s2 + s3, r7)


@njit
def input_tiles_adjoint(dv, k, pad, parity, out):
    """out[b, 4i + a - pad, 4j + q - pad, c] += (B dv B^T)[a, q] inside out [B, H, W, C], for the tile rows i of
    one parity (rows of one parity do not overlap): the adjoint of `input_tiles`."""
    n, _, batch, tiles_h, tiles_w, channels = dv.shape
    height, width = out.shape[1], out.shape[2]
    half = (tiles_h - parity + 1) // 2
    for job in prange(batch * half):
        b, i = job // half, 2 * (job % half) + parity
        cols = np.empty((8, 8, channels), dtype=out.dtype)
        column = np.empty((8, channels), dtype=out.dtype)
        for j in range(tiles_w):
            for al in range(8):
                for c in range(channels):
                    r0, r1, r2, r3, r4, r5, r6, r7 = bt8_adjoint(
                        dv[al, 0, b, i, j, c], dv[al, 1, b, i, j, c], dv[al, 2, b, i, j, c], dv[al, 3, b, i, j, c],
                        dv[al, 4, b, i, j, c], dv[al, 5, b, i, j, c], dv[al, 6, b, i, j, c], dv[al, 7, b, i, j, c], k)
                    cols[al, 0, c] = r0
                    cols[al, 1, c] = r1
                    cols[al, 2, c] = r2
                    cols[al, 3, c] = r3
                    cols[al, 4, c] = r4
                    cols[al, 5, c] = r5
                    cols[al, 6, c] = r6
                    cols[al, 7, c] = r7
            for q in range(8):
                xc = 4 * j + q - pad
                if xc < 0 or xc >= width:
                    continue
                for c in range(channels):
                    d0, d1, d2, d3, d4, d5, d6, d7 = bt8_adjoint(
                        cols[0, q, c], cols[1, q, c], cols[2, q, c], cols[3, q, c],
                        cols[4, q, c], cols[5, q, c], cols[6, q, c], cols[7, q, c], k)
                    column[0, c] = d0
                    column[1, c] = d1
                    column[2, c] = d2
                    column[3, c] = d3
                    column[4, c] = d4
                    column[5, c] = d5
                    column[6, c] = d6
                    column[7, c] = d7
                for a in range(8):
                    y = 4 * i + a - pad
                    if 0 <= y < height:
                        for c in range(channels):
                            out[b, y, xc, c] += column[a, c]


@njit
def input_tiles(x, k, pad, tiles_h, tiles_w, out):
    """out[al, be, b, i, j, c] = (B^T d B)[al, be] for the 8 x 8 window d of x [B, H, W, C] at
    (4i - pad, 4j - pad), zero outside: the input transform, with B^T's structure unrolled (`bt8`)."""
    batch, height, width, channels = x.shape
    for job in prange(batch * tiles_h):
        b, i = job // tiles_h, job % tiles_h
        win = np.empty((8, 8, channels), dtype=out.dtype)
        cols = np.empty((8, 8, channels), dtype=out.dtype)
        for j in range(tiles_w):
            for a in range(8):
                y = 4 * i + a - pad
                for q in range(8):
                    xc = 4 * j + q - pad
                    if 0 <= y < height and 0 <= xc < width:
                        for c in range(channels):
                            win[a, q, c] = x[b, y, xc, c]
                    else:
                        for c in range(channels):
                            win[a, q, c] = 0
            for q in range(8):
                for c in range(channels):
                    r0, r1, r2, r3, r4, r5, r6, r7 = bt8(win[0, q, c], win[1, q, c], win[2, q, c], win[3, q, c],
                                                         win[4, q, c], win[5, q, c], win[6, q, c], win[7, q, c], k)
                    cols[0, q, c] = r0
                    cols[1, q, c] = r1
                    cols[2, q, c] = r2
                    cols[3, q, c] = r3
                    cols[4, q, c] = r4
                    cols[5, q, c] = r5
                    cols[6, q, c] = r6
                    cols[7, q, c] = r7
            for al in range(8):
                for c in range(channels):
                    r0, r1, r2, r3, r4, r5, r6, r7 = bt8(cols[al, 0, c], cols[al, 1, c], cols[al, 2, c],
                                                         cols[al, 3, c], cols[al, 4, c], cols[al, 5, c],
                                                         cols[al, 6, c], cols[al, 7, c], k)
                    out[al, 0, b, i, j, c] = r0
                    out[al, 1, b, i, j, c] = r1
                    out[al, 2, b, i, j, c] = r2
                    out[al, 3, b, i, j, c] = r3
                    out[al, 4, b, i, j, c] = r4
                    out[al, 5, b, i, j, c] = r5
                    out[al, 6, b, i, j, c] = r6
                    out[al, 7, b, i, j, c] = r7


@numba.njit(inline="always")
def at8(m0, m1, m2, m3, m4, m5, m6, m7, k):
    """A^T m for one 8-vector (the rows of A_T written out); k = (2, 0.5, 4, 0.25, 8, 0.125)."""
    s1, t1, s2, t2, s3, t3 = m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6
    return (m0 + s1 + s2 + s3, t1 + k[0] * t2 + k[1] * t3, s1 + k[2] * s2 + k[3] * s3,
            t1 + k[4] * t2 + k[5] * t3 + m7)


@numba.njit(inline="always")
def a4(y0, y1, y2, y3, k):
    """A y for one 4-vector (the transpose of `at8`), even and odd parts shared."""
    e1, o1 = y0 + y2, y1 + y3
    e2, o2 = y0 + k[2] * y2, k[0] * y1 + k[4] * y3
    e3, o3 = y0 + k[3] * y2, k[1] * y1 + k[5] * y3
    return y0, e1 + o1, e1 - o1, e2 + o2, e2 - o2, e3 + o3, e3 - o3, y3


@njit
def output_adjoint_tiles(dy, k, tiles_h, tiles_w, out):
    """out[al, be, b, i, j, o] = (A d A^T)[al, be] for the 4 x 4 tile d of dy [B, H, W, O] at (4i, 4j), zero
    outside: the adjoint of the output transform."""
    batch, height, width, channels = dy.shape
    for job in prange(batch * tiles_h):
        b, i = job // tiles_h, job % tiles_h
        win = np.empty((4, 4, channels), dtype=out.dtype)
        cols = np.empty((8, 4, channels), dtype=out.dtype)
        for j in range(tiles_w):
            for u in range(4):
                for v in range(4):
                    if 4 * i + u < height and 4 * j + v < width:
                        for c in range(channels):
                            win[u, v, c] = dy[b, 4 * i + u, 4 * j + v, c]
                    else:
                        for c in range(channels):
                            win[u, v, c] = 0
            for v in range(4):
                for c in range(channels):
                    r0, r1, r2, r3, r4, r5, r6, r7 = a4(win[0, v, c], win[1, v, c], win[2, v, c], win[3, v, c], k)
                    cols[0, v, c] = r0
                    cols[1, v, c] = r1
                    cols[2, v, c] = r2
                    cols[3, v, c] = r3
                    cols[4, v, c] = r4
                    cols[5, v, c] = r5
                    cols[6, v, c] = r6
                    cols[7, v, c] = r7
            for al in range(8):
                for c in range(channels):
                    r0, r1, r2, r3, r4, r5, r6, r7 = a4(cols[al, 0, c], cols[al, 1, c], cols[al, 2, c],
                                                        cols[al, 3, c], k)
                    out[al, 0, b, i, j, c] = r0
                    out[al, 1, b, i, j, c] = r1
                    out[al, 2, b, i, j, c] = r2
                    out[al, 3, b, i, j, c] = r3
                    out[al, 4, b, i, j, c] = r4
                    out[al, 5, b, i, j, c] = r5
                    out[al, 6, b, i, j, c] = r6
                    out[al, 7, b, i, j, c] = r7


@njit
def output_tiles(mt, k, height, width, out):
    """out[b, 4i + u, 4j + v, o] = (A^T M A)[u, v] for the transform-domain tiles mt [8, 8, B, th, tw, O]:
    the output transform, with A^T's rows written out (`at8`)."""
    n, _, batch, tiles_h, tiles_w, channels = mt.shape
    for job in prange(batch * tiles_h):
        b, i = job // tiles_h, job % tiles_h
        rows = np.empty((4, 8, channels), dtype=out.dtype)
        for j in range(tiles_w):
            for be in range(8):
                for o in range(channels):
                    r0, r1, r2, r3 = at8(mt[0, be, b, i, j, o], mt[1, be, b, i, j, o], mt[2, be, b, i, j, o],
                                         mt[3, be, b, i, j, o], mt[4, be, b, i, j, o], mt[5, be, b, i, j, o],
                                         mt[6, be, b, i, j, o], mt[7, be, b, i, j, o], k)
                    rows[0, be, o] = r0
                    rows[1, be, o] = r1
                    rows[2, be, o] = r2
                    rows[3, be, o] = r3
            for u in range(4):
                y = 4 * i + u
                if y >= height:
                    continue
                for o in range(channels):
                    r = at8(rows[u, 0, o], rows[u, 1, o], rows[u, 2, o], rows[u, 3, o], rows[u, 4, o],
                            rows[u, 5, o], rows[u, 6, o], rows[u, 7, o], k)
                    for v in range(4):
                        if 4 * j + v < width:
                            out[b, y, 4 * j + v, o] = r[v]


KERNELS = output_adjoint_tiles, input_tiles_adjoint, output_tiles, input_tiles
