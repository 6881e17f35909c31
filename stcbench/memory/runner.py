"""The memory task's entry points: `fit` and `test` through the run engine (stcbench.engine.run)."""
from __future__ import annotations

import json
from pathlib import Path
from functools import partial

from stcbench.engine.run import fit_from, test_from
from stcbench.memory.task import MemoryTask
from stcbench.record_io import read_text


fit = partial(fit_from, MemoryTask())     # fit(config, *, ckpt_path=None, overrides=None, overwrite=False) -> run folder
test = partial(test_from, MemoryTask())   # test(config | None, ckpt_path, *, overrides=None, output=None) -> record


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    return json.loads(read_text(path)) if path.is_file() else None
