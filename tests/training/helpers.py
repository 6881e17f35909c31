"""Tiny configs for end-to-end tests (seconds on 2 CPU cores)."""
from __future__ import annotations

import copy
from pathlib import Path


def tiny_config(data_root: Path, output_dir: Path, *, cell: str = "lif", epochs: int = 2, name: str = "t",
                **sections) -> dict:
    config = {
        "seed": 3,
        "data": {"dataset": "mmnist", "data_root": str(data_root), "batch_size": 2,
                 "train_samples": 4, "val_samples": 3, "test_samples": 3},
        "model": {"cell": cell, "num_hidden": [16], "filter_size": 3},
        "optim": {"warmup_epochs": 1},
        "sampling": {"rate": 0.1},
        "trainer": {"max_epochs": epochs, "accelerator": "cpu", "devices": 1, "deterministic": True},
        "logging": {"progress_bar": "none", "loggers": ["csv"], "log_every_n_steps": 1},
        "run": {"output_dir": str(output_dir), "name": name, "scale": "test"},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(copy.deepcopy(values))
        else:
            config[section] = values
    return config
