"""`stcbench predict`: frames in, predicted frames out, from any stcbench checkpoint."""
from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from stcbench.errors import ConfigError, DataError, array_load_problem


LARGE_OUTPUT_BYTES = 2**30      # above this predict says how large its output will be


def load_predictor(ckpt_path: str | Path, dtype: torch.dtype = torch.float32):
    """The `VideoPredictionModule` of a checkpoint written by `fit` or `convert-official`."""
    from stcbench.engine.environment import load_plugins
    from stcbench.engine.run import stored_config
    from stcbench.training.config import config_from_dict
    from stcbench.training.module import load_module
    from stcbench.training.task import checkpoint_for_test

    path = checkpoint_for_test(ckpt_path)
    stored = stored_config(path)
    if stored.get("task", "video") != "video":
        raise ConfigError(f"{ckpt_path} is a checkpoint of the {stored.get('task')} task; `stcbench predict` predicts "
                          f"video frames: test it with `stcbench test {ckpt_path}`")
    config = config_from_dict(stored)
    load_plugins(config.plugins)
    config.logging.firing_rates = False
    return load_module(path, config, dtype)


def read_frames(path: str | Path, spec) -> np.ndarray:
    """[N, T, C, H, W] float frames with T >= in_frames; frames beyond in_frames are ignored."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"input {str(path)!r} is a directory; pass a .npy array [N, T_in, C, H, W]")
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist; pass a .npy array [N, T_in, C, H, W]")
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)     # an .npy stays on disk: read block by block
        if isinstance(frames, np.lib.npyio.NpzFile):
            frames = _frames_of_archive(path, frames)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npy array ({array_load_problem(exc, path)}); save frames with "
                        f"numpy.save") from None
    expected = f"[N, {spec.in_frames}, {spec.channels}, {spec.height}, {spec.width}]"
    if frames.ndim != 5:
        raise DataError(f"{path}: shape {frames.shape}; expected 5 dimensions {expected}")
    n, t, c, h, w = frames.shape
    if n < 1:
        raise DataError(f"{path}: holds no sequences (shape {frames.shape}); expected {expected}")
    if t < spec.in_frames:
        raise DataError(f"{path}: {t} frames per sequence but the model needs {spec.in_frames} context frames; "
                        f"expected {expected}")
    if c != spec.channels:
        raise DataError(f"{path}: {c} channels but the model was trained on {spec.channels}; expected {expected}")
    if (h, w) != (spec.height, spec.width):
        raise DataError(f"{path}: frames of {h}x{w} pixels, but the model was trained on {spec.height}x{spec.width} "
                        f"frames (they are not resized); resize the frames to {spec.height}x{spec.width} first")
    if not np.issubdtype(frames.dtype, np.floating):
        if frames.dtype == np.uint8:
            raise DataError(f"{path}: uint8 frames; convert to float in [0, 1] first (frames / 255.0)")
        raise DataError(f"{path}: dtype {frames.dtype}; expected float frames in [0, 1]")
    context = frames[:, :spec.in_frames]
    if not all(np.isfinite(block).all() for block in blocks(context)):
        raise DataError(f"{path}: contains NaN or infinite values; drop or repair those sequences first")
    return context


BLOCK_BYTES = 64 * 2**20        # what one block of sequences read at a time from the input may take


def blocks(frames: np.ndarray):
    """`frames` a few sequences at a time (a memory-mapped input is never read whole)."""
    per_sequence = max(1, int(np.prod(frames.shape[1:])) * frames.itemsize)
    step = max(1, BLOCK_BYTES // per_sequence)
    for start in range(0, len(frames), step):
        yield frames[start:start + step]


def _frames_of_archive(path: Path, archive) -> np.ndarray:
    """The frames of an .npz archive: its `context` array (as a run's predictions.npz holds), or its only array."""
    with archive:
        names = archive.files
        if "context" in names:
            return archive["context"]
        if len(names) == 1:
            return archive[names[0]]
    raise DataError(f"{path}: an .npz archive with arrays {sorted(names)}; predict reads its `context` array or its "
                    f"only array: save the frames with numpy.save (or numpy.savez(path, context=frames))")


def warn_if_off_scale(frames: np.ndarray, path) -> None:
    """Models are trained on frames in [0, 1]; other values (e.g. 8-bit 0..255) give meaningless predictions."""
    low, high = np.inf, -np.inf
    for block in blocks(frames):
        block = np.array(block)            # read from the file once
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    if low < -1e-3 or high > 1 + 1e-3:
        import sys

        print(f"warning: {path}: frames range over [{low:.4g}, {high:.4g}], but the model was trained on frames "
              f"in [0, 1]: are they on another scale (e.g. 0..255: divide them by 255)?", file=sys.stderr)


def predict_array(module, context: np.ndarray, out_frames: int, *, double: bool = False,
                  batch_size: int = 16, device: str = "cpu", out: np.ndarray | None = None) -> np.ndarray:
    """The predicted frames [N, out_frames, C, H, W] of `context`, batch by batch, written into `out` (e.g. a
    memory-mapped output file) when given."""
    dtype = torch.float64 if double else torch.float32
    module = module.to(device=device, dtype=dtype).eval()
    if out is None:
        out = np.empty((len(context), out_frames, *context.shape[2:]), np.float64 if double else np.float32)
    with torch.no_grad():
        for start in range(0, len(context), batch_size):
            block = np.array(context[start:start + batch_size], dtype=np.float64 if double else np.float32)
            chunk = torch.from_numpy(block).to(device)         # a copy: the memory-mapped input stays read-only
            out[start:start + len(chunk)] = module.predict_future(chunk, out_frames).cpu().numpy()
    return out


def predict_file(ckpt_path, input_path, output_path, *, out_frames: int | None = None, precision: str = "32",
                 batch_size: int = 16, device: str = "cpu") -> Path:
    """Predictions of the frames in `input_path` into the .npy file `output_path`; both are read and written a
    batch at a time, so neither needs to fit in memory."""
    from stcbench.atomic import replacing

    if precision not in ("32", "64", "32-true", "64-true"):
        raise ConfigError(f"--precision must be 32 or 64, got {precision!r}")
    if out_frames is not None and out_frames < 1:
        raise ConfigError(f"--out-frames must be >= 1, got {out_frames}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    try:
        torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a device; use cpu, cuda or cuda:<index>") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    double = precision.startswith("64")
    module = load_predictor(ckpt_path, torch.float64 if double else torch.float32)
    context = read_frames(input_path, module.spec)
    warn_if_off_scale(context, input_path)
    out_frames = out_frames or module.spec.out_frames
    size = context.shape[0] * out_frames * int(np.prod(context.shape[2:])) * (8 if double else 4)
    if size > LARGE_OUTPUT_BYTES:
        print(f"warning: {out_frames} frames of {context.shape[0]} sequences make a {size / 2**30:.1f} GiB output "
              f"file", file=sys.stderr)
    output_path = Path(output_path)
    free = shutil.disk_usage(output_path.parent if output_path.parent.exists() else Path(".")).free
    if size > free:
        raise ConfigError(f"--out-frames {out_frames}: the predictions of {context.shape[0]} sequences need "
                          f"{size / 2**30:.1f} GiB, and {output_path.parent} has {free / 2**30:.1f} GiB free; "
                          f"predict fewer frames or write elsewhere")
    shape = (context.shape[0], out_frames, *context.shape[2:])
    with replacing(output_path) as tmp:
        preds = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64 if double else np.float32, shape=shape)
        predict_array(module, context, out_frames, double=double, batch_size=batch_size, device=device, out=preds)
        preds.flush()
        del preds
    return output_path
