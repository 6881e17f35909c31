"""`stcbench profile`: seconds per training step, throughput and peak memory of one model.

The last line printed is one JSON object (seconds_per_step, sequences_per_second,
peak_memory_mb, conv_bound_seconds, conv_bound_ratio, ...), so scripts can parse it.
"""
from __future__ import annotations

import json

from stcbench.errors import ConfigError
from stcbench.strict_json import dumps


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "profile", help="time training steps of a model on random data of a dataset's shapes",
        description="Run N training steps (forward over all steps + backward + Adam) on random data of the "
                    "config's dataset shapes; print a table and, as the last line, a JSON object.")
    p.add_argument("--config", help="run config (YAML); gives data.dataset, data.batch_size, model.cell, "
                                    "model.num_hidden, model.patch_size, model.filter_size and the cell options")
    p.add_argument("--dataset", help="dataset whose shapes are used (mmnist, taxibj, kth); overrides the config")
    p.add_argument("--cell", help="cell name (overrides the config; default stclif)")
    p.add_argument("--num-hidden", help="comma-separated layer widths, e.g. 64,64,64 (overrides the config)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the config's, else 4)")
    p.add_argument("--steps", type=int, default=3, help="measured training steps; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--path", default="fast", choices=["fast", "reference"],
                   help="fast path (default) or the reference per-step loop")
    p.add_argument("--cell-options", default=None, help='JSON object of extra cell options, e.g. \'{"gradient_detach": 1}\'')
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="parameter/data dtype")
    p.add_argument("--recompute", default="auto", choices=["auto", "on", "off"],
                   help="fast path: recompute the neuron dynamics in the backward pass instead of keeping their "
                        "activations (less memory, slower; auto: on the CPU for circuit cells only; STC-LIF, STC-PLIF and "
                        "STC-LM-H on the CPU use their fused step either way)")
    p.add_argument("--no-recompute", dest="recompute", action="store_const", const="off",
                   help="same as --recompute off")
    p.add_argument("--conv-algorithm", default="auto", choices=["auto", "direct", "winograd"],
                   help="fast path: input convolutions by Winograd F(4x4,5x5) on the CPU where it pays off "
                        "(auto, default), always (winograd) or never (direct)")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="fast path: feature maps in channels-last order (auto: on the CPU only)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_const", const="off",
                   help="same as --channels-last off")
    p.add_argument("--compile", action="store_true",
                   help="fast path: torch.compile each layer's step after its input convolution "
                        "(compilation happens in the warm-up step, reported as warmup_seconds)")
    p.add_argument("--autocast", default="none", choices=["none", "bf16"],
                   help="mixed precision: run forward and loss under torch.autocast in bfloat16")
    p.add_argument("--tf32", default="default", choices=["default", "on", "off"],
                   help="CUDA: TensorFloat-32 in float32 convolutions and matmuls (default: torch's, "
                        "convolutions on, matmuls off)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="CUDA: let cuDNN autotune its convolution algorithms")
    p.add_argument("--no-conv-bound", action="store_true", help="skip timing the convolutions-alone bound")
    p.set_defaults(func=run)


SWITCH = {"auto": None, "on": True, "off": False}


def _run_config(config_path: str | None):
    """The resolved run config that --config names (dataset, batch, cell, widths, patch and filter sizes, cell
    options), or None."""
    if not config_path:
        return None
    from stcbench.training.config import resolve_config

    return resolve_config(config_path)


def _config_cell_options(config) -> dict:
    """The config's cell options with its model.gradient_detach, as a run passes them to the cell."""
    options = dict(config.model.cell_options or {})
    if config.model.gradient_detach is not None:
        options["gradient_detach"] = config.model.gradient_detach
    return options


def _parse_hidden(text: str) -> list[int]:
    try:
        widths = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--num-hidden must be comma-separated integers like 64,64,64, got {text!r}") from None
    if not widths:
        raise ConfigError("--num-hidden needs at least one width, e.g. 64,64,64")
    if min(widths) < 1:
        raise ConfigError(f"--num-hidden widths must be positive, got {text!r}; e.g. 64,64,64")
    return widths


def _without_gradient_detach_if_not_taken(cell: str, options: dict) -> dict:
    """A config's `gradient_detach` applies to the cells that take it (as model.gradient_detach does in a run); any
    other option a cell does not take is left for the cell to refuse."""
    from stcbench.cells import get_cell_info

    allowed = get_cell_info(cell).parameters()
    return {k: v for k, v in options.items() if k in allowed or k != "gradient_detach"}


def run(args) -> int:
    import torch

    from stcbench.commands.profiling import dataset_geometry, profile_training

    config = _run_config(args.config)
    dataset = args.dataset or (config.data.dataset if config else "mmnist")
    cell = args.cell or (config.model.cell if config else "stclif")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    hidden = (_parse_hidden(args.num_hidden) if args.num_hidden is not None
              else list(config.model.num_hidden) if config else [64, 64, 64])
    options = _config_cell_options(config) if config else {}
    if args.cell_options:
        try:
            given = json.loads(args.cell_options)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--cell-options must be a JSON object: {exc}") from None
        if not isinstance(given, dict):
            raise ConfigError(f"--cell-options must be a JSON object of options, e.g. '{{\"gradient_detach\": 1}}', "
                              f"got {args.cell_options!r}")
        options.update(given)
    options = _without_gradient_detach_if_not_taken(cell, options)
    batch = args.batch if args.batch is not None else config.data.batch_size if config else 4
    if args.steps < 1 or batch < 1:
        raise ConfigError("--steps and --batch must be >= 1")
    if args.warmup < 0:
        raise ConfigError(f"--warmup {args.warmup}: the unmeasured steps must be >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available; use --device cpu")
    result = profile_training(cell, dataset_geometry(dataset, config.model.patch_size if config else None), hidden,
                              batch=batch, filter_size=config.model.filter_size if config else 5, steps=args.steps,
                              device=args.device, threads=args.threads, path=args.path, cell_options=options,
                              dtype=getattr(torch, args.dtype), warmup=args.warmup,
                              conv_bound=not args.no_conv_bound, recompute=SWITCH[args.recompute],
                              conv_algorithm=args.conv_algorithm, channels_last=SWITCH[args.channels_last],
                              compile_step=args.compile, autocast=args.autocast,
                              tf32={"default": None, "on": True, "off": False}[args.tf32],
                              cudnn_benchmark=True if args.cudnn_benchmark else None)
    rows = [
        ("cell / dataset", f"{result.cell} / {result.dataset}"),
        ("layers", "x".join(map(str, result.num_hidden)) + f" ({result.params:,} parameters)"),
        ("patch / filter size", f"{result.patch_size} / {result.filter_size}"),
        ("path / device / threads", f"{result.path} / {result.device} / {result.threads}"),
        ("recompute / convolutions", f"{result.recompute} / {result.conv_algorithm}"),
        ("channels-last / compile / autocast", f"{result.channels_last} / {result.compile_step} / {result.autocast}"),
        ("batch / measured steps", f"{result.batch} / {result.steps}"),
        ("warm-up seconds", f"{result.warmup_seconds:.2f}"),
        ("seconds per step (median)", f"{result.seconds_per_step:.4f}"),
        ("fastest / slowest step", f"{min(result.step_times):.4f} / {max(result.step_times):.4f}"),
        ("sequences per second", f"{result.sequences_per_second:.2f}"),
        ("peak memory (MiB)", f"{result.peak_memory_mb:.1f}  [{result.memory_method}]"),
    ]
    if result.device.startswith("cuda"):
        rows.append(("host syncs in a step", result.host_syncs))
    if result.conv_bound_seconds == result.conv_bound_seconds:      # not NaN: it was measured
        rows += [("convolutions alone (s)", f"{result.conv_bound_seconds:.4f}"),
                 ("step / convolutions", f"{result.conv_bound_ratio:.2f}x")]
    else:
        rows.append(("convolutions alone (s)", "not measured (--no-conv-bound)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(dumps(result.to_dict(), indent=None))
    warn_if_unsteady(result.step_times)
    return 0


UNSTEADY = 1.5          # slowest / fastest measured step above which a median of a few steps says little


def warn_if_unsteady(times: list[float]) -> None:
    """A spread of step times that other work on the machine (or too few steps) makes: say so."""
    import os
    import sys

    fastest, slowest = min(times), max(times)
    if slowest <= UNSTEADY * fastest:
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"warning: the measured steps took {fastest:.3f} to {slowest:.3f} s ({slowest / fastest:.1f}x apart; load "
          f"average {load:.1f} on {os.cpu_count()} cores): other work on the machine or too few steps; measure again "
          f"on a quiet machine, with more --steps", file=sys.stderr)
