"""Atomic result files: write to a temporary file in the same folder, then rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from stcbench.strict_json import dumps


def _atomic(path: Path, write: Callable[[str], None], suffix: str = "") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)

    _atomic(path, write)


def atomic_write_json(path: Path, data: Any) -> None:
    """Strict JSON (stcbench.strict_json: inf/nan as "inf"/"nan" strings), written atomically."""
    atomic_write_text(path, dumps(data) + "\n")


def atomic_save_npz(path: Path, **arrays) -> None:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic(path, write)


def atomic_save_numpy(path: Path, array) -> None:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    _atomic(path, write)


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch

    _atomic(path, lambda tmp: torch.save(obj, tmp))
