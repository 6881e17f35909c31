"""`stcbench profile` runs training steps and ends with one JSON line."""
from __future__ import annotations

import json

import pytest

from stcbench.cli import main


def test_profile_prints_json_last_line(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  dataset: taxibj\nmodel:\n  cell: lif\n  num_hidden: [16]\n")
    code = main(["profile", "--config", str(config), "--batch", "1", "--steps", "1", "--warmup", "0",
                 "--threads", "1"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["cell"] == "lif" and result["dataset"] == "taxibj" and result["num_hidden"] == [16]
    for key in ("seconds_per_step", "sequences_per_second", "peak_memory_mb", "conv_bound_seconds",
                "conv_bound_ratio"):
        assert key in result
    assert result["seconds_per_step"] > 0 and result["conv_bound_seconds"] > 0
    assert result["sequences_per_second"] == pytest.approx(1 / result["seconds_per_step"])


def test_profile_bad_hidden_is_a_clear_error(capsys):
    assert main(["profile", "--dataset", "taxibj", "--num-hidden", "a,b"]) == 2
    assert "--num-hidden must be comma-separated integers" in capsys.readouterr().err


def test_profile_records_the_fast_path_settings(capsys):
    code = main(["profile", "--dataset", "taxibj", "--cell", "lif", "--num-hidden", "64", "--batch", "1",
                 "--steps", "1", "--warmup", "0", "--threads", "1", "--no-recompute", "--conv-algorithm",
                 "winograd", "--no-conv-bound"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["path"] == "fast" and result["recompute"] is False and result["conv_algorithm"] == "winograd"


def test_host_sync_check_reports_the_first_sync_and_restores_the_mode(monkeypatch):
    """check_host_syncs runs a step under set_sync_debug_mode('error'); a sync surfaces as a RuntimeError."""
    import torch

    from stcbench.commands import profiling

    modes = []
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    def syncing_step():
        raise RuntimeError("called a synchronizing CUDA operation\nmore")
    assert profiling.check_host_syncs(lambda: None) == "none"
    report = profiling.check_host_syncs(syncing_step)
    assert report.startswith("found at") and report.endswith("called a synchronizing CUDA operation")
    assert "test_profile_command.py" in report
    assert modes == ["error", 0, "error", 0]


def test_profile_takes_batch_patch_and_filter_from_the_config(capsys, tmp_path):
    """A config's data.batch_size, model.patch_size and model.filter_size shape the profiled model."""
    from stcbench.models.predictor import RecurrentPredictor, count_parameters

    config = tmp_path / "run.yaml"
    config.write_text("data:\n  dataset: mmnist\n  batch_size: 2\n"
                      "model:\n  cell: lif\n  num_hidden: [16]\n  patch_size: 4\n  filter_size: 3\n")
    assert main(["profile", "--config", str(config), "--steps", "1", "--warmup", "0", "--threads", "1",
                 "--no-conv-bound"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = RecurrentPredictor("lif", 1, [16], patch_size=4, filter_size=3)
    assert result["batch"] == 2 and result["patch_size"] == 4 and result["filter_size"] == 3
    assert result["params"] == count_parameters(expected)
    assert result["params"] != count_parameters(RecurrentPredictor("lif", 1, [16], patch_size=2, filter_size=5))


def test_unsteady_step_times_are_pointed_out(capsys):
    from stcbench.commands.profile import warn_if_unsteady

    warn_if_unsteady([0.74, 1.67, 3.84])
    err = capsys.readouterr().err
    assert "0.740 to 3.840 s (5.2x apart" in err and "more --steps" in err
    warn_if_unsteady([1.0, 1.1, 1.4])
    assert capsys.readouterr().err == ""
