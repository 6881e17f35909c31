"""Fabricated run directories (INPUT data for the table/report code; not results)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml


def make_run(root: Path, dataset: str, cell: str, name: str, *, test: dict | None, scale: str = "quick",
             epochs: int = 2, selected_on: str = "val", val: dict | None = None, test_long: dict | None = None,
             cell_options: dict | None = None, params: int | None = None, flops: float | None = None,
             finished_at: float | None = None, seed: int = 42, per_sequence: dict | None = None) -> Path:
    run_dir = root / dataset / cell / name
    run_dir.mkdir(parents=True)
    metrics = {"dataset": dataset, "cell": cell, "scale": scale, "selected_on": selected_on, "world_size": 1,
               "params": params, "flops": flops, "epochs": epochs, "seed": seed}
    if test is not None:
        metrics["test"] = test
    if val is not None:
        metrics["val"] = val
    if test_long is not None:
        metrics["test_long"] = test_long
    if finished_at is not None:
        metrics["finished_at"] = finished_at
    if per_sequence is not None:        # {metric: values per test sequence}, as the runner writes them
        np.savez(run_dir / "test_per_sequence.npz", **{k: np.asarray(v, dtype=np.float64)
                                                       for k, v in per_sequence.items()})
        metrics["test_per_sequence"] = "test_per_sequence.npz"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    config = {"seed": seed, "model": {"cell": cell, "num_hidden": [16], "cell_options": cell_options or {}},
              "run": {"scale": scale}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


def video_metrics(mse: float, mae: float, ssim: float, psnr: float = 20.0, frames: int = 4) -> dict:
    return {"mse": mse, "mae": mae, "ssim": ssim, "psnr": psnr,
            "per_frame": {"mse": [mse * (0.8 + 0.1 * i) for i in range(frames)],
                          "ssim": [ssim - 0.01 * i for i in range(frames)]}}
