"""Fit and test drivers for the video prediction task (task: video).

`fit(config)` trains one model and writes a run directory

    runs/<dataset>/<cell>/<run_name>/
        config.yaml                 the resolved config
        checkpoints/last.ckpt       every epoch (resume from it with --ckpt-path)
        checkpoints/best.ckpt       lowest validation MSE (selection split)
        logs/                       CSV, TensorBoard, wandb
        metrics.json                test metrics of the best and of the last checkpoint
        predictions.npz             optional (run.save_predictions)

Paths in metrics.json are relative to the run directory ("checkpoints/best.ckpt"), so the
folder can be moved; the data root is recorded as the user gave it (stcbench.training.run_paths).

Result files are written atomically and only when the run finished; a failed or
interrupted run has no metrics.json.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch

from stcbench.checkpoints import load_checkpoint, trusted
from stcbench.errors import ConfigError, StcbenchError
from stcbench.training.callbacks import sigterm_exits_nonzero
from stcbench.training.loggers import finish_wandb
from stcbench.training.config import Config, resolve_config
from stcbench.training.cell_variants import recorded_variant
from stcbench.training.per_sequence import save_per_sequence
from stcbench.training.portable import resumed_data_root, save_portable_config
from stcbench.training.run_paths import relative_to_run, resolve_in_run

RUN_DIR_ENV = "STCBENCH_RUN_DIR"     # shares the run directory with DDP worker processes


# ------------------------------------------------------------------------------------------
# environment
# ------------------------------------------------------------------------------------------
def load_plugins(modules: list[str]) -> None:
    """Import user modules (they register their cells)."""
    try:
        from stcbench.cells import load_plugins as cells_load_plugins
    except ImportError:
        cells_load_plugins = None
    if cells_load_plugins is not None:
        cells_load_plugins(modules)
        return
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"plugin module {name!r} cannot be imported ({exc}); check `plugins:` "
                              f"and that the module is on PYTHONPATH") from None


def with_environment_plugins(plugins: list[str]) -> list[str]:
    """`plugins` and those loaded from STCBENCH_PLUGINS, so that the saved config and checkpoint can be used
    (tested, resumed, predicted with) without the environment variable."""
    from stcbench.cells import environment_plugins

    return list(plugins) + [p for p in environment_plugins() if p not in plugins]


def prepare_environment(config: Config) -> None:
    import lightning as L

    load_plugins(config.plugins)
    check_accelerator(config.trainer.accelerator)
    if config.trainer.threads:
        torch.set_num_threads(config.trainer.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.tf32 is not None:
        torch.backends.cudnn.allow_tf32 = config.trainer.tf32
        torch.backends.cuda.matmul.allow_tf32 = config.trainer.tf32
    if config.trainer.deterministic:
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def check_accelerator(accelerator: str) -> None:
    """A GPU accelerator named on a machine without one: a clear error before anything runs."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator!r} but CUDA is not available on this machine "
                          f"(torch {torch.__version__}); use --accelerator cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator='mps' but MPS is not available on this machine; use --accelerator "
                          "cpu (or auto)")


def cell_folder_name(cell: str) -> str:
    from stcbench.cells.registry import normalize_name

    return normalize_name(cell)


def dataset_name(config: Config) -> str:
    from stcbench.data import get_dataset_spec

    return get_dataset_spec(config.data.dataset).name


def is_rank_zero() -> bool:
    """Asks the cluster environment Lightning will use (SLURM_PROCID under srun, ...)."""
    from stcbench.training.cluster import is_rank_zero as rank_zero

    return rank_zero()


def new_run_dir(config: Config) -> Path:
    shared = os.environ.get(RUN_DIR_ENV)
    if shared and not is_rank_zero():
        return Path(shared)
    name = config.run.name or f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-seed{config.seed}"
    base = Path(config.run.output_dir) / dataset_name(config) / cell_folder_name(config.model.cell)
    run_dir = base / name
    if config.run.name is None:
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = base / f"{name}-{suffix}"
    return run_dir


def refuse_existing_run(run_dir: Path) -> None:
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} already exists; resume it with `stcbench fit --ckpt-path "
                          f"{run_dir}`, choose another --run-name, or replace it with --overwrite")


