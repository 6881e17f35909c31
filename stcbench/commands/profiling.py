"""Timing and memory of training steps (forward over all steps + backward + Adam).

Used by `stcbench profile` and tools/bench_training.py.  Memory on CPU is the peak
resident set size during the measured steps minus the resident size just before them
(Linux: VmHWM after resetting it through /proc/self/clear_refs); on CUDA it is
`torch.cuda.max_memory_allocated` minus the allocation before the steps.
"""
from __future__ import annotations

import platform
import statistics
import time
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from stcbench.data import get_dataset_spec
from stcbench.data.specs import DatasetSpec
from stcbench.models.cost import reference_path
from stcbench.models.predictor import RecurrentPredictor, count_parameters
from stcbench.models.sampling import ScheduledSampling

def dataset_geometry(name: str, patch_size: int | None = None) -> DatasetSpec:
    """The dataset's spec for a training window: out_frames is T_out of training, not of a long test (kth40);
    `patch_size` replaces the dataset's own when given (model.patch_size of a config)."""
    spec = get_dataset_spec(name)
    return dataclasses.replace(spec, out_frames=spec.train_out_frames or spec.out_frames, train_out_frames=None,
                               patch_size=patch_size or spec.patch_size)


# -- memory ------------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory above the level at `start()`, in MiB."""

    def __init__(self, device: torch.device):
        self.device = device
        self.baseline = 0
        self.method = ""

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated - allocated before"
            return
        self.baseline = (_status_kb("VmRSS") or 0) * 1024
        self.method = ("peak RSS (VmHWM, reset) - RSS before" if _reset_peak_rss()
                       else "max RSS of the process - RSS before")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = (_status_kb("VmHWM") or 0) * 1024
            if not peak:
                import resource
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(peak - self.baseline, 0) / 2**20


