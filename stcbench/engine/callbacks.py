"""Small Lightning callbacks used by the runner."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import lightning as L

from stcbench.engine.run_folder import folder_identity, resume_command
from stcbench.errors import StcbenchError


def checkpoint_callbacks(folder: Path, monitor: str) -> list:
    """best.ckpt (lowest `monitor`) and last.ckpt, both written every epoch.

    Two callbacks, not one with save_last=True: Lightning's ModelCheckpoint writes its last.ckpt
    only at the epochs where it also saved a best one, so a run whose validation stopped
    improving would resume, and report its last epoch, from an older epoch."""
    options = dict(dirpath=str(folder), every_n_epochs=1, save_top_k=1, auto_insert_metric_name=False,
                   enable_version_counter=False, save_last=False)
    checkpoint = run_checkpoint_class()
    best = checkpoint(filename="best", monitor=monitor, mode="min", **options)
    last = checkpoint(filename="last", monitor=None, **options)
    return [best, last]                 # the first is trainer.checkpoint_callback (the best)


def run_checkpoint_class():
    """Lightning's ModelCheckpoint for a run folder that may have been moved or copied since its checkpoint was
    written: the state a resume reloads (the best score and the paths of the checkpoints) is taken over into the
    folder the run is in now. Lightning keeps only the best path when the folder differs, so the first validation
    after the resume would count as the best, and the old folder's best.ckpt would be tested."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    class RunFolderCheckpoint(ModelCheckpoint):
        @property
        def state_key(self) -> str:        # Lightning's own key: checkpoints written before this class resume alike
            return "ModelCheckpoint" + super().state_key[len(type(self).__qualname__):]

        def load_state_dict(self, state_dict: dict) -> None:
            before = state_dict.get("dirpath")
            if before and self.dirpath and before != self.dirpath:
                state_dict = relocated(state_dict, before, self.dirpath)
            super().load_state_dict(state_dict)

    return RunFolderCheckpoint


def relocated(value, before: str, now: str):
    """`value` (a checkpoint callback's state) with every path inside the folder `before` moved into `now`."""
    if isinstance(value, dict):
        return {relocated(key, before, now): relocated(item, before, now) for key, item in value.items()}
    before, now = before.rstrip("/") or "/", now.rstrip("/") or "/"
    if isinstance(value, str) and (value == before or value.startswith(before + "/")):
        return now + value[len(before):]
    return value


class RunFolderLost(StcbenchError):
    """The run folder was removed or replaced while this process trained it."""


