"""numba's parallel loops leave torch's thread count as the user set it.

Each check runs in a fresh process: numba's thread pool starts once per process, and starting it
is what used to reset torch's OpenMP thread count.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from stcbench.kernels import winograd

pytestmark = pytest.mark.skipif(not winograd.available(), reason="numba is not installed")

SET_ONE_THREAD = "import torch; torch.set_num_threads(1)\n"
CHECK = "\nprint(torch.get_num_threads())\n"


def threads_after(code: str) -> int:
    out = subprocess.run([sys.executable, "-c", SET_ONE_THREAD + code + CHECK], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_winograd_keeps_torch_threads():
    assert threads_after("from stcbench.kernels import winograd\n"
                         "x = torch.randn(2, 8, 8, 8, requires_grad=True)\n"
                         "w = torch.randn(8, 8, 5, 5, requires_grad=True)\n"
                         "winograd.winograd_conv2d(x, w).sum().backward()") == 1


def test_metrics_kernel_keeps_torch_threads():
    assert threads_after("import numpy as np\n"
                         "from stcbench.metrics import compute_metrics\n"
                         "pred = np.random.default_rng(0).random((3, 2, 1, 16, 16)).astype(np.float32)\n"
                         "compute_metrics(pred, pred * 0.5)") == 1


def test_the_kernel_cache_goes_to_the_temporary_folder_where_numba_has_no_writable_place(tmp_path, monkeypatch):
    """A read-only install with a read-only home: numba would refuse to compile a cached kernel ("no locator
    available"); the cache moves to a folder of the temporary directory, and cached kernels compile and are stored."""
    import importlib
    import textwrap

    from stcbench import numba_threads

    monkeypatch.setattr(numba_threads.numba.config, "CACHE_DIR", "")
    assert numba_threads.cache_where_writable(str(tmp_path)) is None        # this checkout: numba's places serve
    for locator in numba_threads.cache_locators():
        monkeypatch.setattr(locator, "from_function", classmethod(lambda cls, func, path: None))
    folder = numba_threads.cache_where_writable(str(tmp_path))
    assert folder is not None and numba_threads.numba.config.CACHE_DIR == folder
    module = tmp_path / "cached_kernel_probe.py"
    module.write_text(textwrap.dedent("""
        import numba

        @numba.njit(cache=True)
        def double(x):
            return 2 * x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("cached_kernel_probe")
    assert probe.double(21) == 42
    assert any(path.suffix in (".nbi", ".nbc") for path in Path(folder).rglob("*"))


def test_the_temporary_kernel_cache_is_a_private_folder_of_this_user(tmp_path):
    """numba unpickles its cache index: a predictable folder that others may write (or a link) is not used."""
    import os
    import stat

    from stcbench.numba_threads import private_folder

    own = private_folder(str(tmp_path))
    assert own == str(tmp_path / f"stcbench-numba-cache-{os.getuid()}")
    assert not os.stat(own).st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    os.chmod(own, 0o777)                                         # writable by anyone: another folder is made
    other = private_folder(str(tmp_path))
    assert other != own and Path(other).parent == tmp_path and not os.stat(other).st_mode & 0o077
    os.chmod(own, 0o700)
    os.rmdir(own)
    os.symlink(tmp_path / "elsewhere", own)                         # a link planted at the name: not followed
    (tmp_path / "elsewhere").mkdir()
    assert private_folder(str(tmp_path)) not in (own, str(tmp_path / "elsewhere"))
    assert private_folder(str(tmp_path / "missing" / "deeper")) is not None
    (tmp_path / "file").write_text("x")
    assert private_folder(str(tmp_path / "file")) is None