def create_run_dir(run_dir: Path, *, default_name: bool, overwrite: bool) -> tuple[Path, Path]:
    """Create the run folder exclusively (two runs never share one): a default name that another run took
    meanwhile gets a suffix -2, -3, ...; a chosen name is refused. Returns (run folder, outermost folder
    created), the latter removed again when the run fails on bad input before its first checkpoint."""
    created = _first_missing(run_dir)
    if overwrite and run_dir.is_dir():
        shutil.rmtree(run_dir)
        created = run_dir.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    base, suffix = run_dir, 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            if not default_name:
                refuse_existing_run(run_dir)
            suffix += 1
            run_dir = base.with_name(f"{base.name}-{suffix}")
    return run_dir, (run_dir.resolve() if created == base.resolve() else created)


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path | None:
    """runs/.../<name>/checkpoints/last.ckpt -> runs/.../<name> (when it holds a config.yaml)."""
    ckpt_path = Path(ckpt_path)
    if ckpt_path.is_dir():
        return ckpt_path if (ckpt_path / "config.yaml").exists() else None
    candidate = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    return candidate if (candidate / "config.yaml").exists() else None


@contextlib.contextmanager
def shared_run_dir(run_dir: Path):
    old = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = old


# ------------------------------------------------------------------------------------------
# trainer
# ------------------------------------------------------------------------------------------
def _precision(value: str) -> str:
    return {"64": "64-true", "32": "32-true"}.get(value, value)


def _limit(value):
    """None for 'all batches' (keeps Lightning from announcing the default)."""
    return None if value == 1.0 and isinstance(value, float) else value


def build_trainer(config: Config, run_dir: Path | None, *, loggers: list | None = None, fit: bool = True):
    import lightning as L

    from stcbench.training.callbacks import EpochTimer, StopAfterEpochs, checkpoint_callbacks, progress_bar

    t = config.trainer
    callbacks = []
    if fit:
        callbacks += checkpoint_callbacks(run_dir / "checkpoints", monitor="val/mse")
        if t.stop_after_epochs:
            callbacks.append(StopAfterEpochs(t.stop_after_epochs))
        callbacks.append(EpochTimer())
    bar = progress_bar(config.logging.progress_bar, metrics_every=config.logging.log_every_n_steps)
    if bar is not None:
        callbacks.append(bar)
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
        log_every_n_steps=config.logging.log_every_n_steps,
        callbacks=callbacks, enable_progress_bar=bar is not None,
        enable_checkpointing=fit, enable_model_summary=False,
    )


