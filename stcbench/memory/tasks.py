"""Memory probe tasks, generated deterministically from a seed.

Every task yields `(inputs [N, T, F] float32, targets)`; the network reads one step at a time.

* `adding` (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016; CE-LIF paper): two input
  channels, values U(0, 1) and an indicator with exactly two ones at distinct random steps;
  target the sum of the two marked values (MSE).  Predicting the mean 1 gives
  MSE = Var(U1 + U2) = 1/6 = 0.167, the baseline.
* `copy` (CE-LIF paper's variant): length T + 20; 10 symbols from 1..8, then T blanks (0),
  then 10 markers (9); one-hot inputs over 10 classes.  Targets are blank (0) for the first
  T + 10 steps and the 10 symbols during the last 10 (cross-entropy over all T + 20 steps).
  Predicting blank, then uniform over the 8 symbols, gives 10 ln 8 / (T + 20), the baseline.
* `seq_digits` / `pseq_digits`: digit images read pixel by pixel (row-major raster), the
  permuted task with one fixed permutation drawn from the seed; 10 classes.  MNIST
  (784 steps) from `<data_root>/moving_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`
  when present, else scikit-learn's bundled `load_digits` (1,797 real 8x8 digits, 64 steps,
  intensities 0..16 scaled to [0, 1]).
"""
from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stcbench.errors import ConfigError, DataError

TASKS = ("adding", "copy", "seq_digits", "pseq_digits")
COPY_SYMBOLS = 8          # symbols 1..8
COPY_CLASSES = 10         # blank 0, symbols 1..8, marker 9
COPY_MARKER = 9
COPY_LENGTH = 10          # symbols to remember
DIGIT_CLASSES = 10
ADDING_BASELINE = 1.0 / 6.0
SKLEARN_TEST_FRACTION = 0.2
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class TaskSpec:
    """What the network and the loss need to know about a task."""

    name: str
    steps: int                 # sequence length the network runs
    in_features: int
    out_features: int
    kind: str                  # "regression" | "sequence_classification" | "classification"
    baseline: float            # loss of the best memoryless predictor
    baseline_formula: str
    source: str = "generated"  # generated | mnist | sklearn


def copy_baseline(seq_len: int) -> float:
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (seq_len + 2 * COPY_LENGTH)


def check_task(name: str) -> None:
    if name not in TASKS:
        raise ConfigError(f"unknown memory task {name!r}; choose one of {list(TASKS)}")


def generator(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed)))


