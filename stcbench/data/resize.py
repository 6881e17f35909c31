"""OpenCV-compatible bilinear resize (cv2.resize(..., interpolation=INTER_LINEAR)) in numpy.

The reference KTH loader resizes uint8 frames 120x160 -> 128x128 with OpenCV's INTER_LINEAR:
half-pixel centres, no antialiasing, 11-bit fixed-point weights, uint8 result. PIL's BILINEAR
differs (it antialiases when shrinking), so the same arithmetic is reimplemented here:

* source coordinate  f = (d + 0.5) * src/dst - 0.5 (float32), i = floor(f), a = f - i;
  columns: i < 0 -> (i, a) = (0, 0), i >= src-1 -> (i, a) = (src-1, 0);
  rows keep (i, a) and read rows i and i+1 clamped to [0, src-1] (border replicate);
* weights rounded to integers out of 2048: w0 = round((1-a)*2048), w1 = round(a*2048);
* horizontal pass in integers: h = w0*S[i] + w1*S[i+1];
* vertical pass as OpenCV's vectorised kernel (used for whole rows on x86 and ARM):
  out = ((h0 >> 4) * v0 >> 16) + ((h1 >> 4) * v1 >> 16), then (out + 2) >> 2, saturated.

`bilinear_float` is the same interpolation in float64 (the direct formula); the two agree to
within one grey level.
"""
from __future__ import annotations

import numpy as np

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def source_coordinates(dst: int, src: int, clamp_fraction: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(index, fraction) of the left/top source neighbour of each destination pixel.

    OpenCV zeroes the fraction at the borders for columns only; for rows it keeps the
    fraction and clamps the row indices (`clamp_fraction=False`).
    """
    scale = np.float64(src) / np.float64(dst)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(f).astype(np.int64)
    frac = (f - index).astype(np.float32)
    if not clamp_fraction:
        return index, frac
    low = index < 0
    index[low], frac[low] = 0, 0.0
    high = index >= src - 1
    index[high], frac[high] = src - 1, 0.0
    return index, frac


def fixed_weights(frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w0 = np.rint((1.0 - frac) * COEF_SCALE).astype(np.int64)
    w1 = np.rint(frac * COEF_SCALE).astype(np.int64)
    return w0, w1


def resize_linear_u8(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 [..., H, W] to [..., height, width] exactly like OpenCV INTER_LINEAR."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"resize_linear_u8 expects uint8 images, got {images.dtype}")
    src_h, src_w = images.shape[-2:]
    xi, xa = source_coordinates(width, src_w)
    yi, ya = source_coordinates(height, src_h, clamp_fraction=False)
    xw0, xw1 = fixed_weights(xa)
    yw0, yw1 = fixed_weights(ya)
    xj = np.minimum(xi + 1, src_w - 1)
    yj = np.clip(yi + 1, 0, src_h - 1)
    yi = np.clip(yi, 0, src_h - 1)
    pixels = images.astype(np.int64)
    rows = pixels[..., xi] * xw0 + pixels[..., xj] * xw1          # [..., src_h, width]
    top = rows[..., yi, :] >> 4
    bottom = rows[..., yj, :] >> 4
    out = ((top * yw0[:, None]) >> 16) + ((bottom * yw1[:, None]) >> 16)
    out = (out + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def bilinear_float(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel-centre bilinear interpolation in float64 (reference formula, no rounding)."""
    images = np.asarray(images, dtype=np.float64)
    src_h, src_w = images.shape[-2:]
    xi, xa = source_coordinates(width, src_w)
    yi, ya = source_coordinates(height, src_h)
    xj = np.minimum(xi + 1, src_w - 1)
    yj = np.minimum(yi + 1, src_h - 1)
    xa = xa.astype(np.float64)
    ya = ya.astype(np.float64)[:, None]
    rows = images[..., xi] * (1 - xa) + images[..., xj] * xa
    return rows[..., yi, :] * (1 - ya) + rows[..., yj, :] * ya
