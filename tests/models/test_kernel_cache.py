"""numba's on-disk cache serves the fast path's compiled kernels to the next process.

While the kernels were closures that called other compiled functions, numba's cache key changed in every
process (it hashes a closure's contents, and a compiled function pickles with a per-process id), so every
fast-path run compiled them again: about 30 s at every start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stcbench.kernels import fused_stc, winograd

pytestmark = pytest.mark.skipif(not (fused_stc.available() and winograd.available()), reason="numba not installed")

# one fast-path training step of STC-LIF whose second layer's input synapse (48 -> 48, 5 x 5) runs as Winograd,
# then, for every kernel the step used, how many of its compiled versions came from the cache and how many were
# compiled in this process
SCRIPT = r"""
import json, torch
from stcbench.kernels import fused_stc, winograd
from stcbench.models import RecurrentPredictor

torch.manual_seed(0)
model = RecurrentPredictor("stclif", 1, (48, 48), patch_size=2, in_frames=2, fast=True)
frames = torch.rand(2, 4, 1, 16, 16)
model.loss(model(frames, None), frames).backward()
kernels = {**fused_stc._compile(), **{f"winograd{i}": k for i, k in enumerate(winograd._compile())}}
used = {name: k for name, k in kernels.items() if k.signatures}
print(json.dumps({"used": sorted(used),
                  "compiled": {name: sum(k.stats.cache_misses.values()) for name, k in used.items()},
                  "loaded": {name: sum(k.stats.cache_hits.values()) for name, k in used.items()}}))
"""


def run_step() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_every_kernel_from_the_cache():
    run_step()                                   # compiles what the cache lacks (or finds all of it there)
    second = run_step()
    assert any(name.startswith("winograd") for name in second["used"])
    assert {"membrane", "elementwise_backward", "moments"} <= set(second["used"])
    assert all(count == 0 for count in second["compiled"].values()), second["compiled"]
    assert all(count >= 1 for count in second["loaded"].values()), second["loaded"]
