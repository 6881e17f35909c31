"""Additive state: uneven streaming, merged process states and reset equal one pass."""
import copy

import numpy as np
import pytest
import torch

from stcbench.errors import DataError
from stcbench.metrics import PredictionMetrics, compute_metrics
from stcbench.metrics.frames import max_planes_for
from tests.metrics.helpers import mnist_like


def _data(n=7, shape=(4, 1, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    true = mnist_like(rng, (n, *shape))
    pred = np.clip(true + rng.normal(0, 0.2, true.shape), -0.1, 1.1).astype(np.float32)
    pred[min(3, n - 1), 1] = true[min(3, n - 1), 1]                            # one exact frame (PSNR inf) in the middle
    return torch.from_numpy(pred), torch.from_numpy(true)


def _one_pass(pred, true, **kw):
    metric = PredictionMetrics(**kw)
    metric.update(pred, true)
    return metric.compute()


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "per_frame":
            for name in a[key]:
                np.testing.assert_allclose(a[key][name], b[key][name], rtol=1e-13, atol=1e-13)
        elif isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-13, abs=1e-13)
        else:
            assert a[key] == b[key]


def test_uneven_streaming_equals_one_pass():
    pred, true = _data()
    streamed = PredictionMetrics(ssim_dr1=True)
    for lo, hi in ((0, 1), (1, 4), (4, 5), (5, 7)):
        streamed.update(pred[lo:hi], true[lo:hi])
    _assert_same(streamed.compute(), _one_pass(pred, true, ssim_dr1=True))


def test_two_process_states_sum_to_the_whole():
    pred, true = _data(seed=1)
    rank0, rank1 = PredictionMetrics(), PredictionMetrics()
    rank0.update(pred[:2], true[:2])
    rank1.update(pred[2:5], true[2:5])
    rank1.update(pred[5:], true[5:])
    merged = copy.deepcopy(rank0)
    merged.merge_state(rank1)                    # what the DDP all-reduce ("sum") does to every state
    _assert_same(merged.compute(), _one_pass(pred, true))
    # the same by hand: every state is a plain float64 sum (max for the constant frame size)
    for name in merged._defaults:
        assert getattr(merged, name).dtype == torch.float64
    summed = PredictionMetrics()
    summed.update(pred[:1], true[:1])            # shapes the states
    for name in rank0._defaults:
        a, b = getattr(rank0, name), getattr(rank1, name)
        setattr(summed, name, torch.maximum(a, b) if name == "frame_size" else a + b)
    _assert_same(summed.compute(), _one_pass(pred, true))


def test_blocks_split_inside_a_batch_match_small_batches():
    # a batch larger than one kernel block (block = whole frames) equals frame-by-frame updates
    height = width = 64
    per_block = max_planes_for(height, width)
    rng = np.random.default_rng(3)
    n = per_block // 4 + 3                                    # T=4, C=1 -> more planes than one block
    true = torch.from_numpy(mnist_like(rng, (n, 4, 1, height, width), blobs=1))
    pred = (true + 0.1 * torch.rand(true.shape, generator=torch.Generator().manual_seed(0))).float()
    small = PredictionMetrics()
    for i in range(n):
        small.update(pred[i:i + 1], true[i:i + 1])
    _assert_same(small.compute(), _one_pass(pred, true))


def test_compute_metrics_batch_size_does_not_change_results():
    pred, true = _data(seed=2)
    results = [compute_metrics(pred.numpy(), true.numpy(), batch_size=b) for b in (1, 3, 100)]
    _assert_same(results[0], results[1])
    _assert_same(results[0], results[2])


def test_reset_and_fixed_out_frames():
    pred, true = _data(seed=4)
    metric = PredictionMetrics(out_frames=4)
    assert metric.se.shape == (4,)
    metric.update(pred[:2] * 0, true[:2])
    metric.reset()
    metric.update(pred, true)
    _assert_same(metric.compute(), _one_pass(pred, true))
    with pytest.raises(DataError, match="output frames"):
        metric.update(pred[:, :3], true[:, :3])


def test_empty_metric_and_bad_shapes_raise_clear_errors():
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no predictions"):
        PredictionMetrics().compute()
    with pytest.raises(DataError, match="5-D"):
        PredictionMetrics().update(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(DataError, match="differs"):
        PredictionMetrics().update(torch.zeros(1, 2, 1, 8, 8), torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(DataError, match="at least 7x7"):
        PredictionMetrics().update(torch.zeros(1, 2, 1, 6, 8), torch.zeros(1, 2, 1, 6, 8))


def test_result_keys_follow_the_contract():
    pred, true = _data(n=2, seed=5)
    result = _one_pass(pred, true)
    for key in ("mse", "mae", "ssim", "psnr", "mse_per_pixel", "mae_per_pixel", "psnr_inf_frames",
                "n_sequences", "n_frames", "per_frame"):
        assert key in result
    assert "ssim_dr1" not in result
    assert set(result["per_frame"]) == {"mse", "mae", "ssim", "psnr"}
    assert result["n_sequences"] == 2 and result["n_frames"] == 8
    assert result["mse_per_pixel"] == pytest.approx(result["mse"] / 256)



def test_memory_mapped_files_and_their_slices_give_the_same_results(tmp_path):
    pred, true = _data(n=9, seed=5)
    np.save(tmp_path / "pred.npy", pred.numpy())
    np.save(tmp_path / "true.npy", true.numpy())
    mapped_pred = np.load(tmp_path / "pred.npy", mmap_mode="r")
    mapped_true = np.load(tmp_path / "true.npy", mmap_mode="r")
    for lo, hi in ((0, 9), (2, 9), (3, 7)):
        _assert_same(compute_metrics(mapped_pred[lo:hi], mapped_true[lo:hi], batch_size=2),
                     _one_pass(pred[lo:hi], true[lo:hi]))
