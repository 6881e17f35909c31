"""numba's on-disk cache serves the fast path's compiled kernels to the next process.

While the kernels were closures that called other compiled functions, numba's cache key changed in every
process (it hashes a closure's contents, and a compiled function pickles with a per-process id), so every
fast-path run compiled them again: about 20-40 s at every start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stcbench.kernels import fused_stc, winograd

pytestmark = pytest.mark.skipif(not (fused_stc.available() and winograd.available()), reason="numba not installed")

# `affine` calls the compiled helper `piece`, the case whose cache key used to change from process to process
SCRIPT = r"""
import json
import numpy as np
from stcbench.kernels.fused_stc_numba import affine

y = np.ones((2, 6, 3), dtype=np.float32)
out = np.empty_like(y)
affine(y, np.full((2, 3), 2, np.float32), np.ones((2, 3), np.float32), 2, out)
assert (out == 3).all()
stats = affine.stats
print(json.dumps({"compiled": sum(stats.cache_misses.values()), "loaded": sum(stats.cache_hits.values())}))
"""


def run_kernel(cache_dir) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NUMBA_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_kernel_from_the_cache(tmp_path):
    first = run_kernel(tmp_path)                 # a private, empty cache: compiles and saves
    second = run_kernel(tmp_path)
    assert first == {"compiled": 1, "loaded": 0}
    assert second == {"compiled": 0, "loaded": 1}


def kernels():
    return {**fused_stc._compile(), **{f"winograd[{i}]": k for i, k in enumerate(winograd._compile())}}


@pytest.mark.parametrize("name", sorted(kernels()))
def test_every_kernel_is_cached_and_closes_over_nothing(name):
    """What makes the cache key stable: a module-level function (no closure) compiled with cache=True."""
    kernel = kernels()[name]
    assert kernel.py_func.__closure__ is None
    assert type(kernel._cache).__name__ == "FunctionCache"          # numba's on-disk cache (NullCache without)
