"""Small Lightning callbacks used by the runner."""
from __future__ import annotations

import lightning as L


class StopAfterEpochs(L.Callback):
    """End this invocation after `epochs` epochs (e.g. a cluster time limit); resume from last.ckpt.

    The learning-rate schedule still spans `trainer.max_epochs`, so a chunked run equals an
    uninterrupted one."""

    def __init__(self, epochs: int):
        self.epochs = int(epochs)
        self.start_epoch = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 - self.start_epoch >= self.epochs:
            trainer.should_stop = True


def progress_bar(kind: str):
    """rich (default), tqdm, or None for no bar."""
    if kind == "none":
        return None
    if kind == "rich":
        try:
            from lightning.pytorch.callbacks import RichProgressBar

            return RichProgressBar(leave=True)
        except (ImportError, ModuleNotFoundError):
            pass
    from lightning.pytorch.callbacks import TQDMProgressBar

    return TQDMProgressBar()
