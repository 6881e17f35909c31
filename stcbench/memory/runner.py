"""The memory task's entry points: `fit` and `test` through the run engine (stcbench.engine.run)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from stcbench.engine import run as engine
from stcbench.engine.run_folder import planned_run_dir
from stcbench.engine.schema import load_config_dict
from stcbench.memory.config import MemoryConfig
from stcbench.memory.task import MemoryTask


def fit(config: Any, *, ckpt_path: str | Path | None = None, overrides: dict | None = None,
        overwrite: bool = False) -> Path:
    """Train (or resume) one memory-probe run; returns its run folder. `config` is a YAML path or shipped name,
    a mapping or a `MemoryConfig`; `overrides` dotted keys on top."""
    task = MemoryTask()
    return engine.fit(task, task.resolve_config(config, overrides), ckpt_path=ckpt_path, overwrite=overwrite)


def test(config: Any, ckpt_path: str | Path, *, overrides: dict | None = None,
         output: str | Path | None = None) -> dict:
    """Test a checkpoint or run folder on the test split: the model from the checkpoint; data and trainer from
    `config` (default: the checkpoint's own), then `overrides`."""
    given = config.to_dict() if isinstance(config, MemoryConfig) else (
        load_config_dict(config) if isinstance(config, (str, Path)) else config)
    return engine.test(MemoryTask(), given, ckpt_path, overrides=overrides, output=output)


def run_dir_for(config: MemoryConfig) -> Path:
    task = MemoryTask()
    return planned_run_dir(task.run_base(config), task.run_name(config), config.seed)


def remove_incomplete_run(run_dir: Path) -> None:
    """Delete a run directory that has no metrics.json (an interrupted run of the suite)."""
    if run_dir.exists() and not (run_dir / "metrics.json").exists():
        shutil.rmtree(run_dir)


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None
