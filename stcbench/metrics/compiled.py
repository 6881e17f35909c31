"""The per-plane error sums and SSIM of `frames.FrameKernel`, as one compiled CPU loop (numba).

Same results as the torch kernel (float64 throughout; tests compare both and scikit-image),
but each plane is processed while it sits in the L1/L2 cache: one pass reads the two planes
(any float dtype, straight from a memory map), accumulates the error sums, counts targets
outside [0, 1], and stores a = x + y and b = x - y; a 7-row running sum of a, b, a², b² per column then
moves down the plane, each output row takes its 7-wide horizontal sums
(s2 = v + v>>1, s7 = s2 + s2>>2 + s2>>4 + v>>6) and adds its SSIM values, in the a/b form of
`FrameKernel._ssim_from_box_sums`. Planes are split over numba's threads.

Summation order differs from scikit-image's filters (and `fastmath` lets LLVM reorder sums),
which moves results by round-off only (~1e-15 relative in float64).

numba is optional: `available()` says whether this kernel can be used; without it, or on a
GPU, `PredictionMetrics` uses the torch kernel. `STCBENCH_METRICS_KERNEL=torch` forces the
torch kernel.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch

from stcbench.metrics.frames import COVARIANCE_NORM, WINDOW, WINDOW_PIXELS, PlaneSums
from stcbench.numba_threads import numba, parallel_region


def available() -> bool:
    return numba is not None and os.environ.get("STCBENCH_METRICS_KERNEL", "").lower() != "torch"


@functools.cache
def _compile():
    return _build()       # compiled (or loaded from numba's cache) on first use


def _build():
    scale_c1 = 2.0 * WINDOW_PIXELS ** 2                 # see FrameKernel._ssim_from_box_sums
    scale_c2 = 2.0 * WINDOW_PIXELS / COVARIANCE_NORM
    inv = 1.0 / WINDOW_PIXELS
    win = WINDOW

    @numba.njit(parallel=True, cache=True, boundscheck=False, error_model="numpy", fastmath={"reassoc", "nsz"})
    def plane_sums(pred, true, c1s, c2s, out_se, out_ae, out_sec, out_ssim, out_outside, chunks):  # pragma: no cover
        planes, height, width = pred.shape
        out_h, out_w = height - win + 1, width - win + 1
        ranges = c1s.shape[0]
        for chunk in numba.prange(chunks):
            first, last = chunk * planes // chunks, (chunk + 1) * planes // chunks
            plus = np.empty((height, width))      # a = x + y (x: clipped prediction, y: target)
            minus = np.empty((height, width))     # b = x - y
            v = np.empty((4, width))              # running 7-row sums of a, b, a^2, b^2
            s2 = np.empty((4, width))
            s = np.empty((4, out_w))              # 7x7 window sums along one output row
            outside = 0
            for p in range(first, last):
                se = 0.0
                ae = 0.0
                se_clipped = 0.0
                for r in range(height):
                    for c in range(width):
                        x = np.float64(pred[p, r, c])
                        y = np.float64(true[p, r, c])
                        outside += (y < 0.0) | (y > 1.0)
                        d = x - y
                        se += d * d
                        ae += abs(d)
                        x = min(max(x, 0.0), 1.0)
                        e = x - y
                        se_clipped += e * e
                        plus[r, c] = x + y
                        minus[r, c] = e
                out_se[p] = se
                out_ae[p] = ae
                out_sec[p] = se_clipped
                v[:, :] = 0.0
                for r in range(win - 1):
                    for c in range(width):
                        a = plus[r, c]
                        b = minus[r, c]
                        v[0, c] += a
                        v[1, c] += b
                        v[2, c] += a * a
                        v[3, c] += b * b
                totals = np.zeros(ranges)
                for r in range(out_h):
                    for c in range(width):            # the window now spans rows r .. r+6
                        a = plus[r + win - 1, c]
                        b = minus[r + win - 1, c]
                        v[0, c] += a
                        v[1, c] += b
                        v[2, c] += a * a
                        v[3, c] += b * b
                    for k in range(4):
                        for c in range(width - 1):
                            s2[k, c] = v[k, c] + v[k, c + 1]
                        for c in range(out_w):
                            s[k, c] = (s2[k, c] + s2[k, c + 2]) + (s2[k, c + 4] + v[k, c + 6])
                    for ri in range(ranges):
                        c1 = c1s[ri] * scale_c1
                        c2 = c2s[ri] * scale_c2
                        row = 0.0
                        for c in range(out_w):
                            g0 = s[0, c] * s[0, c]
                            g1 = s[1, c] * s[1, c]
                            r0 = s[2, c] - g0 * inv
                            r1 = s[3, c] - g1 * inv
                            row += ((g0 - g1 + c1) * (r0 - r1 + c2)) / ((g0 + g1 + c1) * (r0 + r1 + c2))
                        totals[ri] += row
                    for c in range(width):            # drop row r before the window moves down
                        a = plus[r, c]
                        b = minus[r, c]
                        v[0, c] -= a
                        v[1, c] -= b
                        v[2, c] -= a * a
                        v[3, c] -= b * b
                for ri in range(ranges):
                    out_ssim[ri, p] = totals[ri] / (out_h * out_w)
            out_outside[chunk] = outside

    return plane_sums


class CompiledFrameKernel:
    """Drop-in for `FrameKernel` on CPU tensors (any float dtype), using the compiled loop."""

    device = torch.device("cpu")

    def __init__(self, height: int, width: int):
        if height < WINDOW or width < WINDOW:
            raise ValueError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {height}x{width}")
        self.height, self.width = height, width
        self.kernel = _compile()

    def fits(self, planes: int, height: int, width: int, device: torch.device) -> bool:
        return (height, width) == (self.height, self.width) and device.type == "cpu"

    def __call__(self, pred: torch.Tensor, true: torch.Tensor, data_ranges: tuple[float, ...]) -> PlaneSums:
        planes = pred.shape[0]
        pred_np, true_np = _plane_array(pred), _plane_array(true)
        if pred_np.dtype != true_np.dtype:                  # one compiled variant per dtype, not per pair
            pred_np, true_np = pred_np.astype(np.float64), true_np.astype(np.float64)
        c1s = np.array([(0.01 * r) ** 2 for r in data_ranges])
        c2s = np.array([(0.03 * r) ** 2 for r in data_ranges])
        se, ae, se_clipped = np.empty(planes), np.empty(planes), np.empty(planes)
        ssim = np.empty((len(data_ranges), planes))
        threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        chunks = max(1, min(planes, 4 * threads))
        outside = np.zeros(chunks, np.int64)
        with parallel_region():
            self.kernel(pred_np, true_np, c1s, c2s, se, ae, se_clipped, ssim, outside, chunks)
        return PlaneSums(se=torch.from_numpy(se), ae=torch.from_numpy(ae), se_clipped=torch.from_numpy(se_clipped),
                         ssim={r: torch.from_numpy(ssim[i]) for i, r in enumerate(data_ranges)},
                         true_outside=int(outside.sum()))


def _plane_array(planes: torch.Tensor) -> np.ndarray:
    planes = planes.detach()
    if planes.dtype in (torch.bfloat16, torch.float16):    # mixed-precision predictions: exact in float32
        planes = planes.float()
    array = planes.numpy()
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)

