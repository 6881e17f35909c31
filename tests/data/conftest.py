"""Shared helpers of the dataset tests: tiny generated roots and independent format writers."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stcbench.data import generate_dataset
from stcbench.data.kth import ACTIONS

TINY = {
    "mmnist": {"test_sequences": "24"},
    "taxibj": {"train_days": "4", "test_days": "2"},
    "kth": {"frames_per_video": "31"},
}


@pytest.fixture(scope="session")
def generated_root(tmp_path_factory) -> Path:
    """A data root holding tiny generated versions of all datasets (seed 0), shared read-only."""
    root = tmp_path_factory.mktemp("generated")
    for name, params in TINY.items():
        generate_dataset(name, root, seed=0, overrides=params)
    return root


# ----------------------------------------------------------------------------- independent writers
def write_idx3_by_hand(path: Path, images: np.ndarray, magic: int = 0x00000803,
                       count: int | None = None) -> None:
    """MNIST IDX3 written directly from the format description (big-endian int32 header)."""
    n, rows, cols = images.shape
    header = struct.pack(">iiii", magic, n if count is None else count, rows, cols)
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def write_mmnist_by_hand(root: Path, n_images: int = 120, n_test: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (20, n_test, 64, 64), dtype=np.uint8)
    folder = root / "moving_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    write_idx3_by_hand(folder / "train-images-idx3-ubyte.gz", images)
    np.save(folder / "mnist_test_seq.npy", test)
    return images, test


def write_taxibj_by_hand(root: Path, n_train: int = 300, n_test: int = 20, seed: int = 2,
                         dtype=np.float64) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {key: rng.uniform(-1, 1, (n, 4, 2, 32, 32)).astype(dtype)
              for key, n in (("X_train", n_train), ("Y_train", n_train),
                             ("X_test", n_test), ("Y_test", n_test))}
    folder = root / "taxibj"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "dataset.npz", **arrays)
    return arrays


def write_kth_tree_by_hand(root: Path, videos: dict[tuple[str, int], int], grey: int = 100,
                           size: tuple[int, int] = (120, 160)) -> Path:
    """JPEG frames image_0001.jpg... for {(action, person): n_frames}; every action folder exists."""
    kth = root / "kth"
    for action in ACTIONS:
        (kth / action).mkdir(parents=True, exist_ok=True)
    for (action, person), n_frames in videos.items():
        folder = kth / action / f"person{person:02d}_{action}_d1_uncomp"
        folder.mkdir(parents=True)
        for k in range(1, n_frames + 1):
            frame = np.full(size + (3,), (grey + k) % 256, dtype=np.uint8)
            Image.fromarray(frame, mode="RGB").save(folder / f"image_{k:04d}.jpg", quality=95)
    return kth
