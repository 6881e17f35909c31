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
from stcbench.numba_threads import numba, parallel_region


TILE = 4                    # output tile m
KERNEL = 5                  # kernel r
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
MIN_CHANNELS = 32           # fewer input or output channels: the direct convolution is as fast or faster
MIN_CHANNEL_PAIRS = 2048    # in x out below this (32 -> 32) is break-even (docs/performance.md, item 3)


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
    from stcbench.kernels import winograd_numba    # compiled (or loaded from numba's cache) on first call

    return winograd_numba.KERNELS


# -- the convolution ------------------------------------------------------------------------------
def supported(conv: torch.nn.Conv2d, x: torch.Tensor, every: bool = False) -> bool:
    """True when `conv(x)` can run as F(4x4, 5x5) here: CPU float tensors, 5 x 5, stride 1,
    "same" zero padding, no dilation or groups, and (unless `every`) enough channels to gain."""
    return (x.device.type == "cpu" and x.dtype == conv.weight.dtype and x.dim() == 4
            and supported_module(conv, every))


def supported_module(conv: torch.nn.Module, every: bool = False) -> bool:
    return (available() and isinstance(conv, torch.nn.Conv2d) and conv.weight.device.type == "cpu"
            and conv.weight.dtype in (torch.float32, torch.float64)
            and conv.kernel_size == (KERNEL, KERNEL) and conv.stride == (1, 1)
            and conv.padding == (KERNEL // 2, KERNEL // 2) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and (every or gains(conv.in_channels, conv.out_channels)))


def gains(in_channels: int, out_channels: int) -> bool:
    """Where Winograd beat the direct kernel at every batch measured (docs/performance.md, item 3)."""
    return min(in_channels, out_channels) >= MIN_CHANNELS and in_channels * out_channels >= MIN_CHANNEL_PAIRS


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

    algorithm "auto": 5 x 5 convolutions with at least MIN_CHANNELS channels in and out and MIN_CHANNEL_PAIRS
    channel pairs (64 -> 64, 32 -> 128; not 32 -> 32);
    "winograd": every supported 5 x 5 convolution.  The weights of `model` are transformed
    once, when the instance is made (use one instance per forward pass: the weights are the
    same at every step), outside any recomputed (checkpointed) block.
    """

    def __init__(self, model: torch.nn.Module, algorithm: str = "auto"):
        self.every = algorithm != "auto"
        self.transformed = {conv: transform_weight(conv.weight) for conv in model.modules()
                            if supported_module(conv, self.every)}

    def __call__(self, conv: torch.nn.Conv2d, x: torch.Tensor):
        u = self.transformed.get(conv)
        if u is None or u.dtype != x.dtype or not supported(conv, x, self.every):
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
