"""The fit / test / demo commands through the CLI entry point."""
import json
from pathlib import Path

import numpy as np
import pytest

import yaml

from stcbench.cli import main
from tests.training.helpers import tiny_config


def test_fit_cli_overrides_beat_the_file(mmnist_root, tmp_path, capsys):
    config = tiny_config(mmnist_root, tmp_path / "from_file", epochs=3)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path), "--max-epochs", "1", "--output-dir", str(tmp_path / "runs"),
                 "--cell", "convlstm", "--seed", "7", "--set", "optim.lr=2e-3", "--run-name", "cli"]) == 0
    run_dir = tmp_path / "runs" / "mmnist" / "convlstm" / "cli"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 1 and saved["seed"] == 7 and saved["optim"]["lr"] == 2e-3
    assert saved["data"]["batch_size"] == 2                      # from the file
    assert saved["optim"]["min_lr"] == 1e-5                      # default
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1
    assert "run directory" in capsys.readouterr().out
    # `stcbench test RUN_DIR` re-evaluates the selected checkpoint
    out = tmp_path / "t.json"
    assert main(["test", "--ckpt_path", str(run_dir), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["test"]["n_sequences"] == 3
    # an execution option may change at test time (same numbers); the trained architecture may not
    fast_out = tmp_path / "t_fast.json"
    assert main(["test", str(run_dir), "--output", str(fast_out), "--set", "model.fast=true"]) == 0
    fast, reference = json.loads(fast_out.read_text())["test"], json.loads(out.read_text())["test"]
    assert fast["n_sequences"] == 3 and fast["mse"] == pytest.approx(reference["mse"], rel=1e-4)
    # resuming a finished run without a larger budget says that there is nothing to train
    capsys.readouterr()
    assert main(["fit", "--ckpt-path", str(run_dir)]) == 0
    assert "has trained all 1 epochs of this config: nothing to train" in capsys.readouterr().out
    # a resume continues the run in its own folder: an --output-dir elsewhere is refused, not ignored
    assert main(["fit", "--ckpt-path", str(run_dir), "--output-dir", str(tmp_path / "elsewhere")]) == 2
    captured = capsys.readouterr()
    assert "a resume continues the run in its own folder" in captured.err and "has trained all" not in captured.out
    assert not (tmp_path / "elsewhere").exists()
    assert main(["fit", "--ckpt-path", str(run_dir), "--output-dir", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    # resuming a finished run with a larger budget trains on from last.ckpt in the same directory
    assert main(["fit", "--ckpt-path", str(run_dir / "checkpoints" / "last.ckpt"), "--max-epochs", "2"]) == 0
    assert "nothing to train" not in capsys.readouterr().out
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
    assert (run_dir / "logs" / "csv" / "resumed-2" / "metrics.csv").is_file()


def test_demo_writes_table_and_figure(mmnist_root, tmp_path, capsys):
    config = tiny_config(mmnist_root, tmp_path, epochs=1)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--config", str(path), "--cells", "lif,convlstm",
                 "--data-root", str(mmnist_root)]) == 0
    printed = capsys.readouterr().out
    assert "| lif |" in printed and "| convlstm |" in printed and "MSE" in printed
    png = out / "demo_predictions.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["cells"]) == {"lif", "convlstm"}
    # follows is measured on every test sequence and printed in the table, with what it means
    from stcbench.metrics.motion import follow_score
    for cell, row in summary["cells"].items():
        with np.load(Path(row["run_dir"]) / "predictions.npz") as data:
            assert len(data["pred"]) == json.loads((Path(row["run_dir"]) / "metrics.json").read_text())[
                "test"]["n_sequences"]
            expected = follow_score(data["context"], data["truth"], data["pred"])["follows"]
        assert row["follows"] == pytest.approx(expected, abs=5e-4)
        table_row = next(text for text in printed.splitlines() if text.startswith(f"| {cell} |"))
        assert f"| {row['follows']:.2f} |" in table_row
    assert "| follows |" in printed and "follows: how the centre of mass" in printed
    # a second demo replaces the first one's runs, but not one that a process still trains
    from stcbench.engine.run_folder import training_lock
    held = Path(summary["cells"]["lif"]["run_dir"])
    with training_lock(held):
        assert main(["demo", "--out", str(out), "--config", str(path), "--cells", "lif",
                     "--data-root", str(mmnist_root)]) == 2
    assert "is being trained by process" in capsys.readouterr().err
    assert (held / "metrics.json").is_file()
    # one seed cannot rank cells: the demo says so and compares on the same test sequences
    assert "cannot say which cell trains better" in printed
    per_sequence = {cell: np.load(Path(row["run_dir"]) / "test_per_sequence.npz")["mse"]
                    for cell, row in summary["cells"].items()}
    line = next(text for text in printed.splitlines() if text.startswith("MSE convlstm - lif:"))
    assert line in json.loads((out / "demo_summary.json").read_text())["comparison"]
    assert f"{(per_sequence['convlstm'] - per_sequence['lif']).mean():+.2f} " in line
    if len(per_sequence["lif"]) >= 10:
        assert line.endswith(("better", "worse", "not distinguishable"))
    else:                                         # this data's few test sequences: no interval, and it says so
        assert line.endswith(f"no interval: {len(per_sequence['lif'])} test sequences paired, fewer than the 10 "
                             f"an interval needs")
    # one cell alone: nothing to compare, and the demo says so instead of describing a comparison
    assert main(["demo", "--out", str(out), "--config", str(path), "--cells", "lif",
                 "--data-root", str(mmnist_root)]) == 0
    alone = capsys.readouterr().out
    assert "(no comparison" in alone and "cannot say which cell" not in alone


def test_demo_replaces_only_its_own_runs_and_checks_everything_first(mmnist_root, tmp_path, capsys):
    """A run the demo did not make (here a user's run named demo in --out) is neither replaced nor removed, and
    a bad cell or --epochs is refused before anything is removed, created or trained."""
    out = tmp_path / "proj"
    theirs = out / "runs" / "mmnist" / "lif" / "demo"
    theirs.mkdir(parents=True)
    (theirs / "metrics.json").write_text("{}")
    for flags in (["--cells", "lif"], ["--cells", "lif", "--epochs", "0"], ["--cells", "plif,bogus"]):
        assert main(["demo", "--out", str(out), "--data-root", str(mmnist_root), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("is not a run of an earlier" in err or "at least 1 epoch" in err
                                           or "unknown cell 'bogus'" in err)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "runs", "runs/mmnist", "runs/mmnist/lif", "runs/mmnist/lif/demo", "runs/mmnist/lif/demo/metrics.json"]


def test_fit_resume_from_a_missing_path_says_so(tmp_path, capsys):
    missing = tmp_path / "runs" / "mmnist" / "lif" / "nonexistent"
    assert main(["fit", "--ckpt-path", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--ckpt-path {str(missing)!r} does not exist" in err and "no config given" not in err
    stray = tmp_path / "last.ckpt"
    stray.write_bytes(b"")
    assert main(["fit", "--ckpt-path", str(stray)]) == 2
    assert "not inside a run directory" in capsys.readouterr().err


def test_a_test_config_keeps_the_trained_model_and_takes_execution_options():
    from stcbench.engine.schema import CliText
    from stcbench.errors import ConfigError
    from stcbench.training.config import resolve_config
    from stcbench.training.task import VideoTask

    stored = resolve_config("quick/mmnist", {"model.cell": "lif", "model.num_hidden": [32, 32]}).to_dict()
    given = {"model": {"num_hidden": [16], "channels_last": False}, "data": {"batch_size": 3}}
    config = VideoTask().test_config(stored, given, {"model.fast": CliText("true")})
    assert config.model.num_hidden == [32, 32] and config.model.cell == "lif"        # trained
    assert config.model.fast is True and config.model.channels_last is False         # execution, given now
    assert config.data.batch_size == 3
    with pytest.raises(ConfigError, match=r"model\.filter_size \(from --set.*only model\.fast"):
        VideoTask().test_config(stored, None, {"model.filter_size": CliText("3")})


def test_demo_with_other_epochs_is_labelled_custom_without_pointing_to_a_flag_it_lacks(tmp_path):
    """`demo --epochs` leaves the demo's setting: the run is `custom`, and fit's note (which points to --scale, an
    option the demo does not have) is not printed."""
    from stcbench.commands.demo_run import _demo_overrides
    from stcbench.engine.run import label_resized
    from stcbench.engine.task import get_task

    task = get_task("video")
    for epochs, label in ((None, "demo"), (2, "custom")):
        overrides = _demo_overrides(tmp_path, "lif", 42, None, epochs)
        config = task.resolve_config("demo/mmnist", overrides)
        assert label_resized(task, config, "demo/mmnist", overrides) is None and config.run.scale == label


def test_the_demo_compares_each_cell_with_lif_by_a_paired_bootstrap_over_the_test_sequences(tmp_path):
    from stcbench.commands.demo_run import compare_with_baseline
    from stcbench.reports.stats import paired_bootstrap
    from tests.reports.helpers import make_run, video_metrics

    lif_mse = np.linspace(100.0, 130.0, 12)
    runs = {cell: make_run(tmp_path, "mmnist", cell, "demo", test=video_metrics(float(mse.mean()), 1.0, 0.5),
                           per_sequence={"mse": mse, "index": np.arange(12)})
            for cell, mse in (("lif", lif_mse), ("convlstm", lif_mse - 5.0 + np.sin(np.arange(12))))}
    lines = compare_with_baseline({cell: {"run_dir": str(path)} for cell, path in runs.items()})
    expected = paired_bootstrap(lif_mse - 5.0 + np.sin(np.arange(12)), lif_mse)
    assert lines[1] == (f"MSE convlstm - lif: {expected.mean:+.2f} [{expected.low:+.2f}, {expected.high:+.2f}] "
                        f"(95 %, paired bootstrap over 12 test sequences): better")


def test_the_demo_says_why_a_diverged_cell_has_no_interval(tmp_path):
    from stcbench.commands.demo_run import compare_with_baseline
    from tests.reports.helpers import make_run, video_metrics

    mse = {"lif": np.linspace(100.0, 130.0, 12), "stclif": np.append(np.linspace(90.0, 120.0, 11), np.inf)}
    runs = {cell: make_run(tmp_path, "mmnist", cell, "demo", test=video_metrics(100.0, 1.0, 0.5),
                           per_sequence={"mse": values, "index": np.arange(12)}) for cell, values in mse.items()}
    lines = compare_with_baseline({cell: {"run_dir": str(path)} for cell, path in runs.items()})
    assert lines[1] == "MSE stclif - lif: +inf over 12 test sequences; no interval: a per-sequence value is not finite"
