"""Low-level readers/writers of the published file formats, with validation, and atomic writes."""
from __future__ import annotations

import contextlib
import gzip
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from stcbench.atomic import DANGLING_LINK, is_dangling_link, replacing_directory
from stcbench.errors import DataError, array_load_problem
from stcbench.strict_json import dumps

MARKER_NAME = "stcbench.json"
IDX3_MAGIC = 0x00000803


# ----------------------------------------------------------------------------- IDX3 (MNIST)
def encode_idx3(images: np.ndarray) -> bytes:
    """Raw IDX3 bytes: big-endian header (magic, count, rows, cols) then uint8 pixels."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 3:
        raise ValueError(f"IDX3 needs [N, rows, cols] images, got shape {images.shape}")
    header = struct.pack(">4i", IDX3_MAGIC, *images.shape)
    return header + images.tobytes()


def write_idx3_gz(path: Path, images: np.ndarray) -> None:
    # mtime=0 makes the gzip bytes depend only on the content (deterministic generation)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(encode_idx3(images))


def read_idx3(path: Path, fix: str) -> np.ndarray:
    """Read a (gzipped) IDX3 image file as [N, rows, cols] uint8, validating header and size."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, fix)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc}). {fix}") from None
    if len(data) < 16:
        raise DataError(f"{path}: too short for an IDX3 header ({len(data)} bytes). {fix}")
    magic, count, rows, cols = struct.unpack(">4i", data[:16])
    if magic != IDX3_MAGIC:
        raise DataError(f"{path}: not an IDX3 image file (magic 0x{magic & 0xFFFFFFFF:08x}, "
                        f"expected 0x{IDX3_MAGIC:08x}). {fix}")
    if count <= 0 or rows != 28 or cols != 28:
        raise DataError(f"{path}: header says {count} images of {rows}x{cols}; expected N>0 "
                        f"images of 28x28. {fix}")
    expected = count * rows * cols
    if len(data) - 16 != expected:
        raise DataError(f"{path}: truncated or padded IDX3 file: header promises {expected} pixel "
                        f"bytes, file holds {len(data) - 16}. {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def missing_file(path: Path, fix: str) -> DataError:
    """The error for a data file that is not there (or is a directory)."""
    if Path(path).is_dir():
        return DataError(f"{path}: is a directory where a data file should be. {fix}")
    return DataError(f"{path}: file not found. {fix}")


# ----------------------------------------------------------------------------- .npy
def read_npy_header(path: Path, fix: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file; checks the file is complete."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, fix)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, OverflowError) as exc:
        raise DataError(f"{path}: not a valid .npy file ({array_load_problem(exc, path)}). {fix}") from None
    if dtype.hasobject:
        raise DataError(f"{path}: {array_load_problem(ValueError('allow_pickle'))}. {fix}")
    if any(int(size) < 0 for size in shape):
        raise DataError(f"{path}: not a valid .npy file (its header declares shape {tuple(shape)}). {fix}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size - offset
    if actual < expected:
        raise DataError(f"{path}: truncated .npy file: the header declares shape {tuple(shape)} "
                        f"({expected:,} data bytes) but the file holds only {actual:,} bytes. {fix}")
    return tuple(shape), dtype, fortran, offset


def open_npy_memmap(path: Path, fix: str) -> np.ndarray:
    read_npy_header(path, fix)
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot memory-map the .npy file ({array_load_problem(exc, path)}). {fix}") from None


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


# ----------------------------------------------------------------------------- marker file
def write_marker(folder: Path, info: dict) -> None:
    (Path(folder) / MARKER_NAME).write_text(dumps(info, sort_keys=True) + "\n")


def read_marker(folder: Path) -> dict | None:
    """The generator's description of how a dataset folder was made, or None (real data)."""
    path = Path(folder) / MARKER_NAME
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


# ----------------------------------------------------------------------------- atomic output
@contextlib.contextmanager
def atomic_directory(target: Path, overwrite: bool = False):
    """Yield a temporary sibling folder; on success it replaces `target` in one rename (stcbench.atomic):
    an interrupted write leaves neither a partial `target` nor leftovers."""
    target = Path(target)
    if is_dangling_link(target):
        raise DataError(f"{target}: {DANGLING_LINK}; remove it or point it at a folder")
    if target.exists() and not overwrite and not (target.is_dir() and not any(target.iterdir())):   # empty: filled
        raise DataError(f"{target}: already exists; pass --force to replace it, or choose "
                        f"another --data-root")
    with replacing_directory(target, replace=overwrite) as tmp:
        yield tmp
