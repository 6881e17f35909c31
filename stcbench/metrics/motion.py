"""Whether predictions move with the objects: the `follows` score of `stcbench demo` (docs/scales.md,
"The demo's setting").

For every predicted frame, the distance (pixels) between the intensity centroid of the prediction and that
of the true frame (tracking error), against the same distance for a model that repeats the last context
frame (static error), both averaged over all frames of all sequences:

    follows = 1 - tracking / static

0 for a prediction that stays where the objects were, 1 for one whose centre of mass moves exactly as the
true frames'. Negative values are possible (worse than standing still). A blur that drifts towards the
centre of the frame scores a little above 0 without following anything (docs/scales.md gives the scale).
"""
from __future__ import annotations

import numpy as np

from stcbench.errors import DataError


def centroids(frames: np.ndarray) -> np.ndarray:
    """Intensity centroids (row, column) of frames [..., C, H, W], channels averaged, negative values taken
    as 0; a frame without mass gets the centre of the frame."""
    frames = np.clip(np.asarray(frames, dtype=np.float64).mean(axis=-3), 0, None)
    height, width = frames.shape[-2:]
    mass = frames.sum(axis=(-2, -1))
    empty = mass <= 0
    mass = np.where(empty, 1.0, mass)
    row = (frames.sum(axis=-1) * np.arange(height)).sum(axis=-1) / mass
    col = (frames.sum(axis=-2) * np.arange(width)).sum(axis=-1) / mass
    row = np.where(empty, (height - 1) / 2, row)
    col = np.where(empty, (width - 1) / 2, col)
    return np.stack([row, col], axis=-1)


def displacement(context: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per sequence, the mean distance (pixels) of the true frames' centroids from the last context frame's:
    how far the objects move; the static error of `follow_score`, sequence by sequence ([N])."""
    last = centroids(np.asarray(context)[:, -1:])
    return np.linalg.norm(last - centroids(np.asarray(truth)), axis=-1).mean(axis=-1)


def farthest_moving(context: np.ndarray, truth: np.ndarray) -> int:
    """Index of the sequence whose objects move farthest (`displacement`; the first of equals)."""
    return int(np.argmax(displacement(context, truth)))


def follow_score(context: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> dict:
    """{tracking_px, static_px, follows} for sequences [N, T, C, H, W] (context: the input frames)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape or truth.ndim != 5 or np.asarray(context).shape[0] != truth.shape[0]:
        raise DataError(f"follow_score needs context, truth and predictions as [N, T, C, H, W] with the same N "
                        f"and equal truth/prediction shapes (got {np.shape(context)}, {truth.shape}, "
                        f"{pred.shape})")
    tracking = float(np.linalg.norm(centroids(pred) - centroids(truth), axis=-1).mean())
    static = float(displacement(context, truth).mean())
    follows = 1.0 - tracking / static if static > 0 else float("nan")
    return {"tracking_px": tracking, "static_px": static, "follows": follows}
