"""Staggered allocations: same shape, dtype and strides as asked, at varying offsets within a page."""
from __future__ import annotations

import torch

from stcbench.kernels import staggered


def test_empty_like_keeps_layout_and_staggers_offsets():
    like = torch.randn(2, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    made = [staggered.empty_like(like) for _ in range(8)]
    for t in made:
        assert t.shape == like.shape and t.dtype == like.dtype and t.stride() == like.stride()
        assert t.is_contiguous(memory_format=torch.channels_last)
    offsets = {t.data_ptr() % 4096 for t in made}
    assert len(offsets) > 1, "every tensor starts at the same offset within a page"
    for i, t in enumerate(made):                     # independent storage: writing one leaves the others
        t.fill_(float(i))
    assert all(float(t.min()) == float(t.max()) == float(i) for i, t in enumerate(made))


def test_empty_contiguous_and_zeros():
    t = staggered.empty((3, 4, 5), torch.float64)
    assert t.is_contiguous() and t.shape == (3, 4, 5) and t.dtype == torch.float64
    z = staggered.zeros((6, 2), torch.float32)
    assert z.is_contiguous() and float(z.abs().sum()) == 0.0
    weird = torch.randn(4, 6).t()                    # neither contiguous nor channels-last: made contiguous
    assert staggered.empty_like(weird).is_contiguous()
