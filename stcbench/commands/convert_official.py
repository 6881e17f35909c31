"""`stcbench convert-official REF.pth --cell NAME (--dataset NAME | sizes) -o OUT.ckpt`."""
from __future__ import annotations

from pathlib import Path

from stcbench.checkpoints import add_trust_argument


def _image_size(text: str):
    parts = [int(p) for p in str(text).lower().replace("x", ",").split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-official", aliases=["convert_official"],
        help="convert an official STC-LIF/OpenSTL checkpoint into an stcbench checkpoint",
        description="Accepts a plain state_dict (checkpoint.pth) or the OpenSTL wrapper (latest.pth). Hidden "
                    "sizes and the filter size are read from the weights; the frame geometry comes from "
                    "--dataset or the explicit size flags. The key set and all shapes are verified.")
    parser.add_argument("reference", type=Path, help="official .pth file")
    parser.add_argument("--cell", required=True,
                        help="lif, plif, glif, tclif, lmh, stclif, stcplif, stclmh, or convlstm (OpenSTL ConvLSTM)")
    parser.add_argument("--dataset", default=None, help="mmnist, taxibj, kth or kth40 (sets all sizes)")
    parser.add_argument("--in-frames", type=int, default=None)
    parser.add_argument("--out-frames", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--channels", type=int, default=None, help="image channels")
    parser.add_argument("--image-size", type=_image_size, default=None, help="H or HxW")
    parser.add_argument("--gradient-detach", type=int, choices=(0, 1), default=None,
                        help="STC cells (training only; default: 0 on mmnist, else 1)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="stcbench checkpoint to write (.ckpt)")
    add_trust_argument(parser)
    parser.set_defaults(func=run, command="convert-official")


def run(args) -> int:
    from stcbench.atomic import check_output_file, refuse_overwriting_inputs
    from stcbench.engine.run_folder import refuse_writing_run_records
    from stcbench.training.official import convert

    check_output_file(args.output, "--output", "converted.ckpt")
    refuse_writing_run_records(args.output, "--output")          # another run's checkpoints, config or records
    refuse_overwriting_inputs(args.output, "--output", {"official checkpoint": args.reference}, "converted.ckpt")
    if args.dataset is not None:
        from stcbench.data.specs import get_dataset_spec

        get_dataset_spec(args.dataset)          # an unknown name is said before the checkpoint is read
    path = convert(args.reference, args.output, cell=args.cell, dataset=args.dataset, in_frames=args.in_frames,
                   out_frames=args.out_frames, patch_size=args.patch_size, channels=args.channels,
                   image_size=args.image_size, gradient_detach=args.gradient_detach, report=print)
    print(f"wrote {path}")
    return 0
