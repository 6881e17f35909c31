"""numba's parallel loops leave torch's thread count as the user set it.

Each check runs in a fresh process: numba's thread pool starts once per process, and starting it
is what used to reset torch's OpenMP thread count.
"""
import subprocess
import sys

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
