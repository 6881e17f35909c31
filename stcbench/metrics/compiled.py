"""The per-plane error sums and SSIM of `frames.FrameKernel`, as one compiled CPU loop (numba).

Same results as the torch kernel (float64 throughout; tests compare both and scikit-image),
but each plane is processed while it sits in the L1/L2 cache: one pass reads the two planes
(any float dtype, straight from a memory map) and accumulates the error sums; a 7-row running
sum of x, y, x², y², xy per column then moves down the plane, each output row takes its 7-wide
horizontal sums (s2 = v + v>>1, s7 = s2 + s2>>2 + s2>>4 + v>>6) and adds its SSIM values.
Planes are split over numba's threads.

Summation order differs from scikit-image's filters (and `fastmath` lets LLVM reorder sums),
which moves results by round-off only (~1e-15 relative in float64).

numba is optional: `available()` says whether this kernel can be used; without it, or on a
GPU, `PredictionMetrics` uses the torch kernel. `STCBENCH_METRICS_KERNEL=torch` forces the
torch kernel.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from stcbench.metrics.frames import COVARIANCE_NORM, WINDOW, WINDOW_PIXELS, PlaneSums

try:  # pragma: no cover - exercised when numba is installed
    import numba
except ImportError:  # pragma: no cover
    numba = None

_plane_sums = None


def available() -> bool:
    return numba is not None and os.environ.get("STCBENCH_METRICS_KERNEL", "").lower() != "torch"


def _compile():
    global _plane_sums
    if _plane_sums is None:
        _plane_sums = _build()
    return _plane_sums


def _build():
    inv = 1.0 / WINDOW_PIXELS
    cov = COVARIANCE_NORM
    win = WINDOW

    @numba.njit(parallel=True, cache=True, boundscheck=False, error_model="numpy",
                fastmath={"reassoc", "nsz"})
    def plane_sums(pred, true, c1s, c2s, out_se, out_ae, out_sec, out_ssim, chunks):  # pragma: no cover
        planes, height, width = pred.shape
        out_h, out_w = height - win + 1, width - win + 1
        ranges = c1s.shape[0]
        for chunk in numba.prange(chunks):
            first, last = chunk * planes // chunks, (chunk + 1) * planes // chunks
            x = np.empty((height, width))
            y = np.empty((height, width))
            v = np.empty((5, width))          # running 7-row sums of x, y, x^2, y^2, xy
            s2 = np.empty((5, width))
            s = np.empty((5, out_w))          # 7x7 window sums of one output row
            for p in range(first, last):
                se = 0.0
                ae = 0.0
                se_clipped = 0.0
                for r in range(height):
                    for c in range(width):
                        a = np.float64(pred[p, r, c])
                        b = np.float64(true[p, r, c])
                        d = a - b
                        se += d * d
                        ae += abs(d)
                        a = min(max(a, 0.0), 1.0)
                        e = a - b
                        se_clipped += e * e
                        x[r, c] = a
                        y[r, c] = b
                out_se[p] = se
                out_ae[p] = ae
                out_sec[p] = se_clipped
                v[:, :] = 0.0
                for r in range(win - 1):
                    for c in range(width):
                        a = x[r, c]
                        b = y[r, c]
                        v[0, c] += a
                        v[1, c] += b
                        v[2, c] += a * a
                        v[3, c] += b * b
                        v[4, c] += a * b
                totals = np.zeros(ranges)
                for r in range(out_h):
                    for c in range(width):            # window rows r .. r+6
                        a = x[r + win - 1, c]
                        b = y[r + win - 1, c]
                        v[0, c] += a
                        v[1, c] += b
                        v[2, c] += a * a
                        v[3, c] += b * b
                        v[4, c] += a * b
                    for k in range(5):
                        for c in range(width - 1):
                            s2[k, c] = v[k, c] + v[k, c + 1]
                        for c in range(out_w):
                            s[k, c] = (s2[k, c] + s2[k, c + 2]) + (s2[k, c + 4] + v[k, c + 6])
                    for ri in range(ranges):
                        c1 = c1s[ri]
                        c2 = c2s[ri]
                        row = 0.0
                        for c in range(out_w):
                            ux = s[0, c] * inv
                            uy = s[1, c] * inv
                            vx = cov * (s[2, c] * inv - ux * ux)
                            vy = cov * (s[3, c] * inv - uy * uy)
                            vxy = cov * (s[4, c] * inv - ux * uy)
                            row += ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / \
                                ((ux * ux + uy * uy + c1) * (vx + vy + c2))
                        totals[ri] += row
                    for c in range(width):            # drop row r before the window moves down
                        a = x[r, c]
                        b = y[r, c]
                        v[0, c] -= a
                        v[1, c] -= b
                        v[2, c] -= a * a
                        v[3, c] -= b * b
                        v[4, c] -= a * b
                for ri in range(ranges):
                    out_ssim[ri, p] = totals[ri] / (out_h * out_w)

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
        c1s = np.array([(0.01 * r) ** 2 for r in data_ranges])
        c2s = np.array([(0.03 * r) ** 2 for r in data_ranges])
        se, ae, se_clipped = np.empty(planes), np.empty(planes), np.empty(planes)
        ssim = np.empty((len(data_ranges), planes))
        threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(threads)
        chunks = max(1, min(planes, 4 * threads))
        self.kernel(pred_np, true_np, c1s, c2s, se, ae, se_clipped, ssim, chunks)
        return PlaneSums(se=torch.from_numpy(se), ae=torch.from_numpy(ae), se_clipped=torch.from_numpy(se_clipped),
                         ssim={r: torch.from_numpy(ssim[i]) for i, r in enumerate(data_ranges)})


def _plane_array(planes: torch.Tensor) -> np.ndarray:
    array = planes.detach().numpy()
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)

