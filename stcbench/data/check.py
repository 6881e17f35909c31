"""Verification of dataset files: a quick presence/header check and a full report."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from stcbench.data import kth, mmnist, taxibj
from stcbench.data.common import fix_hint
from stcbench.data.fileio import missing_file, read_npy_header
from stcbench.data.loaders import build_splits, data_source
from stcbench.data.specs import get_dataset_spec, require_folder_root
from stcbench.errors import DataError, array_load_problem

RANGE_PROBES = 64      # samples per split whose value range the report shows


def verify_files(name: str, data_root: str | os.PathLike | None = None) -> None:
    """Cheap check that the files exist and their headers are sane (no full read)."""
    spec = get_dataset_spec(name)
    root = require_folder_root(data_root)
    verify_folder(spec.name, spec.folder_path(root), fix_hint(spec.name, root))


def verify_folder(name: str, folder, fix: str) -> None:
    """`verify_files` of the dataset folder `folder` (e.g. a download's before it is put in place)."""
    folder = Path(folder)
    if name == "mmnist":
        images = folder / mmnist.IMAGES_FILE
        if not images.is_file() and not (folder / mmnist.IMAGES_FILE[:-3]).is_file():
            raise missing_file(images, fix)
        if images.is_file():
            with open(images, "rb") as handle:
                if handle.read(2) != b"\x1f\x8b":
                    raise DataError(f"{images}: not a gzip file (the published MNIST images are gzipped). {fix}")
        shape, dtype, _, _ = read_npy_header(folder / mmnist.TEST_FILE, fix)
        if dtype != np.uint8 or len(shape) != 4 or shape[0] != 20 or shape[2:] != (64, 64):
            raise DataError(f"{folder / mmnist.TEST_FILE}: {dtype} array of shape {shape}, expected "
                            f"uint8 (20, N, 64, 64). {fix}")
    elif name == "taxibj":
        path = folder / taxibj.FILE
        if not path.is_file():
            raise missing_file(path, fix)
        try:
            with zipfile.ZipFile(path) as archive:
                names = {n.removesuffix(".npy") for n in archive.namelist()}
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable .npz file ({array_load_problem(exc, path)}). {fix}") from None
        missing = [k for k in taxibj.KEYS if k not in names]
        if missing:
            raise DataError(f"{path}: missing keys {missing}; expected {list(taxibj.KEYS)}. {fix}")
    else:
        kth.scan_tree(folder, fix)


def value_range(dataset) -> tuple[float, float]:
    n = len(dataset)
    probes = np.unique(np.linspace(0, n - 1, min(n, RANGE_PROBES)).astype(int)) if n else []
    low, high = np.inf, -np.inf
    for i in probes:
        sample = dataset[int(i)]
        low, high = min(low, float(sample.min())), max(high, float(sample.max()))
    return low, high


def check_dataset(name: str, data_root: str | os.PathLike | None = None, selection: str = "val",
                  log=None) -> dict:
    """Read every split with full validation; sizes, sample shapes and value ranges per split."""
    spec = get_dataset_spec(name)
    root = require_folder_root(data_root)
    splits = build_splits(spec.name, root, selection=selection, log=log)
    report = {"dataset": spec.name, "data_root": str(root), "selection": selection,
              "source": data_source(spec.name, root).get("source"), "rules": splits.rules,
              "splits": {}}
    for split in ("train", "val", "test"):
        dataset = getattr(splits, split)
        if len(dataset) == 0:
            raise DataError(f"{spec.folder_path(root)}: the {split} split of {spec.name} is empty "
                            f"({splits.rules.get(split, '')}). {fix_hint(spec.name, root)}")
        sample = dataset[0]
        low, high = value_range(dataset)
        if not (0.0 <= low and high <= 1.0):
            raise DataError(f"{spec.folder_path(root)}: {split} samples span [{low:.4g}, {high:.4g}], "
                            f"expected [0, 1]. {fix_hint(spec.name, root)}")
        report["splits"][split] = {"samples": len(dataset), "shape": list(sample.shape),
                                   "dtype": str(sample.dtype).replace("torch.", ""),
                                   "min": low, "max": high}
    from stcbench.data.checksum import dataset_checksum

    report["checksum"] = dataset_checksum(spec.name, root)     # what run records name the data by
    return report
