"""End-to-end fit + test on the embedded Moving MNIST with tiny networks."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml

from stcbench.training.config import config_from_dict
from stcbench.training import runner
from stcbench.training.runner import fit
from stcbench.training.task import format_summary
from tests.training.helpers import tiny_config


def read_csv_columns(run_dir):
    with open(run_dir / "logs" / "csv" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return rows, set(rows[0]) if rows else set()


@pytest.mark.parametrize("cell", ["lif", "convlstm"])
def test_fit_writes_complete_run_directory(cell, mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path, cell=cell, run={"save_predictions": True}))
    assert run_dir == tmp_path / "mmnist" / cell / "t"
    for name in ("config.yaml", "metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "predictions.npz", "logs/csv/metrics.csv"):
        assert (run_dir / name).is_file(), name
    config = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    assert config.model.cell == cell and config.run.scale == "test"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "mmnist" and metrics["cell"] == cell and metrics["scale"] == "test"
    assert metrics["selected_on"] == "val" and metrics["selected_on_test"] is False
    assert metrics["world_size"] == 1 and metrics["per_device_batch_size"] == 2
    assert metrics["epochs"] == 2 and metrics["global_steps"] == 4
    assert metrics["model"]["variant"] == "reference"      # the cell variant the run used, recorded explicitly
    assert metrics["params"] == sum(v.numel() for k, v in torch.load(
        run_dir / "checkpoints/last.ckpt", weights_only=False)["state_dict"].items() if k.startswith("net."))
    assert metrics["data"]["counts"]["test"] == 3
    test_block = metrics["test"]
    assert test_block["n_sequences"] == 3 and len(test_block["per_frame"]["mse"]) == 10
    assert np.isfinite(test_block["mse"]) and test_block["mse"] > 0
    assert metrics["last"]["test"]["n_sequences"] == 3 and metrics["last"]["epoch"] == 2
    assert metrics["val"]["split"] == "val" and metrics["val"]["mse_per_pixel"] > 0
    assert metrics["val"]["mse"] == pytest.approx(metrics["val"]["mse_per_pixel"] * 4096)
    with np.load(run_dir / "predictions.npz") as z:
        assert z["context"].shape == (3, 10, 1, 64, 64) and z["pred"].shape == (3, 10, 1, 64, 64)
    rows, columns = read_csv_columns(run_dir)
    assert {"train/loss_step", "train/eta", "val/mse", "lr", "grad_norm/total", "time/train_epoch_seconds",
            "time/seconds_per_step"} <= columns
    if cell == "lif":
        assert any(c.startswith("firing_rate/") for c in columns)
    # the tests of the selected and the last checkpoint are logged apart, each with its own value
    logged = {key: float(r[key]) for r in rows for key in ("test/mse", "test_last/mse") if r.get(key)}
    assert logged == pytest.approx({"test/mse": test_block["mse"], "test_last/mse": metrics["last"]["test"]["mse"]})
    # the learning rate of epoch 0 and 1 follows the warm-up/cosine formula
    lrs = [float(r["lr"]) for r in rows if r.get("lr")]
    assert lrs[:2] == pytest.approx([1e-5, 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + np.cos(np.pi / 2))])


def test_test_command_matches_fit_metrics(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    out = tmp_path / "again.json"
    results = runner.test(None, run_dir, output=out)
    assert results["test"]["mse"] == pytest.approx(metrics["test"]["mse"], rel=1e-12)
    assert json.loads(out.read_text())["test"]["n_sequences"] == 3
    assert f"epoch {results['epochs']})" in format_summary(results) and results["epochs"] == 2
    assert "data_differs_from_training" not in results
    # a config given to set the test up (here one labelled quick) does not relabel the run's results
    relabelled = runner.test(tiny_config(mmnist_root, tmp_path, run={"scale": "quick"}), run_dir)
    assert relabelled["scale"] == "test" and "test_long" not in relabelled


def test_a_test_on_other_data_than_the_runs_says_so(mmnist_root, tmp_path, capsys):
    """Data regenerated with another seed (as a missing-data hint might lead to) is not the run's data."""
    from stcbench.data import generate_dataset

    run_dir = fit(tiny_config(mmnist_root, tmp_path / "runs", epochs=1))
    other = tmp_path / "other"
    generate_dataset("mmnist", other, seed=7)
    capsys.readouterr()
    results = runner.test(None, run_dir, overrides={"data.data_root": str(other)})
    trained = json.loads((run_dir / "metrics.json").read_text())["data"]["checksum"]
    assert results["data_differs_from_training"] == {"trained": trained, "tested": results["data"]["checksum"]}
    assert "is not the data the run recorded" in capsys.readouterr().err


