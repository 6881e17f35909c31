"""Run configuration: YAML files validated into dataclasses.

Precedence (one rule, network-and-training.md §3 pitfall 2):
    dataclass defaults < config file (with `base:` inheritance) < explicit CLI overrides.

A config file is a mapping with the sections below. `base: other.yaml` (a path relative to
the file, or a list of paths) is loaded first and the file's own keys are merged on top,
section by section. Unknown keys and values of the wrong type are `ConfigError`s that list
what is allowed.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from stcbench.errors import ConfigError
from stcbench.training.run_paths import check_run_name

PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true")


@dataclass
class DataConfig:
    """Dataset and loader settings."""

    dataset: str = "mmnist"                 # mmnist, taxibj, kth (also tests 10->40) or kth40
    data_root: str = "datasets"             # folder holding the dataset files
    batch_size: int = 16                    # per-process batch for training
    eval_batch_size: int | None = None      # validation/test batch (default: batch_size)
    num_workers: int = 0                    # DataLoader worker processes
    selection: Literal["val", "openstl_test"] = "val"   # model selection split (pitfall 1)
    train_samples: int | None = None        # cap on training samples per epoch (None = all)
    val_samples: int | None = None          # cap on validation samples
    test_samples: int | None = None         # cap on test samples
    generate_if_missing: bool = False       # write the small embedded default dataset when the folder is absent
    test_long: bool | None = None           # also test 10->40 (None = automatically for kth)
    options: dict = field(default_factory=dict)   # extra keyword arguments for the DataModule


@dataclass
class ModelConfig:
    """Recurrent predictor: patching, stacked cells, 1x1 readout."""

    cell: str = "stclif"                    # any registered cell (`stcbench cells`)
    num_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])   # channels per layer (multiples of 16)
    filter_size: int = 5                    # conv kernel of every synapse
    patch_size: int | None = None           # None = the dataset's patch size
    gradient_detach: int | None = None      # STC cells: 0 full BPTT through the circuit, 1 detached
    cell_options: dict = field(default_factory=dict)   # extra keyword arguments for the cell; the data-derived ones (te_steps, time_steps, *_spatial) are filled in unless given
    # geometry overrides (converted checkpoints, custom data); null = the dataset's value
    in_frames: int | None = None            # context frames
    out_frames: int | None = None           # predicted frames
    channels: int | None = None             # image channels
    image_size: list[int] | None = None     # [H, W] of converted checkpoints and arrays; a run on a dataset needs its frame size (frames are not resized); null: the dataset's
    fast: bool = False                      # fused/multi-step execution path (same numbers, ~0.5x memory)
    recompute: bool | None = None           # fast path: recompute the element-wise neuron dynamics in backward (less memory, slower); null = on the CPU for circuit (STC) cells only; STC-LIF, STC-PLIF and STC-LM-H on the CPU use their fused step either way
    conv_algorithm: Literal["auto", "direct", "winograd"] = "auto"   # fast path on CPU: auto = Winograd F(4x4,5x5) for 5x5 synapse convs with >= 48 channels in and out; direct = never
    channels_last: bool | None = None       # fast path: feature maps in channels-last memory order; null = on the CPU only (slower convolutions on GPUs)
    compile: bool = False                   # fast path: torch.compile each layer's step after its input convolution (GPUs; not used by the fused STC-LIF/STC-PLIF/STC-LM-H CPU step)


@dataclass
class OptimConfig:
    """Optimizer and the learning-rate schedule (per-epoch warm-up / cosine, or OpenSTL's per-step one-cycle)."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"   # groups per cell hints (GLIF original: gates lr/10)
    lr: float = 1e-3                        # peak learning rate
    weight_decay: float = 0.0               # 0 in the paper
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])   # Adam betas
    eps: float = 1e-8                       # Adam epsilon
    momentum: float = 0.9                   # sgd only
    schedule: Literal["cosine", "constant", "onecycle"] = "cosine"    # cosine: warm-up then cosine, set per epoch; onecycle: OpenSTL's default (torch OneCycleLR over all max_epochs), set per optimizer step
    warmup_epochs: int = 10                 # linear warm-up epochs
    warmup_lr: float = 1e-5                 # learning rate of epoch 0
    min_lr: float = 1e-5                    # paper Table 9 (pitfall 3: official TaxiBJ/KTH runs used 1e-4)
    onecycle_pct_start: float = 0.3         # onecycle: share of the steps spent rising to lr
    onecycle_div_factor: float = 25.0       # onecycle: the first step's lr is lr / div_factor
    onecycle_final_div_factor: float = 1.0e4   # onecycle: the last step's lr is lr / div_factor / final_div_factor (OpenSTL: 1e4)
    onecycle_cycle_momentum: bool = True    # onecycle: Adam beta1 (SGD momentum) runs 0.95 -> 0.85 -> 0.95 against the lr, as torch's OneCycleLR does


