"""The video task's entry points: `fit` and `test` through the run engine (stcbench.engine.run)."""
from __future__ import annotations

from functools import partial

from stcbench.engine.run import fit_from, test_from
from stcbench.training.task import VideoTask

fit = partial(fit_from, VideoTask())     # fit(config, *, ckpt_path=None, overrides=None, overwrite=False) -> run folder
test = partial(test_from, VideoTask())   # test(config | None, ckpt_path, *, overrides=None, output=None) -> record
