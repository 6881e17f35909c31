"""The run engine: one lifecycle for every task (stcbench.engine.task).

fit:  config -> environment -> run folder -> Trainer.fit -> test best and last -> metrics.json
test: checkpoint -> config (architecture from the checkpoint) -> Trainer.test -> record

A run folder is created exclusively and holds its result only when the run finished (metrics.json is
written last, atomically); a run that fails on bad input before its first checkpoint leaves nothing.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from stcbench.atomic import check_output_folder
from stcbench.checkpoints import load_checkpoint, trusted
from stcbench.engine import plugin_code, schema
from stcbench.engine.callbacks import (SIGTERM_EXIT_CODE, RunFolderGuard, TrainingClock,
                                       sigterm_between_loops, sigterm_exits_nonzero)
from stcbench.data.specs import resolve_data_root
from stcbench.engine.cluster import is_rank_zero
from stcbench.engine.environment import load_plugins, prepare_environment, with_environment_plugins
from stcbench.engine.io import atomic_write_json
from stcbench.engine.loggers import build_loggers, finish_wandb
from stcbench.engine.portable import resumed_data_root, save_portable_config
from stcbench.engine.run_folder import (create_run_dir, existing_checkpoint, folder_identity, log_version,
                                        planned_run_dir, refuse_existing_run, refuse_linked_parts, refuse_non_folder,
                                        refuse_replacing_other_than_a_run, refuse_run_inside_run,
                                        refuse_writing_run_records, remove_unstarted_run,
                                        resume_command, run_dir_of_checkpoint, set_aside, settle_replaced,
                                        shared_run_dir, training_lock)
from stcbench.engine.resume import refuse_other_run, settle_run_name
from stcbench.engine.run_paths import relative_to_run
from stcbench.engine.task import Task
from stcbench.engine.trainer import build_trainer, check_trainer_settings
from stcbench.errors import ConfigError
from stcbench.record_io import read_text


def fit_from(task: Task, source, *, ckpt_path: str | Path | None = None, overrides: dict | None = None,
             overwrite: bool = False) -> Path:
    """`fit` of a config given as a YAML path or shipped name, a mapping or a config object, plus overrides (a
    named scale that they resize is labelled `custom`, as `stcbench fit` labels it)."""
    overrides = overrides or {}
    config = task.resolve_config(source, overrides)
    note = label_resized(task, config, source, overrides) if not resumes_a_run(ckpt_path) else None
    return fit(task, config, ckpt_path=ckpt_path, overwrite=overwrite,
               data_root_given="data.data_root" in overrides, notes=(note,) if note else ())


def resumes_a_run(ckpt_path) -> bool:
    return ckpt_path is not None and Path(ckpt_path).exists() and run_dir_of_checkpoint(ckpt_path) is not None


def label_resized(task: Task, config, source, overrides: dict) -> str | None:
    """A named scale (paper, small, ...) that `overrides` change in size (epochs, data, width) is no longer that
    scale: the run is labelled `custom`, so that tables never show it as the named one. Returns the line that says
    so (`fit` prints it once the run is accepted), None when the label stays; `run.scale` given keeps it."""
    if "run.scale" in overrides:
        return None
    changed = task.size_changes(config, source, overrides)
    if not changed:
        return None
    note = (f"scale label: custom, not {config.run.scale} (changed: {', '.join(changed)}); --set run.scale=NAME "
            f"names it yourself")
    config.run.scale = "custom"
    return note


def test_from(task: Task, source, ckpt_path: str | Path, *, overrides: dict | None = None,
              output: str | Path | None = None) -> dict:
    """`test` with data, trainer and logging from `source` (a YAML path or shipped name, a mapping, a config
    object, or None for the checkpoint's own)."""
    if isinstance(source, task.config_class):
        source = schema.to_dict(source)
    elif isinstance(source, (str, Path)):
        source = schema.load_config_dict(source)
    return test(task, source, ckpt_path, overrides=overrides, output=output)


def fit(task: Task, config, *, ckpt_path: str | Path | None = None, overwrite: bool = False,
        data_root_given: bool = False, notes: tuple[str, ...] = ()) -> Path:
    """Train (or resume) one run of `task` and test its best and last checkpoints. Returns the run folder.

    A new run never writes into an existing folder: a named run whose folder exists is refused unless
    `overwrite` (then the old folder is set aside once the inputs were checked, deleted when the new run has a
    checkpoint and put back if it fails before).  A resume reads the data its checkpoint was trained on unless
    `data_root_given` (--data-root on the command line) names another folder."""
    prepare_environment(config)
    quiet_lightning()
    config.plugins = with_environment_plugins(config.plugins)     # the run folder names the plugins its cell needs
    resuming = ckpt_path is not None
    run_dir = planned_run_dir(task.run_base(config), task.run_name(config), config.seed)
    checkpoint = None
    own_run = None                                # the run folder of the checkpoint resumed, if it has one
    if resuming:
        ckpt_path = existing_checkpoint(ckpt_path)
        own_run = run_dir_of_checkpoint(ckpt_path)
        refuse_rollback(ckpt_path, own_run)
        checkpoint = load_checkpoint(ckpt_path)
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
            raise ConfigError(f"{ckpt_path} is not a checkpoint to resume (no state_dict inside); pass a run folder "
                              f"or a .ckpt written by `stcbench fit` or `stcbench convert-official`")
        stored = stored_config_of(checkpoint)
        run_dir = own_run or run_dir
        keep_scale_label(config, checkpoint, own_run)
        if own_run is not None:
            refuse_linked_parts(own_run)
            settle_run_name(config, stored, own_run)     # before the module records it
    if hasattr(getattr(config, "data", None), "data_root"):
        if resuming and not data_root_given:
            config.data.data_root = resumed_data_root(config, checkpoint) or config.data.data_root
        # the checkpoints name the folder itself, so that a test or resume finds it from any working folder
        config.data.data_root = str(resolve_data_root(config.data.data_root).absolute())
    # a new folder, unless the checkpoint resumed is its own run's: a loose checkpoint (copied out of a run, converted
    # weights) starts a run folder of its own, and never takes over one that exists without --overwrite
    fresh = not resuming or own_run is None
    if fresh and is_rank_zero():
        refuse_replacing_other_than_a_run(run_dir) if overwrite else refuse_existing_run(run_dir)
    if fresh and is_rank_zero():                  # before the data is prepared (perhaps generated)
        refuse_non_folder(run_dir)
        check_output_folder(run_dir, "run folder", "--output-dir (run.output_dir)")
        refuse_run_inside_run(run_dir)
    if is_rank_zero():
        for note in notes:                        # once the run is accepted (e.g. the scale label changed)
            print(note, file=sys.stderr)

    module = task.module(config)
    keep_config_in_checkpoints(module, config)
    if resuming:
        task.check_resumable(config, module, checkpoint, ckpt_path)
        refuse_other_run(stored, schema.to_dict(config), ckpt_path, own_run, task.free_on_resume)
        if own_run is not None:
            plugin_code.refuse_changed(own_run, cell_of(config), "a resume would train it on with other code")
        refuse_unresumable(checkpoint, ckpt_path)
    check_trainer_settings(config)
    datamodule = task.datamodule(config)
    created = replaced = None
    if is_rank_zero():
        datamodule.prepare_data()          # data problems surface before anything is written
        if fresh:
            replaced = set_aside(run_dir) if overwrite else None
            try:
                run_dir, created = create_run_dir(run_dir, default_name=task.run_name(config) is None,
                                                  overwrite=overwrite)
            except BaseException:
                settle_replaced(replaced, run_dir)
                raise
    guard = RunFolderGuard(run_dir, folder_identity(run_dir))      # the folder as this run made or found it
    try:
        with training_lock(run_dir):
            guard.check()
            if is_rank_zero():
                save_portable_config(config, run_dir / "config.yaml")
                if fresh:                  # what code a resume or a seed of the same setting must have
                    plugin_code.record(run_dir, cell_of(config))
            return _train_and_test(task, config, module, datamodule, run_dir, ckpt_path, created, resuming, guard,
                                   trained_already=resuming and trained_out(checkpoint, config))
    finally:
        settle_replaced(replaced, run_dir)


def keep_config_in_checkpoints(module, config) -> None:
    """Every checkpoint carries its run's config (hyper_parameters.config): resume checks, `test` and the records
    read it back. A task's module that does not save it itself gets it here."""
    hparams = getattr(module, "hparams", None)
    if hparams is None or not isinstance(hparams.get("config"), dict):
        module.save_hyperparameters({"config": schema.to_dict(config)})


def cell_of(config) -> str | None:
    """The cell a task's config trains (model.cell), if it names one."""
    return getattr(getattr(config, "model", None), "cell", None)


def refuse_rollback(ckpt_path: Path, run_dir: Path | None) -> None:
    """Resuming a run from a checkpoint before its last one (best.ckpt, say) would overwrite the epochs after it."""
    last = run_dir / "checkpoints" / "last.ckpt" if run_dir is not None else None
    if last is not None and last.is_file() and not last.samefile(ckpt_path):
        raise ConfigError(f"{ckpt_path} is not its run's last checkpoint: resuming from it would overwrite the "
                          f"epochs trained after it; resume the run from `--ckpt-path {run_dir}`, or copy the file "
                          f"out of the run folder to start a new run from it")


def refuse_unresumable(checkpoint: dict, ckpt_path: Path) -> None:
    """A resume continues the training state that `fit` writes into its checkpoints: the optimizer states, the
    loops and the epoch and step counters. Weights alone (a converted official checkpoint) or a damaged state: one
    line, before anything is written."""
    states = checkpoint.get("optimizer_states")
    if not (isinstance(states, list) and states and all(isinstance(state, dict) for state in states)):
        raise ConfigError(f"{ckpt_path} holds weights without the optimizer and loop state that a resume continues "
                          f"(converted official checkpoints hold weights only): test or predict with it "
                          f"(`stcbench test --ckpt-path {ckpt_path}`), or train a new run")
    loops = checkpoint.get("loops")
    intact = (isinstance(loops, dict) and all(isinstance(loop, dict) for loop in loops.values())
              and all(type(checkpoint.get(key)) is int for key in ("epoch", "global_step"))
              and isinstance(checkpoint.get("lr_schedulers", []), list)
              and isinstance(checkpoint.get("callbacks", {}), dict))
    if not intact:
        raise ConfigError(f"{ckpt_path} is damaged: its training state (loops, epoch, global_step, schedulers, "
                          f"callbacks) is not what `stcbench fit` writes, so it cannot be resumed; resume from "
                          f"another checkpoint, or test its weights with `stcbench test --ckpt-path {ckpt_path}`")


def keep_scale_label(config, checkpoint: dict, run_dir: Path | None) -> None:
    """A resume continues its run under the run's own scale label, whatever config the command gives."""
    stored = (stored_config_of(checkpoint) or {}).get("run") or {}
    if run_dir is not None and isinstance(stored.get("scale"), str) and hasattr(getattr(config, "run", None), "scale"):
        config.run.scale = stored["scale"]


def _train_and_test(task: Task, config, module, datamodule, run_dir: Path, ckpt_path, created, resuming,
                    guard: RunFolderGuard, trained_already: bool = False) -> Path:
    loggers = build_loggers(config, run_dir, task.run_label(config, run_dir), version=log_version(run_dir, resuming))
    callbacks = [guard, *task.callbacks(config)]
    started = time.time()
    with shared_run_dir(run_dir), sigterm_exits_nonzero(run_dir):
        try:
            trainer = build_trainer(config, run_dir, monitor=task.monitor, loggers=loggers, callbacks=callbacks)
            if resuming and not trained_already and trainer.is_global_zero:
                retire_record(run_dir)        # a finished run trained on: its record is no longer the run's
            if trained_already and trainer.is_global_zero:    # said once the trainer accepted its settings
                print(f"{ckpt_path} has trained all {config.trainer.max_epochs} epochs of this config: nothing to "
                      f"train; its checkpoints are tested again (raise --max-epochs to train on)")
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                        weights_only=not trusted())
        except BaseException as error:
            finish_wandb(loggers, failed=True)
            if created is not None and isinstance(error, Exception) and guard.is_ours():
                remove_unstarted_run(run_dir, created)      # never a folder that another run has taken
            raise
    if trainer.interrupted:
        finish_wandb(loggers, failed=True)
        raise KeyboardInterrupt
    if getattr(trainer, "received_sigterm", False):       # after the last batch: Lightning ended fit quietly
        finish_wandb(loggers, failed=True)
        if trainer.is_global_zero:
            print(f"stopped by SIGTERM as training ended, before the tests, so metrics.json was not written: finish "
                  f"the tests with `{resume_command(run_dir)}`" if _finished(config, trainer) else
                  f"stopped by SIGTERM before the run finished; resume with `{resume_command(run_dir)}`",
                  file=sys.stderr)
        raise SystemExit(SIGTERM_EXIT_CODE)
    if not _finished(config, trainer):
        if trainer.is_global_zero:
            print(f"stopped after epoch {trainer.current_epoch} of {config.trainer.max_epochs}; resume with "
                  f"`{resume_command(run_dir)}`")
        finish_wandb(loggers)
        return run_dir
    if config.run.test_after_fit:
        guard.check(trainer)
        if not (run_dir / "checkpoints" / "best.ckpt").exists():
            finish_wandb(loggers)
            raise ConfigError(no_validation_message(config, trainer, run_dir))
        with sigterm_exits_nonzero(run_dir, testing_stopped(run_dir)), sigterm_between_loops():
            try:
                results = task.evaluate(config, trainer, module, datamodule, run_dir, callbacks)
            except BaseException:
                finish_wandb(loggers, failed=True)
                raise
        guard.check(trainer)               # the tests took long enough for the folder to go
        if trainer.is_global_zero:
            clock = next((c for c in trainer.callbacks if isinstance(c, TrainingClock)), None)
            results["train_seconds"] = round(clock.seconds() if clock else time.time() - started, 1)
            atomic_write_json(run_dir / "metrics.json", results)
            task.log_results(loggers, results)
            print(task.summary(results))
    finish_wandb(loggers)
    return run_dir