class RunFolderGuard(L.Callback):
    """Stops training when its run folder was removed or replaced by another (a user's `rm -r`, another
    process's --overwrite): without it the next checkpoint would recreate the folder without its config.yaml,
    or write into the other run's. `identity` is the folder's as the engine created or locked it. Checked at
    every training and test batch of a single-process run (before the loggers write; one stat call), and in
    every process at once when the data are set up, at the end of each epoch and validation (before the
    checkpoints: Lightning runs checkpoint callbacks last) and around the tests. Not covered: a change in the
    moments between the model's setup and the first batch, when Lightning writes the loggers' hparams.yaml."""

    def __init__(self, run_dir: Path, identity):
        self.run_dir = Path(run_dir)
        self.identity = identity

    def is_ours(self) -> bool:
        return self.identity is None or folder_identity(self.run_dir) == self.identity

    def check(self, trainer=None) -> None:
        lost = not self.is_ours()
        if trainer is not None and trainer.world_size > 1:          # every process stops, or none
            lost = trainer.strategy.reduce_boolean_decision(lost, all=False)
        if lost:
            raise RunFolderLost(f"run folder {self.run_dir} was removed or replaced while this process trained it; "
                                f"stopped without writing to it (start the run again, under another --run-name "
                                f"if the folder now holds another run)")

    def _check_single_process(self, trainer) -> None:
        if trainer.world_size == 1:
            self.check()

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.check(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._check_single_process(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check_single_process(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.check(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_test_start(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._check_single_process(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check_single_process(trainer)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.check(trainer)


SIGTERM_EXIT_CODE = 143                 # 128 + SIGTERM, as a shell reports a process ended by it
INTERRUPT_EXIT_CODE = 130               # 128 + SIGINT (Ctrl-C)


@contextlib.contextmanager
def sigterm_exits_nonzero(run_dir: Path | None, message: str | None = None):
    """Lightning ends `fit` and `test` on SIGTERM with a bare SystemExit, exit status 0, so a job script would
    take the run for finished, and on Ctrl-C with exit status 1 and no word on what to do. Exit with 143 and 130
    instead, saying how to resume (from the last epoch's checkpoint), or printing `message` (how to finish what
    was stopped)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        yield
    except SIGTERMException:
        _say_how_to_go_on("SIGTERM", run_dir, message)
        raise SystemExit(SIGTERM_EXIT_CODE) from None
    except SystemExit as stop:
        if not isinstance(stop.__context__, KeyboardInterrupt):     # Lightning's exit(1) after a Ctrl-C
            raise
        _say_how_to_go_on("Ctrl-C", run_dir, message)
        raise SystemExit(INTERRUPT_EXIT_CODE) from None


@contextlib.contextmanager
def sigterm_between_loops():
    """Between Lightning's loops (between the tests of the best and the last checkpoint, or while their record is
    put together) SIGTERM has Python's default action: the process ends at once, with no word on what to do. Raise
    Lightning's SIGTERMException instead, for sigterm_exits_nonzero to say it. (Inside a loop Lightning calls this
    handler after its own, so a test is stopped at once rather than at the end of its batch: nothing to save.)"""
    import signal
    import threading

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say_how_to_go_on(cause: str, run_dir: Path | None, message: str | None) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    if message is not None:
        print(message.replace("SIGTERM", cause), file=sys.stderr)
        return
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    hint = (f"resume with `{resume_command(run_dir)}`" if last.exists() else
            "no epoch had finished, so there is no checkpoint to resume from; start the run again")
    print(f"stopped by {cause} before the run finished; {hint}", file=sys.stderr)


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


class ThrottledMetrics:
    """Progress-bar mixin: on an accelerator the logged values shown in the bar (each a host sync)
    are re-read only every `metrics_every` training steps, so the step loop does not wait for the
    GPU at every batch; on the CPU every step, as Lightning does. Values logged without prog_bar
    (the module logs the loss so on accelerators) are added from the callback metrics by name."""

    accelerator_keys = ("train/loss_step",)

    def __init__(self, *args, metrics_every: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.metrics_every = max(int(metrics_every), 1)
        self._shown: dict | None = None
        self._shown_step = -1

    def get_metrics(self, trainer, pl_module):
        shown = self._throttled_metrics(trainer, pl_module)
        return {key: value for key, value in shown.items() if key != "v_num"}     # the logger's version: noise

    def _throttled_metrics(self, trainer, pl_module):
        if not trainer.training or pl_module.device.type == "cpu":
            return super().get_metrics(trainer, pl_module)
        step = trainer.global_step
        if self._shown is None or step < self._shown_step or step - self._shown_step >= self.metrics_every:
            shown = super().get_metrics(trainer, pl_module)
            for key in self.accelerator_keys:
                value = trainer.callback_metrics.get(key)
                if value is not None:
                    shown[key] = float(value)
            self._shown, self._shown_step = shown, step
        return self._shown


def epoch_description(current_epoch: int, max_epochs: int | None) -> str:
    """"Epoch 1/8" for the first of eight epochs: counted from 1, as the run's summary and records count them
    (Lightning's own bars say "Epoch 0/7")."""
    total = f"/{max_epochs}" if max_epochs is not None and max_epochs > 0 else ""
    return f"Epoch {current_epoch + 1}{total}"


def progress_bar(kind: str, metrics_every: int = 1):
    """rich (default), tqdm, or None for no bar; see ThrottledMetrics for `metrics_every`."""
    if kind == "none":
        return None
    if kind == "rich":
        try:
            from lightning.pytorch.callbacks import RichProgressBar

            class ThrottledRichProgressBar(ThrottledMetrics, RichProgressBar):
                def _get_train_description(self, current_epoch: int) -> str:
                    text = epoch_description(current_epoch, self.trainer.max_epochs)
                    return f"{text:{len(self.validation_description)}}"       # as Lightning pads it

            return ThrottledRichProgressBar(leave=True, metrics_every=metrics_every)
        except (ImportError, ModuleNotFoundError):
            pass
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

    class ThrottledTQDMProgressBar(ThrottledMetrics, TQDMProgressBar):
        def on_train_epoch_start(self, trainer, *_) -> None:       # Lightning's, with our description
            if getattr(self, "_leave", False):                        # Lightning >= 2.4 only
                self.train_progress_bar = self.init_train_tqdm()
            self.train_progress_bar.reset()
            self.train_progress_bar.total = convert_inf(self.total_train_batches)
            self.train_progress_bar.initial = 0
            self.train_progress_bar.set_description(epoch_description(trainer.current_epoch, trainer.max_epochs))

    return ThrottledTQDMProgressBar(metrics_every=metrics_every)


class EpochTimer(L.Callback):
    """Logs `time/train_epoch_seconds` (the training batches of the epoch, data loading included,
    validation excluded) and `time/seconds_per_step` once per epoch. The GPU is synchronised once
    per epoch, when the training batches end, so the figures cover the queued work."""

    def __init__(self):
        self.start: float | None = None
        self.train_seconds: float | None = None

    @staticmethod
    def _now(pl_module) -> float:
        import time

        import torch

        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start, self.train_seconds = self._now(pl_module), None

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.start is not None and self.train_seconds is None and not trainer.sanity_checking:
            self.train_seconds = self._now(pl_module) - self.start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.start is None:
            return
        seconds = self.train_seconds if self.train_seconds is not None else self._now(pl_module) - self.start
        steps = max(int(trainer.num_training_batches), 1)
        pl_module.log("time/train_epoch_seconds", seconds, on_step=False, on_epoch=True, rank_zero_only=True)
        pl_module.log("time/seconds_per_step", seconds / steps, on_step=False, on_epoch=True, rank_zero_only=True)
        self.start = None


class TrainingClock(L.Callback):
    """Wall seconds spent in `Trainer.fit` (training and validation), summed over every session of a run: the
    total rides in the checkpoints, so a resumed run reports its whole training time, not its last session's
    (time after the last checkpoint of an interrupted session is lost with it)."""

    def __init__(self):
        self.previous = 0.0                  # sessions before this one, up to their last checkpoint
        self.started: float | None = None

    @staticmethod
    def _now() -> float:
        import time

        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = self._now()

    def seconds(self) -> float:
        return self.previous + (self._now() - self.started if self.started is not None else 0.0)

    def on_train_end(self, trainer, pl_module) -> None:
        self.previous, self.started = self.seconds(), None

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.previous = float(state_dict.get("seconds", 0.0))
