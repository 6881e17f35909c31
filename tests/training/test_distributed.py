"""Distributed evaluation covers every test sequence exactly once and reduces exactly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stcbench.training.module import WeightedMSE
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_unrepeated_sampler_visits_each_sample_once():
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    for n in (2, 3, 7, 10):
        seen = []
        for rank in range(2):
            seen += list(UnrepeatedDistributedSampler(range(n), num_replicas=2, rank=rank, shuffle=False))
        assert sorted(seen) == list(range(n))


@pytest.mark.parametrize("metric_factory", ["prediction", "weighted_mse"])
def test_additive_states_merge_to_the_single_process_result(metric_factory):
    from stcbench.metrics import PredictionMetrics

    make = PredictionMetrics if metric_factory == "prediction" else WeightedMSE
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(5, 4, 1, 8, 8, generator=gen)
    true = torch.rand(5, 4, 1, 8, 8, generator=gen)
    whole = make()
    whole.update(pred[:2], true[:2])
    whole.update(pred[2:], true[2:])
    rank0, rank1 = make(), make()
    rank0.update(pred[:2], true[:2])       # uneven shares, as with UnrepeatedDistributedSampler
    rank1.update(pred[2:4], true[2:4])
    rank1.update(pred[4:], true[4:])
    rank0.merge_state(rank1)               # the sum all-reduce DDP performs on the states
    expected, merged = whole.compute(), rank0.compute()
    if isinstance(expected, dict):
        for key in ("mse", "mae"):
            assert merged[key] == pytest.approx(expected[key], rel=1e-12)
        assert merged["per_frame"]["mse"] == pytest.approx(expected["per_frame"]["mse"], rel=1e-12)
    else:
        assert float(merged) == pytest.approx(float(expected), rel=1e-12)


def test_ddp_two_processes_match_single_process(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path, epochs=1, data={"test_samples": 5}))
    single = json.loads((run_dir / "metrics.json").read_text())["test"]
    out = tmp_path / "ddp.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    script = tmp_path / "cli.py"     # re-executed by Lightning's DDP launcher in the second process
    script.write_text("import sys\nfrom stcbench.cli import main\nsys.exit(main())\n")
    cmd = [sys.executable, str(script), "test", str(run_dir), "--output", str(out),
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--set", "logging.progress_bar=none"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(out.read_text())
    assert ddp["world_size"] == 2
    assert ddp["test"]["n_sequences"] == single["n_sequences"] == 5
    # The ranks run float32 convolutions on other batch compositions than the single process,
    # so predictions differ at round-off; the reduction itself is exact (test above, 1e-12).
    for key in ("mse", "mae"):
        assert ddp["test"][key] == pytest.approx(single[key], rel=1e-6)
    assert ddp["test"]["per_frame"]["mse"] == pytest.approx(single["per_frame"]["mse"], rel=1e-6)


def test_a_ddp_run_resumed_equals_an_uninterrupted_one(mmnist_root, tmp_path):
    """Each process draws its own scheduled-sampling masks; a resume restores every process's generator (the
    checkpoint held rank 0's alone, so after a resume every rank drew rank 0's masks)."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(mmnist_root, tmp_path / "runs", epochs=2, name="full",
                                                 sampling={"rate": 0.5})))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    script = tmp_path / "cli.py"
    script.write_text("import sys\nfrom stcbench.cli import main\nsys.exit(main())\n")
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]

    def cli(*args):
        proc = subprocess.run([sys.executable, str(script), *args, *ddp], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    cli("fit", "--config", str(config))
    cli("fit", "--config", str(config), "--run-name", "cut", "--set", "trainer.stop_after_epochs=1")
    cut = tmp_path / "runs" / "mmnist" / "lif" / "cut"
    cli("fit", "--ckpt-path", str(cut))
    full = torch.load(tmp_path / "runs" / "mmnist" / "lif" / "full" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=False)
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert len(resumed["stcbench"]["mask_generators"]) == 2
