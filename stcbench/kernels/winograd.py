"""Winograd convolution F(4x4, 5x5) for the CPU fast path (same numbers up to round-off).

A stride-1 "same" convolution with a 5 x 5 kernel computes each 4 x 4 output tile from an 8 x 8
input tile.  Winograd's minimal filtering algorithm (Lavin & Gray 2016) writes it as

    Y = A^T [ (G w G^T) (.) (B^T d B) ] A          (one tile, one input/output channel pair)

so that, after transforming input tiles (B) and weights (G), the sum over input channels is
64 independent matrix products [tiles, C] @ [C, O] (one per position of the 8 x 8 transform
domain): 64 multiplications per 16 outputs instead of 400, 6.25x fewer than the direct
convolution.  The backward pass stays in the transform domain: dM = A dY A^T, then
dV = dM U^T and dU = V^T dM, then dx = B dV B^T summed over the overlapping tiles and
dw = G^T dU G.

The tile transforms run in numba (one pass per tile, channels innermost, tiles split over
threads), with the rows of B^T and A^T written out so that rows 2r-1 and 2r share their even and
odd parts (points +-p); the channel sums are torch batched matrix products.  The transformed input is not
kept for the backward pass: it is recomputed from the input (one cheap pass), so the memory of
a training step does not grow.

Exactness: in exact arithmetic the result equals the direct convolution.  In floating point the
transforms (interpolation points 0, +-1, +-2, +-1/2) add round-off: about 1e-14 relative in
float64 and about 1e-5 relative (to the largest output) in float32, against about 5e-7 for a
direct float32 convolution.  tests/models/test_winograd.py checks values and gradients against
`torch.nn.functional.conv2d` in float64.
"""
from __future__ import annotations

import functools
import os
from fractions import Fraction

import numpy as np
import torch

from stcbench.kernels import staggered
from stcbench.numba_threads import KERNEL_OPTIONS, numba, parallel_region


TILE = 4                    # output tile m
KERNEL = 5                  # kernel r
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
MIN_CHANNELS = 48           # below this the direct convolution is as fast or faster (measured: 32 break-even)


def available() -> bool:
    return numba is not None and os.environ.get("STCBENCH_CONV", "").lower() != "direct"


def transform_matrices(m: int = TILE, r: int = KERNEL, points=POINTS):
    """(A^T [m, n], G [n, r], B^T [n, n]) of F(m, r) as exact fractions, n = m + r - 1.

    A^T and G follow the Toom-Cook construction on the given points plus the point at infinity;
    B^T is the unique solution of  sum_j A^T[i, j] G[j, k] B^T[j, p] = [p == i + k].
    """
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, got {len(points)}")
    pts = [Fraction(p) for p in points]
    a_t = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        f = Fraction(1)
        for q_index, q in enumerate(pts):
            if q_index != j:
                f *= p - q
        g.append([p ** k / f for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    coefficients = np.array([[float(a_t[i][j] * g[j][k]) for j in range(n)] for i in range(m) for k in range(r)])
    b_t = []
    for p in range(n):
        rhs = np.array([float(p == i + k) for i in range(m) for k in range(r)])
        column, *_ = np.linalg.lstsq(coefficients, rhs, rcond=None)
        b_t.append([Fraction(float(v)).limit_denominator(64) for v in column])
    b_t = [list(row) for row in zip(*b_t)]
    for p in range(n):            # the rounded solution must be exact
        for i in range(m):
            for k in range(r):
                total = sum(a_t[i][j] * g[j][k] * b_t[j][p] for j in range(n))
                if total != (p == i + k):
                    raise ArithmeticError(f"F({m}, {r}) transform is not exact for these points")
    return a_t, g, b_t


def _as_array(rows) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in rows], dtype=np.float64)


A_T, G, B_T = (_as_array(x) for x in transform_matrices())


# -- compiled tile transforms ---------------------------------------------------------------------
@functools.cache
def _compile():
    return _build()       # compiled (or loaded from numba's cache) on first use


def _build():  # pragma: no cover - compiled code, exercised through the tests
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

    return output_adjoint_tiles, input_tiles_adjoint, output_tiles, input_tiles


# -- the convolution ------------------------------------------------------------------------------
def supported(conv: torch.nn.Conv2d, x: torch.Tensor, min_channels: int = MIN_CHANNELS) -> bool:
    """True when `conv(x)` can run as F(4x4, 5x5) here: CPU float tensors, 5 x 5, stride 1,
    "same" zero padding, no dilation or groups, at least `min_channels` in and out."""
    return (x.device.type == "cpu" and x.dtype == conv.weight.dtype and x.dim() == 4
            and supported_module(conv, min_channels))


