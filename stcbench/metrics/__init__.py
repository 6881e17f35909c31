"""Prediction metrics (OpenSTL definitions, additive float64 state) and spiking metrics.

* `PredictionMetrics` — torchmetrics Metric: `update(pred, true)` with `[B, T, C, H, W]`,
  `compute()` -> dict (mse, mae, ssim, psnr, mse_per_pixel, mae_per_pixel, psnr_inf_frames,
  n_sequences, n_frames, per_frame: {...}; ssim_dr1 when enabled).
* `compute_metrics(pred, true, ssim_data_range=2.0, batch_size=64)` — one-shot streaming helper.
* `firing_rate(spikes)`, `FiringRate` — spiking activity.
"""
from stcbench.metrics.frames import FrameKernel
from stcbench.metrics.prediction import PredictionMetrics, check_shapes, compute_metrics, release_pages
from stcbench.metrics.spiking import FiringRate, firing_rate

__all__ = ["FrameKernel", "FiringRate", "PredictionMetrics", "check_shapes", "compute_metrics",
           "firing_rate", "release_pages"]
