"""`stcbench bench` end to end with the real runner: a committable, movable results folder."""
import argparse
import json
import shutil

import numpy as np
import yaml

from stcbench.commands import bench
from stcbench.reports.report import write_report
from tests.training.helpers import tiny_config


def strict_loads(text):
    def refuse(constant):
        raise ValueError(constant)

    return json.loads(text, parse_constant=refuse)


def test_quick_suite_folder_is_committable_and_movable(mmnist_root, tmp_path, capsys):
    configs = tmp_path / "configs"
    (configs / "quick").mkdir(parents=True)
    (configs / "quick" / "mmnist.yaml").write_text(yaml.safe_dump(tiny_config(mmnist_root, tmp_path / "x", epochs=1)))
    out = tmp_path / "results"
    args = argparse.Namespace(suite="quick", cells=["lif"], datasets=["mmnist"], tasks=None, seeds=None, out=out,
                              data_root=mmnist_root, configs=configs, scale=None, overrides=[], dry_run=False,
                              no_report=False, html=False, tag="", keep_checkpoints=None, reference_loop=False)
    assert bench.run(args) == 0
    run_dir = out / "runs" / "mmnist" / "lif" / "quick-lif-seed42"
    metrics = strict_loads((run_dir / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == "checkpoints/best.ckpt" and metrics["test"]["n_sequences"] == 3
    assert not (run_dir / "checkpoints").exists()
    with np.load(run_dir / "predictions.npz") as data:
        assert data["pred"].shape == (1, 10, 1, 64, 64)
    analysis_path = out / "analysis" / "mmnist_lif.json"
    analysis = strict_loads(analysis_path.read_text())
    assert analysis["run"] == "../runs/mmnist/lif/quick-lif-seed42" and analysis["firing_rates"]
    assert "figures/mmnist_firing_rates.png" in (out / "report.md").read_text()

    moved = tmp_path / "elsewhere" / "committed"
    shutil.move(str(out), str(moved))
    text = write_report(moved / "runs", moved).read_text()
    assert "figures/mmnist_firing_rates.png" in text                  # the cached analysis is found again
    assert strict_loads((moved / "analysis" / "mmnist_lif.json").read_text())["firing_rates"] == analysis["firing_rates"]
    capsys.readouterr()
    args.out = moved
    assert bench.run(args) == 0                                        # finished without checkpoints: skipped
    assert "skip mmnist/lif seed 42: finished" in capsys.readouterr().out
