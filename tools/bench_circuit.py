"""What the spatio-temporal circuit costs: STC cells against their base cells, and gradient_detach=0 against the
official code.

Part 1 (default): STC-LIF, STC-PLIF, STC-LM-H and LIF, PLIF, LM-H at the setting of `--config` (default
small/mmnist: 2 x 64, batch 16, Moving MNIST with patch 4 = 16 x 16 x 16 inputs, 10 -> 10 frames, fast path,
the STC cells with the config's gradient_detach, 0).  All six models live in one process and their training
steps (forward + MSE loss + backward + Adam) are interleaved, one step of each per round, so that drifts of
the machine hit every cell alike.  Printed: median seconds per step and, per pair, the median over rounds of
(STC step / base step of the same round).

Part 2 (`--official PATH`, a checkout of github.com/wangtianyi1874/stclif, commit 96fa142): STC-LIF 3 x 64,
batch 4, Moving MNIST shapes (patch 2), the official network and its training step against our fast path, for
`--official-detach` (default 0 and 1), as results/benchmarks/official.md: a fresh process per measurement (median
of 5 steps after 1 warm-up), interleaved in rounds.  The official side needs spikingjelly; without it a copy of
its sigmoid surrogate (Heaviside forward, alpha sig'(alpha x) backward, alpha = 4) stands in and the output says so.

    .venv/bin/python tools/bench_circuit.py                          # part 1, ~3 min on 2 quiet cores
    .venv/bin/python tools/bench_circuit.py --official ../stclif     # and part 2, ~10 min more
    .venv/bin/python tools/bench_circuit.py --skip-pairs --official ../stclif --official-detach 0
    .venv/bin/python tools/bench_circuit.py --breakdown --threads 1   # the circuit convolution alone, CPU time
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

PAIRS = (("lif", "stclif"), ("plif", "stcplif"), ("lmh", "stclmh"))


# -- part 1: STC cells against their base cells, in one process ----------------------------------------------------
def pair_models(config: str, batch: int | None, threads: int):
    """{cell: training step} for the six cells at the config's setting, and the setting."""
    import torch

    from stcbench.commands.profiling import dataset_geometry
    from stcbench.cells import create_cell
    from stcbench.kernels import fused_stc, winograd
    from stcbench.training.config import resolve_config

    torch.set_num_threads(threads)
    cfg = resolve_config(config)
    geometry = dataset_geometry(cfg.data.dataset)
    setting = {"config": config, "dataset": cfg.data.dataset, "num_hidden": list(cfg.model.num_hidden),
               "patch_size": cfg.model.patch_size, "batch": batch or cfg.data.batch_size,
               "gradient_detach": cfg.model.gradient_detach, "threads": threads, "fast": True}
    fused_stc.warm_up([create_cell(stc, 1, 16) for _, stc in PAIRS])
    winograd.warm_up()
    steps = {}
    for base, stc in PAIRS:
        steps[base] = training_step(base, {}, geometry, setting)
        steps[stc] = training_step(stc, {"gradient_detach": setting["gradient_detach"]}, geometry, setting)
    return steps, setting


