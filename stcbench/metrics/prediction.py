"""OpenSTL-identical prediction metrics with additive float64 state.

`PredictionMetrics` keeps, for every output index t, float64 sums over sequences of the
per-frame quantities (squared/absolute error sums, SSIM, finite PSNR) plus a count of frames
with PSNR = +inf. All states are reduced with "sum", so streaming over batches, and a DDP
all-reduce of per-process states, give exactly the numbers of one pass over the whole set.

Definitions (metrics spec): `mse`/`mae` are per-frame sums over C*H*W of the unclipped error,
averaged over all N*T frames; `ssim` (data range 2.0, as OpenSTL with scikit-image <= 0.19) and
`psnr` use the prediction clipped to [0, 1]. PSNR_f = -10 log10(mean_{c,h,w} err^2) per frame,
+inf when a frame is reproduced exactly; `psnr` is the plain mean over all frames, so it is
+inf as soon as one frame is exact (as OpenSTL's mean would be); such frames are counted in
`psnr_inf_frames`, and `psnr_finite` gives the mean over the remaining frames.
"""
from __future__ import annotations

import math
import mmap
import warnings
from typing import Any

import numpy as np
import torch
from stcbench.errors import ConfigError, DataError
from stcbench.metrics import compiled
from stcbench.metrics.frames import FrameKernel, max_planes_for

PAPER_SSIM_DATA_RANGE = 2.0
EXTRA_SSIM_DATA_RANGE = 1.0       # reported as `ssim_dr1`
PER_FRAME_STATES = ("se", "ae", "ssim", "ssim_dr1", "psnr_finite_sum", "psnr_finite_count", "psnr_inf")


