"""The video prediction task (`task: video`) as the run engine sees it (stcbench.engine.task).

Run folder runs/<dataset>/<cell>/<name>/. metrics.json holds the test metrics of the checkpoint
selected on the validation split (best.ckpt) and of the last one; paths in it are relative to the run
folder and the data is named by dataset and checksum, so the folder can be moved and committed.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import socket
from pathlib import Path

import torch

from stcbench.engine.evaluation import checkpoint_epoch
from stcbench.engine.run_paths import relative_to_run, resolve_in_run
from stcbench.engine.task import ReportedMetric, Task, refuse_model_overrides
from stcbench.errors import ConfigError, StcbenchError
from stcbench.training.config import Config, config_from_dict, resolve_config
from stcbench.record_io import read_text

ARCHITECTURE_KEYS = ("cell", "num_hidden", "filter_size", "patch_size", "cell_options")
EXECUTION_OPTIONS = ("fast", "recompute", "conv_algorithm", "channels_last", "compile")   # same numbers either way
SUMMARY_KEYS = ("mse", "mae", "ssim", "psnr", "mse_per_pixel")


class VideoTask(Task):
    name = "video"
    config_class = Config
    monitor = "val/mse"
    reported_metrics = (ReportedMetric("mse", "MSE", False, 2), ReportedMetric("mae", "MAE", False, 2),
                        ReportedMetric("ssim", "SSIM", True, 4), ReportedMetric("psnr", "PSNR", True, 2))
    free_on_resume = {"data": ("data_root", "num_workers", "generate_if_missing"), "model": EXECUTION_OPTIONS}

    def run_base(self, config: Config) -> Path:
        return Path(config.run.output_dir) / dataset_name(config) / cell_folder_name(config.model.cell)

    def datamodule(self, config: Config):
        from stcbench.training.datamodule import build_datamodule

        return build_datamodule(config)

    def module(self, config: Config):
        from stcbench.training.module import VideoPredictionModule

        return VideoPredictionModule(config)

    def check_resumable(self, config: Config, module, checkpoint: dict, ckpt_path: Path) -> None:
        check_checkpoint_fits(config, module, checkpoint, ckpt_path)

    def evaluate(self, config: Config, trainer, module, datamodule, run_dir: Path, callbacks: list) -> dict:
        return evaluate_checkpoints(self, config, trainer, module, datamodule, run_dir)

    def test_checkpoint(self, config: Config, trainer, module, datamodule, path: Path, label: str):
        return test_one_checkpoint(config, trainer, datamodule, path, label)

    def log_results(self, loggers: list, results: dict) -> None:
        from stcbench.engine.loggers import log_metrics_to_wandb

        for tag in ("test", "test_long"):
            if results.get(tag):
                log_metrics_to_wandb(loggers, tag, results[tag])

    def summary(self, results: dict) -> str:
        return format_summary(results)

    def test_summary(self, results: dict) -> str:
        return format_summary(results)

    def checkpoint_to_test(self, path) -> Path:
        return checkpoint_for_test(path)

    def test_config(self, stored: dict, given: dict | None, overrides: dict | None) -> Config:
        """The checkpoint's trained model with the run settings given now; of the model keys only the
        execution options (EXECUTION_OPTIONS) may be changed, and an architecture override is refused."""
        refuse_model_overrides(overrides, allowed=EXECUTION_OPTIONS)
        base = dict(stored if given is None else given)
        given_model = (given or {}).get("model") or {}
        if not isinstance(given_model, dict):
            raise ConfigError(f"the config's model section must be a mapping of keys, got "
                              f"{type(given_model).__name__}; fix the model: section of --config")
        base["model"] = {**stored.get("model", {}),
                         **{key: value for key, value in given_model.items() if key in EXECUTION_OPTIONS}}
        config = resolve_config(base, overrides)
        trained = config_from_dict(stored)
        refuse_other_frames(trained.data.dataset, config.data.dataset)
        if "run.scale" not in (overrides or {}):
            config.run.scale = trained.run.scale       # the run's label, whichever config sets the test up
        config.model = dataclasses.replace(trained.model, **{key: getattr(config.model, key)
                                                             for key in EXECUTION_OPTIONS})
        return config

    def test(self, config: Config, ckpt_path: Path, trainer) -> dict:
        from stcbench.training.datamodule import build_datamodule
        from stcbench.training.module import load_module, module_dtype

        model = load_module(ckpt_path, config, module_dtype(config.trainer.precision))
        datamodule = build_datamodule(config)
        results = base_record(config, trainer, model, datamodule)
        results["epochs"] = checkpoint_epoch(ckpt_path)
        if results["epochs"] is None and config.run.scale == "official":
            results["selected_on"] = "unknown (converted official weights)"
        results["test"] = run_test(trainer, model, datamodule)
        if wants_long_test(config):
            results["test_long"] = run_test(trainer, model, dataloaders=long_test_loader(config), log_prefix="test_long")
        return results


def refuse_other_frames(trained: str, given: str) -> None:
    """A model tests only on frames of the shape it was trained on (kth and kth40 share theirs)."""
    from stcbench.data import get_dataset_spec

    old, new = get_dataset_spec(trained), get_dataset_spec(given)
    shapes = ["x".join(map(str, (spec.channels, spec.height, spec.width))) for spec in (old, new)]
    if shapes[0] != shapes[1]:
        raise ConfigError(f"dataset {given} (--dataset or the config): the checkpoint was trained on {old.name} "
                          f"frames ({shapes[0]}, channels x height x width), {new.name}'s are {shapes[1]}; a model "
                          f"tests only on frames of its own shape: drop --dataset, or test a run trained on {new.name}")


# ------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------
def cell_folder_name(cell: str) -> str:
    from stcbench.cells.registry import canonical_name

    return canonical_name(cell)


def dataset_name(config: Config) -> str:
    from stcbench.data import get_dataset_spec

    return get_dataset_spec(config.data.dataset).name


# ------------------------------------------------------------------------------------------
# resuming
# ------------------------------------------------------------------------------------------
def check_checkpoint_fits(config: Config, module, checkpoint: dict, ckpt_path: Path) -> None:
    """The checkpoint must hold the network built now, and its optimizer state the parameter groups
    built now (cells may ask for groups of their own, e.g. GLIF original's gates at lr/10), else
    resuming cannot continue it."""
    from stcbench.engine.param_groups import parameter_groups

    check_same_architecture(config.model, ((checkpoint.get("hyper_parameters") or {}).get("config") or {}),
                            ckpt_path)
    states = checkpoint.get("optimizer_states") or []
    if not states:
        return
    saved = [len(group.get("params", [])) for group in states[0].get("param_groups", [])]
    built = [len(group["params"]) for group in parameter_groups(module, config.optim.lr, config.optim.weight_decay)]
    if saved != built:
        raise ConfigError(
            f"{ckpt_path} holds optimizer state for {len(saved)} parameter group(s) of sizes {saved}, but "
            f"this model builds {len(built)} of sizes {built} (the cell's parameter groups differ from when "
            f"the checkpoint was written), so the run cannot be resumed; start a new run, or test the "
            f"checkpoint's weights with `stcbench test --ckpt-path {ckpt_path}`")


def check_same_architecture(model, stored: dict, ckpt_path: Path) -> None:
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


# ------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------
def wants_long_test(config: Config) -> bool:
    """The KTH 10->40 test beside the 10->20 one (a kth40 test is that test already)."""
    if dataset_name(config) != "kth":
        return False
    return config.data.test_long if config.data.test_long is not None else True


def run_test(trainer, module, datamodule=None, dataloaders=None, keep_predictions: int = 0,
             log_prefix: str = "test") -> dict:
    """One test pass; its metrics are logged as `<log_prefix>/<metric>` (test, test_long, test_last, ...), so the
    tests of one run (checkpoints, horizons) stay apart in the loggers."""
    module.keep_predictions = keep_predictions
    module.test_log_prefix = log_prefix
    if dataloaders is not None:
        trainer.test(module, dataloaders=dataloaders, verbose=False)
    else:
        trainer.test(module, datamodule=datamodule, verbose=False)
    results = plain(module.test_results)
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


def evaluate_checkpoints(task: VideoTask, config: Config, trainer, module, datamodule, run_dir: Path) -> dict:
    """metrics.json of a video run: the engine's tests of the best (selected on the validation split) and the last
    checkpoint, with what ran, on which data, and the selected checkpoint's validation score."""
    from stcbench.engine.evaluation import checkpoint_blocks, save_selected_per_sequence, test_best_and_last

    callback = trainer.checkpoint_callback
    tested = test_best_and_last(task, config, trainer, module, datamodule, run_dir)
    results = base_record(config, trainer, module, datamodule)
    results["best_checkpoint"] = relative_to_run(tested["best"].path, run_dir) if "best" in tested else None
    results["val"] = {"split": "val" if config.data.selection == "val" else "test",
                      "mse_per_pixel": _number(callback.best_model_score) if callback else None}
    if results["val"]["mse_per_pixel"] is not None:
        results["val"]["mse"] = results["val"]["mse_per_pixel"] * _pixels(module)
    results.update(checkpoint_blocks(tested, run_dir))
    results["reported_metrics"] = task.metrics_to_report(results["test"])
    results["test_per_sequence"] = save_selected_per_sequence(trainer, run_dir, tested)
    return results


def test_one_checkpoint(config: Config, trainer, datamodule, path: Path, label: str):
    """One checkpoint of a run (`<run>/checkpoints/<label>.ckpt`) tested in a module loaded from it (in the run's
    precision); the best one keeps `run.predictions_limit` predictions (predictions.npz) when
    `run.save_predictions`; KTH adds its 10->40 test. The per-sequence values are the main test's."""
    from stcbench.engine.evaluation import LOG_PREFIXES, TestedCheckpoint
    from stcbench.training.module import load_module, module_dtype

    model = load_module(path, config, module_dtype(config.trainer.precision))
    keep = config.run.predictions_limit if (config.run.save_predictions and label == "best") else 0
    prefix = LOG_PREFIXES[label]
    metrics = run_test(trainer, model, datamodule, keep_predictions=keep, log_prefix=prefix)
    per_sequence = model.test_per_sequence            # before a longer test replaces them
    if keep and trainer.is_global_zero:
        save_predictions(Path(path).parents[1] / "predictions.npz", model.prediction_buffer, keep)
    extra = {}
    if wants_long_test(config):
        extra["test_long"] = run_test(trainer, model, dataloaders=long_test_loader(config), log_prefix=f"{prefix}_long")
    return TestedCheckpoint(label, path, metrics, per_sequence, extra)


def base_record(config: Config, trainer, module, datamodule) -> dict:
    from stcbench.training.cell_variants import recorded_variant

    world = trainer.world_size
    return {
        "dataset": dataset_name(config),
        "cell": cell_folder_name(config.model.cell),
        "scale": config.run.scale,
        "selected_on": config.data.selection,
        "selected_on_test": config.data.selection == "openstl_test",
        "seed": config.seed,
        "tuning": config.run.tuning,
        "epochs": trainer.current_epoch,
        "max_epochs": config.trainer.max_epochs,
        "global_steps": trainer.global_step,
        "world_size": world,
        "per_device_batch_size": config.data.batch_size,
        "global_batch_size": config.data.batch_size * world * config.trainer.accumulate_grad_batches,
        "precision": config.trainer.precision,
        "params": int(sum(p.numel() for p in module.net.parameters())),
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


def estimate_flops(config: Config) -> dict | None:
    """MACs of predicting one test sequence (stcbench.models.cost)."""
    from stcbench.training.network import flops_for_config

    try:
        macs = flops_for_config(config)
    except Exception as exc:  # cost accounting must never fail a finished run
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"macs_per_sequence": int(macs), "method": "stcbench.training.network.flops_for_config"}


def save_predictions(path: Path, buffer: list, limit: int) -> None:
    import numpy as np

    from stcbench.engine.io import atomic_save_npz

    if not buffer:
        return
    context, truth, pred = (torch.cat([b[i] for b in buffer])[:limit].float().numpy() for i in range(3))
    atomic_save_npz(path, context=context, truth=truth, pred=pred.astype(np.float32))


def _pixels(module) -> int:
    spec = module.spec
    return spec.channels * spec.height * spec.width


def _number(value) -> float | None:
    if value is None:
        return None
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def plain(value):
    """Metric dicts with tensors -> Python floats/lists."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item() if value.dim() == 0 else value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (int, float, str)):
        return value.item()
    return value


def format_summary(results: dict) -> str:
    """A short plain-text table of the selected checkpoint's test metrics."""
    epoch = results.get("selected_epoch", results.get("epochs"))      # fit: the selected one; test: the tested one
    lines = [f"{results['dataset']} / {results['cell']} (scale {results.get('scale', '')}, "
             f"selected on {results.get('selected_on', '')}, epoch {'?' if epoch is None else epoch})"]
    selected = "selected_epoch" in results                              # fit: the run's own selection
    for tag, label in (("test", "selected" if selected else "test"), ("test_long", "long test")):
        block = results.get(tag)
        if block:
            lines.append(f"  {label:10s} {_metric_line(block)}")
    last = (results.get("last") or {}).get("test")
    if last:
        lines.append(f"  {'last':10s} {_metric_line(last)}")
        on = "the test set (openstl_test)" if results.get("selected_on_test") else "validation"
        lines.append(f"  (test metrics of the checkpoint selected on {on}, and of the last one)")
    return "\n".join(lines)


def _metric_line(block: dict) -> str:
    return "  ".join(f"{k} {block[k]:.4f}" for k in SUMMARY_KEYS if isinstance(block.get(k), (int, float)))


# ------------------------------------------------------------------------------------------
# checkpoints named by the user
# ------------------------------------------------------------------------------------------
def checkpoint_for_test(path: str | Path) -> Path:
    """A .ckpt file, or a run directory (the best checkpoint its metrics.json names, else
    checkpoints/best.ckpt, else last.ckpt)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (recorded_best_checkpoint(path), path / "checkpoints" / "best.ckpt",
                          path / "checkpoints" / "last.ckpt", path / "best.ckpt", path / "last.ckpt"):
            if candidate is not None and candidate.is_file():
                return candidate
        raise ConfigError(f"{path} holds no checkpoints/best.ckpt or last.ckpt; pass a run folder written by "
                          f"`stcbench fit` (runs/<dataset>/<cell>/<run>) or a .ckpt file")
    if not path.is_file():
        what = "is not a regular file (a pipe, socket or device)" if path.exists() else "does not exist"
        raise ConfigError(f"checkpoint {str(path)!r} {what}; pass a .ckpt file or a run directory")
    return path


def recorded_best_checkpoint(run_dir: Path) -> Path | None:
    """`best_checkpoint` of the run's metrics.json, resolved against the run directory; only a file inside the run
    folder counts (a record naming another run's checkpoint would test that run under this one's name)."""
    try:
        recorded = json.loads(read_text(run_dir / "metrics.json")).get("best_checkpoint")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    found = resolve_in_run(recorded, run_dir) if isinstance(recorded, str) else None
    return found if found is not None and found.resolve().is_relative_to(Path(run_dir).resolve()) else None
