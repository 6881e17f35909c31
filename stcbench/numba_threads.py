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


def cache_where_writable(temporary_root: str | None = None) -> str | None:
    """numba caches the compiled kernels beside their source files or in the user's cache folder; where both are
    read-only (a shared install with a read-only home) it refuses to compile a cached kernel at all ("no locator
    available"). The cache then goes to a private folder of the temporary directory. Returns that folder, or None
    where numba's own places (or NUMBA_CACHE_DIR) serve, or no private folder can be made (numba then compiles
    without its cache)."""
    if numba is None or numba.config.CACHE_DIR:
        return None
    from pathlib import Path

    kernel_file = str(Path(__file__).parent / "kernels" / "winograd_numba.py")
    if any(locator.from_function(cache_where_writable, kernel_file) is not None for locator in cache_locators()):
        return None
    folder = private_folder(temporary_root)
    if folder is not None:
        numba.config.CACHE_DIR = folder
    return folder


def cache_locators() -> list:
    """numba's locators of a cache beside the source file and in the user's cache folder (private names before
    numba 0.60)."""
    from numba.core import caching

    return [getattr(caching, name, None) or getattr(caching, f"_{name}")
            for name in ("InTreeCacheLocator", "UserWideCacheLocator")]


def private_folder(temporary_root: str | None) -> str | None:
    """`<tmp>/stcbench-numba-cache-<uid>`, made if missing, and used only if it is this user's own directory that
    no one else may write (numba unpickles its cache index: a folder another user made first could run code as
    this one); else a fresh private folder; None if neither can be made."""
    import os
    import stat
    import tempfile

    root = temporary_root or tempfile.gettempdir()
    user = os.getuid() if hasattr(os, "getuid") else None
    folder = os.path.join(root, f"stcbench-numba-cache-{user if user is not None else 'user'}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        if (stat.S_ISDIR(info.st_mode) and (user is None or info.st_uid == user)
                and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            return folder
        return tempfile.mkdtemp(prefix="stcbench-numba-cache-", dir=root)
    except OSError:
        return None


cache_where_writable()

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
