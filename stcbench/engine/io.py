"""Atomic result files (stcbench.atomic): numbers, arrays and checkpoints of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stcbench.atomic import replacing, write_json as atomic_write_json, write_text as atomic_write_text

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_save_npz", "atomic_save_numpy", "atomic_torch_save"]


def atomic_save_npz(path: Path, **arrays) -> None:
    import numpy as np

    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def atomic_save_numpy(path: Path, array) -> None:
    import numpy as np

    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch

    with replacing(path) as tmp:
        torch.save(obj, tmp)