def training_step(cell: str, options: dict, geometry, setting: dict):
    """A closure running one training step of a fast-path model on fixed random data."""
    import torch

    from stcbench.models.predictor import RecurrentPredictor
    from stcbench.models.sampling import ScheduledSampling

    torch.manual_seed(0)
    model = RecurrentPredictor(cell, geometry.channels, setting["num_hidden"], patch_size=setting["patch_size"],
                               in_frames=geometry.in_frames, cell_options=options, fast=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = setting["batch"]
    frames = torch.rand(batch, geometry.in_frames + geometry.out_frames, geometry.channels, geometry.height,
                        geometry.width, generator=gen)
    mask = ScheduledSampling(start_value=0.5, decay_rate=0.0).mask(batch, geometry.out_frames - 1, generator=gen,
                                                                   dtype=torch.float32)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(model(frames, mask), frames)
        loss.backward()
        optimizer.step()
    return step


def run_pairs(args) -> dict:
    steps, setting = pair_models(args.config, args.batch, args.threads)
    for step in steps.values():          # warm-up
        step()
    times = {cell: [] for cell in steps}
    for r in range(args.rounds):
        for cell, step in steps.items():
            start = time.perf_counter()
            step()
            times[cell].append(time.perf_counter() - start)
        print(f"round {r + 1}: " + ", ".join(f"{c} {t[-1]:.3f}" for c, t in times.items()), flush=True)
    rows = []
    for base, stc in PAIRS:
        ratios = [s / b for s, b in zip(times[stc], times[base])]
        rows.append({"base": base, "stc": stc, "base_s": statistics.median(times[base]),
                     "stc_s": statistics.median(times[stc]), "ratio_of_medians":
                     statistics.median(times[stc]) / statistics.median(times[base]),
                     "per_round_ratio": statistics.median(ratios), "ratios": ratios})
    print(f"\n{setting}, {args.rounds} interleaved rounds, wall seconds per training step")
    print("| STC cell | s/step | base cell | s/step | × base (medians) | per-round ratio (median) | target ≤ 1.3 |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['stc']} | {row['stc_s']:.3f} | {row['base']} | {row['base_s']:.3f} | "
              f"{row['ratio_of_medians']:.2f} | {row['per_round_ratio']:.2f} | "
              f"{'yes' if row['per_round_ratio'] <= 1.3 else 'no'} |", flush=True)
    return {"setting": setting, "rows": rows, "times": times}


# -- breakdown: the circuit convolution of one layer and step, alone -----------------------------------------------
def run_breakdown(args) -> dict:
    """CPU time (process time, so that other jobs on the machine do not count) of the circuit convolution of one
    layer-step at the part-1 setting and of the alternatives weighed against it; 1 thread unless --threads."""
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(args.threads)
    batch, channels, size, groups = args.batch or 16, 64, 16, 16
    cl = torch.channels_last
    gen = torch.Generator().manual_seed(0)
    g = (torch.rand(batch, channels, size, size, generator=gen) < 0.25).float().contiguous(memory_format=cl)
    g_grad = g.clone().requires_grad_()
    weight = (0.1 * torch.randn(2 * channels, channels // groups, 5, 5, generator=gen)).requires_grad_()
    dy = torch.randn(batch, 2 * channels, size, size, generator=gen).contiguous(memory_format=cl)
    merged = _merged_groups(weight.detach(), groups, groups // 2).requires_grad_()
    dense = _merged_groups(weight.detach(), groups, 1)
    flipped = transposed_flipped(weight.detach(), groups)
    x = torch.randn(batch, channels, size, size, generator=gen).contiguous(memory_format=cl)
    wx = torch.randn(channels, channels, 5, 5, generator=gen)

    def conv(inp, w, k):
        return F.conv2d(inp, w, None, 1, 2, 1, k)

    cases = {
        "grouped (16), channels-last: forward": lambda: conv(g, weight, groups),
        "  + weight gradient (gradient_detach=1)": lambda: torch.autograd.grad(conv(g, weight, groups), weight, dy),
        "  + input gradient (gradient_detach=0)": lambda: torch.autograd.grad(conv(g_grad, weight, groups),
                                                                              (g_grad, weight), dy),
        "  input gradient alone (convolution_backward)": lambda: torch.ops.aten.convolution_backward(
            dy, g, weight.detach(), None, [1, 1], [2, 2], [1, 1], False, [0, 0], groups, [True, False, False]),
        "  input gradient as a forward conv, flipped weights": lambda: conv(dy, flipped, groups),
        "  weight gradient alone (convolution_backward)": lambda: torch.ops.aten.convolution_backward(
            dy, g, weight.detach(), None, [1, 1], [2, 2], [1, 1], False, [0, 0], groups, [False, True, False]),
        "grouped (16), NCHW: forward": lambda: conv(g.contiguous(), weight, groups),
        "pairs of groups merged (8, zero blocks): forward": lambda: conv(g, merged, groups // 2),
        "  + weight gradient": lambda: torch.autograd.grad(conv(g, merged, groups // 2), merged, dy),
        "  + input gradient": lambda: torch.autograd.grad(conv(g_grad, merged, groups // 2), (g_grad, merged), dy),
        "dense, block-diagonal weight: forward": lambda: conv(g, dense, 1),
        "unfold + matmul: forward": lambda: torch.matmul(
            weight.detach().view(groups, -1, 4 * 25),
            F.unfold(g.contiguous(), 5, padding=2).view(batch, groups, 4 * 25, size * size)),
        "for scale: dense 64 -> 64 input synapse, forward": lambda: conv(x, wx, 1),
    }
    print(f"\ncircuit convolution of one layer-step: [{batch}, {channels}, {size}, {size}] spikes (25 % ones) -> "
          f"{2 * channels} channels, 5 x 5; CPU ms, median of {args.rounds}, {args.threads} thread(s)")
    result = {}
    for name, run in cases.items():
        result[name] = _cpu_ms(run, args.rounds)
        print(f"  {name:52s} {result[name]:7.2f}", flush=True)
    return result


def transposed_flipped(weight, groups: int):
    """The weight whose grouped forward convolution is the input gradient of `weight`'s ('same' padding,
    stride 1): each group's in/out channels swapped and the kernel turned by 180 degrees."""
    out_channels, in_group = weight.shape[:2]
    per_group = weight.view(groups, out_channels // groups, in_group, *weight.shape[2:])
    return per_group.transpose(1, 2).flip(-2, -1).reshape(groups * in_group, out_channels // groups,
                                                          *weight.shape[2:]).contiguous()


def _merged_groups(weight, groups: int, merged: int):
    """The grouped weight as one with `merged` groups (zeros outside the original groups): the same convolution."""
    out_channels, in_group = weight.shape[:2]
    in_merged, out_group = in_group * groups // merged, out_channels // groups
    full = weight.new_zeros(out_channels, in_merged, *weight.shape[2:])
    for o in range(out_channels):
        first = (o // out_group) * in_group % in_merged
        full[o, first:first + in_group] = weight[o]
    return full


def _cpu_ms(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


# -- part 2: gradient_detach against the official code ----------------------------------------------------------
def load_official(root: Path):
    """STCLIF_Model from the official files, imported without the rest of OpenSTL; (class, surrogate source)."""
    try:
        import spikingjelly.activation_based  # noqa: F401
        source = "spikingjelly"
    except ImportError:
        _install_surrogate_stand_in()
        source = "stand-in for spikingjelly's sigmoid surrogate"
    package = types.ModuleType("openstl")
    package.__path__ = []
    sys.modules["openstl"] = package
    modules = _load("openstl.modules", root / "openstl/modules/convlif_modules.py")
    sys.modules["openstl.modules"] = modules
    model = _load("openstl.models.convlif_model", root / "openstl/models/convlif_model.py")
    return model.STCLIF_Model, source


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _install_surrogate_stand_in():
    import torch

    class _Sigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return (x >= 0).to(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            s = torch.sigmoid(ctx.alpha * x)
            return grad * (1 - s) * s * ctx.alpha, None

    class Sigmoid(torch.nn.Module):
        def __init__(self, alpha=4.0, spiking=True):
            super().__init__()
            self.alpha = alpha

        def forward(self, x):
            return _Sigmoid.apply(x, self.alpha)

    root = types.ModuleType("spikingjelly")
    based = types.ModuleType("spikingjelly.activation_based")
    surrogate = types.ModuleType("spikingjelly.activation_based.surrogate")
    surrogate.Sigmoid = Sigmoid
    based.surrogate, based.layer, based.neuron = surrogate, types.ModuleType("layer"), types.ModuleType("neuron")
    root.activation_based = based
    sys.modules.update({"spikingjelly": root, "spikingjelly.activation_based": based,
                        "spikingjelly.activation_based.surrogate": surrogate,
                        "spikingjelly.activation_based.layer": based.layer,
                        "spikingjelly.activation_based.neuron": based.neuron})


def official_worker(args) -> None:
    """One measurement of the official training step; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    model_class, source = load_official(Path(args.official))
    hidden, batch, patch = [int(v) for v in args.official_hidden.split(",")], args.official_batch, 2
    configs = types.SimpleNamespace(in_shape=(10, 1, 64, 64), patch_size=patch, filter_size=5, stride=1,
                                    layer_norm=0, gradient_detach=args.worker_detach, pre_seq_length=10,
                                    aft_seq_length=10, total_length=20, reverse_scheduled_sampling=0, device="cpu")
    torch.manual_seed(0)
    model = model_class(len(hidden), hidden, configs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    size, channels = 64 // patch, patch * patch
    ims = torch.rand(batch, 20, size, size, channels, generator=gen)         # reshape_patch of [B, 20, 64, 64, 1]
    flag = (torch.rand(batch, 9, 1, 1, 1, generator=gen) < 0.5).float().expand(batch, 9, size, size, channels)

    def step():
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(ims, flag.contiguous())
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(args.official_steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds_per_step": statistics.median(times), "step_times": times, "surrogate": source,
                      "parameters": sum(p.numel() for p in model.parameters())}))


def ours(detach: int, args) -> dict:
    cmd = [sys.executable, "-m", "stcbench", "profile", "--dataset", "mmnist", "--cell", "stclif", "--num-hidden",
           args.official_hidden, "--batch", str(args.official_batch), "--threads", str(args.threads), "--steps",
           str(args.official_steps), "--path", "fast", "--no-conv-bound", "--cell-options",
           json.dumps({"gradient_detach": detach})]
    return _last_json(cmd)


def official(detach: int, args) -> dict:
    cmd = [sys.executable, __file__, "--worker-official", "--worker-detach", str(detach), "--official", args.official,
           "--official-hidden", args.official_hidden, "--official-batch", str(args.official_batch),
           "--official-steps", str(args.official_steps), "--threads", str(args.threads)]
    return _last_json(cmd)


def _last_json(cmd) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_official(args) -> dict:
    detaches = [int(v) for v in args.official_detach.split(",")]
    times = {(side, d): [] for d in detaches for side in ("official", "ours")}
    source = None
    for r in range(args.official_rounds):
        for d in detaches:
            result = official(d, args)
            source = result["surrogate"]
            times[("official", d)].append(result["seconds_per_step"])
            times[("ours", d)].append(ours(d, args)["seconds_per_step"])
        print(f"round {r + 1}: " + ", ".join(f"{side} gd{d} {t[-1]:.3f}" for (side, d), t in times.items()),
              flush=True)
    print(f"\nSTC-LIF {args.official_hidden}, batch {args.official_batch}, {args.threads} threads, "
          f"{args.official_rounds} rounds (official surrogate: {source})")
    print("| gradient_detach | official s/step | fast path s/step | × official (medians) | per-round ratio (median) |")
    print("|---|---|---|---|---|")
    rows = []
    for d in detaches:
        off, our = times[("official", d)], times[("ours", d)]
        per_round = statistics.median(o / f for o, f in zip(our, off))
        rows.append({"gradient_detach": d, "official": off, "ours": our, "per_round_ratio": per_round})
        print(f"| {d} | {statistics.median(off):.3f} | {statistics.median(our):.3f} | "
              f"{statistics.median(our) / statistics.median(off):.2f} | {per_round:.2f} |", flush=True)
    return {"rows": rows, "surrogate": source}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small/mmnist")
    parser.add_argument("--batch", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-pairs", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="only time the circuit convolution of one layer-step and its alternatives")
    parser.add_argument("--official", help="checkout of github.com/wangtianyi1874/stclif (commit 96fa142)")
    parser.add_argument("--official-detach", default="0,1")
    parser.add_argument("--official-rounds", type=int, default=5)
    parser.add_argument("--official-steps", type=int, default=5)
    parser.add_argument("--official-hidden", default="64,64,64")
    parser.add_argument("--official-batch", type=int, default=4)
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--worker-official", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-detach", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_official:
        official_worker(args)
        return
    payload = {}
    if args.breakdown:
        payload["breakdown"] = run_breakdown(args)
    elif not args.skip_pairs:
        payload["pairs"] = run_pairs(args)
    if args.official:
        payload["official"] = run_official(args)
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
