"""The memory task's entry points: `fit` and `test` through the run engine (stcbench.engine.run)."""
from __future__ import annotations

import json
from pathlib import Path
from functools import partial

from stcbench.engine.run import fit_from, test_from
from stcbench.engine.run_folder import remove_run_dir
from stcbench.memory.config import MemoryConfig
from stcbench.memory.task import MemoryTask
from stcbench.record_io import read_text


fit = partial(fit_from, MemoryTask())     # fit(config, *, ckpt_path=None, overrides=None, overwrite=False) -> run folder
test = partial(test_from, MemoryTask())   # test(config | None, ckpt_path, *, overrides=None, output=None) -> record


def run_dir_for(config: MemoryConfig) -> Path:
    task = MemoryTask()
    return task.run_base(config) / task.run_name(config)


def remove_incomplete_run(run_dir: Path) -> None:
    """Delete a run directory that has no metrics.json (an interrupted run of the suite), unless another
    process is training it (then one clear ConfigError)."""
    if run_dir.exists() and not (run_dir / "metrics.json").exists():
        remove_run_dir(run_dir)


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    return json.loads(read_text(path)) if path.is_file() else None
