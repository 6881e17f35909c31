"""One entry point to the splits of any dataset, and where its files came from."""
from __future__ import annotations

import os
from pathlib import Path

from stcbench.data import kth, mmnist, taxibj
from stcbench.data.common import Splits
from stcbench.data.fileio import read_marker
from stcbench.data.specs import get_dataset_spec, require_folder_root


def build_splits(name: str, data_root: str | os.PathLike | None = None, selection: str = "val",
                 seed: int = 42, train_samples: int | None = None, val_samples: int | None = None,
                 test_samples: int | None = None, log=None) -> Splits:
    """Train / validation / test datasets of `name`, read and validated from `data_root`."""
    spec = get_dataset_spec(name)
    root = require_folder_root(data_root)
    caps = dict(train_samples=train_samples, val_samples=val_samples, test_samples=test_samples)
    if spec.name == "mmnist":
        return mmnist.build_splits(root, selection, seed, **caps)
    if spec.name == "taxibj":
        return taxibj.build_splits(root, selection, seed, **caps)
    return kth.build_splits(root, selection, seed, train_frames=spec.train_frames,
                            eval_frames=spec.total_frames, log=log, **caps)


def data_source(name: str, data_root: str | os.PathLike | None = None) -> dict:
    """{"source": "generated" | "real", ...}: the generator's marker file if there is one."""
    folder = Path(get_dataset_spec(name).folder_path(data_root))
    marker = read_marker(folder)
    if marker and marker.get("source") == "generated":
        return marker
    return {"source": "real"}