def test_precision_64_true(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path, trainer={"precision": "64-true"}, epochs=1))
    state = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["state_dict"]
    assert all(v.dtype == torch.float64 for v in state.values() if v.is_floating_point())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["precision"] == "64-true" and np.isfinite(metrics["test"]["mse"])


def test_openstl_selection_is_tagged(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path, data={"selection": "openstl_test"}, epochs=1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selected_on"] == "openstl_test" and metrics["selected_on_test"] is True
    assert metrics["val"]["split"] == "test"
    summary = format_summary(metrics)
    assert "selected on the test set (openstl_test)" in summary and "validation" not in summary


def registered_cells():
    from stcbench.cells import list_cells

    return [info.name for info in list_cells()]


def test_every_registered_cell_trains_and_tests(mmnist_root, tmp_path):
    """One tiny epoch per cell: the recipe works whatever the cell (incl. convlstm)."""
    for cell in registered_cells():
        config = tiny_config(mmnist_root, tmp_path, cell=cell, epochs=1, name=cell,
                             data={"train_samples": 2, "val_samples": 2, "test_samples": 2},
                             logging={"loggers": []})
        run_dir = fit(config)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert np.isfinite(metrics["test"]["mse"]), cell


def test_the_python_api_labels_a_resized_named_scale_custom_as_the_command_does(mmnist_root, tmp_path, capsys):
    """runner.fit of a shipped quick config made smaller is no quick run (tables would rank it as one)."""
    overrides = {"data.data_root": str(mmnist_root), "run.output_dir": str(tmp_path), "trainer.max_epochs": 1,
                 "data.train_samples": 4, "data.val_samples": 2, "data.test_samples": 2, "model.num_hidden": [16],
                 "logging.loggers": ["csv"], "logging.progress_bar": "none"}
    run_dir = runner.fit("quick/mmnist", overrides=overrides)
    assert json.loads((run_dir / "metrics.json").read_text())["scale"] == "custom"
    assert "scale label: custom, not quick" in capsys.readouterr().err


@pytest.mark.parametrize("own,label", [("trainer:\n  max_epochs: 1\n", "custom"),             # resized in the file
                                       ("optim:\n  lr: 0.01\n", "quick"),                      # same size
                                       ("trainer:\n  max_epochs: 1\nrun:\n  scale: quick\n", "quick")])   # named
def test_a_config_file_that_resizes_its_shipped_base_is_labelled_custom(tmp_path, capsys, own, label):
    """A file of one's own with `base: quick/mmnist` that changes the epochs is no quick run, as --set would make
    it; one that names run.scale itself keeps that label."""
    from stcbench.cli import main

    (tmp_path / "mine.yaml").write_text("base: quick/mmnist\n" + own)
    assert main(["fit", "--config", str(tmp_path / "mine.yaml"), "--print-config"]) == 0
    assert f"  scale: {label}\n" in capsys.readouterr().out


def test_the_scale_reference_is_the_nearest_file_that_names_the_scale_and_never_refuses_a_valid_config(tmp_path,
                                                                                                    capsys):
    from stcbench.cli import main

    (tmp_path / "mybase.yaml").write_text("base: quick/mmnist\ntrainer:\n  max_epochs: 1\nrun:\n  scale: quick\n")
    (tmp_path / "top.yaml").write_text("base: mybase.yaml\noptim:\n  lr: 0.01\n")      # resizes nothing itself
    assert main(["fit", "--config", str(tmp_path / "top.yaml"), "--print-config"]) == 0
    assert "  scale: quick\n" in capsys.readouterr().out
    (tmp_path / "kth.yaml").write_text("base: quick/mmnist\ndata:\n  dataset: kth\n")   # valid only with its own keys
    assert main(["fit", "--config", str(tmp_path / "kth.yaml"), "--set", "data.test_long=true", "--print-config"]) == 0
    assert "test_long: true" in capsys.readouterr().out
