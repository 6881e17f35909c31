"""The engine keeps Lightning's notices about the run and drops its product tips."""
import logging

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

from stcbench.engine.run import quiet_lightning


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _trainer_notices(tmp_path) -> list[str]:
    handler = _Collect()
    lightning_log = logging.getLogger("lightning.pytorch")
    lightning_log.addHandler(handler)
    try:
        pl.Trainer(accelerator="cpu", logger=[CSVLogger(tmp_path)], enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False)
    finally:
        lightning_log.removeHandler(handler)
    return handler.messages


def test_trainer_tip_dropped_and_run_notices_kept(tmp_path):
    quiet_lightning()
    quiet_lightning()                      # twice: one filter
    notices = _trainer_notices(tmp_path)
    assert not any("Tip" in message or message.startswith(("TPU available", "GPU available: False"))
                   for message in notices)
    filters = logging.getLogger("lightning.pytorch.utilities.rank_zero").filters
    assert len(filters) == 1


def test_without_the_filter_lightning_prints_the_tip(tmp_path):
    notices_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    saved = list(notices_logger.filters)
    for f in saved:
        notices_logger.removeFilter(f)
    try:
        notices = _trainer_notices(tmp_path)
        assert any("Tip" in message for message in notices)
        assert any(message.startswith("TPU available: False") for message in notices)
    finally:
        for f in saved:
            notices_logger.addFilter(f)


def test_the_standalone_lightning_packages_notices_are_filtered_too():
    """pytorch_lightning / lightning_fabric (imported by a plugin, say) log through loggers of their own."""
    quiet_lightning()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        handler = _Collect()
        logger.addHandler(handler)
        level, logger.level = logger.level, logging.INFO
        try:
            logger.info("\N{ELECTRIC LIGHT BULB} Tip: install something")
            logger.info("TPU available: False, using: 0 TPU cores")
            logger.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
            logger.info("GPU available: False, used: False")
            logger.info("GPU available: True (cuda), used: True")
        finally:
            logger.removeHandler(handler)
            logger.level = level
        assert handler.messages == ["GPU available: True (cuda), used: True"], name