# ----------------------------------------------------------------------------- adding
def make_adding(n: int, seq_len: int, seed: int, window: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs [n, T, 2] (value, indicator), targets [n] = sum of the two marked values. The two marked
    steps are any two distinct steps, or with `window` (start, stop) two distinct steps inside it."""
    if seq_len < 2:
        raise ConfigError(f"adding problem needs seq_len >= 2, got {seq_len}")
    start, stop = window if window is not None else (0, seq_len)
    if not 0 <= start < stop <= seq_len or stop - start < 2:
        raise ConfigError(f"adding window {window} must hold two steps of 0..{seq_len - 1}")
    rng = generator(seed)
    values = rng.random((n, seq_len))
    marks = start + np.argsort(rng.random((n, stop - start)), axis=1)[:, :2]     # two distinct steps
    indicator = np.zeros((n, seq_len))
    np.put_along_axis(indicator, marks, 1.0, axis=1)
    targets = (values * indicator).sum(axis=1)
    inputs = np.stack([values, indicator], axis=-1)
    return torch.from_numpy(inputs).float(), torch.from_numpy(targets).float()


# ------------------------------------------------------------------------------- copy
def make_copy(n: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs [n, T+20, 10] one-hot, targets [n, T+20] class indices."""
    if seq_len < 1:
        raise ConfigError(f"copy memory needs seq_len >= 1, got {seq_len}")
    rng = generator(seed)
    total = seq_len + 2 * COPY_LENGTH
    symbols = rng.integers(1, COPY_SYMBOLS + 1, size=(n, COPY_LENGTH))
    sequence = np.zeros((n, total), dtype=np.int64)
    sequence[:, :COPY_LENGTH] = symbols
    sequence[:, -COPY_LENGTH:] = COPY_MARKER
    targets = np.zeros((n, total), dtype=np.int64)
    targets[:, -COPY_LENGTH:] = symbols
    inputs = torch.nn.functional.one_hot(torch.from_numpy(sequence), COPY_CLASSES).float()
    return inputs, torch.from_numpy(targets)


# ----------------------------------------------------------------------------- digits
def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """A gzip IDX file (MNIST format): big-endian magic, dimensions, then uint8 data."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable gzip IDX file ({exc}); re-download it") from None
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != expected_magic:
        raise DataError(f"{path} does not start with IDX magic {expected_magic:#010x}; is it the right file?")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DataError(f"{path} is truncated: header says {dims} ({count} bytes), found {len(raw) - header}; "
                        f"re-download it")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def mnist_paths(data_root: str | Path) -> dict[str, tuple[Path, Path]]:
    """The IDX files under the data root ('' = $STCBENCH_DATA_ROOT, else datasets/, as for video runs)."""
    from stcbench.data.specs import require_folder_root

    folder = require_folder_root(data_root) / "moving_mnist"      # a data root that is a file is refused
    return {split: (folder / img, folder / lab) for split, (img, lab) in MNIST_FILES.items()}


def mnist_available(data_root: str | Path) -> bool:
    return all(p.is_file() for pair in mnist_paths(data_root).values() for p in pair)


def load_mnist(data_root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = mnist_paths(data_root)[split]
    images = read_idx(images_path, 0x00000803)
    labels = read_idx(labels_path, 0x00000801)
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64)


def load_sklearn_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits; a fixed 80/20 split (every 5th image is test)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    is_test = np.arange(len(images)) % round(1 / SKLEARN_TEST_FRACTION) == 0
    keep = is_test if split == "test" else ~is_test
    return images[keep], digits.target[keep].astype(np.int64)


def digits_source(data_root: str | Path, requested: str) -> str:
    if requested not in ("auto", "mnist", "sklearn"):
        raise ConfigError(f"digits_source must be auto, mnist or sklearn, got {requested!r}")
    if requested == "mnist" and not mnist_available(data_root):
        missing = [str(p) for pair in mnist_paths(data_root).values() for p in pair if not p.is_file()]
        raise DataError(f"digits_source=mnist but these files are missing: {missing}; "
                        f"place the MNIST IDX files there or use digits_source: sklearn")
    if requested == "auto":
        return "mnist" if mnist_available(data_root) else "sklearn"
    return requested


def digit_permutation(steps: int, seed: int) -> np.ndarray:
    return generator(seed + 7919).permutation(steps)


def make_digits(split: str, *, permuted: bool, seed: int, data_root: str | Path = "datasets",
                source: str = "auto", limit: int | None = None, subset_seed: int = 0):
    """inputs [n, P, 1] pixel sequences, targets [n] labels.  `split`: train | test."""
    source = digits_source(data_root, source)
    images, labels = load_mnist(data_root, split) if source == "mnist" else load_sklearn_digits(split)
    if limit is not None and limit < len(images):
        keep = np.sort(generator(subset_seed).permutation(len(images))[:limit])
        images, labels = images[keep], labels[keep]
    if permuted:
        images = images[:, digit_permutation(images.shape[1], seed)]
    return torch.from_numpy(images).unsqueeze(-1), torch.from_numpy(labels)


def digit_steps(data_root: str | Path, source: str) -> int:
    return 784 if digits_source(data_root, source) == "mnist" else 64


# ------------------------------------------------------------------------------- spec
def task_spec(name: str, seq_len: int | None, data_root: str | Path = "datasets", source: str = "auto") -> TaskSpec:
    check_task(name)
    if name == "adding":
        return TaskSpec(name, int(seq_len), 2, 1, "regression", ADDING_BASELINE, "Var(U1+U2) = 1/6")
    if name == "copy":
        return TaskSpec(name, int(seq_len) + 2 * COPY_LENGTH, COPY_CLASSES, COPY_CLASSES, "sequence_classification",
                        copy_baseline(int(seq_len)), "10 ln 8 / (T + 20)")
    src = digits_source(data_root, source)
    return TaskSpec(name, digit_steps(data_root, source), 1, DIGIT_CLASSES, "classification", math.log(DIGIT_CLASSES),
                    "ln 10 (chance: 10% accuracy)", src)


def make_split(name: str, split: str, n: int | None, *, seq_len: int | None, seed: int,
               data_root: str | Path = "datasets", source: str = "auto"):
    """Samples of one split.  Generated tasks draw each split from its own seed stream;
    the digit tasks take `train` and `val` from the training images (val = a fixed held-out
    tenth) and `test` from the test images."""
    check_task(name)
    split_seed = {"train": 0, "val": 1, "test": 2}[split] + 3 * int(seed)
    if name == "adding":
        return make_adding(n, int(seq_len), split_seed)
    if name == "copy":
        return make_copy(n, int(seq_len), split_seed)
    permuted = name == "pseq_digits"
    if split == "test":
        return make_digits("test", permuted=permuted, seed=seed, data_root=data_root, source=source, limit=n)
    inputs, targets = make_digits("train", permuted=permuted, seed=seed, data_root=data_root, source=source)
    is_val = np.arange(len(inputs)) % 10 == 0
    keep = torch.from_numpy(is_val if split == "val" else ~is_val)
    inputs, targets = inputs[keep], targets[keep]
    if n is not None and n < len(inputs):
        order = torch.from_numpy(generator(split_seed).permutation(len(inputs))[:n])
        inputs, targets = inputs[order], targets[order]
    return inputs, targets
