"""Train and test memory-probe models with Lightning (`stcbench fit` with `task: memory`).

    fit(config, ckpt_path=None, overrides=None) -> run directory
    test(config, ckpt_path) -> metrics dict

Run directory `runs/memory/<task>_T<len>/<cell>/<name>/` (under `run.output_dir`) with
`config.yaml` (resolved), `checkpoints/{best,last}.ckpt` (best by validation loss),
`metrics.json`, `logs/` (CSV, TensorBoard, optional wandb) and, with
`run.gradient_analysis`, `gradient_through_time.{npz,png}` of the best checkpoint.
"""
from __future__ import annotations

import contextlib
import copy
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from stcbench.checkpoints import load_checkpoint, trusted, verify_checkpoint
from stcbench.errors import ConfigError
from stcbench.memory import config as memory_config
from stcbench.memory.analysis import gradient_through_time, plot_gradient_through_time
from stcbench.memory.module import MemoryDataModule, MemoryModule, spec_of
from stcbench.training.callbacks import checkpoint_callbacks, progress_bar, sigterm_exits_nonzero
from stcbench.training.io import atomic_save_npz, atomic_write_json, atomic_write_text
from stcbench.training.loggers import finish_wandb, wandb_logger

ANALYSIS_SAMPLES = 256


def task_folder(cfg: dict) -> str:
    data = cfg["data"]
    length = data["seq_len"] if data["task"] in ("adding", "copy") else spec_of(cfg).steps
    return f"{data['task']}_T{length}"


def cell_folder(cfg: dict) -> str:
    name = cfg["model"]["cell"].lower().replace("-", "").replace("_", "")
    return f"{name}_rec" if cfg["model"]["recurrent"] else name


def run_dir_for(cfg: dict) -> Path:
    name = cfg["run"]["name"] or f"seed{cfg['seed']}"
    return Path(cfg["run"]["output_dir"]) / "memory" / task_folder(cfg) / cell_folder(cfg) / name


def resolve_checkpoint(ckpt_path: str | Path) -> Path:
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; pass a .ckpt file or a run directory "
                          f"holding checkpoints/last.ckpt")
    return path


