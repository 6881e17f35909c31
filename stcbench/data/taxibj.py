"""TaxiBJ: `dataset.npz` with X/Y train/test windows [N, 4, 2, 32, 32] in [-1, 1] (data.md §2)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from stcbench.data.common import FrameSequenceDataset, Splits, cap, check_selection, counted, fix_hint
from stcbench.data.fileio import missing_file
from stcbench.errors import DataError, array_load_problem

FILE = "dataset.npz"
KEYS = ("X_train", "Y_train", "X_test", "Y_test")
FRAME_SHAPE = (4, 2, 32, 32)
OPENSTL_TRAIN = 20_461
VAL_SAMPLES = 1_000
# consecutive samples are sliding windows of 8 slots: samples i and i+8 share no slot, so
# dropping the 7 samples before the validation tail removes every shared frame
GAP = FRAME_SHAPE[0] * 2 - 1
RANGE_TOLERANCE = 1e-5


def validation_count(n_train: int) -> int:
    """1,000 for the published 20,461 samples; proportional (at least min(100, N/5)) otherwise."""
    proportional = round(n_train * VAL_SAMPLES / OPENSTL_TRAIN)
    return int(min(VAL_SAMPLES, max(proportional, min(100, n_train // 5))))


def read_arrays(path: Path, fix: str) -> dict[str, np.ndarray]:
    """The four arrays, validated for keys, dtype, shape and range (values still in [-1, 1])."""
    if not path.is_file():
        raise missing_file(path, fix)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing keys {missing}; expected {list(KEYS)}, found "
                                f"{npz.files}. {fix}")
            arrays = {k: npz[k] for k in KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, OverflowError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({array_load_problem(exc, path)}). {fix}") from None
    for key, array in arrays.items():
        validate_array(path, key, array, fix)
    if len(arrays["X_train"]) != len(arrays["Y_train"]) or len(arrays["X_test"]) != len(arrays["Y_test"]):
        raise DataError(f"{path}: X and Y sample counts differ (X_train {len(arrays['X_train'])}, "
                        f"Y_train {len(arrays['Y_train'])}, X_test {len(arrays['X_test'])}, "
                        f"Y_test {len(arrays['Y_test'])}). {fix}")
    return arrays


def validate_array(path: Path, key: str, array: np.ndarray, fix: str) -> None:
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: member {key} is not a numpy array (it holds {type(array).__name__}); save the "
                        f"arrays with numpy.savez. {fix}")
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{path}: {key} has dtype {array.dtype}, expected a float dtype. {fix}")
    if array.ndim != 5 or tuple(array.shape[1:]) != FRAME_SHAPE or array.shape[0] < 1:
        raise DataError(f"{path}: {key} has shape {array.shape}, expected [N, 4, 2, 32, 32] "
                        f"(sample, time, inflow/outflow, H, W) with N >= 1. {fix}")
    low, high = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1 - RANGE_TOLERANCE \
            or high > 1 + RANGE_TOLERANCE:
        raise DataError(f"{path}: {key} values span [{low:.4g}, {high:.4g}], expected [-1, 1] "
                        f"(DeepST min-max scaling). {fix}")


def to_unit_range(array: np.ndarray) -> np.ndarray:
    """(X + 1) / 2 as float32, clipped against rounding just outside [0, 1]."""
    return np.clip((array.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)


class TaxiBJWindows(FrameSequenceDataset):
    """Samples X[i] ++ Y[i] -> [8, 2, 32, 32] in [0, 1] (mapped per item: no second copy in RAM)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = np.concatenate([to_unit_range(self.x[index]), to_unit_range(self.y[index])])
        return torch.from_numpy(frames)


def split_indices(n_train: int) -> tuple[slice, slice]:
    n_val = validation_count(n_train)
    n_fit = n_train - n_val - GAP
    if n_fit < 1:
        raise DataError(f"TaxiBJ X_train holds {n_train} samples; at least {n_val + GAP + 1} are "
                        f"needed for a validation tail of {n_val} plus a gap of {GAP}")
    return slice(0, n_fit), slice(n_train - n_val, n_train)


def build_splits(data_root: Path, selection: str = "val", seed: int = 42,
                 train_samples=None, val_samples=None, test_samples=None) -> Splits:
    check_selection(selection)
    path = Path(data_root) / "taxibj" / FILE
    arrays = read_arrays(path, fix_hint("taxibj", data_root))
    n_train = len(arrays["X_train"])
    test = TaxiBJWindows(arrays["X_test"], arrays["Y_test"])
    used_test = cap(test, test_samples)
    if selection == "val":
        fit, held = split_indices(n_train)
        train = cap(TaxiBJWindows(arrays["X_train"][fit], arrays["Y_train"][fit]), train_samples)
        val = cap(TaxiBJWindows(arrays["X_train"][held], arrays["Y_train"][held]), val_samples)
        rules = {"train": f"X_train[0:{len(train)}]",
                 "val": f"X_train[{held.start}:{held.start + len(val)}] "
                        f"({counted(len(val), held.stop - held.start)} of the last {held.stop - held.start}; "
                        f"{GAP} samples before them dropped)"}
    else:
        train = cap(TaxiBJWindows(arrays["X_train"], arrays["Y_train"]), train_samples)
        val = cap(test, val_samples)
        rules = {"train": f"X_train[0:{len(train)}]",
                 "val": f"the test split ({counted(len(val), len(test))} samples)"}
    rules.update(test=f"X_test ({counted(len(used_test), len(test))} samples)", file_train=n_train,
                 file_test=len(test))
    return Splits(train=train, val=val, test=used_test, rules=rules)
