"""Winograd F(4x4, 5x5): values and gradients equal torch's direct convolution (float64)."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from stcbench.kernels import winograd
from stcbench.models import RecurrentPredictor, ScheduledSampling
from tests.conftest import assert_close_scaled

pytestmark = pytest.mark.skipif(not winograd.available(), reason="numba is not installed")


def test_transforms_compute_the_1d_correlation_exactly():
    a_t, g, b_t = (torch.from_numpy(m) for m in (winograd.A_T, winograd.G, winograd.B_T))
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(8, generator=gen, dtype=torch.float64)
    w = torch.randn(5, generator=gen, dtype=torch.float64)
    y = a_t @ ((g @ w) * (b_t @ d))
    direct = torch.stack([d[i:i + 5] @ w for i in range(4)])
    torch.testing.assert_close(y, direct, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("batch,channels,out_channels,height,width", [
    (1, 16, 16, 4, 4),        # one tile
    (5, 3, 7, 13, 18),        # two batch chunks, partial edge tiles
    (9, 20, 24, 3, 3),        # map smaller than a tile
    (2, 64, 32, 32, 32),      # the 3x64 network's shape
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_equal_conv2d(batch, channels, out_channels, height, width, channels_last):
    gen = torch.Generator().manual_seed(batch + channels)
    x = torch.randn(batch, channels, height, width, generator=gen, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w = torch.randn(out_channels, channels, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(out_channels, generator=gen, dtype=torch.float64, requires_grad=True)
    y = winograd.winograd_conv2d(x, w, b)
    ref = F.conv2d(x, w, b, padding=2)
    assert y.shape == ref.shape
    assert_close_scaled(y, ref.detach(), what="output", rtol=1e-12)
    grad = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(y, (x, w, b), grad)
    want = torch.autograd.grad(ref, (x, w, b), grad)
    for name, a, e in zip(("x", "weight", "bias"), got, want):
        assert_close_scaled(a, e, what=f"grad/{name}", rtol=1e-12)


def test_gradcheck():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(winograd.winograd_conv2d, (x, w))


def test_only_the_needed_gradient_is_computed():
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    w = torch.randn(16, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    (gw,) = torch.autograd.grad(winograd.winograd_conv2d(x, w).sum(), (w,))
    (gw_ref,) = torch.autograd.grad(F.conv2d(x, w, padding=2).sum(), (w,))
    assert_close_scaled(gw, gw_ref, what="grad/weight", rtol=1e-12)


def test_float32_error_is_bounded():
    """F(4x4, 5x5) rounds more than a direct convolution in float32; the bound is documented."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, 32, 32, generator=gen, dtype=torch.float64)
    w = torch.randn(64, 64, 5, 5, generator=gen, dtype=torch.float64) * 0.05
    exact = F.conv2d(x, w, padding=2)
    y = winograd.winograd_conv2d(x.float(), w.float()).double()
    assert float((y - exact).abs().max() / exact.abs().max()) < 5e-5


def test_supported_only_for_stride1_same_padding_5x5():
    x = torch.zeros(1, 64, 8, 8)
    ok = torch.nn.Conv2d(64, 64, 5, padding=2, bias=False)
    assert winograd.supported(ok, x)
    assert not winograd.supported(torch.nn.Conv2d(64, 64, 3, padding=1), x)
    assert not winograd.supported(torch.nn.Conv2d(64, 64, 5, padding=2, stride=2), x)
    assert not winograd.supported(torch.nn.Conv2d(64, 64, 5, padding=2, groups=4), x)
    assert not winograd.supported(torch.nn.Conv2d(64, 64, 5, padding=0), x)
    assert not winograd.supported(torch.nn.Conv2d(16, 64, 5, padding=2), torch.zeros(1, 16, 8, 8))
    assert not winograd.supported(torch.nn.Conv2d(32, 32, 5, padding=2), torch.zeros(1, 32, 8, 8))
    assert winograd.supported(torch.nn.Conv2d(32, 128, 5, padding=2), torch.zeros(1, 32, 8, 8))  # ConvLSTM's gates
    assert winograd.supported(torch.nn.Conv2d(48, 48, 5, padding=2), torch.zeros(1, 48, 8, 8))
    assert winograd.supported(torch.nn.Conv2d(4, 16, 5, padding=2), torch.zeros(1, 4, 8, 8), every=True)
    assert not winograd.supported(ok, x.half())
    assert not winograd.supported(ok, x.to(torch.bfloat16))