# ------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------
def fit(config: Any, *, ckpt_path: str | Path | None = None, overrides: dict | None = None,
        overwrite: bool = False) -> Path:
    """Train (or resume) one run and test its best and last checkpoints. Returns the run directory.

    A new run never writes into an existing folder: a named run whose folder exists is refused
    unless `overwrite` (then the old folder is removed once the inputs were checked)."""
    cfg = resolve_config(config, overrides)
    prepare_environment(cfg)
    cfg.plugins = with_environment_plugins(cfg.plugins)     # a run folder must name the plugins its cell needs
    resuming = ckpt_path is not None
    if resuming:
        ckpt_path = _existing_checkpoint(ckpt_path)
        run_dir = run_dir_of_checkpoint(ckpt_path) or new_run_dir(cfg)
        cfg.data.data_root = resumed_data_root(cfg, ckpt_path) or cfg.data.data_root
    else:
        run_dir = new_run_dir(cfg)
    fresh = not run_dir.exists() or not resuming
    if fresh and is_rank_zero() and not overwrite:
        refuse_existing_run(run_dir)

    from stcbench.training.datamodule import build_datamodule
    from stcbench.training.loggers import build_loggers
    from stcbench.training.module import VideoPredictionModule

    module = VideoPredictionModule(cfg.to_dict())
    if resuming:
        _check_checkpoint_fits(module, ckpt_path)
    datamodule = build_datamodule(cfg)
    created = None
    if is_rank_zero():
        datamodule.prepare_data()          # data problems surface before anything is written
        if fresh:
            run_dir, created = create_run_dir(run_dir, default_name=cfg.run.name is None, overwrite=overwrite)
        save_portable_config(cfg, run_dir / "config.yaml")
    loggers = build_loggers(cfg, run_dir, run_dir.name, version=_log_version(run_dir, resuming))
    started = time.time()
    with shared_run_dir(run_dir), sigterm_exits_nonzero(run_dir):
        try:
            trainer = build_trainer(cfg, run_dir, loggers=loggers)
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                        weights_only=not trusted())
        except BaseException as error:
            finish_wandb(loggers, failed=True)
            if created is not None and isinstance(error, StcbenchError):
                _remove_unstarted_run(run_dir, created)
            raise
    if trainer.interrupted:
        finish_wandb(loggers, failed=True)
        raise KeyboardInterrupt
    finished = trainer.current_epoch >= cfg.trainer.max_epochs or (
        cfg.trainer.max_steps > 0 and trainer.global_step >= cfg.trainer.max_steps)
    if not finished:
        if trainer.is_global_zero:
            print(f"stopped after epoch {trainer.current_epoch} of {cfg.trainer.max_epochs}; resume with "
                  f"`stcbench fit --config {run_dir / 'config.yaml'} --ckpt-path {run_dir / 'checkpoints' / 'last.ckpt'}`")
        finish_wandb(loggers)
        return run_dir
    if cfg.run.test_after_fit:
        with sigterm_exits_nonzero(run_dir, testing_stopped(run_dir)):
            results = evaluate_checkpoints(cfg, trainer, module, datamodule, run_dir)
        if trainer.is_global_zero:
            results["train_seconds"] = round(time.time() - started, 1)
            write_metrics(run_dir, results)
            from stcbench.training.loggers import log_metrics_to_wandb

            log_metrics_to_wandb(loggers, "test", results["test"])
            if results.get("test_long"):
                log_metrics_to_wandb(loggers, "test_long", results["test_long"])
            print(format_summary(results))
    finish_wandb(loggers)
    return run_dir


def testing_stopped(run_dir: Path) -> str:
    return (f"stopped by SIGTERM while testing the trained checkpoints, so metrics.json was not written; training "
            f"had finished: finish the tests with `stcbench fit --ckpt-path {run_dir}`")


def _log_version(run_dir: Path, resuming: bool) -> str | None:
    """Fresh runs log into logs/<logger>/; each resumption into logs/<logger>/resumed-<n>/ (keeps old logs)."""
    if not resuming:
        return None
    previous = list((run_dir / "logs").glob("*/resumed-*"))
    numbers = [int(p.name.split("-")[-1]) for p in previous if p.name.split("-")[-1].isdigit()]
    return f"resumed-{max(numbers, default=0) + 1}"


def _check_checkpoint_fits(module, ckpt_path: Path) -> None:
    """The checkpoint must hold the network built now, and its optimizer state the parameter groups
    built now (cells may ask for groups of their own, e.g. GLIF original's gates at lr/10), else
    resuming cannot continue it."""
    from stcbench.training.param_groups import parameter_groups

    ckpt = load_checkpoint(ckpt_path)
    _check_same_architecture(module.config.model, ((ckpt.get("hyper_parameters") or {}).get("config") or {}),
                             ckpt_path)
    states = ckpt.get("optimizer_states") or []
    if not states:
        return
    saved = [len(group.get("params", [])) for group in states[0].get("param_groups", [])]
    optim = module.config.optim
    built = [len(group["params"]) for group in parameter_groups(module, optim.lr, optim.weight_decay)]
    if saved != built:
        raise ConfigError(
            f"{ckpt_path} holds optimizer state for {len(saved)} parameter group(s) of sizes {saved}, but "
            f"this model builds {len(built)} of sizes {built} (the cell's parameter groups differ from when "
            f"the checkpoint was written), so the run cannot be resumed; start a new run, or test the "
            f"checkpoint's weights with `stcbench test --ckpt-path {ckpt_path}`")


ARCHITECTURE_KEYS = ("cell", "num_hidden", "filter_size", "patch_size", "cell_options")


