"""The compiled (numba) CPU kernel against the torch kernel and scikit-image, in float64."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from stcbench.metrics import PredictionMetrics, compiled
from stcbench.metrics.frames import FrameKernel

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def _planes(rng, planes, height, width, dtype):
    true = rng.random((planes, height, width))
    pred = rng.random((planes, height, width)) * 1.6 - 0.3          # values outside [0, 1] too
    pred[0] = true[0]                                                # an exact plane
    return torch.from_numpy(pred.astype(dtype)), torch.from_numpy(true.astype(dtype))


@pytest.mark.parametrize("shape", [(7, 7), (7, 9), (13, 20), (32, 32), (64, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_kernel_equals_torch_kernel(shape, dtype):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    pred, true = _planes(rng, 11, *shape, dtype)
    ours = compiled.CompiledFrameKernel(*shape)(pred, true, (2.0, 1.0))
    ref = FrameKernel(11, *shape)(pred, true, (2.0, 1.0))
    for name in ("se", "ae", "se_clipped"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(ref, name).numpy(), rtol=1e-12, atol=1e-12)
    for data_range in (2.0, 1.0):
        np.testing.assert_allclose(ours.ssim[data_range].numpy(), ref.ssim[data_range].numpy(), rtol=0, atol=1e-12)
    assert ours.ssim[2.0][0] == 1.0                                  # exact plane: SSIM exactly 1


def test_compiled_kernel_equals_scikit_image_per_plane():
    rng = np.random.default_rng(0)
    pred, true = _planes(rng, 6, 40, 33, np.float64)
    sums = compiled.CompiledFrameKernel(40, 33)(pred, true, (2.0,))
    for i in range(6):
        clipped = np.clip(pred[i].numpy(), 0, 1)
        ref = structural_similarity(clipped, true[i].numpy(), data_range=2.0)
        assert abs(float(sums.ssim[2.0][i]) - ref) < 1e-12


def test_metric_uses_the_compiled_kernel_unless_told_otherwise(monkeypatch):
    torch.manual_seed(1)
    pred, true = torch.rand(2, 3, 1, 16, 16, dtype=torch.float64), torch.rand(2, 3, 1, 16, 16, dtype=torch.float64)
    metric = PredictionMetrics()
    metric.update(pred, true)
    assert isinstance(metric._kernel, compiled.CompiledFrameKernel)
    monkeypatch.setenv("STCBENCH_METRICS_KERNEL", "torch")
    forced = PredictionMetrics()
    forced.update(pred, true)
    assert isinstance(forced._kernel, FrameKernel)
    a, b = metric.compute(), forced.compute()
    for key in ("mse", "mae", "ssim", "psnr"):
        assert a[key] == pytest.approx(b[key], rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_predictions_are_scored_as_their_float32_values(dtype):
    """Predictions of a 16-mixed / bf16-mixed run: scored exactly as the same numbers in float32."""
    torch.manual_seed(2)
    pred, true = torch.rand(2, 3, 1, 16, 16).to(dtype), torch.rand(2, 3, 1, 16, 16)
    low, wide = PredictionMetrics(), PredictionMetrics()
    low.update(pred, true)
    wide.update(pred.float(), true)
    assert low.compute() == wide.compute()
