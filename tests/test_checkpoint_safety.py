"""No checkpoint a user hands to stcbench may run code: every command that reads one refuses a
pickle that calls a function, with exit code 2 and one line naming the file and --trust-checkpoint."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stcbench.cli import main


class Payload:
    """Unpickling this calls os.system, which creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_checkpoint(path: Path, marker: Path, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": {"config": {"model": Payload(marker)}}, **extra}, path)
    return path


def hostile_run(root: Path, marker: Path, task: str = "video") -> Path:
    """A run directory whose config.yaml is harmless and whose checkpoints are hostile."""
    run = root / "run"
    hostile_checkpoint(run / "checkpoints" / "last.ckpt", marker)
    hostile_checkpoint(run / "checkpoints" / "best.ckpt", marker)
    (run / "config.yaml").write_text(f"task: {task}\n")
    return run


def assert_refused(capsys, code: int, marker: Path, name: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert not marker.exists(), "the checkpoint's code ran"
    assert len(err) == 1 and "refused to load" in err[0] and name in err[0] and "--trust-checkpoint" in err[0], err


def commands(tmp: Path, ckpt: Path) -> dict[str, list[str]]:
    frames = tmp / "frames.npy"
    np.save(frames, np.zeros((1, 10, 1, 64, 64), np.float32))
    return {
        "predict": ["predict", str(ckpt), "--input", str(frames), "--output", str(tmp / "out.npy")],
        "test": ["test", "--ckpt-path", str(ckpt)],
        "test-positional": ["test", str(ckpt)],
        "fit-resume": ["fit", "--config", "quick/mmnist", "--ckpt-path", str(ckpt), "--output-dir", str(tmp / "runs")],
        "convert-official": ["convert-official", str(ckpt), "--cell", "lif", "--dataset", "mmnist",
                             "--output", str(tmp / "converted.ckpt")],
    }


@pytest.mark.parametrize("command", ["predict", "test", "test-positional", "fit-resume", "convert-official"])
def test_every_command_refuses_a_checkpoint_that_runs_code(tmp_path, capsys, command):
    marker = tmp_path / "PWNED"
    ckpt = hostile_checkpoint(tmp_path / "hostile.ckpt", marker)
    argv = commands(tmp_path, ckpt)[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_refused(capsys, main(argv), marker, str(ckpt))
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "the refused command created files"


@pytest.mark.parametrize("argv", [["test", "{run}"], ["fit", "--ckpt-path", "{run}"]])
@pytest.mark.parametrize("task", ["video", "memory"])
def test_run_directories_with_hostile_checkpoints_are_refused(tmp_path, capsys, argv, task, monkeypatch):
    marker = tmp_path / "PWNED"
    run = hostile_run(tmp_path, marker, task)
    if task == "memory" and argv[0] == "fit":
        config = run / "config.yaml"
        config.write_text(f"task: memory\nrun:\n  output_dir: {tmp_path / 'out'}\n")
    elif argv[0] == "fit":
        from stcbench.config_files import PACKAGED_CONFIGS

        (run / "config.yaml").write_text(f"base: {PACKAGED_CONFIGS / 'quick' / 'mmnist.yaml'}\n")
    monkeypatch.chdir(tmp_path)
    code = main([a.format(run=run) for a in argv])
    assert_refused(capsys, code, marker, "last.ckpt" if argv[0] == "fit" else "run/checkpoints")
    assert not (tmp_path / "out").exists()


def test_report_analysis_refuses_a_hostile_checkpoint(tmp_path):
    from stcbench.checkpoints import UnsafeCheckpointError
    from stcbench.reports.analysis import load_run_network
    from stcbench.reports.runs import Run

    marker = tmp_path / "PWNED"
    ckpt = hostile_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt", marker)
    run = Run(path=ckpt.parent.parent, dataset="mmnist", cell="lif", metrics={"best_checkpoint": "checkpoints/best.ckpt"},
              config={"model": {"cell": "lif", "num_hidden": [16], "filter_size": 3}})
    with pytest.raises(UnsafeCheckpointError, match="--trust-checkpoint"):
        load_run_network(run)
    assert not marker.exists()


def test_memory_weights_refuse_a_hostile_checkpoint(tmp_path):
    from stcbench.checkpoints import UnsafeCheckpointError
    from stcbench.engine.evaluation import load_weights

    marker = tmp_path / "PWNED"
    ckpt = hostile_checkpoint(tmp_path / "best.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError):
        load_weights(None, ckpt)
    assert not marker.exists()


def test_trust_checkpoint_loads_what_the_user_vouches_for(tmp_path, capsys):
    """The documented escape hatch does load the file (here: its payload runs, then the conversion fails)."""
    marker = tmp_path / "PWNED"
    ckpt = hostile_checkpoint(tmp_path / "hostile.ckpt", marker)
    main(["convert-official", str(ckpt), "--cell", "lif", "--dataset", "mmnist", "--output",
          str(tmp_path / "c.ckpt"), "--trust-checkpoint"])
    assert marker.exists()
    main(["convert-official", str(ckpt), "--cell", "lif", "--dataset", "mmnist", "--output", str(tmp_path / "c.ckpt")])
    assert "refused to load" in capsys.readouterr().err, "trust must not outlive the command"


def test_every_checkpoint_reading_command_documents_the_flag():
    from stcbench.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("fit", "test", "predict", "convert-official", "bench"):
        assert "--trust-checkpoint" in subparsers[name].format_help(), name


def test_checkpoints_written_by_stcbench_load_safely(tmp_path):
    """The project's own checkpoint contents (numpy RNG state as tensors, Python RNG tuple) pass the safe load."""
    import random

    from stcbench.checkpoints import load_checkpoint
    from stcbench.training.module import _numpy_state

    path = tmp_path / "own.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "stcbench": {"rng": {
        "torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate()}}}, path)
    assert load_checkpoint(path)["stcbench"]["rng"]["python"] == random.getstate()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_unreadable_checkpoints_are_one_line_errors(tmp_path, capsys, content):
    ckpt = tmp_path / "bad.ckpt"
    ckpt.write_bytes(content)
    assert main(["test", "--ckpt-path", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read checkpoint" in err[0] and "Traceback" not in err[0], err
