"""GPU benchmark of the paper configuration (STC-LIF 3x256, batch 16, Moving MNIST shapes).

Three parts, each writing JSON into --out (default results/benchmarks/gpu):

* `check`   — what the GPU computes, in one process: the fast path (channels-last and NCHW,
  with and without torch.compile) against the reference loop on the GPU in float64 (outputs and
  every gradient), the GPU against the CPU in float64, and how far each float32 / TF32 / bf16
  setting moves one training step's outputs and loss from float64 (3x64, batch 4).
* `profile` — `stcbench profile --device cuda` in a fresh process per setting (reference loop,
  fast path, NCHW, no recompute, cuDNN autotuning, TF32 off, bf16 autocast, torch.compile):
  seconds per step (median), peak GPU memory, the convolutions-alone bound, and whether a step
  makes the host wait for the GPU (torch.cuda.set_sync_debug_mode('error')).
* `render`  — gpu.md from the JSON files (the committed table).

    python tools/bench_gpu.py check --out $OUT
    python tools/bench_gpu.py profile --out $OUT --steps 10
    python tools/bench_gpu.py render --out results/benchmarks/gpu
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EPOCH_SEQUENCES = 10_000          # Moving MNIST training sequences per epoch

PROFILE_SETTINGS = {
    # name: (extra `stcbench profile` arguments, measure the conv bound); the fast path's GPU defaults
    # are NCHW feature maps and kept activations (recompute and channels-last are CPU defaults)
    "reference loop": (["--path", "reference"], True),
    "fast path": ([], True),
    "fast, recompute (less memory)": (["--recompute", "on"], False),
    "fast, channels-last": (["--channels-last", "on"], False),
    "fast, torch.compile": (["--compile"], False),
    "fast, cudnn.benchmark": (["--cudnn-benchmark"], False),
    "fast, bf16 autocast": (["--autocast", "bf16"], False),
    "reference, bf16 autocast": (["--path", "reference", "--autocast", "bf16"], False),
    "fast, TF32 off": (["--tf32", "off"], True),
    "reference, TF32 off": (["--path", "reference", "--tf32", "off"], False),
    "reference, cudnn.benchmark": (["--path", "reference", "--cudnn-benchmark"], False),
}


def recorded_path(value, placeholder: str):
    """A path as the committed JSON records it: relative as given, inside the repository relative to it,
    anywhere else `placeholder` (the machine's temporary and home folders stay out of the results)."""
    if not isinstance(value, (str, Path)) or not str(value) or not Path(value).is_absolute():
        return value
    path = Path(value).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else placeholder


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def gpu_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    from stcbench.commands.profiling import machine_info

    info["host"] = machine_info()
    return info


# -- check ---------------------------------------------------------------------------------------
def _train_pass(model, frames, mask, autocast_dtype=None):
    import torch

    model.zero_grad(set_to_none=True)
    with torch.autocast(frames.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = model(frames, mask)
        loss = model.loss(out, frames)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return out.detach(), loss.detach(), grads


def _relative(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _compare(run, ref) -> dict:
    out, loss, grads = run
    out_ref, loss_ref, grads_ref = ref
    return {
        "outputs_max_abs": float((out.double().cpu() - out_ref.double().cpu()).abs().max()),
        "loss_relative": abs(float(loss) - float(loss_ref)) / abs(float(loss_ref)),
        "gradients_max_relative": max(_relative(grads[k], grads_ref[k]) for k in grads_ref),
        "same_gradient_set": sorted(grads) == sorted(grads_ref),
    }


def _model(cell, hidden, geometry, **kwargs):
    from stcbench.models.predictor import RecurrentPredictor

    return RecurrentPredictor(cell, geometry.channels, hidden, patch_size=geometry.patch_size,
                              in_frames=geometry.in_frames, **kwargs)


def check(args) -> dict:
    import torch

    from stcbench.commands.profiling import dataset_geometry
    from stcbench.models.sampling import ScheduledSampling

    geometry = dataset_geometry("mmnist")
    cuda = torch.device(args.device)
    results = {"info": gpu_info(), "float64": {}, "float32": {}}
    gen = torch.Generator().manual_seed(0)
    total = geometry.in_frames + geometry.out_frames

    def data(batch, dtype):
        frames = torch.rand(batch, total, 1, geometry.height, geometry.width, generator=gen, dtype=torch.float64)
        mask = ScheduledSampling(0.5, 0.0).mask(batch, geometry.out_frames - 1, generator=gen,
                                               dtype=torch.float64)
        return frames.to(dtype), mask.to(dtype)

    # float64: every execution path on the GPU against the reference loop, and the GPU against the CPU
    for index, cell in enumerate(args.cells.split(",")):
        torch.manual_seed(0)
        base = _model(cell, [16, 16, 16], geometry).double()
        state = base.state_dict()
        frames, mask = data(2, torch.float64)
        cpu_ref = _train_pass(base, frames, mask)
        variants = {
            "reference loop": {},
            "fast, channels-last, recompute": {"fast": True, "channels_last": True, "recompute": True},
            "fast, NCHW, recompute": {"fast": True, "channels_last": False, "recompute": True},
            "fast, channels-last, keep activations": {"fast": True, "channels_last": True, "recompute": False},
            "fast, channels-last, recompute, torch.compile": {"fast": True, "channels_last": True,
                                                              "recompute": True, "compile_step": True},
        }
        if index > 0:                       # compiling takes long; one cell shows it
            variants.pop("fast, channels-last, recompute, torch.compile")
        rows = {}
        gpu_ref = None
        for name, kwargs in variants.items():
            model = _model(cell, [16, 16, 16], geometry, **kwargs).double()
            model.load_state_dict(state)
            model.to(cuda)
            start = time.perf_counter()
            run = _train_pass(model, frames.to(cuda), mask.to(cuda))
            if cuda.type == "cuda":
                torch.cuda.synchronize()
            if gpu_ref is None:
                gpu_ref = run
                rows["reference loop, GPU vs CPU"] = _compare(run, cpu_ref)
            rows[name] = _compare(run, gpu_ref)
            rows[name]["seconds_first_pass"] = time.perf_counter() - start
            print(f"float64 {cell:8s} {name:26s} {rows[name]}", flush=True)
        results["float64"][cell] = rows

    # float32 settings against float64, one training pass of STC-LIF 3x64, batch 4
    torch.manual_seed(0)
    base = _model("stclif", [64, 64, 64], geometry, fast=True).double().to(cuda)
    state = base.state_dict()
    frames, mask = data(4, torch.float64)
    frames, mask = frames.to(cuda), mask.to(cuda)
    ref = _train_pass(base, frames, mask)
    settings = {
        "float32, TF32 off": (False, None),
        "float32, TF32 on (torch default for convolutions)": (True, None),
        "bf16 autocast": (False, torch.bfloat16),
    }
    for name, (tf32, autocast) in settings.items():
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        model = _model("stclif", [64, 64, 64], geometry, fast=True).to(cuda)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        run = _train_pass(model, frames.float(), mask.float(), autocast)
        row = _compare(run, ref)
        row["outputs_relative"] = _relative(run[0], ref[0])
        results["float32"][name] = row
        print(f"stclif 3x64 {name:50s} {row}", flush=True)
    torch.backends.cudnn.allow_tf32 = True
    write_json(Path(args.out) / "check.json", results)
    return results


# -- profile -------------------------------------------------------------------------------------
def profile(args) -> list:
    out = Path(args.out)
    rows = []
    deadline = time.monotonic() + args.budget
    for name in args.settings.split(";") if args.settings else PROFILE_SETTINGS:
        extra, bound = PROFILE_SETTINGS[name]
        if time.monotonic() > deadline:
            rows.append({"setting": name, "skipped": "time budget of this run spent"})
            continue
        cmd = [sys.executable, "-m", "stcbench", "profile", "--device", args.device, "--dataset", "mmnist",
               "--cell", args.cell, "--num-hidden", args.num_hidden, "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup), *extra]
        if not bound:
            cmd.append("--no-conv-bound")
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                  timeout=max(30.0, deadline - time.monotonic() + 60))
        except subprocess.TimeoutExpired:
            rows.append({"setting": name, "error": "timed out"})
            continue
        if done.returncode != 0:
            rows.append({"setting": name, "error": done.stderr.strip().splitlines()[-1:] or ["?"]})
            print(f"{name}: failed\n{done.stderr[-1500:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["setting"] = name
        result["process_seconds"] = time.perf_counter() - start
        rows.append(result)
        print(f"{name:48s} {result['seconds_per_step']:.4f} s/step  {result['peak_memory_mb']:8.0f} MiB  "
              f"warm-up {result['warmup_seconds']:.1f} s  syncs: {result['host_syncs']}", flush=True)
        write_json(out / "profile.json", {"info": gpu_info() if not rows[:-1] else None, "rows": rows})
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    settings["out"] = recorded_path(settings.get("out"), "$OUT")
    payload = {"info": gpu_info(), "settings": settings,
               "rows": rows}
    write_json(out / "profile.json", payload)
    return rows


def _source_name(filename: str) -> str:
    """A warning's file as a path inside this repository or inside site-packages."""
    path = Path(filename).resolve()
    if path.is_relative_to(REPO):
        return path.relative_to(REPO).as_posix()
    return path.as_posix().split("site-packages/")[-1]


# -- fit ---------------------------------------------------------------------------------------
def fit_epoch(args) -> dict:
    """One epoch of the paper configuration through `stcbench fit` (Lightning, generated data),
    with torch.cuda.set_sync_debug_mode('warn') counting every host sync by source line."""
    import collections
    import warnings

    import torch

    from stcbench.engine.schema import parse_override
    from stcbench.training.runner import fit

    overrides = {"model.fast": True, "trainer.stop_after_epochs": 1, "data.data_root": args.data_root,
                 "data.generate_if_missing": True, "run.output_dir": str(Path(args.out) / "runs"),
                 "run.name": "epoch", "run.scale": "paper configuration, first epoch only",
                 "logging.progress_bar": args.progress_bar, "data.num_workers": args.workers}
    overrides.update(parse_override(item) for item in args.set)      # typed by the config schema, as fit's --set
    if torch.cuda.is_available():
        torch.cuda.set_sync_debug_mode("warn")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = fit(args.config, overrides=overrides)
    wall = time.perf_counter() - start
    if torch.cuda.is_available():
        torch.cuda.set_sync_debug_mode(0)
    syncs = collections.Counter(f"{_source_name(w.filename)}:{w.lineno}"
                                for w in caught if "synchronizing" in str(w.message))
    metrics = {}
    for csv in Path(run_dir).rglob("metrics.csv"):
        import csv as csv_module

        for row in csv_module.DictReader(csv.open()):
            for key in ("time/train_epoch_seconds", "time/seconds_per_step", "val/mse", "train/loss_epoch"):
                if row.get(key):
                    metrics[key] = float(row[key])
    recorded = dict(overrides, **{"data.data_root": recorded_path(overrides["data.data_root"], "<data root>"),
                                  "run.output_dir": recorded_path(overrides["run.output_dir"], "$OUT/runs")})
    result = {"overrides": recorded, "wall_seconds": wall, "metrics": metrics,
              "host_syncs_by_line": syncs.most_common(20), "host_syncs_total": sum(syncs.values()),
              "info": gpu_info()}
    write_json(Path(args.out) / "fit.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "info"}, indent=1))
    return result


# -- render --------------------------------------------------------------------------------------
def _fmt(value, spec=".3f"):
    return "—" if value is None or value != value else format(value, spec)


def render(args) -> str:
    out = Path(args.out)
    prof = json.loads((out / "profile.json").read_text())
    info = prof["info"]
    rows = [r for r in prof["rows"] if "seconds_per_step" in r]
    fast = next((r for r in rows if r["setting"] == "fast path"), None)
    reference = next((r for r in rows if r["setting"] == "reference loop"), None)
    s = prof["settings"]
    lines = [
        "# GPU training step: the paper configuration",
        "",
        f"STC-LIF {len(s['num_hidden'].split(','))}×{s['num_hidden'].split(',')[0]} (`--num-hidden {s['num_hidden']}`), "
        f"batch {s['batch']}, Moving MNIST "
        f"shapes (10→10 frames of 64×64, patch 2, 19 network steps), float32 parameters, forward over all "
        f"steps + backward + Adam on random data; median of {s['steps']} steps after {s['warmup']} warm-up "
        f"step(s), one process per row (`stcbench profile --device cuda`, tools/bench_gpu.py).",
        "",
        f"Machine: {info.get('gpu', '?')} ({info.get('memory_gib', '?')} GiB), torch {info['torch']}, CUDA "
        f"{info['cuda']}, cuDNN {info['cudnn']}; host {info['host']['cpu']} ({info['host']['logical_cores']} "
        f"logical cores). An epoch is {EPOCH_SEQUENCES:,} training sequences = "
        f"{EPOCH_SEQUENCES // s['batch']} steps; the epoch column is that many steps at the median step time "
        f"(training only: no data loading, validation or logging).",
        "",
        "| setting | s/step | sequences/s | epoch (min) | × fast | peak GPU memory (MiB) | warm-up (s) | host syncs in a step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in prof["rows"]:
        if "seconds_per_step" not in r:
            lines.append(f"| {r['setting']} | {r.get('error') or r.get('skipped')} | | | | | | |")
            continue
        epoch = r["seconds_per_step"] * (EPOCH_SEQUENCES // s["batch"]) / 60
        rel = r["seconds_per_step"] / fast["seconds_per_step"] if fast else float("nan")
        lines.append(f"| {r['setting']} | {r['seconds_per_step']:.4f} | {r['sequences_per_second']:.1f} | "
                     f"{epoch:.2f} | {rel:.2f} | {r['peak_memory_mb']:.0f} | {r['warmup_seconds']:.1f} | "
                     f"{r['host_syncs']} |")
    bounds = [r for r in rows if r.get("conv_bound_seconds") == r.get("conv_bound_seconds")
              and isinstance(r.get("conv_bound_seconds"), float)]
    if bounds:
        lines += ["", "Convolutions alone (every convolution of one training step, forward and backward, "
                  "timed one call at a time with a synchronisation around each):", "",
                  "| setting | s/step | convolutions alone (s) | step / convolutions |", "|---|---|---|---|"]
        for r in bounds:
            lines.append(f"| {r['setting']} | {r['seconds_per_step']:.4f} | {r['conv_bound_seconds']:.4f} | "
                         f"{r['conv_bound_ratio']:.2f} |")
    check_path = out / "check.json"
    if check_path.exists():
        check_data = json.loads(check_path.read_text())
        lines += ["", "## Same numbers on the GPU", "",
                  "One training pass (forward, loss, backward) of a 3×16 network, batch 2, in float64 on the GPU; "
                  "every path against the reference loop on the GPU, and the reference loop on the GPU against "
                  "the CPU:", "",
                  "| cell | path | outputs max abs diff | loss rel. diff | gradients max rel. diff |",
                  "|---|---|---|---|---|"]
        for cell, paths in check_data["float64"].items():
            for name, row in paths.items():
                lines.append(f"| {cell} | {name} | {row['outputs_max_abs']:.1e} | {row['loss_relative']:.1e} | "
                             f"{row['gradients_max_relative']:.1e} |")
        lines += ["", "How far float32 settings move one training pass of STC-LIF 3×64 (batch 4) from float64 "
                  "(relative L2 error of the outputs and of the worst parameter gradient). Spikes are thresholded, "
                  "so round-off can flip one, and a flipped spike changes everything downstream:", "",
                  "| setting | outputs rel. error | loss rel. error | gradients max rel. error |", "|---|---|---|---|"]
        for name, row in check_data["float32"].items():
            lines.append(f"| {name} | {row['outputs_relative']:.1e} | {row['loss_relative']:.1e} | "
                         f"{row['gradients_max_relative']:.1e} |")
    fit_path = out / "fit.json"
    if fit_path.exists():
        fit_data = json.loads(fit_path.read_text())
        m, o = fit_data["metrics"], fit_data["overrides"]
        per_line = ", ".join(f"{where} ×{count}" for where, count in fit_data["host_syncs_by_line"][:8])
        lines += ["", "## One epoch through `stcbench fit`", "",
                  f"stcbench/configs/mmnist/stclif.yaml (3×256, batch 16, paper schedule) with `model.fast: "
                  f"{str(o.get('model.fast')).lower()}`, {o.get('data.num_workers')} loader workers, "
                  f"`logging.progress_bar: {o.get('logging.progress_bar')}`, first of 500 epochs "
                  f"(`trainer.stop_after_epochs: 1`), on the generated Moving MNIST (training sequences are made "
                  f"on the fly, {EPOCH_SEQUENCES:,} per epoch, as for the real data; GPU: "
                  f"{fit_data['info'].get('gpu', '?')}). Lightning's loop, data loading, logging and checkpointing "
                  "included; validation excluded from the epoch time:", "",
                  "| training epoch (s) | s/step | val/mse after the epoch | whole command (s) |", "|---|---|---|---|",
                  f"| {m['time/train_epoch_seconds']:.1f} | {m['time/seconds_per_step']:.4f} | {m['val/mse']:.4f} | "
                  f"{fit_data['wall_seconds']:.0f} |", "",
                  f"Host syncs during the whole command (torch.cuda.set_sync_debug_mode('warn'), by source line): "
                  f"{fit_data['host_syncs_total']} in all, none of them once per training step: {per_line}. "
                  f"They come from validation and test, checkpoint saving, and the logging steps "
                  f"(every `logging.log_every_n_steps`)."]
    by_name = {r["setting"]: r for r in rows}

    def ratio(name, base="fast path"):
        a, b = by_name.get(name), by_name.get(base)
        return a["seconds_per_step"] / b["seconds_per_step"] if a and b else float("nan")
    if reference and fast:
        lines += ["", "## Reading the table", "",
                  f"* On this GPU the fast path and the reference loop take about the same time "
                  f"({ratio('fast path', 'reference loop'):.2f}×): the step is bound by cuDNN's convolutions "
                  f"(the batched context convolution and the gate helpers save little), unlike on the CPU.",
                  f"* Recomputing the neuron dynamics in the backward pass costs {ratio('fast, recompute (less memory)'):.2f}× "
                  f"the time for {by_name['fast, recompute (less memory)']['peak_memory_mb'] / fast['peak_memory_mb']:.2f}× "
                  "the memory, and channels-last feature maps "
                  f"{ratio('fast, channels-last'):.2f}× the time: both stay CPU defaults (`model.recompute` and "
                  "`model.channels_last` are null = CPU only); set `model.recompute: true` when memory is short."
                  if "fast, recompute (less memory)" in by_name and "fast, channels-last" in by_name else "",
                  f"* TF32 (torch's default for float32 convolutions) is worth {1 / ratio('fast path', 'fast, TF32 off'):.1f}× "
                  "over full float32; bf16 autocast a further "
                  f"{ratio('fast, bf16 autocast'):.2f}×, torch.compile of the step after the input convolution "
                  f"{ratio('fast, torch.compile'):.2f}× (after a {by_name.get('fast, torch.compile', {}).get('warmup_seconds', float('nan')):.0f} s "
                  "compile, with less memory since the fused element-wise code keeps fewer activations). Each of "
                  "these changes the float32 round-off, and the spikes with it (next section)."
                  if "fast, TF32 off" in by_name else "",
                  "* Nothing in a training step makes the host wait for the GPU (`host syncs in a step`: "
                  "torch.cuda.set_sync_debug_mode('error') around a whole step raised nothing), so the CPU "
                  "queues work ahead of the GPU."]
        earlier = out / "profile_earlier_instance.json"
        if earlier.exists():
            old_rows = {r["setting"]: r for r in json.loads(earlier.read_text())["rows"] if "seconds_per_step" in r}
            if "reference" in old_rows:
                lines.append(f"* Machines of the same kind differ: on another H100 instance earlier the same day "
                             f"the reference loop took {old_rows['reference']['seconds_per_step']:.3f} s/step "
                             f"(profile_earlier_instance.json, run before the GPU defaults changed: its `fast` "
                             "rows are channels-last with recompute). Compare rows of one table, not tables.")
        lines += ["", f"Fast path / reference loop: {fast['seconds_per_step'] / reference['seconds_per_step']:.2f}× "
                  f"the time, {fast['peak_memory_mb'] / reference['peak_memory_mb']:.2f}× the peak memory."]
    text = "\n".join(lines) + "\n"
    (out / "gpu.md").write_text(text) if args.write else None
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check")
    p.add_argument("--out", default="results/benchmarks/gpu")
    p.add_argument("--cells", default="stclif,stcplif,lif")
    p.add_argument("--device", default="cuda", help="cpu only to try the script out")
    p.set_defaults(func=check)
    p = sub.add_parser("profile")
    p.add_argument("--out", default="results/benchmarks/gpu")
    p.add_argument("--cell", default="stclif")
    p.add_argument("--num-hidden", default="256,256,256")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--settings", default="", help="';'-separated names of PROFILE_SETTINGS (default: all)")
    p.add_argument("--device", default="cuda", help="cpu only to try the script out")
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which no new setting starts")
    p.set_defaults(func=profile)
    p = sub.add_parser("fit")
    p.add_argument("--out", default="results/benchmarks/gpu")
    p.add_argument("--config", default=str(REPO / "stcbench/configs/mmnist/stclif.yaml"))
    p.add_argument("--data-root", default="/tmp/stcbench-data")
    p.add_argument("--progress-bar", default="rich")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--set", action="append", default=[], help="extra override KEY=VALUE (JSON values)")
    p.set_defaults(func=fit_epoch)
    p = sub.add_parser("render")
    p.add_argument("--out", default="results/benchmarks/gpu")
    p.add_argument("--no-write", dest="write", action="store_false")
    p.set_defaults(func=render)
    args = parser.parse_args(argv)
    result = args.func(args)
    if args.command == "render":
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
