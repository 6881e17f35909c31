"""Run records fit to commit: no machine paths, the data named by checksum, per-sequence test metrics."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from stcbench.data.checksum import CACHE_FILE, dataset_checksum, folder_checksum
from stcbench.engine.schema import load_config_dict
from stcbench.engine.portable import portable_config_dict, portable_path
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config


def record_texts(run_dir: Path) -> dict[str, str]:
    names = ["config.yaml", "metrics.json"] + [str(p.relative_to(run_dir)) for p in run_dir.glob("logs/**/hparams.yaml")]
    return {name: (run_dir / name).read_text() for name in names}


def test_records_hold_no_machine_paths_and_name_the_data_by_checksum(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path / "out", epochs=1))
    texts = record_texts(run_dir)
    assert any(name.endswith("hparams.yaml") for name in texts)
    for name, text in texts.items():
        assert str(tmp_path) not in text and str(mmnist_root) not in text, name
    config = yaml.safe_load(texts["config.yaml"])
    assert config["data"]["data_root"] == "" and config["run"]["output_dir"] == "runs"
    metrics = json.loads(texts["metrics.json"])
    assert "data_root" not in metrics["data"]
    assert metrics["data"]["checksum"] == dataset_checksum("mmnist", mmnist_root)
    assert metrics["data"]["checksum"].startswith("sha256:")


def test_per_sequence_metrics_average_to_the_recorded_ones(mmnist_root, tmp_path):
    run_dir = fit(tiny_config(mmnist_root, tmp_path, epochs=1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_per_sequence"] == "test_per_sequence.npz"
    assert [m["key"] for m in metrics["reported_metrics"]] == ["mse", "mae", "ssim", "psnr"]     # what tables show
    with np.load(run_dir / "test_per_sequence.npz") as data:
        assert data["index"].tolist() == [0, 1, 2]
        for key in ("mse", "mae", "ssim", "psnr"):
            assert data[key].shape == (3,)
            assert data[key].mean() == pytest.approx(metrics["test"][key], rel=1e-12), key


def test_resume_from_the_portable_config_finds_the_data_of_the_checkpoint(mmnist_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # no datasets/ here: the default data folder is empty
    monkeypatch.delenv("STCBENCH_DATA_ROOT", raising=False)
    first = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"stop_after_epochs": 1}))
    config = load_config_dict(first / "config.yaml")
    assert config["data"]["data_root"] == ""
    assert config["trainer"]["stop_after_epochs"] is None       # one session's instruction, not the run's setting
    resumed = fit(config, ckpt_path=first)
    assert resumed == first and json.loads((first / "metrics.json").read_text())["epochs"] == 2


def test_a_run_made_inside_the_working_folder_keeps_its_data_across_resume_and_test(mmnist_root, tmp_path,
                                                                                      monkeypatch, capsys):
    """config.yaml records a data folder inside the working folder relative to it; a resume keeps the absolute
    folder the checkpoint names, and a test from another folder reads that data, never a stand-in made there."""
    import shutil

    import torch

    from stcbench.cli import main

    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    shutil.copytree(mmnist_root, project / "mydata")
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    first = fit(tiny_config(project / "mydata", project / "runs", epochs=2, trainer={"stop_after_epochs": 1}))
    assert load_config_dict(first / "config.yaml")["data"]["data_root"] == "mydata"
    assert main(["fit", "--ckpt-path", str(first)]) == 0
    stored = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]["config"]
    assert Path(stored["data"]["data_root"]).is_absolute()
    monkeypatch.chdir(elsewhere)
    assert main(["test", str(first)]) == 0
    assert list(elsewhere.iterdir()) == []                          # nothing generated here
    shutil.move(project / "mydata", tmp_path / "moved")
    capsys.readouterr()
    assert main(["test", str(first)]) == 2                           # the data is gone: said, not made up
    assert "not found" in capsys.readouterr().err and list(elsewhere.iterdir()) == []


def test_portable_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path("data/mmnist", "") == "data/mmnist"
    assert portable_path(str(tmp_path / "datasets"), "") == "datasets"
    assert portable_path("/somewhere/else", "runs") == "runs"
    config = {"data": {"data_root": "/x/y"}, "run": {"output_dir": str(tmp_path / "r")}, "seed": 1}
    assert portable_config_dict(config) == {"data": {"data_root": ""}, "run": {"output_dir": "r"}, "seed": 1}
    assert config["data"]["data_root"] == "/x/y"                     # the input is left alone


def test_folder_checksum_is_cached_and_follows_the_data(tmp_path):
    folder = tmp_path / "moving_mnist"
    (folder / ".stcbench_cache").mkdir(parents=True)
    (folder / "a.npy").write_bytes(b"abc")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.bin").write_bytes(b"xyz")
    first = folder_checksum(folder)
    cache = json.loads((folder / CACHE_FILE).read_text())
    assert sorted(cache) == ["a.npy", "sub/b.bin"]                    # hidden files and folders left out
    (folder / ".stcbench_cache" / "c").write_bytes(b"cache")
    (folder / "stcbench.json").write_text("{}")                      # the generator's description
    assert folder_checksum(folder) == first
    (folder / "a.npy").write_bytes(b"abd")
    os.utime(folder / "a.npy", ns=(1, 1))
    assert folder_checksum(folder) != first
    assert folder_checksum(tmp_path / "missing") is None


def test_per_sequence_parts_of_ddp_processes_are_put_in_test_set_order(monkeypatch):
    import torch
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
    from torch.utils.data import DataLoader

    from stcbench.engine import per_sequence

    dataset = list(range(5))
    ranks = []
    for rank in (0, 1):
        loader = DataLoader(dataset, sampler=UnrepeatedDistributedSampler(dataset, num_replicas=2, rank=rank,
                                                                          shuffle=False))
        trainer = type("Trainer", (), {"test_dataloaders": loader})()
        recorder = per_sequence.SequenceRecorder()
        for start in range(0, 3 - rank, 2):        # this process's batches: its sequences in its order
            mine = list(range(rank, 5, 2))[start:start + 2]
            recorder.add({"mse": torch.tensor([10.0 * i for i in mine])})
        ranks.append((recorder, trainer))
    locals_ = []
    monkeypatch.setattr(per_sequence, "_gather", lambda local: locals_.append(local) or [local])
    for recorder, trainer in ranks:
        recorder.collect(trainer)
    monkeypatch.setattr(per_sequence, "_gather", lambda local: locals_)
    merged = ranks[1][0].collect(ranks[1][1])
    assert merged["index"].tolist() == [0, 1, 2, 3, 4]
    assert merged["mse"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_a_run_on_the_default_data_folder_is_tested_from_anywhere(mmnist_root, tmp_path, monkeypatch):
    """config.yaml keeps the default ("": $STCBENCH_DATA_ROOT, else datasets/), the checkpoint the folder itself,
    so a test from another working folder reads the run's data."""
    import shutil

    from stcbench.cli import main

    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    shutil.copytree(mmnist_root, project / "datasets")
    elsewhere.mkdir()
    monkeypatch.delenv("STCBENCH_DATA_ROOT", raising=False)
    monkeypatch.chdir(project)
    run_dir = fit(tiny_config("", project / "runs", epochs=1))
    assert load_config_dict(run_dir / "config.yaml")["data"]["data_root"] == ""
    monkeypatch.chdir(elsewhere)
    assert main(["test", str(run_dir)]) == 0 and list(elsewhere.iterdir()) == []


