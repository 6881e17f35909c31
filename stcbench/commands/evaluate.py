"""`stcbench evaluate --pred P.npy --true T.npy [--out metrics.json]`: OpenSTL metrics of saved predictions."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from stcbench.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="MSE/MAE/SSIM/PSNR (OpenSTL definitions, per frame) of saved predictions",
        description="Arrays are [N, T, C, H, W] float frames in [0, 1] (.npy files are memory-mapped, so "
                    "test sets larger than memory work). MSE and MAE are per-frame sums over C*H*W of the "
                    "unclipped predictions; SSIM and PSNR use predictions clipped to [0, 1].")
    parser.add_argument("--pred", type=Path, required=True,
                        help="predictions .npy, or one .npz holding arrays 'pred' and 'true' (or 'truth', as in the "
                             "predictions.npz of a run)")
    parser.add_argument("--true", type=Path, default=None, help="targets .npy (omit with an .npz)")
    parser.add_argument("--out", "-o", type=Path, default=None, help="write the metrics to this JSON file")
    parser.add_argument("--ssim-data-range", type=float, default=2.0, choices=(2.0, 1.0),
                        help="2.0: paper-compatible `ssim` only (default); 1.0: also report `ssim_dr1`")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per streamed block (default 64)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from stcbench.metrics import compute_metrics
    from stcbench.atomic import check_output_file, refuse_overwriting_inputs, write_json
    from stcbench.engine.run_folder import refuse_writing_run_records
    from stcbench.metrics.arrays import load_pair

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive number of sequences, got {args.batch_size}")
    if args.out is not None:
        check_output_file(args.out, "--out")
        refuse_writing_run_records(args.out, "--out")
        refuse_overwriting_inputs(args.out, "--out", {"--pred": args.pred, "--true": args.true}, "metrics.json")
        if Path(args.out).suffix.lower() in (".npy", ".npz"):
            raise ConfigError(f"--out {args.out}: the metrics are written as JSON, not as an array; name a .json "
                              f"file, e.g. {Path(args.out).with_suffix('.json')}")
    pred, true, names = load_pair(args.pred, args.true)
    metrics = compute_metrics(pred, true, ssim_data_range=args.ssim_data_range, batch_size=args.batch_size,
                              names=names)
    metrics["inputs"] = {"pred": names[0], "true": names[1], "shape": list(pred.shape)}
    print_metrics(metrics)
    warn_if_off_scale(metrics)
    if args.out is not None:
        write_json(args.out, metrics)
        print(f"wrote {args.out}")
    return 0


def warn_if_off_scale(metrics: dict) -> None:
    """Targets are checked to lie in [0, 1]; predictions may leave it (SSIM and PSNR clip them), but a mean
    squared error above 1 per pixel means they are on another scale, e.g. 8-bit values."""
    per_pixel = metrics.get("mse_per_pixel")
    if isinstance(per_pixel, float) and per_pixel > 1.0:
        print(f"warning: the mean squared error per pixel is {per_pixel:.4g}, more than predictions in [0, 1] "
              f"can give against targets in [0, 1]: are the predictions on another scale (e.g. 0..255: divide "
              f"them by 255)?", file=sys.stderr)


def _fmt(value, digits: int = 6) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def print_metrics(metrics: dict) -> None:
    """Summary table and one row per output frame (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{metrics['n_sequences']} sequences, {metrics['n_frames']} frames")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in ("mse", "mae", "ssim", "ssim_dr1", "psnr", "mse_per_pixel", "mae_per_pixel",
                "psnr_inf_frames", "psnr_finite"):
        if key in metrics:
            summary.add_row(key, _fmt(metrics[key]))
    console.print(summary)
    per_frame = metrics["per_frame"]
    names = [k for k in ("mse", "mae", "ssim", "ssim_dr1", "psnr") if k in per_frame]
    frames = Table(title="per output frame")
    frames.add_column("t", justify="right")
    for name in names:
        frames.add_column(name, justify="right")
    for t in range(len(per_frame["mse"])):
        frames.add_row(str(t + 1), *(_fmt(per_frame[name][t]) for name in names))
    console.print(frames)
