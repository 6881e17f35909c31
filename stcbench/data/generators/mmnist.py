"""Embedded Moving MNIST: real handwritten digits (scikit-learn `load_digits`) in the published files.

The 1,797 8x8 digits (0-16 grey levels) are shuffled by the seed, upscaled bilinearly to 20x20,
scaled to 0-255 and centred in a 28x28 box with a 4-pixel border (the MNIST layout). The last
`held_out_digits` of them never enter the IDX3 training file; the test sequences are built
from them with the published bouncing rules, as the real test set uses unseen digits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stcbench.data.fileio import save_npy, write_idx3_gz
from stcbench.data.mmnist import FRAMES, IMAGES_FILE, TEST_FILE, compose_sequence
from stcbench.data.resize import bilinear_float

TEST_STREAM = 7          # separates the test-sequence random streams from the digit shuffle


@dataclass
class MovingMNISTParams:
    test_sequences: int = 300
    held_out_digits: int = 297


PRESETS = {"small": {}, "medium": {"test_sequences": 3000}}


def digit_images(seed: int) -> np.ndarray:
    """All 1,797 scikit-learn digits as MNIST-like uint8 [N, 28, 28], in a seeded order."""
    from sklearn.datasets import load_digits

    digits = load_digits().images                                   # [1797, 8, 8], 0..16
    order = np.random.default_rng([seed, 0]).permutation(len(digits))
    body = bilinear_float(digits[order], 20, 20) * (255.0 / 16.0)
    images = np.zeros((len(digits), 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = np.clip(np.rint(body), 0, 255).astype(np.uint8)
    return images


def test_sequences(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """(20, count, 64, 64) uint8, the layout of `mnist_test_seq.npy`."""
    out = np.empty((FRAMES, count, 64, 64), dtype=np.uint8)
    for n in range(count):
        rng = np.random.default_rng([seed, TEST_STREAM, n])
        out[:, n] = compose_sequence(images, (0, len(images)), rng)
    return out


def write(folder: Path, params: MovingMNISTParams, seed: int) -> dict:
    images = digit_images(seed)
    held = int(params.held_out_digits)
    if not 0 < held < len(images) - 12:
        raise ValueError(f"held_out_digits must be in 1..{len(images) - 13}, got {held}")
    train_images, test_images = images[:-held], images[-held:]
    write_idx3_gz(folder / IMAGES_FILE, train_images)
    save_npy(folder / TEST_FILE, test_sequences(test_images, int(params.test_sequences), seed))
    return {"train_images": len(train_images), "test_sequences": int(params.test_sequences),
            "digits": "scikit-learn load_digits (8x8) upscaled to 20x20 in a 28x28 box"}