def test_a_kth_runs_per_sequence_values_are_its_main_tests_not_the_longer_ones(tmp_path, monkeypatch):
    """KTH tests each checkpoint 10->20 and then 10->40; both tests refill the module's per-sequence values, and
    the record keeps the main test's (the ones the paired bootstrap compares, and that average to test.mse)."""
    from types import SimpleNamespace

    from stcbench.training import module as training_module
    from stcbench.training import task as video_task

    model = SimpleNamespace(test_per_sequence=None, prediction_buffer=[])

    def fake_test(trainer, tested, datamodule=None, dataloaders=None, keep_predictions=0, log_prefix="test"):
        tested.test_per_sequence = {"which": log_prefix}
        return {"mse": 1.0}

    monkeypatch.setattr(training_module, "load_module", lambda path, config, dtype: model)
    monkeypatch.setattr(video_task, "run_test", fake_test)
    monkeypatch.setattr(video_task, "wants_long_test", lambda config: True)
    monkeypatch.setattr(video_task, "long_test_loader", lambda config: None)
    config = SimpleNamespace(trainer=SimpleNamespace(precision="32-true"),
                             run=SimpleNamespace(save_predictions=False, predictions_limit=0))
    tested = video_task.test_one_checkpoint(config, SimpleNamespace(is_global_zero=True), None,
                                            tmp_path / "checkpoints" / "best.ckpt", "best")
    assert tested.per_sequence == {"which": "test"} and tested.extra["test_long"] == {"mse": 1.0}