@dataclass
class SamplingConfig:
    """Scheduled sampling of the future inputs during training."""

    enabled: bool = True                    # false: training feeds back its own predictions only
    start_value: float = 1.0                # eta at iteration 0 (pitfall 4: honoured, unlike the official code)
    rate: float = 2e-5                      # eta decrease per iteration
    stop_iter: int = 50000                  # eta = 0 from this iteration on
    seed: int | None = None                 # mask generator seed (None = derived from the run seed)


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    max_epochs: int = 500                   # the schedule spans these epochs
    max_steps: int = -1                     # -1: no step limit
    stop_after_epochs: int | None = None    # end this invocation early (resume later); the schedule still spans max_epochs
    limit_train_batches: float | int = 1.0  # fraction (float) or number (int) of batches
    limit_val_batches: float | int = 1.0    # fraction (float) or number (int) of validation batches
    limit_test_batches: float | int = 1.0   # fraction (float) or number (int) of test batches
    check_val_every_n_epoch: int = 1        # validation (and best.ckpt selection) period
    num_sanity_val_steps: int = 0           # validation batches run before training
    gradient_clip_val: float | None = None  # none in the paper protocol
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"   # how gradient_clip_val is applied
    precision: str = "32-true"              # 64-true | 32-true | 16-mixed | bf16-mixed | ...
    accelerator: str = "auto"               # auto | cpu | gpu | cuda | mps
    devices: int | str | list[int] = "auto"   # number of devices, "auto", or device indices
    strategy: str = "auto"                  # auto | ddp | ddp_find_unused_parameters_true | ...
    num_nodes: int = 1                      # multi-node DDP
    deterministic: bool = False             # torch deterministic algorithms, cudnn.benchmark off
    accumulate_grad_batches: int = 1        # 1 in the paper
    threads: int | None = None              # torch.set_num_threads for CPU runs
    tf32: bool | None = None                # GPUs: TensorFloat-32 in float32 convolutions and matmuls (null = torch's default: convolutions on, matmuls off)
    benchmark: bool | None = None           # GPUs: cudnn.benchmark autotuning of convolution algorithms (null = Lightning's default, off)


@dataclass
class LoggingConfig:
    """Loggers, progress bar and what gets logged."""

    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])   # any of csv, tensorboard, wandb
    log_every_n_steps: int = 50             # also the period of gradient-norm and firing-rate logging
    grad_norms: bool = True                 # log the global and per-layer gradient norms
    firing_rates: bool = True               # log per-layer firing rates (spiking cells)
    progress_bar: Literal["rich", "tqdm", "none"] = "rich"   # progress display
    images: bool = True                     # log a prediction image per validation epoch (wandb/tensorboard)
    wandb_project: str = "stcbench"         # wandb project name
    wandb_entity: str | None = None         # wandb team/user (null: your default)
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"   # auto: offline without credentials


@dataclass
class RunSettings:
    """Where and how results are written."""

    output_dir: str = "runs"                # runs/<dataset>/<cell>/<name>/
    name: str | None = None                 # default: <timestamp>-seed<seed>
    scale: str = "custom"                   # label recorded with the results: paper | reduced | quick | custom
    test_after_fit: bool = True             # test the best and the last checkpoint after training
    save_predictions: bool = False          # write predictions.npz of the selected checkpoint
    predictions_limit: int = 64             # sequences kept in predictions.npz


@dataclass
class Config:
    """A complete run description (`stcbench fit --config FILE`)."""

    seed: int = 42                          # python, numpy, torch, data and mask generators
    task: Literal["video"] = "video"        # video prediction (configs/memory/ use task: memory)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    run: RunSettings = field(default_factory=RunSettings)
    plugins: list[str] = field(default_factory=list)   # modules imported first (they register user cells)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------
# YAML loading with `base:` inheritance
# ------------------------------------------------------------------------------------------
def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a directory; pass a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing YAML file "
                          f"or the name of a shipped config (e.g. quick/mmnist, mmnist/stclif, memory/adding)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a text (UTF-8) file; pass a YAML config") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror}); check its permissions") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Merge `update` into a copy of `base`; nested mappings merge, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in _OPAQUE_KEYS:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_OPAQUE_KEYS: frozenset[str] = frozenset()