SUPERSEDED_RECORD = "metrics.superseded.json"


def retire_record(run_dir: Path) -> None:
    """A resume that trains a finished run on: its metrics.json is renamed (SUPERSEDED_RECORD) before training, so
    that the run counts as finished again only with the record of its new checkpoints (a resume killed on the way
    leaves no record naming checkpoints that no longer exist)."""
    record = Path(run_dir) / "metrics.json"
    if record.is_file():
        os.replace(record, Path(run_dir) / SUPERSEDED_RECORD)


def trained_out(checkpoint: dict, config) -> bool:
    """Whether resuming `checkpoint` would train nothing: its epochs (Lightning saves the index of the epoch
    that ended) or steps already reach the config's."""
    epochs_done = int(checkpoint.get("epoch", -1)) + 1
    steps_done = int(checkpoint.get("global_step", 0))
    return epochs_done >= config.trainer.max_epochs or 0 < config.trainer.max_steps <= steps_done


def quiet_lightning() -> None:
    """Lightning's notices that say nothing about a run of this engine (small CPU loaders, an unused GPU, the
    absence of TPUs, the advertisement for a cloud logger printed by every Trainer)."""
    import logging
    import warnings

    for message in (".*does not have many workers.*", ".*GPU available but not used.*", ".*LeafSpec.*",
                    ".*treespec.*", ".*Checkpoint directory .* exists and is not empty.*",   # a resumed run's own
                    ".*is smaller than the logging interval.*"):          # a short run: it logs each epoch's end
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        notices = logging.getLogger(name)          # the unified package's and the standalone packages' notices
        if not any(isinstance(f, _DropAdvertisements) for f in notices.filters):
            notices.addFilter(_DropAdvertisements())


