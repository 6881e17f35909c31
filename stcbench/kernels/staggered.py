"""Scratch and output tensors placed at staggered offsets from page boundaries (CPU kernels).

Large tensors come from the C allocator at the same offset within a 4 KiB page (glibc serves
them from fresh mappings: page start plus a fixed header).  A loop that reads and writes several
such arrays at the same index then maps them to the same cache sets and can pay the CPU's
4K-aliasing penalty.  Allocating each tensor a few cache lines into a slightly larger buffer, the
offset varying from call to call, avoids that.  Measured on the 2-core machine of
results/benchmarks (interleaved processes, STC-LIF 3x64 training step): the numba kernels of the
fast path took 225-231 ms per step with staggering against 242-247 ms without, in the machine's
slow state; no difference otherwise.
"""
from __future__ import annotations

import math

import torch

_LINE = 64                    # bytes
_SLOTS = 8
_slot = 0


def empty(shape, dtype: torch.dtype, device=None, strides=None) -> torch.Tensor:
    """An uninitialised tensor of `shape` (contiguous, or with `strides`) at a staggered offset."""
    global _slot
    _slot = (_slot + 1) % _SLOTS
    element = torch.empty((), dtype=dtype).element_size()
    pad = (2 * _slot + 1) * _LINE // element            # 1, 3, 5, ... cache lines: never a page apart
    numel = math.prod(shape)
    if strides is None:
        strides, step = [], 1
        for size in reversed(shape):
            strides.append(step)
            step *= size
        strides = tuple(reversed(strides))
    flat = torch.empty(numel + pad, dtype=dtype, device=device)
    return flat.as_strided(tuple(shape), tuple(strides), pad)


def empty_like(like: torch.Tensor) -> torch.Tensor:
    """empty(...) with the shape, dtype and strides of `like` (contiguous or channels-last; else contiguous)."""
    dense = like.is_contiguous() or (like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last))
    return empty(like.shape, like.dtype, like.device, like.stride() if dense else None)


def zeros(shape, dtype: torch.dtype, device=None) -> torch.Tensor:
    return empty(shape, dtype, device).zero_()
