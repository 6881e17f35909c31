"""Task dispatch: a config's top-level `task` key names the module that runs it.

Each task module exposes `fit(config: dict, *, ckpt_path=None, overrides=None) -> pathlib.Path`
(the run directory) and `test(config: dict, ckpt_path) -> dict`.
"""
from __future__ import annotations

import importlib

from stcbench.errors import ConfigError

TASKS = {
    "video": "stcbench.training.runner",   # spatio-temporal prediction (Moving MNIST, TaxiBJ, KTH)
    "memory": "stcbench.memory.runner",    # long-term memory probes (adding, copy, sequential digits)
}


def task_module(config: dict):
    name = config.get("task", "video")
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name])
