"""Per-iteration time of the memory-probe networks (`stcbench.memory.network.MemoryNet`) on the CPU.

The setting of the memory campaign: two layers of 64 neurons, T = 100 steps, batch 128, readout
`last`, one thread, forward + backward + Adam step.  Each cell's network runs both ways in the
same process, the fast path (`net.fast = True`, the default) and the per-step reference loop
(`net.fast = False`), iterations interleaved over cells and modes so that a busy machine slows
both alike; the median per cell and mode is printed, with the ratio reference / fast.

    python tools/bench_memory.py                       # lif alif plif tclif celif stclif
    python tools/bench_memory.py lif stclif --rounds 9 --recurrent
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from stcbench.memory.network import MemoryNet

CELLS = ("lif", "alif", "plif", "tclif", "celif", "stclif")
MODES = ("reference", "fast")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", default=list(CELLS))
    parser.add_argument("--rounds", type=int, default=7, help="timed iterations per cell and mode (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recurrent", action="store_true")
    parser.add_argument("--readout", default="last")
    parser.add_argument("--synapse-norm", default="layer")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, args.steps, 2)
    runs = {}
    for cell in args.cells:
        net = MemoryNet(cell, 2, list(args.hidden), 1, steps=args.steps, readout=args.readout,
                        recurrent=args.recurrent, synapse_norm=args.synapse_norm)
        runs[cell] = (net, torch.optim.Adam(net.parameters(), 1e-3))

    def iteration(cell: str, mode: str) -> float:
        net, opt = runs[cell]
        net.fast = mode == "fast"
        start = time.perf_counter()
        loss = net(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    times = {(cell, mode): [] for cell in args.cells for mode in args.modes}
    for round_ in range(args.rounds + 1):
        for cell in args.cells:
            for mode in (args.modes if round_ % 2 else args.modes[::-1]):
                elapsed = iteration(cell, mode)
                if round_:
                    times[cell, mode].append(elapsed)
    print(f"batch {args.batch}, T {args.steps}, hidden {args.hidden}, {args.threads} thread(s), "
          f"recurrent {args.recurrent}, readout {args.readout}, synapse_norm {args.synapse_norm}; "
          f"median of {args.rounds} interleaved iterations (s/iter)")
    print(f"{'cell':8s}" + "".join(f"{mode:>12s}" for mode in args.modes)
          + ("   reference/fast" if len(args.modes) == 2 else ""))
    for cell in args.cells:
        medians = [statistics.median(times[cell, mode]) for mode in args.modes]
        line = f"{cell:8s}" + "".join(f"{m:12.4f}" for m in medians)
        if len(medians) == 2:
            line += f"   {medians[0] / medians[1]:8.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
