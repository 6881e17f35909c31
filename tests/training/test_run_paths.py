"""Run records hold paths relative to the run directory, so a run folder can be moved or committed."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from stcbench.cli import main
from stcbench.engine.run_paths import relative_to_run, resolve_in_run
from stcbench.training.runner import fit
from stcbench.training.task import checkpoint_for_test
from tests.training.helpers import tiny_config


def string_values(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from string_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from string_values(item)
    elif isinstance(value, str):
        yield value


def test_metrics_json_is_run_relative_and_the_moved_run_still_tests(mmnist_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data").symlink_to(mmnist_root, target_is_directory=True)
    run_dir = fit(tiny_config(Path("data"), Path("runs"), epochs=1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    absolute = [s for s in string_values(metrics) if s.startswith("/")]
    assert absolute == []
    assert metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    assert metrics["best"]["checkpoint"] == "checkpoints/best.ckpt"
    assert metrics["last"]["checkpoint"] == "checkpoints/last.ckpt"
    assert "data_root" not in metrics["data"]                           # the data is named by its checksum
    assert metrics["data"]["checksum"].startswith("sha256:")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["data_root"] == "data"   # as given

    moved = tmp_path / "elsewhere" / "moved-run"
    shutil.move(str(run_dir), str(moved))
    assert not run_dir.exists()
    assert checkpoint_for_test(moved) == moved / "checkpoints" / "best.ckpt"
    out = tmp_path / "tested.json"
    assert main(["test", "--ckpt-path", str(moved), "--output", str(out)]) == 0
    tested = json.loads(out.read_text())
    assert tested["run_dir"] == str(moved) and tested["checkpoint"] == "checkpoints/best.ckpt"
    assert tested["test"]["n_sequences"] == 3
    assert tested["test"]["mse"] == pytest.approx(metrics["test"]["mse"], rel=1e-6)


def test_relative_to_run_keeps_outside_paths_as_given(tmp_path):
    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "r"
    assert relative_to_run(run_dir / "checkpoints" / "best.ckpt", run_dir) == "checkpoints/best.ckpt"
    assert relative_to_run("../data", run_dir) == "../data"
    assert relative_to_run("/srv/datasets", run_dir) == "/srv/datasets"


def test_old_absolute_and_repository_relative_records_are_still_read(tmp_path):
    run_dir = tmp_path / "moved" / "quick-lif-seed42"
    (run_dir / "checkpoints").mkdir(parents=True)
    best = run_dir / "checkpoints" / "best.ckpt"
    best.write_bytes(b"x")
    assert resolve_in_run("checkpoints/best.ckpt", run_dir) == best
    assert resolve_in_run(str(best), run_dir) == best                            # absolute, still there
    old_absolute = "/old/machine/runs/mmnist/lif/quick-lif-seed42/checkpoints/best.ckpt"
    assert resolve_in_run(old_absolute, run_dir) == best                          # absolute, folder moved
    assert resolve_in_run("results/quick/runs/mmnist/lif/quick-lif-seed42/checkpoints/best.ckpt", run_dir) == best
    assert resolve_in_run("checkpoints/missing.ckpt", run_dir) == run_dir / "checkpoints" / "missing.ckpt"
    assert resolve_in_run(None, run_dir) is None


def test_report_analysis_finds_the_checkpoint_of_an_old_absolute_record(tmp_path):
    from stcbench.reports.analysis import checkpoint_of
    from stcbench.reports.runs import Run

    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "chosen.ckpt").write_bytes(b"x")
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    for recorded in ("checkpoints/chosen.ckpt", "/gone/runs/mmnist/lif/r/checkpoints/chosen.ckpt"):
        run = Run(run_dir, "mmnist", "lif", {"best_checkpoint": recorded})
        assert checkpoint_of(run) == run_dir / "checkpoints" / "chosen.ckpt"


def test_a_resume_reads_the_data_root_named_on_the_command_line(mmnist_root, tmp_path, monkeypatch, capsys):
    """--data-root on a resume is the user's word: a folder that does not exist is named, not replaced by the
    checkpoint's data folder; without it the run goes on with the data it was trained on."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(mmnist_root, "data")
    run_dir = fit(tiny_config(Path("data"), Path("runs"), epochs=1)).absolute()
    last = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    capsys.readouterr()
    assert main(["fit", "--ckpt-path", str(run_dir), "--data-root", "nothere", "--set", "trainer.max_epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "nothere" in err and len(err.strip().splitlines()) == 1
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == last and not Path("nothere").exists()
    monkeypatch.chdir(tmp_path / "runs")                     # "data" names no folder from here: the checkpoint's
    assert main(["fit", "--ckpt-path", str(run_dir), "--set", "trainer.max_epochs=2"]) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2


def test_the_python_api_refuses_to_write_a_test_over_the_run_records(mmnist_root, tmp_path):
    from stcbench.errors import ConfigError
    from stcbench.training.runner import test

    run_dir = fit(tiny_config(mmnist_root, tmp_path / "runs", epochs=1))
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match="would replace a record of the run"):
        test(None, run_dir, output=run_dir / "metrics.json")
    assert (run_dir / "metrics.json").read_bytes() == before
    assert test(None, run_dir, output=run_dir / "tested.json")["test"]["n_sequences"] == 3