def load_config_dict(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML config (a path, or the name of a packaged config such as `quick/mmnist`) and
    resolve its `base:` chain into one dict (no validation)."""
    from stcbench.config_files import find_config

    path = find_config(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config `base:` inheritance loops: {chain}")
    data = read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: `base:` must be a path or a list of paths, got {bases!r}")
    merged: dict = {}
    for base in bases:
        merged = deep_merge(merged, load_config_dict(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


# ------------------------------------------------------------------------------------------
# Overrides: `--set section.key=value` and the common flags
# ------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=1e-4` -> ("optim.lr", 0.0001). The value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key; use section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, _yaml_number(value, raw)


def _yaml_number(value: Any, raw: str) -> Any:
    """YAML 1.1 reads `1e-4` as a string; accept it as a float."""
    if isinstance(value, str):
        try:
            number = float(raw)
        except ValueError:
            return value
        return number
    return value


def apply_overrides(config: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted keys (`trainer.max_epochs`) in a copy of `config`."""
    result = copy.deepcopy(config)
    for dotted, value in (overrides or {}).items():
        node = result
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


# ------------------------------------------------------------------------------------------
# Validation into dataclasses
# ------------------------------------------------------------------------------------------
def config_from_dict(data: dict) -> Config:
    """Validate a (merged) dict into a `Config`. Missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != "base"}
    config = _build(Config, data, "")
    _check_values(config)
    return config


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        place = f"section {where!r}" if where else "the top level"
        raise ConfigError(f"unknown config key(s) {[f'{where}.{k}'.lstrip('.') for k in unknown]} in {place}; "
                          f"allowed: {names}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        key = f"{where}.{name}".lstrip(".")
        kwargs[name] = _coerce(hints[name], data[name], key)
    return cls(**kwargs)


def _coerce(tp, value, key: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a section (mapping) with keys {[f.name for f in dataclasses.fields(tp)]}, "
                              f"got {value!r}")
        return _build(tp, value, key)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:   # an exact type match wins (1 stays int, 1.0 stays float)
            if option in (int, float, str, bool) and type(value) is option:
                return value
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{key} must be {_describe(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {_describe(item_tp)}, got {value!r}")
        return [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


MAX_SEED = 2**32 - 1
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _check_strategy(strategy: str) -> None:
    if strategy == "auto":
        return
    from lightning.pytorch.strategies import StrategyRegistry

    known = StrategyRegistry.available_strategies()
    _require(strategy in known, f"trainer.strategy {strategy!r} is not a Lightning strategy; use auto or ddp "
                                f"(or one of {sorted(known)})")


def _check_values(c: Config) -> None:
    from stcbench.training.loggers import LOGGER_NAMES

    _require(0 <= c.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}] (numpy's seed range), got {c.seed}")
    _require(c.data.batch_size >= 1, f"data.batch_size must be >= 1, got {c.data.batch_size}")
    _require(c.data.eval_batch_size is None or c.data.eval_batch_size >= 1,
             f"data.eval_batch_size must be >= 1, got {c.data.eval_batch_size}")
    _require(c.data.num_workers >= 0, f"data.num_workers must be >= 0, got {c.data.num_workers}")
    for name in ("train_samples", "val_samples", "test_samples"):
        value = getattr(c.data, name)
        _require(value is None or value >= 1, f"data.{name} must be >= 1 or null (all), got {value}")
    _require(len(c.model.num_hidden) >= 1 and all(h >= 1 for h in c.model.num_hidden),
             f"model.num_hidden must be a non-empty list of positive channel counts, got {c.model.num_hidden}")
    _require(c.model.filter_size >= 1 and c.model.filter_size % 2 == 1,
             f"model.filter_size must be a positive odd number, got {c.model.filter_size}")
    _require(c.model.patch_size is None or c.model.patch_size >= 1,
             f"model.patch_size must be >= 1 or null (dataset default), got {c.model.patch_size}")
    _require(c.model.gradient_detach in (None, 0, 1),
             f"model.gradient_detach must be 0, 1 or null, got {c.model.gradient_detach}")
    for name in ("in_frames", "out_frames", "channels"):
        value = getattr(c.model, name)
        _require(value is None or value >= 1, f"model.{name} must be >= 1 or null (dataset default), got {value}")
    _require(c.model.image_size is None or (len(c.model.image_size) == 2 and min(c.model.image_size) >= 1),
             f"model.image_size must be [height, width] or null, got {c.model.image_size}")
    o = c.optim
    _require(o.lr > 0 and math.isfinite(o.lr), f"optim.lr must be a positive number, got {o.lr}")
    _require(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    _require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
             f"optim.betas must be two numbers in [0, 1), got {o.betas}")
    _require(o.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0, got {o.warmup_epochs}")
    _require(o.min_lr >= 0 and o.warmup_lr >= 0, "optim.min_lr and optim.warmup_lr must be >= 0")
    _require(o.eps > 0 and math.isfinite(o.eps), f"optim.eps must be a positive number, got {o.eps}")
    _require(o.momentum >= 0, f"optim.momentum must be >= 0, got {o.momentum}")
    _require(0 < o.onecycle_pct_start < 1, f"optim.onecycle_pct_start must be in (0, 1), got {o.onecycle_pct_start}")
    _require(o.onecycle_div_factor > 0 and o.onecycle_final_div_factor > 0,
             "optim.onecycle_div_factor and optim.onecycle_final_div_factor must be > 0")
    s = c.sampling
    _require(0.0 <= s.start_value <= 1.0, f"sampling.start_value must be in [0, 1], got {s.start_value}")
    _require(s.rate >= 0, f"sampling.rate must be >= 0, got {s.rate}")
    _require(s.stop_iter >= 0, f"sampling.stop_iter must be >= 0, got {s.stop_iter}")
    t = c.trainer
    _require(t.max_epochs >= 1, f"trainer.max_epochs must be >= 1, got {t.max_epochs}")
    _require(t.max_steps == -1 or t.max_steps >= 1, f"trainer.max_steps must be -1 (no limit) or >= 1, got {t.max_steps}")
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = getattr(t, name)
        _require(0 < value <= 1 if isinstance(value, float) else value >= 1,
                 f"trainer.{name} must be a fraction in (0, 1] or a number of batches >= 1, got {value}")
    _require(t.check_val_every_n_epoch >= 1,
             f"trainer.check_val_every_n_epoch must be >= 1, got {t.check_val_every_n_epoch}")
    _require(t.accumulate_grad_batches >= 1,
             f"trainer.accumulate_grad_batches must be >= 1, got {t.accumulate_grad_batches}")
    _require(t.accelerator in ACCELERATORS,
             f"trainer.accelerator must be one of {list(ACCELERATORS)}, got {t.accelerator!r}")
    _check_strategy(t.strategy)
    _require(t.stop_after_epochs is None or t.stop_after_epochs >= 1,
             f"trainer.stop_after_epochs must be >= 1 or null, got {t.stop_after_epochs}")
    _require(t.precision in PRECISIONS, f"trainer.precision must be one of {list(PRECISIONS)}, got {t.precision!r}")
    _require(t.num_nodes >= 1, f"trainer.num_nodes must be >= 1, got {t.num_nodes}")
    _require(t.strategy != "ddp_spawn",
             "trainer.strategy 'ddp_spawn' is not supported (results are written by the worker processes); "
             "use 'ddp'")
    _require(t.gradient_clip_val is None or t.gradient_clip_val > 0,
             f"trainer.gradient_clip_val must be > 0 or null, got {t.gradient_clip_val}")
    _require(t.threads is None or t.threads >= 1, f"trainer.threads must be >= 1 or null, got {t.threads}")
    bad = [name for name in c.logging.loggers if name not in LOGGER_NAMES]
    _require(not bad, f"logging.loggers: unknown logger(s) {bad}; choose from {list(LOGGER_NAMES)}")
    _require(c.logging.log_every_n_steps >= 1, "logging.log_every_n_steps must be >= 1")
    _require(c.run.predictions_limit >= 1, "run.predictions_limit must be >= 1")
    check_run_name(c.run.name)
    _require(all(isinstance(p, str) and p for p in c.plugins), "plugins must be a list of module names")


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------
def resolve_config(source: str | Path | dict | Config | None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults < `source` (a YAML path, a dict or a Config) < `overrides` (dotted keys)."""
    if isinstance(source, Config):
        data = source.to_dict()
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    elif source is None:
        data = {}
    else:
        data = load_config_dict(source)
    return config_from_dict(apply_overrides(data, overrides))


def save_config(config: Config, path: str | Path) -> None:
    from stcbench.training.io import atomic_write_text

    atomic_write_text(Path(path), dump_config(config))


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


def config_reference() -> list[tuple[str, str, Any]]:
    """(dotted key, type description, default) of every config key, for the docs."""
    rows = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], key + ".")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((key, _describe(hints[f.name]), default))

    walk(Config, "")
    return rows


def _field_comments(cls) -> dict[str, str]:
    """Trailing `# comments` of the dataclass fields (their documentation)."""
    import inspect
    import re

    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


def _escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The config key table of docs/configs.md, generated from the dataclasses."""
    lines = []
    for section_name, cls in (("(top level)", Config), *[(f.name, typing.get_type_hints(Config)[f.name])
                                                         for f in dataclasses.fields(Config)
                                                         if dataclasses.is_dataclass(typing.get_type_hints(Config)[f.name])]):
        hints = typing.get_type_hints(cls)
        comments = _field_comments(cls)
        rows = []
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            key = f.name if cls is Config else f"{section_name}.{f.name}"
            rows.append(f"| `{key}` | {_describe(hints[f.name])} | `{yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}` "
                        f"| {_escape_pipes(comments.get(f.name, ''))} |")
        title = "Top level" if cls is Config else f"`{section_name}` — {(cls.__doc__ or '').strip()}"
        lines += [f"### {title}", "", "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(lines)
