"""Golden checks: OpenSTL formulas (numpy + scikit-image) vs our kernels (compiled and torch)."""
import numpy as np
import pytest
import torch

from stcbench.metrics import PredictionMetrics, compute_metrics
from stcbench.metrics.frames import FrameKernel
from tests.metrics.helpers import mnist_like, openstl_psnr_float32, reference_metrics


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def metrics_kernel(request, monkeypatch):
    """Every golden check runs with the compiled CPU kernel (default) and the torch kernel (GPU path)."""
    if request.param == "torch":
        monkeypatch.setenv("STCBENCH_METRICS_KERNEL", "torch")
    return request.param


def _assert_matches(ours: dict, ref: dict, tol: float = 1e-6) -> None:
    assert ours["mse"] == pytest.approx(ref["mse"], rel=1e-12, abs=1e-12)
    assert ours["mae"] == pytest.approx(ref["mae"], rel=1e-12, abs=1e-12)
    assert abs(ours["ssim"] - ref["ssim"]) < tol
    assert abs(ours["psnr"] - ref["psnr"]) < tol
    for key in ("mse", "mae", "ssim", "psnr"):
        np.testing.assert_allclose(ours["per_frame"][key], ref["per_frame"][key], rtol=1e-12, atol=tol)


@pytest.mark.parametrize("shape", [(3, 4, 1, 16, 16), (2, 3, 2, 13, 19), (2, 2, 3, 7, 9)])
def test_random_frames_with_out_of_range_predictions(shape):
    rng = np.random.default_rng(sum(shape))
    true = rng.random(shape).astype(np.float32)
    pred = (rng.random(shape) * 1.6 - 0.3).astype(np.float32)     # about 1/3 of values outside [0, 1]
    assert (pred < 0).any() and (pred > 1).any()
    _assert_matches(compute_metrics(pred, true, batch_size=2), reference_metrics(pred, true))


def test_unclipped_mse_but_clipped_ssim_and_psnr():
    rng = np.random.default_rng(1)
    true = rng.random((2, 2, 1, 12, 12)).astype(np.float32)
    pred = true + np.float32(0.5)                       # pushes many values above 1
    result = compute_metrics(pred, true)
    assert result["mse"] == pytest.approx(0.25 * 144, rel=1e-6)    # unclipped: every error is 0.5
    clipped_se = ((np.clip(pred.astype(np.float64), 0, 1) - true) ** 2).sum(axis=(2, 3, 4)).mean()
    assert clipped_se < 0.25 * 144 * 0.9
    assert result["psnr"] == pytest.approx(reference_metrics(pred, true)["psnr"], abs=1e-9)


def test_sparse_mnist_like_frames_both_data_ranges():
    rng = np.random.default_rng(2)
    shape = (3, 5, 1, 64, 64)
    true = mnist_like(rng, shape)
    pred = np.clip(true + rng.normal(0, 0.1, shape) * (true > 0), -0.05, 1.05).astype(np.float32)
    pred[0, 0] = true[0, 0]                                           # one exact frame: PSNR +inf
    ours = compute_metrics(pred, true, ssim_data_range=1.0, batch_size=2)
    ref2, ref1 = reference_metrics(pred, true, 2.0), reference_metrics(pred, true, 1.0)
    assert abs(ours["ssim"] - ref2["ssim"]) < 1e-6
    assert abs(ours["ssim_dr1"] - ref1["ssim"]) < 1e-6
    np.testing.assert_allclose(ours["per_frame"]["ssim_dr1"], ref1["per_frame"]["ssim"], atol=1e-6)
    assert ours["ssim_dr1"] < ours["ssim"]                            # spec: data range 1 is lower
    assert ours["psnr_inf_frames"] == 1 and ours["psnr"] == np.inf and ref2["psnr"] == np.inf
    finite = ref2["psnr_frames"][np.isfinite(ref2["psnr_frames"])]
    assert ours["psnr_finite"] == pytest.approx(finite.mean(), abs=1e-9)
    assert ours["per_frame"]["psnr"][0] == np.inf
    np.testing.assert_allclose(ours["per_frame"]["psnr"][1:], ref2["per_frame"]["psnr"][1:], atol=1e-9)


def test_every_frame_ssim_matches_scikit_image_to_1e6():
    rng = np.random.default_rng(3)
    shape = (4, 3, 2, 32, 32)                                      # TaxiBJ-like: 2 channels, 32x32
    true = rng.random(shape).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.2, shape), -0.2, 1.2).astype(np.float32)
    ref = reference_metrics(pred, true)
    kernel = FrameKernel(64, 32, 32)
    sums = kernel(torch.from_numpy(pred.reshape(-1, 32, 32)), torch.from_numpy(true.reshape(-1, 32, 32)), (2.0,))
    per_frame = sums.ssim[2.0].view(-1, 2).mean(1).numpy().reshape(4, 3)
    assert np.abs(per_frame - ref["ssim_frames"]).max() < 1e-6


def test_psnr_against_openstl_float32_code():
    rng = np.random.default_rng(4)
    true = mnist_like(rng, (2, 3, 1, 64, 64))
    pred = np.clip(true + rng.normal(0, 0.05, true.shape), 0, 1).astype(np.float32)
    frames = [openstl_psnr_float32(pred[i, j], true[i, j]) for i in range(2) for j in range(3)]
    ours = compute_metrics(pred, true)
    # OpenSTL takes the mean and the log in float32 (about 1e-6 relative); ours is exact float64
    assert ours["psnr"] == pytest.approx(np.mean(frames), rel=2e-6)


def test_identical_inputs_and_worked_example():
    frames = np.zeros((1, 2, 1, 64, 64), np.float32)
    same = compute_metrics(frames, frames)
    assert same["mse"] == 0 and same["ssim"] == 1.0 and same["psnr_inf_frames"] == 2 and same["psnr"] == np.inf
    assert same["psnr_finite"] is None
    # spec worked example: per-frame-sum MSE 47.0 on 64x64 frames <-> per-pixel 47/4096
    true = np.zeros((2, 1, 1, 64, 64), np.float32)
    pred = true.copy()
    pred.reshape(2, -1)[:, :47] = 1.0                      # 47 wrong pixels with error 1 per frame
    result = compute_metrics(pred, true)
    assert result["mse"] == 47.0 and result["mae"] == 47.0
    assert result["mse_per_pixel"] == pytest.approx(47.0 / 4096) == pytest.approx(0.01147, abs=5e-6)


def test_torch_and_float64_inputs_give_the_same_numbers():
    rng = np.random.default_rng(5)
    true = rng.random((2, 2, 1, 10, 11))
    pred = rng.random((2, 2, 1, 10, 11)) * 1.2 - 0.1
    from_numpy = compute_metrics(pred, true)
    metric = PredictionMetrics()
    metric.update(torch.from_numpy(pred), torch.from_numpy(true))
    from_torch = metric.compute()
    assert from_numpy == from_torch
    _assert_matches(from_numpy, reference_metrics(pred, true))