# -- the convolutions-alone bound --------------------------------------------------------------
def conv_calls_of_one_step(model: RecurrentPredictor, frames: torch.Tensor, mask) -> list[tuple[nn.Conv2d, tuple]]:
    """(module, input shape) of every Conv2d call of one reference-loop forward (all network steps)."""
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: calls.append((mod, tuple(args[0].shape))))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad(), reference_path(model):
            model(frames, mask)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_conv_call(module: nn.Conv2d, shape: tuple, repeats: int = 3, channels_last: bool = False) -> float:
    """Fastest of `repeats` timings of forward + backward (input and weight gradients) of one
    conv call, in the memory order the path uses (the minimum filters out interference)."""
    weight = module.weight.detach().clone().requires_grad_(True)
    x = torch.rand(shape, device=weight.device, dtype=weight.dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad_out = None
    times = []
    for _ in range(repeats + 1):
        _sync(weight.device)
        start = time.perf_counter()
        y = torch.nn.functional.conv2d(x, weight, None, module.stride, module.padding, module.dilation, module.groups)
        if grad_out is None:
            grad_out = torch.rand_like(y)
        torch.autograd.grad(y, (x, weight), grad_out)
        _sync(weight.device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def conv_bound_seconds(model, frames, mask) -> float:
    """Convolutions of one training step (per-step shapes of the reference loop), forward and
    backward, alone; in channels-last order when the model's fast path uses it."""
    calls = conv_calls_of_one_step(model, frames, mask)
    channels_last = bool(model.fast and model.fast_settings(frames.device)[1])
    cache: dict = {}
    total = 0.0
    for module, shape in calls:
        key = (id(module), shape)
        if key not in cache:
            cache[key] = time_conv_call(module, shape, channels_last=channels_last)
        total += cache[key]
    return total


# -- the training step ---------------------------------------------------------------------------
AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16}


def check_host_syncs(train_step) -> str:
    """'none' when one training step runs without any operation that makes the host wait for
    the GPU (torch.cuda.set_sync_debug_mode('error') raises on the first one), else that error."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step()
    except RuntimeError as exc:
        import traceback

        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[1:]
                  if "site-packages" not in f.filename]      # the step's own code, innermost first below
        return f"found at {' <- '.join(reversed(frames[-3:])) or '?'}: {str(exc).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    return "none"


@dataclass
class ProfileResult:
    cell: str
    dataset: str
    num_hidden: list
    batch: int
    steps: int
    path: str
    recompute: bool | str
    conv_algorithm: str
    device: str
    threads: int
    dtype: str
    params: int
    seconds_per_step: float
    sequences_per_second: float
    peak_memory_mb: float
    memory_method: str
    conv_bound_seconds: float
    conv_bound_ratio: float
    step_times: list
    channels_last: bool = True
    compile_step: bool = False
    autocast: str = "none"
    tf32: bool | None = None
    cudnn_benchmark: bool | None = None
    warmup_seconds: float = float("nan")
    patch_size: int = 0
    filter_size: int = 5
    host_syncs: str = "not checked"

    def to_dict(self) -> dict:
        return asdict(self)


def profile_training(cell: str, geometry: DatasetSpec, num_hidden=(64, 64, 64), batch: int = 4, steps: int = 3,
                     filter_size: int = 5,
                     device: str = "cpu", threads: int | None = 2, path: str = "fast", cell_options=None,
                     dtype: torch.dtype = torch.float32, seed: int = 0, warmup: int = 1,
                     conv_bound: bool = True, recompute: bool | None = None,
                     conv_algorithm: str = "auto", channels_last: bool | None = None, compile_step: bool = False,
                     autocast: str = "none", tf32: bool | None = None,
                     cudnn_benchmark: bool | None = None) -> ProfileResult:
    if threads:
        torch.set_num_threads(int(threads))
    dev = torch.device(device)
    if tf32 is not None:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.manual_seed(seed)
    model = RecurrentPredictor(cell, geometry.channels, num_hidden, patch_size=geometry.patch_size,
                               in_frames=geometry.in_frames, filter_size=filter_size, cell_options=cell_options,
                               fast=(path == "fast"), recompute=recompute, conv_algorithm=conv_algorithm,
                               channels_last=channels_last, compile_step=compile_step).to(device=dev, dtype=dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    total = geometry.in_frames + geometry.out_frames
    frames = torch.rand(batch, total, geometry.channels, geometry.height, geometry.width,
                        generator=gen, dtype=dtype).to(dev)
    mask = ScheduledSampling(start_value=0.5, decay_rate=0.0).mask(
        batch, geometry.out_frames - 1, generator=gen, dtype=dtype).to(dev)

    autocast_dtype = AUTOCAST_DTYPES[autocast]

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(frames, mask)
            loss = model.loss(out, frames)
        loss.backward()
        optimizer.step()

    if dev.type == "cpu" and model.fast:   # compiled-code loading is not memory of the training step
        from stcbench.kernels import fused_stc, winograd

        fused_stc.warm_up(model.cell_list, dtype)
        if model.conv_algorithm != "direct":
            winograd.warm_up(dtype)
    meter = MemoryMeter(dev)
    meter.start()
    warmup_start = time.perf_counter()
    for _ in range(warmup):
        train_step()
    _sync(dev)
    warmup_seconds = time.perf_counter() - warmup_start
    host_syncs = check_host_syncs(train_step) if dev.type == "cuda" else "not checked (CPU)"
    times = []
    for _ in range(steps):
        _sync(dev)
        start = time.perf_counter()
        train_step()
        _sync(dev)
        times.append(time.perf_counter() - start)
    peak = meter.peak_mb()
    per_step = statistics.median(times)
    bound = conv_bound_seconds(model, frames, mask) if conv_bound else float("nan")
    return ProfileResult(
        cell=cell, dataset=geometry.name, num_hidden=list(num_hidden), batch=batch, steps=steps, path=path,
        patch_size=geometry.patch_size, filter_size=filter_size,
        recompute=model.fast_settings(dev)[0] if path == "fast" else False,
        conv_algorithm=model.conv_algorithm if path == "fast" else "direct",
        device=str(dev), threads=torch.get_num_threads(), dtype=str(dtype).removeprefix("torch."),
        params=count_parameters(model), seconds_per_step=per_step, sequences_per_second=batch / per_step,
        peak_memory_mb=peak, memory_method=meter.method, conv_bound_seconds=bound,
        conv_bound_ratio=per_step / bound if bound == bound and bound > 0 else float("nan"),
        step_times=times, channels_last=model.fast_settings(dev)[1] if path == "fast" else False,
        compile_step=bool(compile_step) and path == "fast", autocast=autocast,
        tf32=tf32, cudnn_benchmark=cudnn_benchmark, warmup_seconds=warmup_seconds, host_syncs=host_syncs,
    )


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