def _check_same_architecture(model, stored: dict, ckpt_path: Path) -> None:
    """Resuming needs the network the checkpoint was trained as: name the model keys that differ."""
    from stcbench.cells.registry import normalize_name

    saved = stored.get("model") if isinstance(stored, dict) else None
    if not isinstance(saved, dict):
        return
    differences = []
    for key in ARCHITECTURE_KEYS:
        ours, theirs = getattr(model, key, None), saved.get(key)
        if key == "cell":
            same = normalize_name(str(ours)) == normalize_name(str(theirs))
        elif key == "num_hidden":
            same = list(ours or []) == list(theirs or [])
        elif key == "cell_options":
            same = dict(ours or {}) == dict(theirs or {})
        else:
            same = ours == theirs
        if not same:
            differences.append(f"model.{key} {theirs!r} in the checkpoint, {ours!r} here")
    if differences:
        raise ConfigError(f"{ckpt_path} was trained as another network ({'; '.join(differences)}), so it cannot "
                          f"be resumed with this config; resume with the run's own config "
                          f"(`stcbench fit --ckpt-path <run dir>`), or start a new run")


def _existing_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"{path} holds no checkpoints/last.ckpt; pass a checkpoint file with --ckpt-path")
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; pass an existing .ckpt file "
                          f"(e.g. runs/<dataset>/<cell>/<run>/checkpoints/last.ckpt)")
    return path


def _first_missing(path: Path) -> Path:
    """The outermost folder of `path` that does not exist yet (what creating `path` makes)."""
    path = path.resolve()
    while not path.parent.exists():
        path = path.parent
    return path


def _remove_unstarted_run(run_dir: Path, created: Path) -> None:
    """A run that failed on bad input before its first checkpoint: the folders this call made for it
    (`created` and below) are removed, so that no partial result stays behind."""
    if not is_rank_zero() or any((run_dir / "checkpoints").glob("*.ckpt")):
        return
    shutil.rmtree(created, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------
def wants_long_test(config: Config) -> bool:
    if config.data.test_long is not None:
        return config.data.test_long
    return dataset_name(config) == "kth"


def run_test(trainer, module, datamodule=None, dataloaders=None, keep_predictions: int = 0) -> dict:
    module.keep_predictions = keep_predictions
    if dataloaders is not None:
        trainer.test(module, dataloaders=dataloaders, verbose=False)
    else:
        trainer.test(module, datamodule=datamodule, verbose=False)
    results = _plain(module.test_results)
    if results is None:
        raise StcbenchError("the test split produced no batches; check data.test_samples and "
                            "trainer.limit_test_batches")
    return results


def long_test_loader(config: Config):
    """Test loader of the 10->40 KTH windows (model trained 10->20)."""
    from stcbench.training.datamodule import build_datamodule

    dm = build_datamodule(config, dataset="kth40")
    dm.prepare_data()
    dm.setup("test")
    return dm.test_dataloader()


def evaluate_checkpoints(config: Config, trainer, module, datamodule, run_dir: Path) -> dict:
    """Test the best (selected on the validation split) and the last checkpoint."""
    from stcbench.training.module import load_module, module_dtype

    callback = trainer.checkpoint_callback
    best_path = Path(callback.best_model_path) if callback and callback.best_model_path else None
    last_path = run_dir / "checkpoints" / "last.ckpt"
    results = base_record(config, trainer, module, datamodule)
    results["best_checkpoint"] = relative_to_run(best_path, run_dir) if best_path else None
    results["val"] = {"split": "val" if config.data.selection == "val" else "test",
                      "mse_per_pixel": _number(callback.best_model_score) if callback else None}
    if results["val"]["mse_per_pixel"] is not None:
        results["val"]["mse"] = results["val"]["mse_per_pixel"] * _pixels(module)
    long_test = wants_long_test(config)
    evaluated, per_sequence = {}, {}
    for tag, path in (("best", best_path), ("last", last_path)):
        if path is None or not path.exists():
            continue
        model = load_module(path, config.to_dict(), module_dtype(config.trainer.precision))
        epoch = _checkpoint_epoch(path)
        keep = config.run.predictions_limit if (config.run.save_predictions and tag == "best") else 0
        block = {"checkpoint": relative_to_run(path, run_dir), "epoch": epoch,
                 "test": run_test(trainer, model, datamodule, keep_predictions=keep)}
        per_sequence[tag] = model.test_per_sequence
        if keep and trainer.is_global_zero:
            save_predictions(run_dir / "predictions.npz", model.prediction_buffer, keep)
        if long_test:
            block["test_long"] = run_test(trainer, model, dataloaders=long_test_loader(config))
        evaluated[tag] = block
    if not evaluated:
        raise StcbenchError(f"no checkpoint to test in {run_dir / 'checkpoints'}")
    chosen = evaluated.get("best") or evaluated["last"]
    results["selected_epoch"] = chosen["epoch"]
    results["test"] = chosen["test"]
    if trainer.is_global_zero:
        selected = "best" if "best" in evaluated else "last"
        results["test_per_sequence"] = save_per_sequence(run_dir, per_sequence[selected])
    if "test_long" in chosen:
        results["test_long"] = chosen["test_long"]
    if "last" in evaluated:
        results["last"] = evaluated["last"]
    if "best" in evaluated:
        results["best"] = {k: v for k, v in evaluated["best"].items() if k not in ("test", "test_long")}
    return results


def base_record(config: Config, trainer, module, datamodule) -> dict:
    selected_on_test = config.data.selection == "openstl_test"
    world = trainer.world_size
    return {
        "dataset": dataset_name(config),
        "cell": cell_folder_name(config.model.cell),
        "scale": config.run.scale,
        "selected_on": config.data.selection,
        "selected_on_test": selected_on_test,
        "seed": config.seed,
        "epochs": trainer.current_epoch,
        "max_epochs": config.trainer.max_epochs,
        "global_steps": trainer.global_step,
        "world_size": world,
        "per_device_batch_size": config.data.batch_size,
        "global_batch_size": config.data.batch_size * world * config.trainer.accumulate_grad_batches,
        "precision": config.trainer.precision,
        "params": count_parameters(module),
        "flops": estimate_flops(config),
        "data": datamodule.describe() if hasattr(datamodule, "describe") else {},
        "model": {"num_hidden": config.model.num_hidden, "filter_size": config.model.filter_size,
                  "patch_size": module.spec.patch_size,
                  "gradient_detach": config.model.gradient_detach, "cell_options": config.model.cell_options,
                  "variant": recorded_variant(module)},
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "finished_at": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.net.parameters()))


