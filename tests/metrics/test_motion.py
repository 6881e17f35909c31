"""The demo's `follows` score on sequences whose answer is known by construction."""
import numpy as np
import pytest

from stcbench.errors import DataError
from stcbench.metrics.motion import centroids, displacement, farthest_moving, follow_score


def square_at(col: float, size: int = 32) -> np.ndarray:
    """A 4 x 4 square whose left column is at `col` (integer), rows 10-13, as a [1, H, W] frame."""
    frame = np.zeros((1, size, size))
    frame[0, 10:14, int(col):int(col) + 4] = 1.0
    return frame


def moving_square(starts) -> np.ndarray:
    return np.stack([square_at(c) for c in starts])[None]          # [1, T, 1, H, W]


def test_centroids_of_known_frames():
    frame = np.zeros((2, 1, 8, 10))
    frame[0, 0, 3, 5] = 2.0
    frame[1, 0, 1, 1] = frame[1, 0, 5, 7] = 1.0
    assert centroids(frame) == pytest.approx(np.array([[3.0, 5.0], [3.0, 4.0]]))
    assert centroids(np.zeros((1, 8, 10))) == pytest.approx(np.array([3.5, 4.5]))     # empty: the centre
    assert centroids(-np.ones((1, 8, 10))) == pytest.approx(np.array([3.5, 4.5]))     # negative is no mass


def test_perfect_tracking_standing_still_and_halfway():
    context = moving_square([0, 2, 4, 6])
    truth = moving_square([8, 10, 12, 14])
    perfect = follow_score(context, truth, truth)
    assert perfect["follows"] == pytest.approx(1.0) and perfect["tracking_px"] == pytest.approx(0.0)
    still = follow_score(context, truth, np.repeat(context[:, -1:], 4, axis=1))
    assert still["follows"] == pytest.approx(0.0)
    assert still["static_px"] == pytest.approx(np.mean([2, 4, 6, 8]))
    halfway = follow_score(context, truth, moving_square([7, 8, 9, 10]))
    assert halfway["follows"] == pytest.approx(0.5)
    backwards = follow_score(context, truth, moving_square([4, 2, 0, 0]))
    assert backwards["follows"] < 0


def test_shapes_are_checked():
    context = moving_square([0, 2])
    with pytest.raises(DataError, match=r"\[N, T, C, H, W\]"):
        follow_score(context, moving_square([4, 6]), moving_square([4]))


def test_displacement_is_how_far_each_sequence_moves():
    context = np.concatenate([moving_square([0, 2]), moving_square([4, 4])])
    truth = np.concatenate([moving_square([4, 6]), moving_square([4, 4])])
    assert displacement(context, truth) == pytest.approx([3.0, 0.0])
    assert follow_score(context, truth, truth)["static_px"] == pytest.approx(1.5)
    assert farthest_moving(context, truth) == 0 and farthest_moving(context[::-1], truth[::-1]) == 1
