"""Memory-probe run configuration: defaults < config file < overrides, validated strictly.

A config is a mapping with `task: memory` and the sections of DEFAULTS.  Unknown keys and
values of the wrong type raise one ConfigError naming the allowed keys.  Overrides use
dotted keys (`optim.lr=1e-3`), as `stcbench fit --set` produces them.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from stcbench.errors import ConfigError
from stcbench.training.run_paths import check_run_name
from stcbench.memory.network import READOUTS, memory_synapse_norm
from stcbench.memory.tasks import TASKS

# None as a default means "optional"; the allowed types are listed in OPTIONAL_TYPES.
DEFAULTS: dict[str, Any] = {
    "task": "memory",
    "seed": 0,
    "data": {
        "task": "adding",           # adding | copy | seq_digits | pseq_digits
        "seq_len": 100,             # T (adding: length; copy: delay, length T + 20; digits: ignored)
        "train_samples": 2048,      # generated training set size (digits: cap on images)
        "val_samples": 256,
        "test_samples": 512,
        "batch_size": 64,
        "eval_batch_size": None,    # default: batch_size
        "data_root": "datasets",    # digits: <data_root>/moving_mnist/*-ubyte.gz when present
        "digits_source": "auto",    # auto | mnist | sklearn
        "num_workers": 0,
    },
    "model": {
        "cell": "lif",              # any registered cell (`stcbench cells`)
        "hidden": [64, 256, 256],   # neurons per layer (multiples of 16)
        "recurrent": False,         # add a linear recurrent synapse per layer
        "readout": "auto",          # auto | mean | last | per_step | integrator
        "readout_decay": 0.8,       # integrator readout only
        "synapse_norm": "layer",    # norm after each cell's input synapse: layer | group | none (true = group, false = none)
        "cell_options": {},         # keyword arguments for every cell
    },
    "optim": {
        "lr": 5e-4,
        "weight_decay": 0.0,
        "milestones": [],           # epochs at which the learning rate is multiplied by `gamma`
        "gamma": 0.1,
    },
    "trainer": {
        "max_epochs": 10,
        "max_steps": -1,
        "gradient_clip_val": None,
        "accelerator": "cpu",
        "devices": 1,
        "precision": "32-true",
        "threads": None,            # torch.set_num_threads for CPU runs
        "limit_train_batches": 1.0,
        "deterministic": True,
    },
    "logging": {
        "loggers": ["csv", "tensorboard"],   # any of csv, tensorboard, wandb
        "log_every_n_steps": 10,
        "wandb_project": "stcbench",
        "wandb_entity": None,
        "wandb_mode": "auto",
        "progress_bar": False,
    },
    "run": {
        "output_dir": "runs",       # runs/memory/<task>_T<len>/<cell>/<name>/
        "name": None,               # default: seed<seed>
        "scale": "custom",          # label recorded with the results: paper | quick | custom
        "gradient_analysis": True,  # save gradient-through-time of the best checkpoint
    },
}

OPTIONAL_TYPES = {
    "data.eval_batch_size": (int,),
    "trainer.gradient_clip_val": (int, float),
    "trainer.threads": (int,),
    "logging.wandb_entity": (str,),
    "run.name": (str,),
    "data.seq_len": (int,),
    "model.synapse_norm": (str, bool),     # booleans: the former spelling (true = group); None = layer
    "logging.progress_bar": (str, bool),   # as in video configs; booleans: true = tqdm, false = none
}
CHOICES = {
    "data.task": TASKS,
    "data.digits_source": ("auto", "mnist", "sklearn"),
    "model.readout": ("auto", *READOUTS),
    "model.synapse_norm": ("layer", "group", "none", True, False),
    "logging.wandb_mode": ("auto", "online", "offline", "disabled"),
    "logging.progress_bar": ("rich", "tqdm", "none", True, False),
}
LOGGERS = ("csv", "tensorboard", "wandb")
DEFAULT_READOUT = {"adding": "last", "copy": "per_step", "seq_digits": "mean", "pseq_digits": "mean"}


def apply_dotted(config: dict, overrides: dict | None) -> dict:
    result = copy.deepcopy(config)
    for dotted, value in (overrides or {}).items():
        node = result
        parts = str(dotted).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return result


def merge(defaults: dict, given: dict, where: str = "") -> dict:
    """Validate `given` against `defaults` key by key and fill in the rest."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        section = f"section {where!r}" if where else "the memory config"
        raise ConfigError(f"unknown key(s) {unknown} in {section}; allowed keys: {sorted(defaults)}")
    merged = {}
    for key, default in defaults.items():
        path = f"{where}.{key}" if where else key
        if key not in given:
            merged[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and key != "cell_options":
            if not isinstance(given[key], dict):
                raise ConfigError(f"{path} must be a mapping with keys {sorted(default)}, got {given[key]!r}")
            merged[key] = merge(default, given[key], path)
        else:
            merged[key] = check_value(path, given[key], default)
    return merged


def check_value(path: str, value: Any, default: Any) -> Any:
    if value is None and (default is None or path in OPTIONAL_TYPES):
        return None
    types = OPTIONAL_TYPES.get(path) or ((int, float) if isinstance(default, float) else (type(default),))
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{path} must be {_names(types)}, got {value!r}")
    if isinstance(value, str) and float in types:
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, types):
        raise ConfigError(f"{path} must be {_names(types)}, got {value!r}")
    if path in CHOICES and value not in CHOICES[path]:
        raise ConfigError(f"{path} must be one of {list(CHOICES[path])}, got {value!r}")
    return value


def _names(types) -> str:
    return " or ".join(t.__name__ for t in types)


def check_semantics(cfg: dict) -> None:
    data, model = cfg["data"], cfg["model"]
    if cfg["task"] != "memory":
        raise ConfigError(f"this runner handles task: memory, got task: {cfg['task']!r}")
    if data["task"] in ("adding", "copy") and (data["seq_len"] is None or data["seq_len"] < 1):
        raise ConfigError(f"data.seq_len must be a positive integer for the {data['task']} task")
    for key in ("train_samples", "val_samples", "test_samples", "batch_size"):
        if data[key] < 1:
            raise ConfigError(f"data.{key} must be >= 1, got {data[key]}")
    if not all(isinstance(h, int) and h > 0 for h in model["hidden"]) or not model["hidden"]:
        raise ConfigError(f"model.hidden must be a non-empty list of positive integers, got {model['hidden']}")
    bad = sorted(set(cfg["logging"]["loggers"]) - set(LOGGERS))
    if bad:
        raise ConfigError(f"logging.loggers: unknown {bad}; choose from {list(LOGGERS)}")
    check_run_name(cfg["run"]["name"])
    model["synapse_norm"] = memory_synapse_norm(model["synapse_norm"])
    if model["readout"] == "auto":
        model["readout"] = DEFAULT_READOUT[data["task"]]
    if (data["task"] == "copy") != (model["readout"] == "per_step"):
        raise ConfigError("model.readout: the copy task needs per_step outputs and the other tasks one output "
                          "per sequence; use readout: auto")


def resolve(config: dict | str | Path | None, overrides: dict | None = None) -> dict:
    """The validated, complete config dict."""
    if isinstance(config, (str, Path)):
        from stcbench.training.config import load_config_dict

        config = load_config_dict(config)
    given = apply_dotted(dict(config or {}), overrides)
    given.setdefault("task", "memory")
    cfg = merge(DEFAULTS, given)
    check_semantics(cfg)
    return cfg


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
