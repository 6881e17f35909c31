"""`stcbench predict CKPT --input FRAMES.npy --output PREDS.npy`: predict future frames."""
from __future__ import annotations

from pathlib import Path

from stcbench.checkpoints import add_trust_argument
from stcbench.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict future frames for a .npy array of context frames",
        description="FRAMES.npy: float [N, T_in, C, H, W] in [0, 1] (frames beyond T_in are ignored). "
                    "PREDS.npy: [N, T_out, C, H, W], fully autoregressive, not clipped.")
    parser.add_argument("checkpoint", type=Path, help=".ckpt from `stcbench fit`/`convert-official`, or a run directory")
    parser.add_argument("--input", "-i", type=Path, required=True, help="context frames .npy [N, T_in, C, H, W]")
    parser.add_argument("--output", "-o", type=Path, required=True, help="where to write the predictions (.npy)")
    parser.add_argument("--out-frames", type=int, default=None, help="frames to predict (default: the model's T_out)")
    parser.add_argument("--precision", default="32", choices=("32", "64", "32-true", "64-true"),
                        help="arithmetic precision (64 for bit-level comparisons)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_trust_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from stcbench.atomic import check_output_file, refuse_overwriting_inputs
    from stcbench.engine.run_folder import refuse_writing_run_records
    from stcbench.training.predict import predict_file

    check_output_file(args.output, "--output", "predictions.npy")
    refuse_writing_run_records(args.output, "--output")
    refuse_overwriting_inputs(args.output, "--output", {"--input": args.input}, Path(args.output).stem + "_pred.npy")
    if Path(args.output).suffix != ".npy":
        raise ConfigError(f"--output {args.output}: predictions are written as a numpy array; name a .npy file, "
                          f"e.g. {Path(args.output).with_suffix('.npy')}")
    path = predict_file(args.checkpoint, args.input, args.output, out_frames=args.out_frames,
                        precision=args.precision, batch_size=args.batch_size, device=args.device)
    print(f"predictions written to {path}")
    return 0
