"""Per-frame error sums and SSIM for a block of image planes, vectorised in float64.

One *plane* is one channel of one frame, `H x W`. For each plane the kernel returns

* `se`, `ae`: sum of squared / absolute errors of the **unclipped** prediction,
* `se_clipped`: sum of squared errors of the prediction clipped to [0, 1] (for PSNR),
* `ssim[R]`: mean SSIM map of the clipped prediction for each requested data range R,

following OpenSTL's `metric` with scikit-image `structural_similarity` semantics
(docs: metrics spec, sections 1-3): 7x7 uniform window, sample covariance 49/48,
C1 = (0.01 R)^2, C2 = (0.03 R)^2, mean over the map with 3 pixels cropped from every border.

Why no padding: scikit-image filters with reflect padding and then crops (win - 1) / 2 = 3
pixels. Every kept pixel's 7x7 window lies inside the image, so the padded values never reach
the result; the kernel therefore only evaluates the valid windows (identical to reflect padding
followed by the crop).

Speed: all planes of a block are laid out one after another in one flat float64 buffer. A 7-wide
box sum along a row is then a sum of the flat buffer shifted by 0..6, and along a column a sum
shifted by 0, W, ..., 6W; each is done with four contiguous adds (s2 = x + x>>1, s4 = s2 + s2>>2,
s7 = s4 + s2>>4 + x>>6). Positions whose window would cross a row or plane boundary hold
garbage and are never read. Buffers are allocated once per block size and reused.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WINDOW = 7
CROP = (WINDOW - 1) // 2
WINDOW_PIXELS = WINDOW * WINDOW
COVARIANCE_NORM = WINDOW_PIXELS / (WINDOW_PIXELS - 1)  # sample covariance, 49/48


@dataclass
class PlaneSums:
    """Per-plane results of one block (float64, shape [planes])."""

    se: torch.Tensor
    ae: torch.Tensor
    se_clipped: torch.Tensor
    ssim: dict[float, torch.Tensor]
    true_outside: int = 0        # target values outside [0, 1] in the block (input validation)


def ssim_constants(data_range: float) -> tuple[float, float]:
    """Constants of the box-sum form of SSIM (see `_ssim_from_box_sums`)."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    return 2 * WINDOW_PIXELS**2 * c1, 2 * WINDOW_PIXELS / COVARIANCE_NORM * c2