def estimate_flops(config: Config) -> dict | None:
    """MACs of predicting one test sequence (stcbench.models.cost)."""
    from stcbench.training.network import flops_for_config

    try:
        macs = flops_for_config(config.to_dict())
    except Exception as exc:  # cost accounting must never fail a finished run
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"macs_per_sequence": int(macs), "method": "stcbench.training.network.flops_for_config"}


def save_predictions(path: Path, buffer: list, limit: int) -> None:
    import numpy as np

    from stcbench.training.io import atomic_save_npz

    if not buffer:
        return
    context, truth, pred = (torch.cat([b[i] for b in buffer])[:limit].float().numpy() for i in range(3))
    atomic_save_npz(path, context=context, truth=truth, pred=pred.astype(np.float32))


def write_metrics(run_dir: Path, results: dict) -> None:
    from stcbench.training.io import atomic_write_json

    atomic_write_json(run_dir / "metrics.json", results)


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        ckpt = load_checkpoint(path)
    except StcbenchError:
        return None
    epoch = ckpt.get("epoch")
    return int(epoch) + 1 if isinstance(epoch, int) else None   # epochs completed


def _pixels(module) -> int:
    spec = module.spec
    return spec.channels * spec.height * spec.width


def _number(value) -> float | None:
    if value is None:
        return None
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _plain(value):
    """Metric dicts with tensors -> Python floats/lists."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item() if value.dim() == 0 else value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (int, float, str)):
        return value.item()
    return value


def format_summary(results: dict) -> str:
    """A short plain-text table of the selected checkpoint's test metrics."""
    keys = ("mse", "mae", "ssim", "psnr", "mse_per_pixel")
    epoch = results.get("selected_epoch", results.get("epochs"))      # fit: the selected one; test: the tested one
    lines = [f"{results['dataset']} / {results['cell']} (scale {results['scale']}, "
             f"selected on {results['selected_on']}, epoch {'?' if epoch is None else epoch})"]
    for tag in ("test", "test_long"):
        block = results.get(tag)
        if block:
            values = "  ".join(f"{k} {block[k]:.4f}" for k in keys if isinstance(block.get(k), (int, float)))
            lines.append(f"  {tag:9s} {values}")
    last = (results.get("last") or {}).get("test")
    if last:
        values = "  ".join(f"{k} {last[k]:.4f}" for k in keys if isinstance(last.get(k), (int, float)))
        lines.append(f"  {'last':9s} {values}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# test
# ------------------------------------------------------------------------------------------
def load_checkpoint_config(ckpt_path: Path) -> dict:
    ckpt = load_checkpoint(ckpt_path, hint="pass a .ckpt written by `stcbench fit` or `stcbench convert-official`")
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{ckpt_path} is not a stcbench checkpoint (no config inside); convert official "
                          f"weights with `stcbench convert-official` first")
    return config


