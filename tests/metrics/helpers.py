"""Independent reference implementations (numpy + scikit-image) and test arrays."""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def mnist_like(rng: np.random.Generator, shape, blobs: int = 2) -> np.ndarray:
    """Sparse frames: mostly 0, a few bright strokes (uint8/255 levels), like Moving MNIST."""
    n, t, c, h, w = shape
    out = np.zeros(shape, np.float32)
    size = max(3, min(h, w) // 3)
    for i in range(n):
        for j in range(t):
            for _ in range(blobs):
                y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
                patch = rng.integers(0, 256, (c, size, size)) * (rng.random((c, size, size)) < 0.4)
                out[i, j, :, y:y + size, x:x + size] = np.maximum(out[i, j, :, y:y + size, x:x + size],
                                                                  patch / 255.0)
    return out


def reference_metrics(pred: np.ndarray, true: np.ndarray, data_range: float = 2.0) -> dict:
    """OpenSTL `metric` semantics, frame by frame, with scikit-image and plain numpy (float64)."""
    p64, t64 = pred.astype(np.float64), true.astype(np.float64)
    diff = p64 - t64
    clipped = np.clip(p64, 0, 1)
    n, steps = pred.shape[:2]
    ssim = np.zeros((n, steps))
    psnr = np.zeros((n, steps))
    for i in range(n):
        for j in range(steps):
            # OpenSTL passes [W, H, C] (swapaxes(0, 2)); the transpose does not change the result
            x, y = clipped[i, j].swapaxes(0, 2), t64[i, j].swapaxes(0, 2)
            ssim[i, j] = structural_similarity(x, y, channel_axis=-1, data_range=data_range)
            mse_f = np.mean((x - y) ** 2)
            psnr[i, j] = np.inf if mse_f == 0 else -10.0 * np.log10(mse_f)
    se = (diff ** 2).sum(axis=(2, 3, 4))
    ae = np.abs(diff).sum(axis=(2, 3, 4))
    return {"mse": se.mean(), "mae": ae.mean(), "ssim": ssim.mean(), "psnr": psnr.mean(),
            "per_frame": {"mse": se.mean(0), "mae": ae.mean(0), "ssim": ssim.mean(0), "psnr": psnr.mean(0)},
            "ssim_frames": ssim, "psnr_frames": psnr}


def openstl_psnr_float32(pred_frame: np.ndarray, true_frame: np.ndarray) -> float:
    """OpenSTL 0.3.0 `PSNR` verbatim (float32 mean and log)."""
    mse = np.mean((pred_frame.astype(np.float32) - true_frame.astype(np.float32)) ** 2)
    return float("inf") if mse == 0 else 20.0 * np.log10(1.0 / np.sqrt(mse))
