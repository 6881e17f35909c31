"""Prediction metrics (OpenSTL definitions, additive float64 state) and spiking metrics.

* `PredictionMetrics` — torchmetrics Metric: `update(pred, true)` with `[B, T, C, H, W]`,
  `compute()` -> dict (mse, mae, ssim, psnr, mse_per_pixel, mae_per_pixel, psnr_inf_frames,
  n_sequences, n_frames, per_frame: {...}; ssim_dr1 when enabled).
* `compute_metrics(pred, true, ssim_data_range=2.0, batch_size=64)` — one-shot streaming helper.
* `firing_rate(spikes)`, `FiringRate` — spiking activity.

The torchmetrics-based names are imported on first use (torchmetrics takes over a second to
import, which `stcbench evaluate` does not need).
"""
from stcbench.metrics.frames import FrameKernel
from stcbench.metrics.prediction import check_shapes, compute_metrics, release_pages

_LAZY = {"PredictionMetrics": "stcbench.metrics.metric", "FiringRate": "stcbench.metrics.spiking",
         "firing_rate": "stcbench.metrics.spiking"}

__all__ = ["FrameKernel", "FiringRate", "PredictionMetrics", "check_shapes", "compute_metrics",
           "firing_rate", "release_pages"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stcbench.metrics' has no attribute {name!r}")
