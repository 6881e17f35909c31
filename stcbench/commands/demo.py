"""`stcbench demo [--out DIR]`: train and compare a small STC-LIF, LIF and ConvLSTM in about 3 minutes on CPU."""
from __future__ import annotations

from pathlib import Path

from stcbench.errors import ConfigError

DEFAULT_CELLS = ("stclif", "lif", "convlstm")     # docs/scales.md, "The demo's setting", round 7


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a small STC-LIF, LIF and ConvLSTM on the embedded Moving MNIST (about 3 minutes on 2 "
                     "CPU cores)",
        description="Generates the embedded Moving MNIST default if absent, trains each cell with "
                    "the shipped config demo/mmnist (2 x 32, patch 4, 8 epochs of 40 iterations; chosen by "
                    "measurement, docs/scales.md), tests it, prints a metrics table and writes "
                    "DIR/demo_predictions.png. Demo scale: not comparable to the paper's numbers.")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out/)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default datasets/ or $STCBENCH_DATA_ROOT)")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                        help=f"comma-separated cells (default {','.join(DEFAULT_CELLS)}: the non-spiking ConvLSTM, "
                             "whose predictions follow the digits best, takes half of the time; --cells stclif,lif "
                             "takes about 1 3/4 minutes on 2 cores)")
    parser.add_argument("--config", type=Path, default=None, help="config to use instead of the shipped demo/mmnist")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--seed", type=int, default=42, help="training seed of every cell (default 42); a second demo "
                                                             "replaces the first one's runs in --out")
    parser.set_defaults(func=run)


def run(args) -> int:
    from stcbench.atomic import check_output_folder
    from stcbench.commands.demo_run import run_demo
    from stcbench.config_files import check_config_file, find_config

    if args.config is not None:
        check_config_file(find_config(args.config))      # at once, before torch is imported
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: train at least 1 epoch (the demo's setting has 8)")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not cells:
        raise ConfigError(f"--cells {args.cells!r} names no cell; pass e.g. --cells stclif,lif")
    from stcbench.engine.run_folder import refuse_folder_inside_run

    check_output_folder(args.out, "--out", "--out")
    refuse_folder_inside_run(args.out, "--out")
    if args.data_root is not None:
        check_output_folder(args.data_root, "--data-root", "--data-root")
    summary = run_demo(args.out, data_root=args.data_root, cells=cells, config=args.config,
                       max_epochs=args.epochs, seed=args.seed)
    print()
    print(summary["table"])
    print(FOLLOWS_NOTE)
    print()
    for line in summary["comparison"]:
        print(line)
    print(f"\npredictions: {summary['figure']}")
    print("demo scale on the embedded data: numbers are not comparable to the paper")
    return 0


FOLLOWS_NOTE = ("follows: how the centre of mass of the predicted frames moves with the true digits' (1 = exactly, "
                "0 = no better than repeating the last input frame, below 0 = worse than that; a blur scores up to "
                "about 0.23 without moving: docs/scales.md)")