def checkpoint_for_test(path: str | Path) -> Path:
    """A .ckpt file, or a run directory (the best checkpoint its metrics.json names, else
    checkpoints/best.ckpt, else last.ckpt)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (recorded_best_checkpoint(path), path / "checkpoints" / "best.ckpt",
                          path / "checkpoints" / "last.ckpt", path / "best.ckpt", path / "last.ckpt"):
            if candidate is not None and candidate.is_file():
                return candidate
        raise ConfigError(f"{path} holds no checkpoints/best.ckpt or last.ckpt")
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; pass a .ckpt file or a run directory")
    return path


def recorded_best_checkpoint(run_dir: Path) -> Path | None:
    """`best_checkpoint` of the run's metrics.json, resolved against the run directory."""
    try:
        recorded = json.loads((run_dir / "metrics.json").read_text()).get("best_checkpoint")
    except (OSError, ValueError, AttributeError):
        return None
    return resolve_in_run(recorded, run_dir) if isinstance(recorded, str) else None


def checkpoint_record(ckpt_path: Path) -> dict:
    """How a test result names its checkpoint: relative to its run directory when it has one
    (`run_dir` as the user gave it), else the path as given."""
    run_dir = run_dir_of_checkpoint(ckpt_path)
    if run_dir is None:
        return {"checkpoint": str(ckpt_path)}
    return {"run_dir": str(run_dir), "checkpoint": relative_to_run(ckpt_path, run_dir)}


def test(config: Any, ckpt_path: str | Path, *, overrides: dict | None = None,
         output: str | Path | None = None) -> dict:
    """Test a checkpoint (autoregressive prediction on the test split; KTH also 10->40).

    The architecture always comes from the checkpoint; data, trainer and logging settings come
    from `config` (or the checkpoint's own config when `config` is None), then `overrides`.
    """
    ckpt_path = checkpoint_for_test(ckpt_path)
    stored = load_checkpoint_config(ckpt_path)
    base = stored if config is None else _as_dict(config)
    base = dict(base)
    base["model"] = stored.get("model", {})
    cfg = resolve_config(base, overrides)
    cfg.model = resolve_config(stored).model
    prepare_environment(cfg)

    from stcbench.training.datamodule import build_datamodule
    from stcbench.training.module import load_module, module_dtype

    model = load_module(ckpt_path, cfg.to_dict(), module_dtype(cfg.trainer.precision))
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg, None, fit=False)
    results = base_record(cfg, trainer, model, datamodule)
    results.update(checkpoint_record(ckpt_path))
    results["epochs"] = _checkpoint_epoch(ckpt_path)
    stopped = "stopped by SIGTERM before the test finished; no results were written: run the same `stcbench test` again"
    with sigterm_exits_nonzero(None, stopped):
        results["test"] = run_test(trainer, model, datamodule)
        if wants_long_test(cfg):
            results["test_long"] = run_test(trainer, model, dataloaders=long_test_loader(cfg))
    if trainer.is_global_zero:
        if output is not None:
            from stcbench.training.io import atomic_write_json

            atomic_write_json(Path(output), results)
    return results


def _as_dict(config: Any) -> dict:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, dict):
        return config
    from stcbench.training.config import load_config_dict

    return load_config_dict(config)