class _DropAdvertisements:
    """A logging filter that drops Lightning's tips about products, its notes that there is no TPU or GPU (a GPU
    that is there stays named) and its note that fit reached max_epochs (the engine says how the run ended)."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith(("\N{ELECTRIC LIGHT BULB} Tip:", "TPU available: False",
                                                    "GPU available: False", "`Trainer.fit` stopped:"))


def no_validation_message(config, trainer, run_dir: Path) -> str:
    """Training ended before its first validation, so no checkpoint was selected to test."""
    return (f"training ended after {trainer.global_step} steps without a validation, so no checkpoint was "
            f"selected on validation to test; "
            f"let it reach one (raise trainer.max_steps or max_epochs, or lower trainer.check_val_every_n_epoch), "
            f"then `{resume_command(run_dir)}` resumes it from checkpoints/last.ckpt")


def _finished(config, trainer) -> bool:
    return trainer.current_epoch >= config.trainer.max_epochs or (
        config.trainer.max_steps > 0 and trainer.global_step >= config.trainer.max_steps)


def testing_stopped(run_dir: Path) -> str:
    return (f"stopped by SIGTERM while testing the trained checkpoints, so metrics.json was not written; training "
            f"had finished: finish the tests with `{resume_command(run_dir)}`")


def stored_config(ckpt_path: Path, checkpoint: dict | None = None) -> dict:
    """The config a checkpoint was trained with."""
    checkpoint = checkpoint if checkpoint is not None else load_checkpoint(
        ckpt_path, hint="pass a .ckpt written by `stcbench fit` or `stcbench convert-official`")
    stored = stored_config_of(checkpoint)
    if not isinstance(stored, dict):
        raise ConfigError(f"{ckpt_path} is not a stcbench checkpoint (no config inside); convert official "
                          f"weights with `stcbench convert-official` first")
    return stored


def stored_config_of(checkpoint: dict) -> dict | None:
    """hyper_parameters' config (`cfg` in memory-probe checkpoints written before the run engine); None for a file
    that holds no such mapping."""
    hyper = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hyper, dict):
        return None
    return hyper.get("config") if isinstance(hyper.get("config"), dict) else hyper.get("cfg")


def test(task: Task, given: dict | None, ckpt_path: Path, *, overrides: dict | None = None,
         output: str | Path | None = None) -> dict:
    """Test a checkpoint of `task`; `given` (a config mapping, default the checkpoint's own) and `overrides`
    set data, trainer and logging; the architecture always comes from the checkpoint."""
    if output is not None:
        refuse_writing_run_records(output, "--output")
    ckpt_path = task.checkpoint_to_test(ckpt_path)
    checkpoint = load_checkpoint(ckpt_path, hint="pass a .ckpt written by `stcbench fit` or `stcbench convert-official`")
    stored = stored_config(ckpt_path, checkpoint)
    trained_as = stored.get("task", "video")
    if trained_as != task.name:
        raise ConfigError(f"{ckpt_path} is a checkpoint of the {trained_as} task, but the config given is for the "
                          f"{task.name} task; test it with its own run's config (or without --config)")
    load_plugins(stored.get("plugins") or [])      # the run's cell may come from them (user-named ones only)
    config = task.test_config(stored, given, overrides)
    use_trained_data(config, checkpoint, overrides or {})
    prepare_environment(config)
    quiet_lightning()
    trainer = build_trainer(config, None)
    stopped = "stopped by SIGTERM before the test finished; no results were written: run the same `stcbench test` again"
    with sigterm_exits_nonzero(None, stopped), sigterm_between_loops():
        results = task.test(config, ckpt_path, trainer)
    results.update(checkpoint_record(ckpt_path))
    if trainer.is_global_zero:
        run_dir = run_dir_of_checkpoint(ckpt_path)
        warn_if_other_data(results, run_dir)
        warn_if_other_code(results, run_dir, cell_of(config))
    if trainer.is_global_zero and output is not None:
        atomic_write_json(Path(output), results)
    return results


def warn_if_other_code(results: dict, run_dir: Path | None, cell: str) -> None:
    """A test of a plugin cell whose file changed since the run was trained runs the new code on the old weights:
    say so and record it (`code_differs_from_training`)."""
    different = plugin_code.changed(run_dir, cell) if run_dir is not None else []
    if different:
        results["code_differs_from_training"] = different
        print(f"warning: the plugin file {different[0]} defining cell {cell} has changed since the run was trained "
              f"(its SHA-256 differs from the run's {plugin_code.PLUGIN_CODE_FILE}): these numbers are of the new "
              f"code on the trained weights, not the run's; restore the file to reproduce them", file=sys.stderr)


def warn_if_other_data(results: dict, run_dir: Path | None) -> None:
    """A test on data whose checksum differs from what the run recorded (e.g. regenerated with another seed) says
    so on stderr and in its record (`data_differs_from_training`): its numbers are not the run's."""
    import json

    try:
        trained = json.loads(read_text(run_dir / "metrics.json")) if run_dir else {}
    except (OSError, ValueError, RecursionError):
        return
    recorded = (trained.get("data") or {}).get("checksum") if isinstance(trained, dict) else None
    tested = (results.get("data") or {}).get("checksum")
    if recorded and tested and recorded != tested and trained.get("dataset") == results.get("dataset"):
        results["data_differs_from_training"] = {"trained": recorded, "tested": tested}
        print(f"warning: the {results.get('dataset')} data tested on ({tested}) is not the data the run recorded "
              f"({recorded}): these numbers are not comparable with the run's; point --data-root at the data it was "
              f"trained on", file=sys.stderr)


def use_trained_data(config, checkpoint: dict, overrides: dict) -> None:
    """A test reads the data the run was trained on: the checkpoint's data folder unless --data-root names
    another, and never a stand-in generated now (unless data.generate_if_missing is set on the command line)."""
    data = getattr(config, "data", None)
    if data is None:
        return
    if hasattr(data, "data_root") and "data.data_root" not in overrides:
        data.data_root = resumed_data_root(config, checkpoint) or data.data_root
    if hasattr(data, "generate_if_missing") and "data.generate_if_missing" not in overrides:
        data.generate_if_missing = False


def checkpoint_record(ckpt_path: Path) -> dict:
    """How a test result names its checkpoint: relative to its run folder when it has one (`run_dir` as the
    user gave it), else the path as given."""
    run_dir = run_dir_of_checkpoint(ckpt_path)
    if run_dir is None:
        return {"checkpoint": str(ckpt_path)}
    return {"run_dir": str(run_dir), "checkpoint": relative_to_run(ckpt_path, run_dir)}