def test_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("STCBENCH_CONV", "direct")
    assert not winograd.available()
    assert not winograd.supported(torch.nn.Conv2d(64, 64, 5, padding=2), torch.zeros(1, 64, 8, 8))


@pytest.mark.parametrize("cell,options", [("stclif", {"gradient_detach": 0}), ("lif", {}), ("convlstm", {})])
def test_fast_path_with_winograd_equals_reference_loop(cell, options):
    """Every 5x5 input convolution by Winograd (layer 1 too), edge tiles included (10x10 maps)."""
    torch.manual_seed(0)
    ref = RecurrentPredictor(cell, 1, (16, 16), patch_size=2, in_frames=3, cell_options=options).double()
    fast = RecurrentPredictor(cell, 1, (16, 16), patch_size=2, in_frames=3, cell_options=options,
                              fast=True, conv_algorithm="winograd").double()
    fast.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand(5, 6, 1, 20, 20, generator=gen, dtype=torch.float64)
    mask = ScheduledSampling(start_value=0.5, decay_rate=0.0).mask(5, 2, generator=gen, dtype=torch.float64)
    outputs, grads = [], []
    for model in (ref, fast):
        out = model(frames, mask)
        model.loss(out, frames).backward()
        outputs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert_close_scaled(outputs[1], outputs[0], what="next_frames")
    for name, g in grads[0].items():
        assert_close_scaled(grads[1][name], g, what=f"grad/{name}")


def test_unknown_conv_algorithm_is_a_config_error():
    from stcbench.errors import ConfigError

    with pytest.raises(ConfigError, match="conv_algorithm"):
        RecurrentPredictor("lif", 1, (16,), conv_algorithm="fft")


def test_fast_path_runs_under_cpu_autocast():
    """bfloat16 autocast (trainer.precision bf16-mixed): bfloat16 activations take the direct kernels
    (Winograd runs only where input and weights share float32/float64) and nothing breaks."""
    torch.manual_seed(0)
    model = RecurrentPredictor("stclif", 1, (64, 64), patch_size=2, in_frames=2, fast=True)
    frames = torch.rand(2, 4, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(frames, None)
        loss = model.loss(out.float(), frames)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _windows(x, pad=2):
    """[B, H, W, C] -> the 8 x 8 input windows of every 4 x 4 output tile, zero outside: [B, th, tw, 8, 8, C]."""
    b, h, w, c = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    padded = torch.zeros(b, 4 * th + 4, 4 * tw + 4, c, dtype=x.dtype)
    padded[:, pad:pad + h, pad:pad + w] = x
    return torch.stack([torch.stack([padded[:, 4 * i:4 * i + 8, 4 * j:4 * j + 8] for j in range(tw)], 1)
                        for i in range(th)], 1)


def test_unrolled_input_transform_and_its_adjoint_use_b_t():
    """The input transform (B^T's rows written out) equals B^T d B per tile; its adjoint passes the dot-product test."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 13, 10, generator=gen, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    plan = winograd._Plan(2, 3, 13, 10)
    v = plan.input_transform(x).clone()                          # [64, tiles, C]
    b_t = torch.from_numpy(winograd.B_T)
    d = _windows(x.permute(0, 2, 3, 1))                          # [B, th, tw, 8, 8, C]
    ref = torch.einsum("pa,bijaqc,rq->prbijc", b_t, d, b_t).reshape(64, -1, 3)
    torch.testing.assert_close(v, ref, rtol=1e-13, atol=1e-13)
    dv = torch.randn(v.shape, generator=gen, dtype=torch.float64)
    dx = torch.zeros(2, 13, 10, 3, dtype=torch.float64)
    plan.input_adjoint(dv, dx)
    lhs = float((dx * x.permute(0, 2, 3, 1)).sum())
    rhs = float((dv * v).sum())
    assert abs(lhs - rhs) <= 1e-11 * max(1.0, abs(rhs))
