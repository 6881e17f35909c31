"""Moving MNIST: IDX3 digits + fixed test file; training sequences generated on the fly (data.md §1)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from stcbench.data.common import (FrameSequenceDataset, MappedArray, Splits, cap, check_selection, counted,
                                  fix_hint)
from stcbench.data.fileio import open_npy_memmap, read_idx3
from stcbench.errors import DataError

FRAMES = 20
CANVAS = 64
DIGIT = 28
STEP = 0.1                      # per-frame displacement in the unit square
RANGE = CANVAS - DIGIT          # 36 px: pixel position = int(36 * coordinate)
TRAIN_SEQUENCES_PER_EPOCH = 10_000
MNIST_TRAIN_IMAGES = 60_000
VAL_SEQUENCES = 1_000
VALIDATION_SEED = 55_000        # fixed: the same validation set for every run seed

IMAGES_FILE = "train-images-idx3-ubyte.gz"
TEST_FILE = "mnist_test_seq.npy"


# ----------------------------------------------------------------------------- generation rules
def digit_positions(rng: np.random.Generator, frames: int = FRAMES) -> np.ndarray:
    """(top, left) pixel offsets of one bouncing digit for each frame, shape [frames, 2].

    Start ~ U[0,1)^2, direction ~ U[0, 2pi), step 0.1; each frame first moves, then clamps a
    coordinate that left [0, 1] and flips that velocity component (specular bounce).
    """
    x, y = rng.random(), rng.random()
    theta = rng.random() * 2.0 * math.pi
    vx, vy = math.cos(theta), math.sin(theta)
    positions = np.empty((frames, 2), dtype=np.int64)
    for t in range(frames):
        x += STEP * vx
        y += STEP * vy
        if x <= 0.0:
            x, vx = 0.0, -vx
        if x >= 1.0:
            x, vx = 1.0, -vx
        if y <= 0.0:
            y, vy = 0.0, -vy
        if y >= 1.0:
            y, vy = 1.0, -vy
        positions[t] = (int(RANGE * y), int(RANGE * x))
    return positions


def compose_sequence(images: np.ndarray, pool: tuple[int, int], rng: np.random.Generator,
                     frames: int = FRAMES, digits: int = 2) -> np.ndarray:
    """One uint8 sequence [frames, 64, 64]: `digits` bouncing digits pasted with pixel-wise max."""
    canvas = np.zeros((frames, CANVAS, CANVAS), dtype=np.uint8)
    lo, hi = pool
    for _ in range(digits):
        digit = images[int(rng.integers(lo, hi))]
        for t, (top, left) in enumerate(digit_positions(rng, frames)):
            window = canvas[t, top:top + DIGIT, left:left + DIGIT]
            np.maximum(window, digit, out=window)
    return canvas


def image_pools(n_images: int) -> dict:
    """Train / validation image ranges: 0-54,999 / 55,000-59,999 for MNIST, same 11:1 ratio otherwise."""
    split = (n_images * 11) // 12
    if split < 1 or split >= n_images:
        raise DataError(f"Moving MNIST needs at least 2 digit images, got {n_images}")
    return {"train": (0, split), "val": (split, n_images), "all": (0, n_images)}


def validation_count(n_images: int) -> int:
    """1,000 sequences for the full 60,000-image file; N/60 (at least 100) for smaller files."""
    return min(VAL_SEQUENCES, max(100, round(n_images * VAL_SEQUENCES / MNIST_TRAIN_IMAGES)))


# ----------------------------------------------------------------------------- datasets
class GeneratedMovingMNIST(FrameSequenceDataset):
    """Sequences drawn on demand; sample i of epoch e uses a generator seeded by (seed, e, i).

    Index k may encode the epoch as k = e * len + i (see EpochSampler), so the sequences
    depend only on (seed, epoch, index), whatever the number of workers.
    """

    epoch_aware = True

    def __init__(self, images: np.ndarray, pool: tuple[int, int], length: int, seed: int,
                 frames: int = FRAMES):
        self.images = images
        self.pool = pool
        self.length = int(length)
        self.seed = int(seed)
        self.frames = frames

    def __len__(self) -> int:
        return self.length

    def sequence(self, epoch: int, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, index])
        return compose_sequence(self.images, self.pool, rng, self.frames)

    def __getitem__(self, key: int) -> torch.Tensor:
        epoch, index = divmod(int(key), self.length)
        frames = self.sequence(epoch, index)
        return torch.from_numpy(frames[:, None].astype(np.float32) / 255.0)


class MovingMNISTTestFile(FrameSequenceDataset):
    """Sequences of `mnist_test_seq.npy` (T, N, 64, 64) uint8, memory-mapped."""

    def __init__(self, path: Path, array: np.ndarray):
        self.mapped = MappedArray(path, array)
        self.count = array.shape[1]

    @property
    def array(self) -> np.ndarray:
        return self.mapped.array

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = np.asarray(self.array[:, index], dtype=np.float32)
        return torch.from_numpy(frames[:, None] / 255.0)


# ----------------------------------------------------------------------------- files
def load_images(folder: Path, fix: str) -> np.ndarray:
    path = folder / IMAGES_FILE
    if not path.exists() and (folder / IMAGES_FILE[:-3]).exists():
        path = folder / IMAGES_FILE[:-3]            # uncompressed copy is accepted too
    return read_idx3(path, fix)


def load_test_array(folder: Path, fix: str) -> np.ndarray:
    path = folder / TEST_FILE
    array = open_npy_memmap(path, fix)
    if array.dtype != np.uint8:
        raise DataError(f"{path}: dtype {array.dtype}, expected uint8. {fix}")
    if array.ndim != 4 or array.shape[0] != FRAMES or array.shape[2:] != (CANVAS, CANVAS):
        raise DataError(f"{path}: shape {array.shape}, expected (20, N, 64, 64) = (T, N, H, W). {fix}")
    if array.shape[1] < 1:
        raise DataError(f"{path}: holds no sequences (shape {array.shape}). {fix}")
    return array


def build_splits(data_root: Path, selection: str = "val", seed: int = 42,
                 train_samples=None, val_samples=None, test_samples=None) -> Splits:
    check_selection(selection)
    folder = Path(data_root) / "moving_mnist"
    fix = fix_hint("mmnist", data_root)
    images = load_images(folder, fix)
    test = MovingMNISTTestFile(folder / TEST_FILE, load_test_array(folder, fix))
    pools = image_pools(len(images))
    epoch_length = len(cap(range(TRAIN_SEQUENCES_PER_EPOCH), train_samples))
    if selection == "val":
        train = GeneratedMovingMNIST(images, pools["train"], epoch_length, seed)
        val = GeneratedMovingMNIST(images, pools["val"], validation_count(len(images)),
                                   VALIDATION_SEED)
    else:
        train = GeneratedMovingMNIST(images, pools["all"], epoch_length, seed)
        val = test
    used_val, used_test = cap(val, val_samples), cap(test, test_samples)
    rules = {
        "images": len(images),
        "train_images": list(pools["train" if selection == "val" else "all"]),
        "train": f"{epoch_length} sequences generated per epoch, seeded by (seed, epoch, index)",
        "val": (f"{counted(len(used_val), len(val))} fixed sequences from images {pools['val'][0]}-"
                f"{pools['val'][1] - 1}, seed {VALIDATION_SEED}" if selection == "val"
                else f"the test file ({counted(len(used_val), len(val))} sequences)"),
        "test": f"{TEST_FILE} ({counted(len(used_test), len(test))} sequences)",
    }
    return Splits(train=train, val=used_val, test=used_test, rules=rules)