class FrameKernel:
    """Reusable float64 workspace for blocks of at most `max_planes` planes of `height x width`."""

    def __init__(self, max_planes: int, height: int, width: int, device: torch.device | str = "cpu"):
        if height < WINDOW or width < WINDOW:
            raise ValueError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {height}x{width}")
        self.max_planes, self.height, self.width = max_planes, height, width
        self.device = torch.device(device)
        size = max_planes * height * width
        tail = (WINDOW - 1) * width          # the shifted reads of the last plane run past its end
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=self.device)  # noqa: E731
        self.x, self.y = zeros(size), zeros(size)
        self.maps = zeros(4, size + tail + WINDOW - 1)   # a, b, a^2, b^2 with a = x + y, b = x - y
        self.h1 = zeros(4, size + tail + 4)
        self.h2 = zeros(4, size + tail)
        self.h = zeros(4, size + tail)

    def fits(self, planes: int, height: int, width: int, device: torch.device) -> bool:
        return planes <= self.max_planes and (height, width) == (self.height, self.width) and device == self.device

    # ------------------------------------------------------------------ public
    def __call__(self, pred: torch.Tensor, true: torch.Tensor, data_ranges: tuple[float, ...]) -> PlaneSums:
        """`pred`, `true`: `[planes, H, W]` (any float dtype, any strides) -> per-plane sums."""
        planes = pred.shape[0]
        n = planes * self.height * self.width
        x, y, maps = self.x[:n], self.y[:n], self.maps
        x.view_as(pred).copy_(pred)
        y.view_as(true).copy_(true)
        true_outside = int(((y < 0.0) | (y > 1.0)).sum())

        diff, absolute, square = maps[1, :n], maps[2, :n], maps[3, :n]
        torch.sub(x, y, out=diff)
        torch.mul(diff, diff, out=square)
        se = self._plane_sums(square, planes)
        torch.abs(diff, out=absolute)
        ae = self._plane_sums(absolute, planes)

        x.clamp_(0.0, 1.0)
        torch.add(x, y, out=maps[0, :n])
        torch.sub(x, y, out=maps[1, :n])
        torch.mul(maps[:2, :n], maps[:2, :n], out=maps[2:, :n])
        se_clipped = self._plane_sums(maps[3, :n], planes)

        sums = self._box_sums(n)
        ssim = self._ssim_from_box_sums(sums, n, planes, data_ranges)
        return PlaneSums(se=se, ae=ae, se_clipped=se_clipped, ssim=ssim, true_outside=true_outside)

    # ------------------------------------------------------------------ internals
    def _plane_sums(self, flat: torch.Tensor, planes: int) -> torch.Tensor:
        return flat.view(planes, -1).sum(dim=1)

    def _box_sums(self, n: int) -> torch.Tensor:
        """7x7 window sums of the four maps at every flat position < n (valid where the window fits)."""
        w = self.width
        m, h1, h2, h = self.maps, self.h1, self.h2, self.h
        nh = n + (WINDOW - 1) * w
        torch.add(m[:, :nh + 4], m[:, 1:nh + 5], out=h1[:, :nh + 4])          # 2 columns
        torch.add(h1[:, :nh], h1[:, 2:nh + 2], out=h2[:, :nh])                # 4 columns
        torch.add(h2[:, :nh], h1[:, 4:nh + 4], out=h[:, :nh])                 # 6 columns
        h[:, :nh].add_(m[:, 6:nh + 6])                                        # 7 columns
        v1, v2, v = h1, h2, m                                                 # reuse the buffers
        nv = n + 4 * w
        torch.add(h[:, :nv], h[:, w:nv + w], out=v1[:, :nv])                  # 2 rows
        torch.add(v1[:, :n], v1[:, 2 * w:n + 2 * w], out=v2[:, :n])           # 4 rows
        torch.add(v2[:, :n], v1[:, 4 * w:n + 4 * w], out=v[:, :n])            # 6 rows
        v[:, :n].add_(h[:, 6 * w:n + 6 * w])                                  # 7 rows
        return v[:, :n]

    def _ssim_from_box_sums(self, sums: torch.Tensor, n: int, planes: int,
                            data_ranges: tuple[float, ...]) -> dict[float, torch.Tensor]:
        """Mean SSIM of each plane's cropped map.

        With window sums sA, sB, sA2, sB2 of a = x + y, b = x - y (49 pixels, k = 49/48):
            mu_x^2 + mu_y^2 = (G0 + G1) / (2 * 49^2),  2 mu_x mu_y = (G0 - G1) / (2 * 49^2),
            v_x + v_y = k (R0 + R1) / 98,             2 v_xy     = k (R0 - R1) / 98,
        where G = (sA^2, sB^2) and R = (sA2 - sA^2 / 49, sB2 - sB^2 / 49). Scaling the luminance
        factor by 2*49^2 and the contrast-structure factor by 98/k gives
            S = (G0 - G1 + c1)(R0 - R1 + c2) / ((G0 + G1 + c1)(R0 + R1 + c2)).
        """
        scratch = self.h[:, :n].view(2, 2, n)     # rows: G0, R0, G1, R1
        torch.mul(sums[:2], sums[:2], out=scratch[:, 0])
        torch.sub(sums[2:], scratch[:, 0], alpha=1.0 / WINDOW_PIXELS, out=scratch[:, 1])
        first, second = self.h[0:2, :n], self.h[2:4, :n]            # (G0, R0), (G1, R1)
        minus, plus = self.h1[2:4, :n], self.h2[2:4, :n]
        torch.sub(first, second, out=minus)
        torch.add(first, second, out=plus)
        results = {}
        for data_range in data_ranges:
            c1, c2 = ssim_constants(data_range)
            constants = torch.tensor([[c1], [c2]], dtype=torch.float64, device=self.device)
            num, den = self.h1[0:2, :n], self.h2[0:2, :n]
            torch.add(minus, constants, out=num)
            torch.add(plus, constants, out=den)
            num[0].mul_(num[1])
            den[0].mul_(den[1])
            num[0].div_(den[0])
            results[data_range] = self._cropped_means(num[0], planes)
        return results

    def _cropped_means(self, flat: torch.Tensor, planes: int) -> torch.Tensor:
        # window sums are stored at the window's top-left corner: keep rows/cols 0 .. H-7 / W-7
        h, w = self.height - 2 * CROP, self.width - 2 * CROP
        grid = flat.view(planes, self.height, self.width)[:, :h, :w]
        return grid.sum(dim=(1, 2)) / (h * w)


def max_planes_for(height: int, width: int, target_elements: int = 1 << 18) -> int:
    """Block size that keeps one map of the workspace near `target_elements` values (2 MiB)."""
    return max(1, target_elements // (height * width))
