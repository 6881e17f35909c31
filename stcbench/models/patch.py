"""Space-to-depth patching of frame sequences (network-and-training spec §1.1).

A p x p patch of a C-channel image becomes p²·C channels with the channel index
`(i·p + j)·C + c` for the pixel at row offset i, column offset j and image channel c,
exactly as the official `reshape_patch` / `reshape_patch_back`.
"""
from __future__ import annotations

import torch

from stcbench.errors import ConfigError

CHANNEL_LAST = "channel_last"     # [B, T, H, W, C]   (official layout)
CHANNEL_FIRST = "channel_first"   # [B, T, C, H, W]   (stcbench layout)
LAYOUTS = (CHANNEL_LAST, CHANNEL_FIRST)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown tensor layout {layout!r}; choose one of {list(LAYOUTS)}")


def _check_divisible(height: int, width: int, patch_size: int) -> None:
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ConfigError(f"frame size {height}x{width} is not divisible by patch_size {patch_size}; "
                          f"choose a patch size that divides both sides")


def patchify(frames: torch.Tensor, patch_size: int, layout: str = CHANNEL_LAST) -> torch.Tensor:
    """[B,T,H,W,C] -> [B,T,H/p,W/p,p²C] (channel_last) or [B,T,C,H,W] -> [B,T,p²C,H/p,W/p]."""
    _check_layout(layout)
    if frames.dim() != 5:
        raise ConfigError(f"patchify expects a 5-d [B,T,...] tensor, got shape {tuple(frames.shape)}")
    if layout == CHANNEL_FIRST:
        frames = frames.permute(0, 1, 3, 4, 2)
    b, t, h, w, c = frames.shape
    p = patch_size
    _check_divisible(h, w, p)
    patched = (frames.reshape(b, t, h // p, p, w // p, p, c)
               .transpose(3, 4)
               .reshape(b, t, h // p, w // p, p * p * c))
    if layout == CHANNEL_FIRST:
        patched = patched.permute(0, 1, 4, 2, 3)
    return patched.contiguous()


def unpatchify(patched: torch.Tensor, patch_size: int, layout: str = CHANNEL_LAST) -> torch.Tensor:
    """Inverse of `patchify` for the same layout."""
    _check_layout(layout)
    if patched.dim() != 5:
        raise ConfigError(f"unpatchify expects a 5-d [B,T,...] tensor, got shape {tuple(patched.shape)}")
    if layout == CHANNEL_FIRST:
        patched = patched.permute(0, 1, 3, 4, 2)
    b, t, hp, wp, cp = patched.shape
    p = patch_size
    if cp % (p * p):
        raise ConfigError(f"{cp} channels cannot be un-patched with patch_size {p} (need a multiple of {p * p})")
    c = cp // (p * p)
    frames = (patched.reshape(b, t, hp, wp, p, p, c)
              .transpose(3, 4)
              .reshape(b, t, hp * p, wp * p, c))
    if layout == CHANNEL_FIRST:
        frames = frames.permute(0, 1, 4, 2, 3)
    return frames.contiguous()