class EpochHistory(Callback):
    """Per-epoch train/val loss (and accuracy) for the learning curves in metrics.json."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key in ("train/loss_epoch", "val/loss", "train/acc", "val/acc"):
            if key in metrics:
                row[key.replace("_epoch", "")] = float(metrics[key])
        self.rows.append(row)

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state_dict):
        self.rows = list(state_dict.get("rows", []))


def build_loggers(cfg: dict, run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    log_dir = run_dir / "logs"
    loggers = []
    for name in cfg["logging"]["loggers"]:
        if name == "csv":
            loggers.append(CSVLogger(str(log_dir), name="csv", version=""))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(str(log_dir), name="tensorboard", version="", default_hp_metric=False))
        elif name == "wandb":
            loggers.append(wandb_logger(project=cfg["logging"]["wandb_project"], entity=cfg["logging"]["wandb_entity"],
                                        name=f"{task_folder(cfg)}-{cell_folder(cfg)}", log_dir=log_dir,
                                        requested_mode=cfg["logging"]["wandb_mode"], config=cfg))
    return loggers


def build_trainer(cfg: dict, run_dir: Path | None, callbacks: list, loggers: list | bool) -> L.Trainer:
    trainer = cfg["trainer"]
    kind = cfg["logging"]["progress_bar"]
    bar = progress_bar(("tqdm" if kind else "none") if isinstance(kind, bool) else kind)
    return L.Trainer(
        max_epochs=trainer["max_epochs"], max_steps=trainer["max_steps"], accelerator=trainer["accelerator"],
        devices=trainer["devices"], precision=trainer["precision"], deterministic=trainer["deterministic"],
        gradient_clip_val=trainer["gradient_clip_val"], limit_train_batches=trainer["limit_train_batches"],
        log_every_n_steps=cfg["logging"]["log_every_n_steps"], logger=loggers,
        callbacks=callbacks + ([bar] if bar is not None else []),
        enable_progress_bar=bar is not None, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=str(run_dir) if run_dir else None,
    )


@contextlib.contextmanager
def quiet_lightning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        yield


def set_threads(cfg: dict) -> None:
    if cfg["trainer"]["threads"]:
        torch.set_num_threads(int(cfg["trainer"]["threads"]))


def fit(config: dict | str | Path, *, ckpt_path: str | Path | None = None, overrides: dict | None = None,
        overwrite: bool = False) -> Path:
    """Train one memory-probe model; returns its run directory (see the module docstring)."""
    cfg = memory_config.resolve(config, overrides)
    run_dir = run_dir_for(cfg)
    resume = resolve_checkpoint(ckpt_path) if ckpt_path is not None else None
    if resume is not None:
        verify_checkpoint(resume)
    if resume is None and run_dir.exists() and not overwrite:
        raise ConfigError(f"run directory {run_dir} already exists; choose another run.name (--run-name), resume "
                          f"it with --ckpt-path {run_dir}, or replace it with --overwrite")
    set_threads(cfg)
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    if resume is None and overwrite and run_dir.is_dir():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir(exist_ok=resume is not None)     # exclusive: two runs never share a folder
    except FileExistsError:
        raise ConfigError(f"run directory {run_dir} was just created by another run; choose another "
                          f"run.name (--run-name)") from None
    atomic_write_text(run_dir / "config.yaml", memory_config.dump(cfg))
    datamodule = MemoryDataModule(cfg)
    module = MemoryModule(cfg)
    history = EpochHistory()
    with quiet_lightning():
        loggers = build_loggers(cfg, run_dir)
        callbacks = [*checkpoint_callbacks(run_dir / "checkpoints", monitor="val/loss"), history]
        trainer = build_trainer(cfg, run_dir, callbacks, loggers)
        try:
            with sigterm_exits_nonzero(run_dir):
                trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None,
                            weights_only=not trusted())
            with sigterm_exits_nonzero(run_dir, f"stopped by SIGTERM while testing the trained checkpoints, so "
                                                f"metrics.json was not written: finish the tests with "
                                                f"`stcbench fit --ckpt-path {run_dir}`"):
                results = evaluate_run(cfg, trainer, module, datamodule, run_dir, history.rows)
        except BaseException:
            finish_wandb(loggers, failed=True)
            raise
    atomic_write_json(run_dir / "metrics.json", results)
    finish_wandb(loggers)
    return run_dir


def evaluate_run(cfg: dict, trainer, module, datamodule, run_dir: Path, history: list) -> dict:
    spec = spec_of(cfg)
    checkpoints = {"best": run_dir / "checkpoints" / "best.ckpt", "last": run_dir / "checkpoints" / "last.ckpt"}
    tested = {}
    for label, path in checkpoints.items():
        load_weights(module, path)
        (tested[label],) = trainer.test(module, datamodule=datamodule, verbose=False)
    load_weights(module, checkpoints["best"])
    if cfg["run"]["gradient_analysis"]:
        save_gradient_analysis(module, datamodule, run_dir, f"{spec.name} T={cfg['data']['seq_len']}, "
                                                            f"{cfg['model']['cell']}")
    return {
        "task": "memory",
        "memory_task": spec.name,
        "seq_len": cfg["data"]["seq_len"] if spec.name in ("adding", "copy") else spec.steps,
        "steps": spec.steps,
        "cell": cfg["model"]["cell"],
        "recurrent": cfg["model"]["recurrent"],
        "hidden": cfg["model"]["hidden"],
        "readout": cfg["model"]["readout"],
        "scale": cfg["run"]["scale"],
        "seed": cfg["seed"],
        "data_source": spec.source,
        "selected_on": "val",
        "params": sum(p.numel() for p in module.parameters()),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "baseline": spec.baseline,
        "baseline_formula": spec.baseline_formula,
        "test": plain_metrics(tested["best"], "test/"),
        "last": plain_metrics(tested["last"], "test/"),
        "history": history,
    }


def plain_metrics(metrics: dict, prefix: str) -> dict:
    return {key.removeprefix(prefix): float(value) for key, value in metrics.items() if key.startswith(prefix)}


def load_weights(module: MemoryModule, path: Path) -> None:
    state = load_checkpoint(path)["state_dict"]
    module.load_state_dict(state)


def save_gradient_analysis(module: MemoryModule, datamodule: MemoryDataModule, run_dir: Path, title: str) -> dict:
    datamodule.setup("test")
    x, y = datamodule.splits["val"].tensors
    x, y = x[:ANALYSIS_SAMPLES], y[:ANALYSIS_SAMPLES]
    result = gradient_through_time(module.net, module.spec, x, y)
    atomic_save_npz(run_dir / "gradient_through_time.npz", grad=result["grad"].astype(np.float32),
                    per_step=result["per_step"], norm=result["norm"])
    plot_gradient_through_time({module.cfg["model"]["cell"]: result}, run_dir / "gradient_through_time.png", title)
    return result


def test(config: dict | str | Path | None, ckpt_path: str | Path, *, overrides: dict | None = None,
         output: str | Path | None = None) -> dict:
    """Test a checkpoint (or run directory) on the test split; returns {"loss", "acc"?, ...}.

    The model comes from the checkpoint's stored config; `config` (default: the checkpoint's
    own) and `overrides` give the data and trainer settings."""
    from stcbench.training.runner import checkpoint_record

    path = resolve_checkpoint(ckpt_path)
    stored = load_checkpoint(path)
    stored_cfg = stored.get("hyper_parameters", {}).get("cfg")
    if stored_cfg is None:
        raise ConfigError(f"{path} is not a memory-probe checkpoint (no stored config); test it with its own task")
    base = memory_config.apply_dotted(config if isinstance(config, dict) else
                                      (memory_config.resolve(config) if config else stored_cfg), overrides)
    base["model"] = trained_architecture(stored_cfg)
    cfg = memory_config.resolve(base)
    set_threads(cfg)
    module = MemoryModule(cfg)
    module.load_state_dict(stored["state_dict"])
    with quiet_lightning():
        trainer = build_trainer(cfg, None, [], False)
        with sigterm_exits_nonzero(None, "stopped by SIGTERM before the test finished; no results were written: "
                                         "run the same `stcbench test` again"):
            (metrics,) = trainer.test(module, datamodule=MemoryDataModule(cfg), verbose=False)
    results = {**plain_metrics(metrics, "test/"), "baseline": module.spec.baseline, "cell": cfg["model"]["cell"],
               "memory_task": module.spec.name, **checkpoint_record(path)}
    if output is not None:
        atomic_write_json(Path(output), results)
    return results


def trained_architecture(stored_cfg: dict) -> dict:
    """The stored model section, with CE-LIF's `te_steps` pinned to the trained length so that a
    test on another sequence length loads (longer sequences reuse the last TE row)."""
    from stcbench.cells import get_cell_info

    model = copy.deepcopy(stored_cfg["model"])
    if "te_steps" in get_cell_info(model["cell"]).parameters():
        model["cell_options"].setdefault("te_steps", spec_of(memory_config.resolve(stored_cfg)).steps)
    return model


def remove_incomplete_run(run_dir: Path) -> None:
    """Delete a run directory that has no metrics.json (an interrupted run of the suite)."""
    if run_dir.exists() and not (run_dir / "metrics.json").exists():
        shutil.rmtree(run_dir)


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


