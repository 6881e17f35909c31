"""`stcbench demo [--out DIR]`: train and compare a small STC-LIF and LIF in a few minutes on CPU."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a small STC-LIF and LIF on the embedded Moving MNIST (a few minutes on 2 CPU cores)",
        description="Generates the embedded Moving MNIST default if absent, trains each cell with "
                    "the shipped config demo/mmnist (2 x 32, patch 4, 8 epochs of 40 iterations; chosen by "
                    "measurement, docs/scales.md), tests it, prints a metrics table and writes "
                    "DIR/demo_predictions.png. Demo scale: not comparable to the paper's numbers.")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out/)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default datasets/ or $STCBENCH_DATA_ROOT)")
    parser.add_argument("--cells", default="stclif,lif",
                        help="comma-separated cells (default stclif,lif; stclif,lif,convlstm adds the non-spiking "
                             "reference, whose predictions follow the digits best, for about 2.5 minutes more)")
    parser.add_argument("--config", type=Path, default=None, help="config to use instead of the shipped demo/mmnist")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--seed", type=int, default=42, help="training seed of every cell (default 42); a second demo "
                                                             "replaces the first one's runs in --out")
    parser.set_defaults(func=run)


def run(args) -> int:
    from stcbench.commands.demo_run import run_demo

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    summary = run_demo(args.out, data_root=args.data_root, cells=cells, config=args.config,
                       max_epochs=args.epochs, seed=args.seed)
    print()
    print(summary["table"])
    print(FOLLOWS_NOTE)
    comparison = compare_with_baseline(summary["cells"])
    for line in comparison:
        print(line)
    from stcbench.engine.io import atomic_write_json

    summary["comparison"] = [line for line in comparison if line]
    atomic_write_json(Path(args.out) / "demo_summary.json", summary)
    print(f"\npredictions: {summary['figure']}")
    print("demo scale on the embedded data: numbers are not comparable to the paper")
    return 0


FOLLOWS_NOTE = ("follows: how the centre of mass of the predicted frames moves with the true digits' (1 = exactly, "
                "0 = no better than repeating the last input frame; a blur scores up to about 0.2 without moving: "
                "docs/scales.md)")


def compare_with_baseline(rows: dict) -> list[str]:
    """One seed per cell cannot rank cells across training runs; say so, and give each cell's MSE
    difference to the baseline with a paired bootstrap over the same test sequences."""
    from stcbench.reports.runs import DEFAULT_BASELINE, load_run
    from stcbench.reports.stats import paired_bootstrap, verdict

    lines = ["", "One seed per cell: this cannot say which cell trains better (that needs several seeds: "
                 "stcbench bench --suite small --seeds 0,1,2); it says how sure each difference is on these "
                 "test sequences."]
    runs = {cell: load_run(Path(row["run_dir"]) / "metrics.json") for cell, row in rows.items()}
    base = runs.get(DEFAULT_BASELINE)
    base_mse = base.per_sequence("mse") if base is not None else None
    for cell, run in runs.items():
        if cell == DEFAULT_BASELINE or run is None or base_mse is None:
            continue
        ours = run.per_sequence("mse")
        difference = paired_bootstrap(ours, base_mse) if ours is not None else None
        if difference is not None:
            lines.append(f"MSE {cell} - {DEFAULT_BASELINE}: {difference.mean:+.2f} [{difference.low:+.2f}, "
                         f"{difference.high:+.2f}] (95 %, paired bootstrap over {difference.n} test sequences): "
                         f"{verdict(difference, higher_is_better=False)}")
    return lines
