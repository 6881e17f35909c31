"""The Lightning Trainer of every task, from the shared `trainer` and `logging` sections."""
from __future__ import annotations

import contextlib
from pathlib import Path

from stcbench.engine.callbacks import (EpochTimer, StopAfterEpochs, TrainingClock, checkpoint_callbacks,
                                       progress_bar)
from stcbench.errors import ConfigError


def _precision(value: str) -> str:
    return {"64": "64-true", "32": "32-true"}.get(value, value)


def _limit(value):
    """None for 'all batches' (keeps Lightning from announcing the default)."""
    return None if value == 1.0 and isinstance(value, float) else value


def checkpoint_plugins(strategy) -> list:
    """Atomic checkpoint files (stcbench.engine.checkpoint_io); sharded and XLA strategies keep their own."""
    if any(name in str(strategy).lower() for name in ("fsdp", "deepspeed", "xla")):
        return []
    from stcbench.engine.checkpoint_io import AtomicCheckpointIO

    return [AtomicCheckpointIO()]


def build_trainer(config, run_dir: Path | None, *, monitor: str | None = None, loggers: list | None = None,
                  callbacks: list | None = None):
    """A Trainer for `config` (any task's). With `monitor` it trains: best.ckpt (lowest `monitor`) and
    last.ckpt every epoch under `run_dir`/checkpoints, the epoch timer and `trainer.stop_after_epochs`;
    without, it only tests or predicts."""
    import lightning as L

    t, logging = config.trainer, config.logging
    fit = monitor is not None
    all_callbacks = []
    if fit:
        all_callbacks += checkpoint_callbacks(run_dir / "checkpoints", monitor=monitor)
        if t.stop_after_epochs:
            all_callbacks.append(StopAfterEpochs(t.stop_after_epochs))
        all_callbacks += [EpochTimer(), TrainingClock()]
    all_callbacks += callbacks or []
    bar = progress_bar(logging.progress, metrics_every=logging.log_every_n_steps)
    if bar is not None:
        all_callbacks.append(bar)
    with trainer_settings_refused():
        return _trainer(L, t, logging, run_dir, fit, loggers, all_callbacks, bar)


def check_trainer_settings(config) -> None:
    """Lightning's refusal of `config`'s trainer settings (devices, accelerator, strategy) as one line, before a run
    writes anything: a Trainer of them is made (no folder, loggers or checkpoints) and dropped."""
    build_trainer(config, None)


@contextlib.contextmanager
def trainer_settings_refused():
    """Lightning's refusal of trainer settings it cannot honour here (devices, accelerator, strategy), as one line."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except (MisconfigurationException, TypeError, ValueError, ModuleNotFoundError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConfigError(f"Lightning cannot make a Trainer of these settings: {text} (check trainer.devices, "
                          f"trainer.accelerator and trainer.strategy: --devices, --accelerator, --strategy)") from None


def _trainer(L, t, logging, run_dir, fit: bool, loggers, all_callbacks: list, bar):
    return L.Trainer(
        default_root_dir=str(run_dir) if run_dir else None,
        max_epochs=t.max_epochs, max_steps=t.max_steps,
        limit_train_batches=_limit(t.limit_train_batches), limit_val_batches=_limit(t.limit_val_batches),
        limit_test_batches=_limit(t.limit_test_batches), check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=t.num_sanity_val_steps,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm if t.gradient_clip_val else None,
        precision=_precision(t.precision), accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, deterministic=t.deterministic or None,
        benchmark=None if t.deterministic else t.benchmark,
        accumulate_grad_batches=t.accumulate_grad_batches,
        logger=loggers if loggers else False,
        log_every_n_steps=logging.log_every_n_steps,
        callbacks=all_callbacks, enable_progress_bar=bar is not None,
        enable_checkpointing=fit, enable_model_summary=False,
        plugins=checkpoint_plugins(t.strategy) if fit else None,
    )
