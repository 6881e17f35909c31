"""The video task's entry points: `fit` and `test` through the run engine (stcbench.engine.run)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stcbench.engine import run as engine
from stcbench.engine.schema import load_config_dict
from stcbench.training.config import Config
from stcbench.training.task import VideoTask


def fit(config: Any, *, ckpt_path: str | Path | None = None, overrides: dict | None = None,
        overwrite: bool = False) -> Path:
    """Train (or resume) one video run and test its best and last checkpoints; returns the run folder.
    `config` is a YAML path or shipped name, a mapping or a `Config`; `overrides` dotted keys on top."""
    task = VideoTask()
    return engine.fit(task, task.resolve_config(config, overrides), ckpt_path=ckpt_path, overwrite=overwrite)


def test(config: Any, ckpt_path: str | Path, *, overrides: dict | None = None,
         output: str | Path | None = None) -> dict:
    """Test a checkpoint or run folder: the architecture from the checkpoint; data, trainer and logging from
    `config` (default: the checkpoint's own), then `overrides`."""
    given = config.to_dict() if isinstance(config, Config) else (
        load_config_dict(config) if isinstance(config, (str, Path)) else config)
    return engine.test(VideoTask(), given, ckpt_path, overrides=overrides, output=output)