class PredictionState:
    """MSE, MAE, SSIM, PSNR (+ per output frame) of predictions `[B, T, C, H, W]` in [0, 1] scale.

    The states and their update/compute, shared by `PredictionMetrics` (a torchmetrics Metric, for
    training, DDP and logging; stcbench/metrics/metric.py) and `PredictionSums` (the same sums
    without torchmetrics, whose import costs more than a second: `compute_metrics`).

    `ssim_dr1=True` also reports SSIM with data range 1.0 as `ssim_dr1` (`ssim` always uses 2.0).
    `out_frames` fixes T up front (else it is taken from the first batch); fixing it lets a DDP
    process that saw no batch still take part in the sum reduction.
    """

    def __init__(self, ssim_dr1: bool = False, out_frames: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.with_ssim_dr1 = bool(ssim_dr1)
        size = int(out_frames or 0)
        for name in PER_FRAME_STATES:
            if name == "ssim_dr1" and not self.with_ssim_dr1:
                continue
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_sequences", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frame_size", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")
        self._kernel: FrameKernel | compiled.CompiledFrameKernel | None = None
        self.last_true_outside = 0
        self.last_per_sequence: dict[str, torch.Tensor] = {}     # of the latest batch (per_sequence_values)

    # ------------------------------------------------------------------ update
    @property
    def data_ranges(self) -> tuple[float, ...]:
        return (PAPER_SSIM_DATA_RANGE, EXTRA_SSIM_DATA_RANGE) if self.with_ssim_dr1 else (PAPER_SSIM_DATA_RANGE,)

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        check_shapes(tuple(pred.shape), tuple(true.shape))
        batch, steps, channels, height, width = pred.shape
        frames = self.frame_values(pred.detach(), true.detach())
        self._ensure_frame_states(steps)
        for name, values in frames.items():
            state = getattr(self, name)
            state += values.view(batch, steps).sum(dim=0).to(state.device)
        self.n_sequences += batch
        self.frame_size.fill_(float(channels * height * width))
        self.last_per_sequence = per_sequence_values(frames, batch, steps)

    def frame_values(self, pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-frame (flattened n*t) contributions to the per-frame states, float64.

        Also records how many target values lie outside [0, 1] as `last_true_outside` (input validation).
        """
        batch, steps, channels, height, width = pred.shape
        planes_pred = pred.reshape(-1, height, width)
        planes_true = true.reshape(-1, height, width)
        total = batch * steps * channels
        kernel = self._kernel_for(min(total, max_planes_for(height, width)), height, width, pred.device)
        # the compiled kernel takes the whole block at once; the torch kernel's workspace holds whole frames
        step = total if isinstance(kernel, compiled.CompiledFrameKernel) else \
            max(1, max_planes_for(height, width) // channels) * channels
        parts: list[dict[str, torch.Tensor]] = []
        outside = 0
        for start in range(0, total, step):
            stop = min(start + step, total)
            kernel = self._kernel_for(stop - start, height, width, pred.device)
            sums = kernel(planes_pred[start:stop], planes_true[start:stop], self.data_ranges)
            outside += sums.true_outside
            parts.append(self._frames_from_planes(sums, channels, height, width))
        self.last_true_outside = outside
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    def _frames_from_planes(self, sums, channels: int, height: int, width: int) -> dict[str, torch.Tensor]:
        per_frame = lambda v: v.view(-1, channels)  # noqa: E731
        se_clipped = per_frame(sums.se_clipped).sum(dim=1)
        mse_frame = se_clipped / (channels * height * width)
        exact = mse_frame == 0
        psnr = torch.where(exact, torch.zeros_like(mse_frame), -10.0 * torch.log10(mse_frame))
        out = {
            "se": per_frame(sums.se).sum(dim=1),
            "ae": per_frame(sums.ae).sum(dim=1),
            "ssim": per_frame(sums.ssim[PAPER_SSIM_DATA_RANGE]).mean(dim=1),
            "psnr_finite_sum": psnr,
            "psnr_finite_count": (~exact).to(torch.float64),
            "psnr_inf": exact.to(torch.float64),
        }
        if self.with_ssim_dr1:
            out["ssim_dr1"] = per_frame(sums.ssim[EXTRA_SSIM_DATA_RANGE]).mean(dim=1)
        return out

    def _kernel_for(self, planes: int, height: int, width: int, device: torch.device):
        """The compiled CPU kernel when numba is installed, else (and on GPUs) the torch kernel."""
        if self._kernel is None or not self._kernel.fits(planes, height, width, device):
            capacity = max(planes, max_planes_for(height, width))
            try:
                if device.type == "cpu" and compiled.available():
                    self._kernel = compiled.CompiledFrameKernel(height, width)
                else:
                    self._kernel = FrameKernel(capacity, height, width, device)
            except ValueError as exc:
                raise DataError(f"{exc}; SSIM uses a 7x7 window, so frames must be at least 7x7") from None
        return self._kernel

    def _ensure_frame_states(self, steps: int) -> None:
        for name in self._per_frame_names():
            state = getattr(self, name)
            if state.numel() == 0:
                setattr(self, name, torch.zeros(steps, dtype=torch.float64, device=state.device))
            elif state.numel() != steps:
                raise DataError(f"batches have {steps} output frames but earlier batches had {state.numel()}; "
                                "use one PredictionMetrics per prediction length")

    def _per_frame_names(self) -> list[str]:
        return [n for n in PER_FRAME_STATES if n != "ssim_dr1" or self.with_ssim_dr1]

    # ------------------------------------------------------------------ compute
    def compute(self) -> dict[str, Any]:
        n = float(self.n_sequences)
        if n == 0:
            raise DataError("no predictions were evaluated (empty test set?)")
        steps = self.se.numel()
        frames = n * steps
        frame_size = float(self.frame_size)
        inf_per_step = self.psnr_inf.double()
        per_frame = {
            "mse": (self.se / n).tolist(),
            "mae": (self.ae / n).tolist(),
            "ssim": (self.ssim / n).tolist(),
            "psnr": [math.inf if k > 0 else s / n
                     for s, k in zip(self.psnr_finite_sum.tolist(), inf_per_step.tolist())],
        }
        inf_frames = int(round(float(inf_per_step.sum())))
        finite_count = float(self.psnr_finite_count.sum())
        psnr_finite = float(self.psnr_finite_sum.sum()) / finite_count if finite_count else None
        mse, mae = float(self.se.sum()) / frames, float(self.ae.sum()) / frames
        result: dict[str, Any] = {
            "mse": mse,
            "mae": mae,
            "ssim": float(self.ssim.sum()) / frames,
            "psnr": math.inf if inf_frames else psnr_finite,
            "mse_per_pixel": mse / frame_size,
            "mae_per_pixel": mae / frame_size,
            "psnr_inf_frames": inf_frames,
            "psnr_finite": psnr_finite,
            "n_sequences": int(round(n)),
            "n_frames": int(round(frames)),
            "frame_size": int(round(frame_size)),
            "ssim_data_range": PAPER_SSIM_DATA_RANGE,
            "per_frame": per_frame,
        }
        if self.with_ssim_dr1:
            result["ssim_dr1"] = float(self.ssim_dr1.sum()) / frames
            per_frame["ssim_dr1"] = (self.ssim_dr1 / n).tolist()
        return result


def per_sequence_values(frames: dict[str, torch.Tensor], batch: int, steps: int) -> dict[str, torch.Tensor]:
    """mse, mae, ssim, psnr of each sequence of a batch (float64, on the CPU): the means over its frames
    of the per-frame values, so that their mean over sequences is the metric over the set (PSNR: +inf
    for a sequence with an exactly reproduced frame)."""
    def mean(name: str) -> torch.Tensor:
        return frames[name].view(batch, steps).mean(dim=1).detach().cpu()

    psnr = mean("psnr_finite_sum")
    exact = frames["psnr_inf"].view(batch, steps).sum(dim=1).detach().cpu() > 0
    return {"mse": mean("se"), "mae": mean("ae"), "ssim": mean("ssim"),
            "psnr": torch.where(exact, torch.full_like(psnr, math.inf), psnr)}


class PredictionSums(PredictionState):
    """`PredictionState` as a plain accumulator (states are attributes; no DDP reduction)."""

    def __init__(self, ssim_dr1: bool = False, out_frames: int | None = None):
        self._defaults: dict[str, torch.Tensor] = {}
        super().__init__(ssim_dr1=ssim_dr1, out_frames=out_frames)

    def add_state(self, name: str, default: torch.Tensor, dist_reduce_fx: str | None = None) -> None:
        self._defaults[name] = default
        setattr(self, name, default.clone())


def check_shapes(pred_shape: tuple[int, ...], true_shape: tuple[int, ...],
                 names: tuple[str, str] = ("predictions", "targets")) -> None:
    """Both `[N, T, C, H, W]`, equal, non-empty, frames at least 7x7."""
    for name, shape in zip(names, (pred_shape, true_shape)):
        if len(shape) != 5:
            raise DataError(f"{name} have shape {list(shape)} ({len(shape)}-D); expected 5-D "
                            "[N, T, C, H, W] (add the channel axis, e.g. x[:, :, None] for gray frames)")
        if min(shape) < 1:
            raise DataError(f"{name} have shape {list(shape)} with an empty axis; pass at least one sequence")
    if tuple(pred_shape) != tuple(true_shape):
        raise DataError(f"{names[0]} shape {list(pred_shape)} differs from {names[1]} shape {list(true_shape)}; "
                        "pass predictions and targets of the same [N, T, C, H, W] shape")
    height, width = pred_shape[-2:]
    if height < 7 or width < 7:
        raise DataError(f"frames are {height}x{width}; SSIM uses a 7x7 window, so frames must be at least 7x7")


def resolve_ssim_data_range(ssim_data_range: float) -> bool:
    """`ssim_data_range` 2.0 (paper) or 1.0 (adds `ssim_dr1`) -> whether to add `ssim_dr1`."""
    value = float(ssim_data_range)
    if value == PAPER_SSIM_DATA_RANGE:
        return False
    if value == EXTRA_SSIM_DATA_RANGE:
        return True
    raise ConfigError(f"ssim_data_range must be 2.0 (paper-compatible, reported as `ssim`) or 1.0 "
                      f"(reported additionally as `ssim_dr1`), got {ssim_data_range}")


def compute_metrics(pred, true, ssim_data_range: float = PAPER_SSIM_DATA_RANGE, batch_size: int = 64,
                    names: tuple[str, str] = ("predictions", "targets"), check_values: bool = True,
                    on_batch=None) -> dict[str, Any]:
    """All metrics of `pred`, `true` (`[N, T, C, H, W]` numpy arrays, memmaps or tensors) in one call.

    Streams over `batch_size` sequences at a time: each block is converted straight into the
    float64 workspace, so a memory-mapped input is never loaded as a whole; pages of a
    read-only memmap are released after their block is done. `check_values` raises DataError
    on non-finite values, on targets outside [0, 1] and on integer arrays. `on_batch(done, total)`
    is called after every block (progress display).
    """
    check_shapes(tuple(pred.shape), tuple(true.shape), names)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive number of sequences, got {batch_size}")
    if check_values:
        for name, array in zip(names, (pred, true)):
            _check_float_dtype(name, array)
    metric = PredictionSums(ssim_dr1=resolve_ssim_data_range(ssim_data_range))
    total = pred.shape[0]
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        pred_block, true_block = _as_tensor(pred[start:stop]), _as_tensor(true[start:stop])
        metric.update(pred_block, true_block)
        if check_values and metric.last_true_outside:
            _raise_out_of_range(true_block, start, names[1])
        if check_values and not bool(torch.isfinite(metric.se).all()):
            _raise_non_finite(pred_block, true_block, start, names)   # a non-finite value makes its `se` NaN/inf
        for array in (pred, true):
            release_pages(array, start, stop)
        if on_batch is not None:
            on_batch(stop, total)
    return metric.compute()


def _as_tensor(block) -> torch.Tensor:
    if isinstance(block, torch.Tensor):
        return block
    with warnings.catch_warnings():   # read-only memmaps: the tensor is only ever read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(block))


def _check_float_dtype(name: str, array) -> None:
    dtype = array.dtype
    is_float = dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)
    if not is_float:
        raise DataError(f"{name} have dtype {dtype}; metrics expect float frames in [0, 1] "
                        "(convert, e.g. uint8 frames with x.astype('float32') / 255)")


def _raise_out_of_range(true: torch.Tensor, offset: int, name: str) -> None:
    low, high = (float(v) for v in torch.aminmax(true[torch.isfinite(true)]))
    raise DataError(f"{name} have values in [{low:.4g}, {high:.4g}] (sequences from {offset}); targets must "
                    "be in [0, 1] (e.g. divide 8-bit frames by 255, map TaxiBJ flows with (x + 1) / 2)")


def _raise_non_finite(pred: torch.Tensor, true: torch.Tensor, offset: int, names: tuple[str, str]) -> None:
    fixes = ("fix or drop the diverged predictions before evaluating", "fix or drop those target sequences")
    for name, block, fix in zip(names, (pred, true), fixes):
        finite = torch.isfinite(block).flatten(1).all(dim=1)
        if not bool(finite.all()):
            index = offset + int((~finite).nonzero()[0])
            raise DataError(f"{name}: NaN or infinite values (first in sequence {index}); {fix}")
    raise DataError(f"{names[0]} give non-finite errors (sequences from {offset}); values are too large")


def release_pages(array, start: int, stop: int) -> None:
    """Drop the resident pages of rows [start, stop) of a read-only memmap (they stay in the page cache).

    Keeps the process's memory at one block instead of the whole file while streaming.
    """
    mapping = getattr(array, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
        row = array.strides[0]
        begin = array.ctypes.data - base + start * row
        end = array.ctypes.data - base + stop * row
        begin -= begin % mmap.PAGESIZE
        if end > begin:
            mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)
    except (OSError, ValueError, RecursionError, TypeError, BufferError):
        pass