def supported_module(conv: torch.nn.Module, min_channels: int = MIN_CHANNELS) -> bool:
    return (available() and isinstance(conv, torch.nn.Conv2d) and conv.weight.device.type == "cpu"
            and conv.weight.dtype in (torch.float32, torch.float64)
            and conv.kernel_size == (KERNEL, KERNEL) and conv.stride == (1, 1)
            and conv.padding == (KERNEL // 2, KERNEL // 2) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and min(conv.in_channels, conv.out_channels) >= min_channels)


CHUNK = 4                   # samples per pass: keeps the transformed tiles cache-resident


class _Plan:
    """Tile geometry of one chunk of samples."""

    def __init__(self, batch, channels, height, width):
        self.batch, self.channels, self.height, self.width = batch, channels, height, width
        self.tiles_h = -(-height // TILE)
        self.tiles_w = -(-width // TILE)
        self.n = TILE + KERNEL - 1
        self.tiles = batch * self.tiles_h * self.tiles_w

    def input_transform(self, x: torch.Tensor) -> torch.Tensor:
        """x [b, C, H, W] -> V [n*n, tiles, C]."""
        rows = x.detach().permute(0, 2, 3, 1).contiguous()       # a view when x is channels-last
        v = _scratch("v", (self.n, self.n, self.batch, self.tiles_h, self.tiles_w, self.channels), x.dtype)
        _compile()[3](rows.numpy(), _matrix("B_T_COEFFICIENTS", x), KERNEL // 2, self.tiles_h, self.tiles_w,
                      v.detach().numpy())
        return v.view(self.n * self.n, self.tiles, self.channels)

    def output_transform(self, mt: torch.Tensor, y: torch.Tensor) -> None:
        """M [n*n, tiles, O] -> y [b, H, W, O] (written in place)."""
        shaped = mt.view(self.n, self.n, self.batch, self.tiles_h, self.tiles_w, y.shape[-1])
        _compile()[2](shaped.detach().numpy(), _matrix("A_COEFFICIENTS", y), self.height, self.width, y.detach().numpy())

    def output_adjoint(self, dy: torch.Tensor) -> torch.Tensor:
        """dy [b, H, W, O] -> dM [n*n, tiles, O]."""
        out_channels = dy.shape[-1]
        dm = _scratch("dm", (self.n, self.n, self.batch, self.tiles_h, self.tiles_w, out_channels), dy.dtype)
        _compile()[0](dy.detach().numpy(), _matrix("A_COEFFICIENTS", dy), self.tiles_h, self.tiles_w,
                      dm.detach().numpy())
        return dm.view(self.n * self.n, self.tiles, out_channels)

    def input_adjoint(self, dv: torch.Tensor, dx: torch.Tensor) -> None:
        """dV [n*n, tiles, C] -> dx [b, H, W, C] (zero-filled, accumulated in place)."""
        shaped = dv.view(self.n, self.n, self.batch, self.tiles_h, self.tiles_w, self.channels).detach().numpy()
        for parity in (0, 1):
            _compile()[1](shaped, _matrix("B_T_COEFFICIENTS", dv), KERNEL // 2, parity, dx.detach().numpy())


_scratch_buffers: dict = {}
REUSE_SCRATCH = True


def _scratch(name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """A transient transform-domain array, reused from call to call (the most recent shape per name):
    the kernels then write into memory that is already in the CPU cache rather than fresh pages."""
    if not REUSE_SCRATCH:
        return staggered.empty(shape, dtype)
    key = (name, dtype)
    buffer = _scratch_buffers.get(key)
    if buffer is None or tuple(buffer.shape) != tuple(shape):
        buffer = _scratch_buffers[key] = staggered.empty(shape, dtype)
    return buffer


B_T_COEFFICIENTS = (5.25, 4.25, 0.25, 1.25, 0.5, 2.5, 2.0, 4.0, 5.0)     # the values in B_T, as `bt8` uses them
A_COEFFICIENTS = (2.0, 0.5, 4.0, 0.25, 8.0, 0.125)                          # the values in A_T, as `at8` uses them
_MATRICES = {np.dtype(dtype): {"B_T_COEFFICIENTS": np.array(B_T_COEFFICIENTS, dtype=dtype),
                                 "A_COEFFICIENTS": np.array(A_COEFFICIENTS, dtype=dtype)}
             for dtype in (np.float32, np.float64)}


def _matrix(name: str, like: torch.Tensor) -> np.ndarray:
    """A transform matrix in the dtype of `like` (made once per dtype, not per call)."""
    return _MATRICES[np.dtype(np.float64 if like.dtype == torch.float64 else np.float32)][name]


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """w [O, C, r, r] -> U [n*n, C, O], U = G w G^T per channel pair (one product with G (x) G);
    differentiable torch operations, so a forward pass can transform its weights once."""
    out_channels, channels = weight.shape[:2]
    with torch.autocast("cpu", enabled=False):                                # kept in the weights' dtype
        u = weight.reshape(out_channels * channels, -1) @ _kron_g(weight).T    # [O*C, n*n]
    return u.T.reshape(-1, out_channels, channels).transpose(1, 2).contiguous()   # [n*n, C, O], dense for bmm


def _kron_g(like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.kron(G, G)).to(like.dtype)


def _chunks(batch: int):
    return [(start, min(start + CHUNK, batch)) for start in range(0, batch, CHUNK)]


class _WinogradConv2d(torch.autograd.Function):
    """y = conv2d(x, w, padding=2) given U = transform_weight(w); gradients for x and U."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)        # the tile arrays go to numba in the inputs' dtype
    def forward(ctx, x, u):
        batch, channels, height, width = x.shape
        y = staggered.empty((batch, height, width, u.shape[-1]), x.dtype)
        with parallel_region():
            for start, stop in _chunks(batch):
                plan = _Plan(stop - start, channels, height, width)
                v = plan.input_transform(x[start:stop])
                m = torch.bmm(v, u, out=_scratch("m", (v.shape[0], v.shape[1], u.shape[-1]), v.dtype))
                plan.output_transform(m, y[start:stop])
        ctx.save_for_backward(x, u)
        return y.permute(0, 3, 1, 2)

    @staticmethod
    @torch.autocast("cpu", enabled=False)
    def backward(ctx, dy):
        x, u = ctx.saved_tensors
        dy = dy.to(x.dtype)
        batch, channels, height, width = x.shape
        rows = dy.permute(0, 2, 3, 1).contiguous()
        want_x, want_u = ctx.needs_input_grad[:2]
        dx = staggered.zeros((batch, height, width, channels), x.dtype) if want_x else None
        du = None
        with parallel_region():
            for start, stop in _chunks(batch):
                plan = _Plan(stop - start, channels, height, width)
                dm = plan.output_adjoint(rows[start:stop])
                if want_x:
                    dv = torch.bmm(dm, u.transpose(1, 2), out=_scratch("dv", (dm.shape[0], dm.shape[1], channels), dm.dtype))
                    plan.input_adjoint(dv, dx[start:stop])
                if want_u:       # the input transform is recomputed rather than kept from the forward pass
                    part = torch.bmm(plan.input_transform(x[start:stop]).transpose(1, 2), dm)
                    du = part if du is None else du.add_(part)
        return (dx.permute(0, 3, 1, 2) if want_x else None), du


def convolve(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """conv2d(x, w, stride=1, padding=2) for a 5 x 5 kernel w, given U = transform_weight(w).
    x [B, C, H, W] float32/float64 on the CPU; the result is in channels-last memory order."""
    if x.shape[1] != u.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels, the transformed weight {u.shape[1]}")
    return _WinogradConv2d.apply(x, u)


class Convolutions:
    """Override for `stcbench.cells.synapse.conv_override`: Winograd for the calls it supports.

    algorithm "auto": 5 x 5 convolutions with at least MIN_CHANNELS channels in and out;
    "winograd": every supported 5 x 5 convolution.  The weights of `model` are transformed
    once, when the instance is made (use one instance per forward pass: the weights are the
    same at every step), outside any recomputed (checkpointed) block.
    """

    def __init__(self, model: torch.nn.Module, algorithm: str = "auto"):
        self.min_channels = MIN_CHANNELS if algorithm == "auto" else 1
        self.transformed = {conv: transform_weight(conv.weight) for conv in model.modules()
                            if supported_module(conv, self.min_channels)}

    def __call__(self, conv: torch.nn.Conv2d, x: torch.Tensor):
        u = self.transformed.get(conv)
        if u is None or u.dtype != x.dtype or not supported(conv, x, self.min_channels):
            return None                    # e.g. bfloat16 activations under autocast: the direct kernel
        y = convolve(x, u)
        return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1)


def warm_up(dtype: torch.dtype = torch.float32) -> None:
    """Load (or compile) the tile kernels for `dtype` now, e.g. before measuring memory or time."""
    if not available():
        return
    x = torch.zeros(1, 1, TILE, TILE, dtype=dtype, requires_grad=True)
    w = torch.zeros(1, 1, KERNEL, KERNEL, dtype=dtype, requires_grad=True)
    winograd_conv2d(x, w).sum().backward()


def winograd_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x, weight, bias, stride=1, padding=2) for 5 x 5 kernels, by F(4x4, 5x5)."""
    y = convolve(x, transform_weight(weight))
    return y if bias is None else y + bias.view(1, -1, 1, 1)
