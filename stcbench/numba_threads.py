"""numba's parallel loops beside torch: same thread count, and torch's setting left untouched.

With numba's OpenMP threading layer, launching numba's thread pool (its first parallel loop in a
process) also sets the OpenMP thread count that torch reads, to numba's default (every core): a
`torch.set_num_threads(2)` made earlier would silently become 8 on an 8-core machine.
`parallel_region()` runs numba's loops with torch's thread count and restores torch's setting.
`numba` is the module, or None where it is not installed (it is optional).
"""
from __future__ import annotations

import contextlib

import torch

try:  # pragma: no cover - exercised when numba is installed
    import numba
except ImportError:  # pragma: no cover
    numba = None

_numba_threads = None

# options of the package's compiled kernels: cached on disk, no bounds checks, numpy's error model,
# and reassociation (vectorised reductions) and fused multiply-adds allowed. numba's cache is invalidated by
# changes to a kernel's own file only: after changing these options, delete the kernels' cached files
# (stcbench/kernels/__pycache__/*.nb[ic]) or they keep being served compiled with the old ones.
KERNEL_OPTIONS = dict(cache=True, boundscheck=False, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})


@contextlib.contextmanager
def parallel_region():
    """Run numba parallel loops inside: numba uses torch's thread count; torch's count is kept."""
    global _numba_threads
    torch_threads = torch.get_num_threads()
    wanted = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    if wanted != _numba_threads:
        numba.set_num_threads(wanted)
        _numba_threads = wanted
    try:
        yield
    finally:
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
