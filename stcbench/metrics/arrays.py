"""Loading prediction/target arrays for `stcbench evaluate` with one clear error per problem."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from stcbench.errors import DataError, array_load_problem

TARGET_KEYS = ("true", "truth")     # "truth": the predictions.npz that stcbench's runs save (with "context")


def load_pair(pred_path: Path, true_path: Path | None) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    """(pred, true, names): `.npy` files are memory-mapped read-only; an `.npz` holds `pred` and `true`."""
    pred_path = Path(pred_path)
    if pred_path.suffix == ".npz":
        if true_path is not None:
            raise DataError(f"--pred {pred_path} is an .npz, which must hold both arrays ('pred' and 'true'): "
                            f"drop --true {true_path}, or pass two .npy files")
        return _load_npz(pred_path)
    if true_path is None:
        raise DataError(f"--true is missing; pass the targets .npy (or one .npz with arrays 'pred' and 'true' "
                        f"instead of {pred_path})")
    return _load_npy(pred_path), _load_npy(Path(true_path)), (str(pred_path), str(true_path))


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist; check the path")
    if not path.is_file():
        raise DataError(f"{what} path {path} is not a file; pass a .npy or .npz file")


def _load_npy(path: Path) -> np.ndarray:
    _require_file(path, "array")
    if path.suffix != ".npy":
        raise DataError(f"{path} is not a .npy or .npz file; save arrays with numpy.save / numpy.savez")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, OverflowError) as exc:
        raise DataError(f"{path} is not a readable .npy array ({array_load_problem(exc, path)}); re-save it with "
                        f"numpy.save") from None
    return _checked(array, str(path))


def _checked(array, name: str) -> np.ndarray:
    """A numeric array of this machine's byte order and at most 64-bit values (what the metrics' kernels read);
    else one line saying how to re-save it."""
    if not isinstance(array, np.ndarray):
        raise DataError(f"{name} is not a numpy array (the archive member is {type(array).__name__}); save arrays "
                        f"with numpy.save / numpy.savez")
    dtype = array.dtype
    if dtype.kind in "fiu" and (not dtype.isnative or dtype.itemsize > 8):
        what = "big-endian" if not dtype.isnative else "extended precision"
        raise DataError(f"{name} has dtype {dtype.str} ({what}); re-save it as float32, e.g. "
                        f"numpy.save(path, x.astype('float32'))")
    return array


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    _require_file(path, "archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            target = next((key for key in TARGET_KEYS if key in archive.files), "true")
            missing = [key for key in ("pred", target) if key not in archive.files]
            if missing:
                raise DataError(f"{path} has arrays {sorted(archive.files)} but lacks {missing}; save it with "
                                "numpy.savez(path, pred=predictions, true=targets)")
            arrays = [archive["pred"], archive[target]]
    except (ValueError, OSError, EOFError, OverflowError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz archive ({array_load_problem(exc, path)}); re-save it with "
                        f"numpy.savez") from None
    except MemoryError:
        raise DataError(f"{path} holds arrays larger than this machine's memory (an .npz is read whole); save them "
                        f"as two .npy files (numpy.save), which evaluate reads from disk block by block, and pass "
                        f"--pred and --true") from None
    names = (f"{path}:pred", f"{path}:{target}")
    return _checked(arrays[0], names[0]), _checked(arrays[1], names[1]), names

