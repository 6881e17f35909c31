"""Checkpoint files written beside their target and renamed over it (stcbench.atomic)."""
from __future__ import annotations

from pathlib import Path

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from stcbench.engine.io import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """A run killed while saving keeps its previous checkpoint. Lightning's own save renames from the
    system's temporary folder, which copies in place when that folder is on another file system.
    Loading is Lightning's."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by stcbench's checkpoint writer")
        atomic_torch_save(Path(path), checkpoint)
